//! The `csv` connector: GBK materialisation, UTF-8 in place.

use std::time::Duration;

use datafusion::arrow::datatypes::DataType;
use gridhub_connector::{ConnectorError, Health};

use crate::support::{Env, field_names, field_types, physical_plan, query, rows};

/// `text` encoded as GBK (real GBK bytes, not UTF-8).
fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, had_errors) = encoding_rs::GBK.encode(text);
    assert!(!had_errors, "test text must be encodable in GBK");
    assert_ne!(
        bytes.as_ref(),
        text.as_bytes(),
        "GBK bytes differ from UTF-8"
    );
    bytes.into_owned()
}

const RESIDENTS: &str = "身份证号,姓名,健康码,住址\r\n\
    010101199001011234,欧阳明,绿码,幸福路1号\r\n\
    010101199002022345,司马光,黄码,\"和平街2号\r\n3单元\"\r\n\
    \r\n\
    010101199003033456,诸葛亮,绿码,\r\n";

#[tokio::test]
async fn gbk_csv_round_trips_through_sql() {
    let env = Env::new();
    env.write("data/居民.csv", gbk(RESIDENTS));
    let source = env.build(
        "csv",
        "register",
        r#"
        name = "register"
        type = "csv"
        label = "社区登记"
        path = "data/居民.csv"
        encoding = "gbk"
        "#,
    );
    assert!(source.is_materialised());
    assert_eq!(source.discover().await.unwrap(), ["居民"]);
    assert_eq!(source.last_refresh(), None, "nothing cached yet");

    let table = source.table("居民").await.unwrap();
    assert_eq!(
        field_names(&table),
        ["身份证号", "姓名", "健康码", "住址", "_row"]
    );
    assert_eq!(
        field_types(&table),
        [
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Int64
        ]
    );
    assert!(env.cache_dir().join("居民.parquet").is_file());
    assert!(source.last_refresh().is_some());

    let got = query(
        table.clone(),
        r#"SELECT "身份证号", "姓名", "健康码", "住址", "_row" FROM t ORDER BY "_row""#,
    )
    .await;
    assert_eq!(
        got,
        rows(&[
            &[
                Some("010101199001011234"),
                Some("欧阳明"),
                Some("绿码"),
                Some("幸福路1号"),
                Some("2")
            ],
            &[
                Some("010101199002022345"),
                Some("司马光"),
                Some("黄码"),
                Some("和平街2号\r\n3单元"),
                Some("3")
            ],
            // Line 4 is the continuation of the quoted address, line 5 is blank.
            &[
                Some("010101199003033456"),
                Some("诸葛亮"),
                Some("绿码"),
                None,
                Some("6")
            ],
        ])
    );

    let green = query(
        table,
        r#"SELECT "姓名" FROM t WHERE "健康码" = '绿码' AND "姓名" = '欧阳明'"#,
    )
    .await;
    assert_eq!(green, rows(&[&[Some("欧阳明")]]));
}

#[tokio::test]
async fn gb18030_and_row_numbers_with_lf_endings() {
    let env = Env::new();
    // A GB18030-only character (U+20000, four bytes in GB18030) and LF line ends.
    let text = "编号,名称\n001,𠀀字\n\n\n002,\"a,b\"\n003,末行无换行";
    let (bytes, _, had_errors) = encoding_rs::GB18030.encode(text);
    assert!(!had_errors);
    env.write("x.csv", &bytes);
    let source = env.build("csv", "s", "path = 'x.csv'\nencoding = 'gb18030'");
    let got = query(
        source.table("x").await.unwrap(),
        r#"SELECT "编号", "名称", "_row" FROM t ORDER BY "_row""#,
    )
    .await;
    assert_eq!(
        got,
        rows(&[
            &[Some("001"), Some("𠀀字"), Some("2")],
            &[Some("002"), Some("a,b"), Some("5")],
            &[Some("003"), Some("末行无换行"), Some("6")],
        ])
    );
}

