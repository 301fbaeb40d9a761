//! The `xlsx` connector: workbooks written with rust_xlsxwriter.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::DataType;
use gridhub_connector::{Connector, ConnectorError, Health};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

use crate::support::{Env, field_names, field_types, query, rows};

/// Sheet `居民`: Chinese headers (one blank, one repeated), a date cell, a date-time cell,
/// the plain number 43891, empty cells, an entirely empty row. Sheet `统计`: a title row above
/// the header.
fn write_workbook(path: &Path) {
    let mut workbook = Workbook::new();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let date_time = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");

    let sheet = workbook.add_worksheet();
    sheet.set_name("居民").unwrap();
    for (c, h) in [
        "身份证号",
        "姓名",
        "出生日期",
        "登记时间",
        "编号",
        "备注",
        "",
        "姓名",
    ]
    .iter()
    .enumerate()
    {
        if !h.is_empty() {
            sheet.write_string(0, c as u16, *h).unwrap();
        }
    }
    // Row 2 (Excel numbering).
    sheet.write_string(1, 0, "010101199001011234").unwrap();
    sheet.write_string(1, 1, "欧阳明").unwrap();
    sheet
        .write_datetime_with_format(1, 2, ExcelDateTime::from_ymd(1990, 1, 1).unwrap(), &date)
        .unwrap();
    sheet
        .write_datetime_with_format(
            1,
            3,
            ExcelDateTime::from_ymd(2020, 3, 1)
                .unwrap()
                .and_hms(8, 30, 5)
                .unwrap(),
            &date_time,
        )
        .unwrap();
    sheet.write_number(1, 4, 43891).unwrap();
    // (1, 5) 备注 left empty.
    sheet.write_number(1, 6, 1.5).unwrap();
    sheet.write_string(1, 7, "明明").unwrap();
    // Row 3 entirely empty; row 4:
    sheet.write_string(3, 0, "010101199002022345").unwrap();
    sheet.write_string(3, 1, "司马光").unwrap();
    sheet
        .write_datetime_with_format(3, 2, ExcelDateTime::from_ymd(1985, 12, 31).unwrap(), &date)
        .unwrap();
    sheet.write_boolean(3, 3, true).unwrap();
    sheet.write_number(3, 4, 0.1).unwrap();
    sheet.write_string(3, 5, "绿码").unwrap();

    let stats = workbook.add_worksheet();
    stats.set_name("统计").unwrap();
    stats.write_string(0, 0, "2024年人口统计").unwrap();
    stats.write_string(1, 0, "社区").unwrap();
    stats.write_string(1, 1, "人数").unwrap();
    stats.write_string(2, 0, "东风社区").unwrap();
    stats.write_number(2, 1, 1200).unwrap();

    workbook.save(path).unwrap();
}

/// A fresh directory holding [`write_workbook`]'s workbook as `file`, and the xlsx source
/// `name` built over it with `options`.
fn workbook_source(file: &str, name: &str, options: &str) -> (Env, Arc<dyn Connector>) {
    let env = Env::new();
    write_workbook(&env.path(file));
    let source = env.build("xlsx", name, options);
    (env, source)
}

