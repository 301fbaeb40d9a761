//! Mappings compiled over in-memory raw tables: values, rejects with reasons, and merging
//! by key with per-column precedence.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use gridhub_catalog::shared_table;
use gridhub_mapping::{MappingConfig, TablePrecedence, compile, merge};

const KEY: &[u8] = b"test-key-0123456789";

fn raw_table(ctx: &SessionContext, name: &str, columns: &[(&str, Vec<Option<&str>>)]) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, _)| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays = columns
        .iter()
        .map(|(_, v)| Arc::new(StringArray::from(v.clone())) as _)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).unwrap();
    ctx.register_table(
        name,
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
}

fn mapping(source: &str, table: &str, target: &str, toml_columns: &str) -> MappingConfig {
    toml::from_str(&format!(
        "source = \"{source}\"\ntable = \"{table}\"\ntarget = \"{target}\"\nrow_id = \"序号\"\n[columns]\n{toml_columns}"
    ))
    .unwrap()
}

async fn rows(df: datafusion::prelude::DataFrame) -> Vec<Vec<Option<String>>> {
    let batches = df.collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let f: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .zip(&f)
                    .map(|(c, f)| (!c.is_null(r)).then(|| f.value(r).to_string()))
                    .collect(),
            );
        }
    }
    out
}

/// The error of compiling `columns` as a mapping of table `bld` into `building`.
async fn building_compile_error(ctx: &SessionContext, columns: &str) -> String {
    let bad = mapping("pa", "bld", "building", columns);
    compile(
        ctx,
        ctx.table("bld").await.unwrap(),
        &bad,
        shared_table("building").unwrap(),
        None,
    )
    .unwrap_err()
    .to_string()
}

fn register_context() -> SessionContext {
    let ctx = SessionContext::new();
    gridhub_normalize::register_all(&ctx, KEY);
    ctx
}

const REGISTER_COLUMNS: &str = r#"
person_id = { from = "身份证号", normalize = "person_id" }
id_number = { from = "身份证号", normalize = "resident_id" }
name = { from = "姓名", normalize = "name" }
gender = { from = "性别", map = { "男" = "male", "女" = "female" } }
birth_date = { from = "出生日期", normalize = "date" }
phone = { from = "电话", normalize = "phone" }
area_code = { from = "网格", normalize = "admin_code" }
"#;

#[tokio::test]
async fn values_are_normalised_and_bad_rows_rejected_with_reasons() {
    let ctx = register_context();
    raw_table(
        &ctx,
        "reg",
        &[
            (
                "序号",
                vec![
                    Some("1"),
                    Some("2"),
                    Some("3"),
                    Some("4"),
                    Some("5"),
                    Some("6"),
                ],
            ),
            (
                "身份证号",
                vec![
                    Some(" 11010519491231002x "),
                    Some("110105491231002"),
                    Some("110105194912310021"),
                    Some("11010519491231002X"),
                    None,
                    Some("11010519491231002X"),
                ],
            ),
            (
                "姓名",
                vec![
                    Some("欧阳 明"),
                    Some("李四"),
                    Some("王五"),
                    Some("赵六"),
                    Some("钱七"),
                    Some("孙八"),
                ],
            ),
            (
                "性别",
                vec![
                    Some("男"),
                    Some("女"),
                    Some("男"),
                    Some("未知"),
                    Some("男"),
                    Some(""),
                ],
            ),
            (
                "出生日期",
                vec![
                    Some("1949年12月31日"),
                    Some("1949/12/31"),
                    Some("19491231"),
                    Some("1949-12-31"),
                    Some("1949-12-31"),
                    Some("2021-02-30"),
                ],
            ),
            (
                "电话",
                vec![
                    Some("+86 138 1234 5678"),
                    None,
                    Some("13812345678"),
                    Some("13812345678"),
                    Some("13812345678"),
                    Some("13812345678"),
                ],
            ),
            (
                "网格",
                vec![
                    Some("420106001003007"),
                    Some("420106001003"),
                    Some("420106001003007"),
                    Some("420106001003007"),
                    Some("420106001003007"),
                    Some("4201060010030"),
                ],
            ),
        ],
    );
    let m = mapping("register", "reg", "person", REGISTER_COLUMNS);
    let raw = ctx.table("reg").await.unwrap();
    let compiled = compile(&ctx, raw, &m, shared_table("person").unwrap(), Some(0)).unwrap();

    let accepted = rows(
        compiled
            .accepted()
            .unwrap()
            .select_columns(&[
                "id_number",
                "name",
                "gender",
                "birth_date",
                "phone",
                "area_code",
                "_source",
            ])
            .unwrap(),
    )
    .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        accepted,
        vec![
            vec![
                s("11010519491231002X"),
                s("欧阳明"),
                s("male"),
                s("1949-12-31"),
                s("13812345678"),
                s("420106001003007"),
                s("register")
            ],
            vec![
                s("11010519491231002X"),
                s("李四"),
                s("female"),
                s("1949-12-31"),
                None,
                s("420106001003"),
                s("register")
            ],
        ]
    );

    let rejects = rows(compiled.rejects().unwrap()).await;
    let by_row: BTreeMap<String, String> = rejects
        .iter()
        .map(|r| (r[3].clone().unwrap(), r[4].clone().unwrap()))
        .collect();
    assert_eq!(by_row.len(), 4, "{rejects:?}");
    assert!(
        by_row["3"].starts_with("person_id: ") && by_row["3"].contains("check"),
        "{}",
        by_row["3"]
    );
    assert!(
        by_row["3"].contains("id_number: "),
        "every failing column is listed: {}",
        by_row["3"]
    );
    assert!(
        by_row["4"].contains("gender: unknown value '未知'"),
        "{}",
        by_row["4"]
    );
    assert_eq!(by_row["5"], "person_id: missing key value");
    assert!(
        by_row["6"].contains("birth_date") && by_row["6"].contains("area_code"),
        "{}",
        by_row["6"]
    );
    assert!(
        !by_row["6"].contains("gender"),
        "an empty cell is no value, not an error: {}",
        by_row["6"]
    );
    // The raw row is kept as JSON.
    let raw_of_4 = rejects
        .iter()
        .find(|r| r[3].as_deref() == Some("4"))
        .unwrap()[5]
        .clone()
        .unwrap();
    assert!(raw_of_4.contains("\"性别\":\"未知\""), "{raw_of_4}");

    let counts = rows(compiled.counts().unwrap()).await;
    assert_eq!(counts, vec![vec![s("2"), s("4")]]);
}