#[tokio::test]
async fn gbk_headerless_with_delimiter() {
    let env = Env::new();
    env.write("t.txt", gbk("0001;张三;;\n0002;李四;男;x\n"));
    let source = env.build(
        "csv",
        "s",
        "tables = { people = 't.txt' }\nencoding = 'GBK'\ndelimiter = ';'\nheader = false",
    );
    let table = source.table("people").await.unwrap();
    assert_eq!(
        field_names(&table),
        ["column_1", "column_2", "column_3", "column_4", "_row"]
    );
    let got = query(table, "SELECT * FROM t ORDER BY _row").await;
    assert_eq!(
        got,
        rows(&[
            &[Some("0001"), Some("张三"), None, None, Some("1")],
            &[Some("0002"), Some("李四"), Some("男"), Some("x"), Some("2")],
        ])
    );
}

#[tokio::test]
async fn gbk_blank_and_duplicate_headers() {
    let env = Env::new();
    env.write("d.csv", gbk("姓名,,姓名,_row\n甲,1,乙,2\n"));
    let source = env.build("csv", "s", "path = 'd.csv'\nencoding = 'gbk'");
    let table = source.table("d").await.unwrap();
    assert_eq!(
        field_names(&table),
        ["姓名", "column_2", "姓名_2", "_row_2", "_row"]
    );
}

#[tokio::test]
async fn undecodable_byte_names_file_and_offset() {
    let env = Env::new();
    let mut bytes = gbk("姓名,健康码\n欧阳明,绿码\n");
    let offset = bytes.len() + 3; // "abc" then the bad byte
    bytes.extend_from_slice(b"abc\xFF,x\n");
    let path = env.write("bad.csv", &bytes);
    let source = env.build("csv", "broken", "path = 'bad.csv'\nencoding = 'gbk'");
    let err = source.table("bad").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConnectorError::Io { .. }), "{msg}");
    assert!(msg.contains("broken"), "names the source: {msg}");
    assert!(
        msg.contains(&path.display().to_string()),
        "names the file: {msg}"
    );
    assert!(
        msg.contains(&format!("byte offset {offset}")),
        "names the offset: {msg}"
    );
    assert!(msg.contains("0xff"), "shows the byte: {msg}");
    // No cache (and no temporary file) is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(env.cache_dir())
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn too_many_fields_names_the_line() {
    let env = Env::new();
    env.write("wide.csv", gbk("甲,乙\n1,2\n\n3,4,5\n"));
    let source = env.build("csv", "s", "path = 'wide.csv'\nencoding = 'gbk'");
    let msg = source.table("wide").await.unwrap_err().to_string();
    assert!(msg.contains("line 4"), "{msg}");
    assert!(msg.contains("wide.csv"), "{msg}");
}

#[tokio::test]
async fn unwritable_cache_is_reported_as_a_cache_error() {
    let env = Env::new();
    env.write("c.csv", gbk("甲\n1\n"));
    std::fs::write(
        env.cache_dir(),
        b"a file where the cache directory should be",
    )
    .unwrap();
    let source = env.build("csv", "cached", "path = 'c.csv'\nencoding = 'gbk'");
    let err = source.table("c").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConnectorError::Source { .. }), "{msg}");
    assert!(
        msg.contains("cached") && msg.contains("cannot write the cache"),
        "{msg}"
    );
    assert!(
        msg.contains(&env.cache_dir().display().to_string()),
        "{msg}"
    );
}

