//! The `parquet` connector: in place, filters pushed into the scan.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use gridhub_connector::{ConnectorError, Health};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::support::{Env, field_names, field_types, physical_plan, query, rows};

fn write_parquet(path: &std::path::Path, n: i64) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("身份证号", DataType::Utf8, false),
        Field::new("姓名", DataType::Utf8, true),
        Field::new("年龄", DataType::Int64, true),
    ]));
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(100))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).unwrap();
    let ids: Vec<String> = (0..n).map(|i| format!("{i:018}")).collect();
    let names: Vec<Option<String>> = (0..n)
        .map(|i| (i % 7 != 0).then(|| format!("居民{i}")))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(StringArray::from(names)),
        Arc::new(Int64Array::from_iter_values((0..n).map(|i| i % 90))),
    ];
    writer
        .write(&RecordBatch::try_new(schema, columns).unwrap())
        .unwrap();
    writer.close().unwrap();
}

#[tokio::test]
async fn parquet_in_place_with_filter_pushdown() {
    let env = Env::new();
    write_parquet(&env.path("人口.parquet"), 1000);
    let source = env.build("parquet", "pop", "path = '人口.parquet'\nlabel = '人口库'");
    assert!(!source.is_materialised());
    assert_eq!(source.discover().await.unwrap(), ["人口"]);
    assert_eq!(source.health().await, Health::Ok);

    let table = source.table("人口").await.unwrap();
    assert_eq!(field_names(&table), ["身份证号", "姓名", "年龄"]);
    assert_eq!(
        field_types(&table),
        [DataType::Utf8, DataType::Utf8, DataType::Int64]
    );

    let sql = r#"SELECT "姓名", "年龄" FROM t WHERE "身份证号" = '000000000000000500'"#;
    assert_eq!(
        query(table.clone(), sql).await,
        rows(&[&[Some("居民500"), Some("50")]])
    );
    let plan = physical_plan(table.clone(), sql).await;
    let scan = plan
        .lines()
        .find(|l| l.contains("DataSourceExec"))
        .unwrap_or_else(|| panic!("no scan in {plan}"));
    assert!(scan.contains("file_type=parquet"), "{plan}");
    assert!(scan.contains("人口.parquet"), "{plan}");
    assert!(
        scan.contains("predicate=") && scan.contains("身份证号"),
        "the filter reaches the Parquet scan: {plan}"
    );
    assert!(
        scan.contains("pruning_predicate="),
        "row groups are pruned: {plan}"
    );
    assert!(!env.cache_dir().exists(), "read in place, no cache");

    let count = query(table, r#"SELECT count(*) FROM t WHERE "姓名" IS NULL"#).await;
    assert_eq!(count, rows(&[&[Some("143")]]));
}

#[tokio::test]
async fn parquet_tables_option_and_errors() {
    let env = Env::new();
    write_parquet(&env.path("a.parquet"), 10);
    env.write("bad.parquet", b"PAR1 not really");
    let source = env.build(
        "parquet",
        "pq",
        "[tables]\nalpha = 'a.parquet'\nbroken = 'bad.parquet'\nmissing = 'm.parquet'",
    );
    assert_eq!(
        source.discover().await.unwrap(),
        ["alpha", "broken", "missing"]
    );
    let got = query(
        source.table("alpha").await.unwrap(),
        "SELECT count(*) FROM t",
    )
    .await;
    assert_eq!(got, rows(&[&[Some("10")]]));

    let err = source.table("missing").await.unwrap_err();
    assert!(matches!(err, ConnectorError::Io { .. }), "{err}");
    assert!(err.to_string().contains("pq") && err.to_string().contains("m.parquet"));
    let err = source.table("broken").await.unwrap_err().to_string();
    assert!(err.contains("bad.parquet"), "{err}");
    assert!(matches!(source.health().await, Health::Unavailable(_)));
}