#[tokio::test]
async fn workbook_reads_back_as_specified() {
    let (env, source) = workbook_source(
        "户籍.xlsx",
        "hukou",
        "name = 'hukou'\ntype = 'xlsx'\npath = '户籍.xlsx'",
    );
    assert!(source.is_materialised());
    assert_eq!(source.discover().await.unwrap(), ["居民", "统计"]);

    let table = source.table("居民").await.unwrap();
    assert_eq!(
        field_names(&table),
        [
            "身份证号",
            "姓名",
            "出生日期",
            "登记时间",
            "编号",
            "备注",
            "column_7",
            "姓名_2",
            "_row"
        ]
    );
    let types = field_types(&table);
    assert!(types[..8].iter().all(|t| *t == DataType::Utf8), "{types:?}");
    assert_eq!(types[8], DataType::Int64);
    assert!(env.cache_dir().join("居民.parquet").is_file());

    let got = query(table.clone(), "SELECT * FROM t ORDER BY _row").await;
    assert_eq!(
        got,
        rows(&[
            &[
                Some("010101199001011234"),
                Some("欧阳明"),
                Some("1990-01-01"),
                Some("2020-03-01 08:30:05"),
                Some("43891"),
                None,
                Some("1.5"),
                Some("明明"),
                Some("2"),
            ],
            &[
                Some("010101199002022345"),
                Some("司马光"),
                Some("1985-12-31"),
                Some("true"),
                Some("0.1"),
                Some("绿码"),
                None,
                None,
                Some("4"),
            ],
        ])
    );
    let filtered = query(table, r#"SELECT "姓名" FROM t WHERE "编号" = '43891'"#).await;
    assert_eq!(filtered, rows(&[&[Some("欧阳明")]]));
}

#[tokio::test]
async fn header_row_and_tables_option() {
    let (env, source) = workbook_source(
        "book.xlsx",
        "s",
        "path = 'book.xlsx'\nheader_row = 2\ntables = { stats = '统计' }",
    );
    assert_eq!(source.discover().await.unwrap(), ["stats"]);
    let table = source.table("stats").await.unwrap();
    assert_eq!(field_names(&table), ["社区", "人数", "_row"]);
    assert_eq!(
        query(table, "SELECT * FROM t").await,
        rows(&[&[Some("东风社区"), Some("1200"), Some("3")]])
    );
    assert!(env.cache_dir().join("stats.parquet").is_file());
    let err = source.table("统计").await.unwrap_err();
    assert!(matches!(err, ConnectorError::UnknownTable { .. }), "{err}");
}

#[tokio::test]
async fn missing_sheet_and_missing_workbook() {
    let (env, source) = workbook_source(
        "book.xlsx",
        "wb",
        "path = 'book.xlsx'\ntables = { x = '不存在' }",
    );
    let msg = source.table("x").await.unwrap_err().to_string();
    assert!(
        msg.contains("wb") && msg.contains("不存在") && msg.contains("book.xlsx"),
        "{msg}"
    );

    let gone = env.build("xlsx", "gone_src", "path = 'gone.xlsx'");
    let err = gone.discover().await.unwrap_err();
    assert!(matches!(err, ConnectorError::Io { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("gone_src") && msg.contains("gone.xlsx"),
        "{msg}"
    );
    assert!(matches!(gone.health().await, Health::Unavailable(w) if w.contains("gone.xlsx")));
    assert!(
        gone.refresh()
            .await
            .unwrap_err()
            .to_string()
            .contains("gone.xlsx")
    );

    env.write("junk.xlsx", b"not a zip file");
    let junk = env.build("xlsx", "junk", "path = 'junk.xlsx'");
    assert!(!junk.health().await.is_ok());
    assert_eq!(source.health().await, Health::Ok);
}

#[tokio::test]
async fn refresh_rebuilds_after_workbook_changes() {
    let env = Env::new();
    let path = env.path("r.xlsx");
    let write = |name: &str| {
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name("名单").unwrap();
        ws.write_string(0, 0, "姓名").unwrap();
        ws.write_string(1, 0, name).unwrap();
        wb.save(&path).unwrap();
    };
    write("欧阳明");
    let source = env.build("xlsx", "s", "path = 'r.xlsx'");
    assert_eq!(source.last_refresh(), None);
    let table = source.table("名单").await.unwrap();
    assert_eq!(
        query(table, "SELECT * FROM t").await[0][0].as_deref(),
        Some("欧阳明")
    );
    let first = source.last_refresh().unwrap();

    std::thread::sleep(Duration::from_millis(20));
    write("诸葛亮");
    let stale = source.table("名单").await.unwrap();
    assert_eq!(
        query(stale, "SELECT * FROM t").await[0][0].as_deref(),
        Some("欧阳明")
    );

    let report = source.refresh().await.unwrap();
    assert_eq!(report.tables, [("名单".to_string(), 1)]);
    assert!(source.last_refresh().unwrap() > first);
    let fresh = source.table("名单").await.unwrap();
    assert_eq!(
        query(fresh, "SELECT * FROM t").await[0][0].as_deref(),
        Some("诸葛亮")
    );
}

#[tokio::test]
async fn a_renamed_header_or_a_corrupt_workbook_keeps_the_previous_cache() {
    let env = Env::new();
    let path = env.path("r.xlsx");
    let write = |header: &str, name: &str| {
        let mut wb = Workbook::new();
        let ws = wb.add_worksheet();
        ws.set_name("名单").unwrap();
        ws.write_string(0, 0, header).unwrap();
        ws.write_string(1, 0, name).unwrap();
        wb.save(&path).unwrap();
    };
    write("姓名", "欧阳明");
    let check = gridhub_connector::CacheCheck::new(|_, schema| {
        schema
            .field_with_name("姓名")
            .map(|_| ())
            .map_err(|_| "no column '姓名'".to_string())
    });
    let source = env.build_checked("xlsx", "s", "path = 'r.xlsx'", check);
    source.refresh().await.unwrap();
    let cache = env.cache_dir().join("名单.parquet");
    let before = std::fs::read(&cache).unwrap();

    write("名字", "诸葛亮");
    let err = source.refresh().await.unwrap_err().to_string();
    assert!(
        err.contains("no column '姓名'") && err.contains("kept"),
        "{err}"
    );
    assert_eq!(std::fs::read(&cache).unwrap(), before);

    std::fs::write(&path, b"PK\x03\x04 not a workbook").unwrap();
    let err = source.refresh().await.unwrap_err().to_string();
    assert!(err.contains("r.xlsx"), "{err}");
    assert_eq!(std::fs::read(&cache).unwrap(), before);
    assert_eq!(
        env.cache_files(),
        ["名单.parquet"],
        "no temporary file is left"
    );
    // The cache still answers while the workbook is unreadable.
    let table = source.table("名单").await.unwrap();
    assert_eq!(
        query(table, "SELECT * FROM t").await[0][0].as_deref(),
        Some("欧阳明")
    );
}
