//! The `sqlite` connector: Chinese names, filters pushed into SQLite, read-only.

use datafusion::arrow::datatypes::DataType;
use gridhub_connector::{ConnectorError, Health};

use crate::support::{Env, field_names, field_types, physical_plan, query, rows};

fn create_db(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        r#"
        CREATE TABLE "居民" (
            "序号" INTEGER PRIMARY KEY AUTOINCREMENT,
            "身份证号" VARCHAR(18) NOT NULL,
            "姓名" TEXT,
            "出生日期" DATE,
            "积分" REAL,
            "备注"
        );
        CREATE INDEX "居民_身份证号" ON "居民" ("身份证号");
        INSERT INTO "居民" ("身份证号", "姓名", "出生日期", "积分", "备注") VALUES
            ('010101199001011234', '欧阳明', '1990-01-01', 1.5, NULL),
            ('010101199002022345', '司马光', '1990-02-02', NULL, 42),
            ('010101199003033456', NULL, NULL, 3, '绿码');
        CREATE TABLE "房屋" ("房号" TEXT, "面积" NUMERIC);
        INSERT INTO "房屋" VALUES ('1-101', 89), ('1-102', 90.5);
        CREATE VIEW "v_居民" AS SELECT * FROM "居民";
        "#,
    )
    .unwrap();
}

#[tokio::test]
async fn chinese_names_and_filter_pushed_into_sqlite() {
    let env = Env::new();
    let db = env.path("社区.db");
    create_db(&db);
    let before = std::fs::read(&db).unwrap();

    let source = env.build("sqlite", "community", "path = '社区.db'\ntype = 'sqlite'");
    assert!(!source.is_materialised());
    assert_eq!(source.health().await, Health::Ok);
    // sqlite_sequence (from AUTOINCREMENT) is internal; views are not tables.
    assert_eq!(source.discover().await.unwrap(), ["居民", "房屋"]);

    let table = source.table("居民").await.unwrap();
    assert_eq!(
        field_names(&table),
        ["序号", "身份证号", "姓名", "出生日期", "积分", "备注"]
    );
    assert_eq!(
        field_types(&table),
        [
            DataType::Int64,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Utf8,
            DataType::Float64,
            DataType::Utf8
        ]
    );

    let sql = r#"SELECT "姓名", "出生日期" FROM t WHERE "身份证号" = '010101199002022345'"#;
    assert_eq!(
        query(table.clone(), sql).await,
        rows(&[&[Some("司马光"), Some("1990-02-02")]])
    );
    let plan = physical_plan(table.clone(), sql).await;
    let scan = plan
        .lines()
        .find(|l| l.contains("SQLiteSqlExec"))
        .unwrap_or_else(|| panic!("no SQLite scan in {plan}"));
    assert!(
        scan.contains("WHERE"),
        "the filter is in the SQL sent to SQLite: {plan}"
    );
    assert!(scan.contains("身份证号"), "{plan}");
    assert!(scan.contains("010101199002022345"), "{plan}");
    assert!(
        !plan.contains("FilterExec"),
        "nothing left to filter in DataFusion: {plan}"
    );

    // A column without declared type mixing numbers and text is read as text.
    let all = query(
        table,
        r#"SELECT "序号", "积分", "备注" FROM t ORDER BY "序号""#,
    )
    .await;
    assert_eq!(
        all,
        rows(&[
            &[Some("1"), Some("1.5"), None],
            &[Some("2"), None, Some("42")],
            &[Some("3"), Some("3.0"), Some("绿码")],
        ])
    );

    // A table without mixed columns is queried directly.
    let houses = source.table("房屋").await.unwrap();
    assert_eq!(field_types(&houses), [DataType::Utf8, DataType::Float64]);
    let sql = r#"SELECT "面积" FROM t WHERE "房号" = '1-101'"#;
    assert_eq!(query(houses.clone(), sql).await, rows(&[&[Some("89.0")]]));
    let plan = physical_plan(houses, sql).await;
    assert!(
        plan.contains("SQLiteSqlExec") && plan.contains("FROM `房屋` WHERE"),
        "{plan}"
    );

    let err = source.table("v_居民").await.unwrap_err();
    assert!(matches!(err, ConnectorError::UnknownTable { .. }), "{err}");

    // Read-only: the database file is byte for byte unchanged, no journal/WAL appeared.
    assert_eq!(std::fs::read(&db).unwrap(), before);
    assert!(!env.path("社区.db-wal").exists());
    assert!(source.location().ends_with("社区.db"));
}

#[tokio::test]
async fn missing_database_is_an_error_and_not_created() {
    let env = Env::new();
    let source = env.build("sqlite", "gone_db", "path = 'data/无.db'");
    for err in [
        source.discover().await.unwrap_err(),
        source.table("居民").await.unwrap_err(),
    ] {
        assert!(matches!(err, ConnectorError::Io { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("gone_db") && msg.contains("data/无.db"),
            "{msg}"
        );
    }
    assert!(matches!(source.health().await, Health::Unavailable(w) if w.contains("无.db")));
    assert!(
        !env.path("data/无.db").exists(),
        "SQLite must not create the file"
    );
    assert!(!env.path("data").exists());

    env.write("junk.db", b"this is not a database at all, just text......");
    let junk = env.build("sqlite", "junk", "path = 'junk.db'");
    assert!(matches!(junk.health().await, Health::Unavailable(_)));
    assert!(
        junk.discover()
            .await
            .unwrap_err()
            .to_string()
            .contains("junk.db")
    );
}

#[tokio::test]
async fn count_star_and_functions_in_filters() {
    let env = Env::new();
    create_db(&env.path("c.db"));
    let source = env.build("sqlite", "c", "path = 'c.db'");
    for table in ["居民", "房屋"] {
        let provider = source.table(table).await.unwrap();
        // An empty projection still counts rows.
        let want = if table == "居民" { "3" } else { "2" };
        assert_eq!(
            query(provider, "SELECT count(*) FROM t").await,
            rows(&[&[Some(want)]])
        );
    }
    // A filter with a function stays in DataFusion (SQLite's functions differ or are
    // missing); plain comparisons next to it still reach SQLite.
    let provider = source.table("居民").await.unwrap();
    let sql = r#"SELECT "姓名" FROM t WHERE character_length("身份证号") = 18 AND "序号" >= 2"#;
    assert_eq!(
        query(provider.clone(), sql).await,
        rows(&[&[Some("司马光")], &[None]])
    );
    let plan = physical_plan(provider, sql).await;
    assert!(
        plan.contains("FilterExec") && plan.contains("character_length"),
        "{plan}"
    );
    let scan = plan.lines().find(|l| l.contains("SQLiteSqlExec")).unwrap();
    assert!(scan.contains("WHERE") && scan.contains(">= 2"), "{plan}");
    assert!(!scan.contains("length"), "{plan}");
}