#[tokio::test]
async fn refresh_rebuilds_cache_after_source_changes() {
    let env = Env::new();
    env.write("r.csv", gbk("编号,状态\n001,绿码\n"));
    let source = env.build("csv", "s", "path = 'r.csv'\nencoding = 'gbk'");
    let count = |t| async move { query(t, "SELECT count(*) FROM t").await[0][0].clone() };

    let table = source.table("r").await.unwrap();
    assert_eq!(count(table.clone()).await.as_deref(), Some("1"));
    let first = source.last_refresh().unwrap();

    std::thread::sleep(Duration::from_millis(20));
    env.write("r.csv", gbk("编号,状态\n001,红码\n002,绿码\n"));
    // Without a refresh the cache is served as it is.
    let stale = source.table("r").await.unwrap();
    assert_eq!(count(stale).await.as_deref(), Some("1"));
    assert_eq!(source.last_refresh(), Some(first));

    let report = source.refresh().await.unwrap();
    assert_eq!(report.tables, [("r".to_string(), 2)]);
    assert!(source.last_refresh().unwrap() > first);
    // A provider from before the refresh reads the new cache file too.
    assert_eq!(count(table).await.as_deref(), Some("2"));
    let fresh = source.table("r").await.unwrap();
    let got = query(fresh, r#"SELECT "状态" FROM t WHERE "编号" = '001'"#).await;
    assert_eq!(got, rows(&[&[Some("红码")]]));
}

#[tokio::test]
async fn cache_built_with_other_options_is_rebuilt() {
    let env = Env::new();
    env.write("o.csv", gbk("甲;乙\n1;2\n"));
    let comma = env.build("csv", "s", "path = 'o.csv'\nencoding = 'gbk'");
    assert_eq!(
        field_names(&comma.table("o").await.unwrap()),
        ["甲;乙", "_row"]
    );
    let semicolon = env.build(
        "csv",
        "s",
        "path = 'o.csv'\nencoding = 'gbk'\ndelimiter = ';'",
    );
    assert_eq!(
        field_names(&semicolon.table("o").await.unwrap()),
        ["甲", "乙", "_row"]
    );
}

#[tokio::test]
async fn gbk_filter_reaches_the_parquet_scan() {
    let env = Env::new();
    env.write("p.csv", gbk("身份证号,姓名\n0001,欧阳明\n0002,司马光\n"));
    let source = env.build("csv", "s", "path = 'p.csv'\nencoding = 'gbk'");
    let table = source.table("p").await.unwrap();
    let plan = physical_plan(table, r#"SELECT "姓名" FROM t WHERE "身份证号" = '0002'"#).await;
    let scan = plan
        .lines()
        .find(|l| l.contains("DataSourceExec"))
        .unwrap_or_else(|| panic!("no scan in {plan}"));
    assert!(scan.contains("file_type=parquet"), "{plan}");
    assert!(scan.contains("p.parquet"), "{plan}");
    assert!(scan.contains("predicate="), "{plan}");
    assert!(scan.contains("身份证号"), "{plan}");
}

#[tokio::test]
async fn utf8_with_bom_is_read_in_place() {
    let env = Env::new();
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice("身份证号,姓名,健康码\n0101,欧阳明,绿码\n0202,,黄码\n".as_bytes());
    env.write("utf.csv", &bytes);
    let source = env.build("csv", "s", "path = 'utf.csv'");
    assert!(!source.is_materialised());
    let table = source.table("utf").await.unwrap();
    assert_eq!(field_names(&table), ["身份证号", "姓名", "健康码"]);
    assert!(
        field_types(&table).iter().all(|t| *t == DataType::Utf8),
        "every column is text"
    );
    let got = query(
        table.clone(),
        r#"SELECT "身份证号", "姓名" FROM t WHERE "健康码" = '黄码'"#,
    )
    .await;
    assert_eq!(got, rows(&[&[Some("0202"), None]]));
    let plan = physical_plan(table, r#"SELECT "姓名" FROM t"#).await;
    assert!(plan.contains("file_type=csv"), "read in place: {plan}");
    assert!(plan.contains("utf.csv"), "{plan}");
    assert!(!env.cache_dir().exists(), "no cache for UTF-8 files");
    assert_eq!(source.last_refresh(), None);
    assert!(source.refresh().await.unwrap().tables.is_empty());
}

#[tokio::test]
async fn utf8_tables_option_and_quoted_newlines() {
    let env = Env::new();
    env.write("a [1].csv", "id|备注\n007|\"两行\n备注\"\n008|x\n");
    env.write("sub/b.csv", "id|v\n1|2\n");
    let source = env.build(
        "csv",
        "s",
        "delimiter = '|'\n[tables]\nalpha = 'a [1].csv'\nbeta = 'sub/b.csv'",
    );
    assert_eq!(source.discover().await.unwrap(), ["alpha", "beta"]);
    let got = query(
        source.table("alpha").await.unwrap(),
        r#"SELECT id, "备注" FROM t ORDER BY id"#,
    )
    .await;
    assert_eq!(
        got,
        rows(&[
            &[Some("007"), Some("两行\n备注")],
            &[Some("008"), Some("x")]
        ])
    );
    assert_eq!(
        query(source.table("beta").await.unwrap(), "SELECT * FROM t").await,
        rows(&[&[Some("1"), Some("2")]])
    );
    let err = source.table("gamma").await.unwrap_err();
    assert!(matches!(err, ConnectorError::UnknownTable { .. }), "{err}");
    assert!(err.to_string().contains("alpha, beta"), "{err}");
}

#[tokio::test]
async fn missing_csv_file_names_source_and_path() {
    let env = Env::new();
    for encoding in ["utf-8", "gbk"] {
        let source = env.build(
            "csv",
            "absent_src",
            &format!("path = 'nope/缺失.csv'\nencoding = '{encoding}'"),
        );
        let err = source.table("缺失").await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConnectorError::Io { .. }), "{msg}");
        assert!(msg.contains("absent_src"), "{msg}");
        assert!(msg.contains("nope/缺失.csv"), "{msg}");
        match source.health().await {
            Health::Unavailable(why) => assert!(why.contains("缺失.csv"), "{why}"),
            Health::Ok => panic!("a missing file is not healthy"),
        }
        if encoding == "gbk" {
            let err = source.refresh().await.unwrap_err();
            assert!(err.to_string().contains("nope/缺失.csv"), "{err}");
        }
    }
}

#[tokio::test]
async fn health_ok_for_existing_files() {
    let env = Env::new();
    env.write("h.csv", "a\n1\n");
    let source = env.build("csv", "s", "path = 'h.csv'");
    assert_eq!(source.health().await, Health::Ok);
    assert!(source.location().ends_with("h.csv"));
}

/// Throughput of materialising a GBK CSV (about 1M rows, 8 columns, ~95 MB). Ignored by
/// default; run it in release mode:
///
/// ```sh
/// cargo nextest run --release -p gridhub-connectors --run-ignored only \
///     -E 'test(materialise_gbk_throughput)' --no-capture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark; run in release mode"]
async fn materialise_gbk_throughput() {
    const ROWS: usize = 1_000_000;
    let env = Env::new();
    let surnames = ["欧阳", "司马", "诸葛", "王", "李", "张", "刘", "陈"];
    let given = ["明", "光", "亮", "芳", "伟", "娜", "秀英", "建国"];
    let streets = ["幸福路", "和平街", "解放大道", "中山路", "人民路"];
    let codes = ["绿码", "黄码", "红码"];
    let mut text = String::with_capacity(ROWS * 100);
    text.push_str("序号,身份证号,姓名,性别,出生日期,手机号,住址,健康码\r\n");
    for i in 0..ROWS {
        use std::fmt::Write;
        writeln!(
            text,
            "{i},{:06}{:04}{:02}{:02}{:04},{}{},{},{}-{:02}-{:02},138{:08},{}{}号{}单元,{}\r",
            110101 + i % 500,
            1950 + i % 60,
            1 + i % 12,
            1 + i % 28,
            i % 10000,
            surnames[i % surnames.len()],
            given[(i / 8) % given.len()],
            if i % 2 == 0 { "男" } else { "女" },
            1950 + i % 60,
            1 + i % 12,
            1 + i % 28,
            i,
            streets[i % streets.len()],
            i % 300,
            i % 6 + 1,
            codes[i % codes.len()],
        )
        .unwrap();
    }
    let bytes = gbk(&text);
    drop(text);
    let size = bytes.len();
    env.write("big.csv", &bytes);
    drop(bytes);
    let source = env.build("csv", "bench", "path = 'big.csv'\nencoding = 'gbk'");

    let started = std::time::Instant::now();
    let report = source.refresh().await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(report.tables, [("big".to_string(), ROWS as u64)]);

    let rows_per_s = ROWS as f64 / elapsed;
    let cache = std::fs::metadata(env.cache_dir().join("big.parquet"))
        .unwrap()
        .len();
    println!(
        "materialise_gbk_throughput: {ROWS} rows, {:.1} MB GBK in {elapsed:.2} s = {:.0} rows/s \
         ({:.1} MB/s); cache {:.1} MB",
        size as f64 / 1e6,
        rows_per_s,
        size as f64 / 1e6 / elapsed,
        cache as f64 / 1e6
    );

    // The last row is intact.
    let last = query(
        source.table("big").await.unwrap(),
        &format!(
            r#"SELECT "序号", "_row" FROM t WHERE "序号" = '{}'"#,
            ROWS - 1
        ),
    )
    .await;
    assert_eq!(
        last,
        vec![vec![
            Some((ROWS - 1).to_string()),
            Some((ROWS + 1).to_string())
        ]]
    );
}

/// A check like the hub's: every table must keep the column `编号`.
fn needs_id() -> gridhub_connector::CacheCheck {
    gridhub_connector::CacheCheck::new(|table, schema| {
        if schema.field_with_name("编号").is_ok() {
            Ok(())
        } else {
            Err(format!("table {table} has no column '编号'"))
        }
    })
}

#[tokio::test]
async fn a_refresh_the_check_refuses_keeps_the_previous_cache() {
    let env = Env::new();
    env.write("r.csv", gbk("编号,状态\n001,绿码\n"));
    let source = env.build_checked("csv", "s", "path = 'r.csv'\nencoding = 'gbk'", needs_id());
    let table = source.table("r").await.unwrap();
    let cache = env.cache_dir().join("r.parquet");
    let before = std::fs::read(&cache).unwrap();

    env.write("r.csv", gbk("证件编号,状态\n001,红码\n002,绿码\n"));
    let err = source.refresh().await.unwrap_err().to_string();
    assert!(
        err.contains("source 's'")
            && err.contains("编号")
            && err.contains("previous cache is kept"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&cache).unwrap(),
        before,
        "the cache is untouched"
    );
    assert_eq!(
        env.cache_files(),
        ["r.parquet"],
        "no temporary file is left"
    );
    let got = query(table, r#"SELECT "状态" FROM t"#).await;
    assert_eq!(got, rows(&[&[Some("绿码")]]));

    // Fixed, the refresh goes through.
    env.write("r.csv", gbk("编号,状态\n001,红码\n002,绿码\n"));
    assert_eq!(
        source.refresh().await.unwrap().tables,
        [("r".to_string(), 2)]
    );
}

#[tokio::test]
async fn a_refresh_replaces_no_table_unless_every_table_is_good() {
    let env = Env::new();
    env.write("a.csv", gbk("编号,状态\n001,绿码\n"));
    env.write("b.csv", gbk("编号,状态\n002,绿码\n"));
    let options = "encoding = 'gbk'\ntables = { a = 'a.csv', b = 'b.csv' }";
    let source = env.build("csv", "s", options);
    source.refresh().await.unwrap();
    let a_before = std::fs::read(env.cache_dir().join("a.parquet")).unwrap();

    // `a` changes and is fine; `b` is no longer decodable: neither cache is replaced.
    env.write("a.csv", gbk("编号,状态\n001,红码\n003,绿码\n"));
    let mut bad = gbk("编号,状态\n002,");
    bad.extend_from_slice(b"\xff\xff\n");
    env.write("b.csv", bad);
    let err = source.refresh().await.unwrap_err().to_string();
    assert!(err.contains("b.csv") && err.contains("not valid"), "{err}");
    assert_eq!(
        std::fs::read(env.cache_dir().join("a.parquet")).unwrap(),
        a_before,
        "a good table is not replaced while another table of the source fails"
    );
    assert_eq!(env.cache_files(), ["a.parquet", "b.parquet"]);
}

#[tokio::test]
async fn a_missing_cache_is_not_built_from_a_table_the_check_refuses() {
    let env = Env::new();
    env.write("r.csv", gbk("证件编号,状态\n001,绿码\n"));
    let source = env.build_checked("csv", "s", "path = 'r.csv'\nencoding = 'gbk'", needs_id());
    let err = source.table("r").await.unwrap_err().to_string();
    assert!(err.contains("no column '编号'"), "{err}");
    assert!(env.cache_files().is_empty(), "{:?}", env.cache_files());
}

#[tokio::test]
async fn leftovers_of_interrupted_builds_are_removed() {
    let env = Env::new();
    env.write("r.csv", gbk("编号,状态\n001,绿码\n"));
    let source = env.build("csv", "s", "path = 'r.csv'\nencoding = 'gbk'");
    source.refresh().await.unwrap();
    // What a writer killed before its rename leaves (pid 0 never runs), and one of a
    // running writer (this process), which must stay.
    env.write("cache/.r.parquet.0.17.tmp", b"PAR1 half written");
    let running = format!("cache/.r.parquet.{}.18.tmp", std::process::id());
    env.write(&running, b"PAR1 being written");
    let removed = gridhub_connectors::remove_cache_leftovers(&env.cache_dir());
    assert_eq!(removed, [env.cache_dir().join(".r.parquet.0.17.tmp")]);
    assert_eq!(
        env.cache_files(),
        [
            format!(".r.parquet.{}.18.tmp", std::process::id()),
            "r.parquet".to_string()
        ]
    );
}