#[tokio::test]
async fn casts_fail_into_rejects_and_unknown_columns_are_config_errors() {
    let ctx = register_context();
    raw_table(
        &ctx,
        "bld",
        &[
            ("序号", vec![Some("1"), Some("2")]),
            ("楼栋", vec![Some("B1"), Some("B2")]),
            ("层数", vec![Some("6"), Some("六")]),
            ("电梯", vec![Some("无"), Some("有")]),
        ],
    );
    let cols = r#"
building_id = { from = "楼栋" }
floors = { from = "层数" }
has_elevator = { from = "电梯", normalize = "bool" }
property_company = { value = "甲物业" }
"#;
    let m = mapping("pa", "bld", "building", cols);
    let compiled = compile(
        &ctx,
        ctx.table("bld").await.unwrap(),
        &m,
        shared_table("building").unwrap(),
        None,
    )
    .unwrap();
    let accepted = rows(
        compiled
            .accepted()
            .unwrap()
            .select_columns(&["building_id", "floors", "has_elevator", "property_company"])
            .unwrap(),
    )
    .await;
    assert_eq!(
        accepted,
        vec![vec![
            Some("B1".into()),
            Some("6".into()),
            Some("false".into()),
            Some("甲物业".into())
        ]]
    );
    let rejects = rows(compiled.rejects().unwrap()).await;
    assert_eq!(rejects.len(), 1);
    assert_eq!(
        rejects[0][4].as_deref(),
        Some("floors: cannot read '六' as Int32")
    );

    let e = building_compile_error(&ctx, "building_id = { from = \"楼号\" }").await;
    assert!(
        e.contains("no source column '楼号'") && e.contains("楼栋"),
        "{e}"
    );
    let e = building_compile_error(
        &ctx,
        "building_id = { from = \"楼栋\" }\nlift = { from = \"电梯\" }",
    )
    .await;
    assert!(
        e.contains("no column 'lift'") && e.contains("has_elevator"),
        "{e}"
    );
    let e = building_compile_error(
        &ctx,
        "building_id = { from = \"楼栋\", normalize = \"upper\" }",
    )
    .await;
    assert!(e.contains("upper"), "{e}");
}

#[tokio::test]
async fn merge_takes_each_column_from_the_most_authoritative_source_that_has_it() {
    let ctx = register_context();
    let id = "11010519491231002X";
    raw_table(
        &ctx,
        "city",
        &[
            ("序号", vec![Some("1")]),
            ("id", vec![Some(id)]),
            ("name", vec![Some("欧阳明")]),
            ("phone", vec![None]),
        ],
    );
    raw_table(
        &ctx,
        "prop",
        &[
            ("序号", vec![Some("1"), Some("2")]),
            ("id", vec![Some(id), Some("110105194912310011")]),
            ("name", vec![Some("欧阳 明明"), Some("张三")]),
            ("phone", vec![Some("13900000000"), Some("13900000001")]),
        ],
    );
    let cols = r#"
person_id = { from = "id", normalize = "person_id" }
id_number = { from = "id", normalize = "resident_id" }
name = { from = "name", normalize = "name" }
phone = { from = "phone", normalize = "phone" }
"#;
    let person = shared_table("person").unwrap();
    let mut parts = Vec::new();
    for (source, table) in [("city", "city"), ("property", "prop")] {
        let m = mapping(source, table, "person", cols);
        let c = compile(&ctx, ctx.table(table).await.unwrap(), &m, person, Some(0)).unwrap();
        parts.push((source.to_string(), c.accepted().unwrap()));
    }
    let precedence: TablePrecedence = toml::from_str(
        "name = \"person\"\nprecedence = [\"city\", \"property\"]\n[column_precedence]\nphone = [\"property\", \"city\"]",
    )
    .unwrap();
    let merged = merge(person, &precedence, parts).unwrap();
    let got = rows(
        merged
            .sort(vec![datafusion::prelude::col("id_number").sort(true, true)])
            .unwrap()
            .select_columns(&["id_number", "name", "phone", "_source"])
            .unwrap(),
    )
    .await;
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        got,
        vec![
            vec![
                s("110105194912310011"),
                s("张三"),
                s("13900000001"),
                s("property")
            ],
            // name from the city base (first in table precedence), phone from the
            // property company (first for phone), both sources listed.
            vec![s(id), s("欧阳明"), s("13900000000"), s("city,property")],
        ]
    );
}
