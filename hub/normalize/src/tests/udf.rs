//! UDF tests through a real `SessionContext`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Date32Type, TimeUnit, TimestampMicrosecondType};
use chrono::NaiveDate;
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs};
use datafusion::prelude::SessionContext;

use crate::*;

const KEY: &[u8] = b"test-key";

fn ctx() -> SessionContext {
    let ctx = SessionContext::new();
    register_all(&ctx, KEY);
    ctx
}

/// Runs `sql` and returns its first column as one array.
async fn column(ctx: &SessionContext, sql: &str) -> ArrayRef {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let schema = batches[0].schema();
    let batch = arrow::compute::concat_batches(&schema, &batches).unwrap();
    Arc::clone(batch.column(0))
}

async fn strings(ctx: &SessionContext, sql: &str) -> Vec<Option<String>> {
    let col = column(ctx, sql).await;
    assert_eq!(col.data_type(), &DataType::Utf8, "{sql}");
    col.as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

fn days(y: i32, m: u32, d: u32) -> i32 {
    (NaiveDate::from_ymd_opt(y, m, d).unwrap() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
}

#[tokio::test]
async fn gh_date_over_values() {
    let ctx = ctx();
    let col = column(
        &ctx,
        "SELECT gh_date(x) FROM (VALUES ('2020年3月1日'), ('20200301'), (NULL), ('2021-02-30'), ('  ')) t(x)",
    )
    .await;
    assert_eq!(col.data_type(), &DataType::Date32);
    let got: Vec<Option<i32>> = col.as_primitive::<Date32Type>().iter().collect();
    let d = days(2020, 3, 1);
    assert_eq!(got, vec![Some(d), Some(d), None, None, None]);
}

#[tokio::test]
async fn gh_date_from_float_int_and_date_inputs() {
    let ctx = ctx();
    // Float64 column (Excel serials read as numbers)
    let col = column(
        &ctx,
        "SELECT gh_date(x) FROM (VALUES (43891.0), (44197.0), (43891.5), (60.0)) t(x)",
    )
    .await;
    let got: Vec<Option<i32>> = col.as_primitive::<Date32Type>().iter().collect();
    assert_eq!(
        got,
        vec![
            Some(days(2020, 3, 1)),
            Some(days(2021, 1, 1)),
            Some(days(2020, 3, 1)),
            None
        ]
    );
    // Float64 / Int64 scalars, Date32 and Timestamp inputs
    for sql in [
        "SELECT gh_date(CAST(43891.0 AS DOUBLE))",
        "SELECT gh_date(CAST(43891 AS BIGINT))",
        "SELECT gh_date(CAST(20200301 AS INT))",
        "SELECT gh_date(DATE '2020-03-01')",
        "SELECT gh_date(CAST('2020-03-01T10:00:00' AS TIMESTAMP))",
        "SELECT gh_date(arrow_cast('2020/3/1', 'Utf8View'))",
        "SELECT gh_date(arrow_cast('2020.3.1', 'LargeUtf8'))",
    ] {
        let col = column(&ctx, sql).await;
        assert_eq!(
            col.as_primitive::<Date32Type>().iter().collect::<Vec<_>>(),
            vec![Some(days(2020, 3, 1))],
            "{sql}"
        );
    }
    let col = column(&ctx, "SELECT gh_date(NULL)").await;
    assert!(col.is_null(0));
}

#[tokio::test]
async fn gh_phone_from_int64_and_text() {
    let ctx = ctx();
    let got = strings(
        &ctx,
        "SELECT gh_phone(x) FROM (VALUES (13812345678), (12345), (NULL), (8613812345678)) t(x)",
    )
    .await;
    assert_eq!(got, vec![s("13812345678"), None, None, s("13812345678")]);
    let got = strings(
        &ctx,
        "SELECT gh_phone(x) FROM (VALUES ('+86 138 1234 5678'), ('027-8765 4321'), ('12812345678'), ('')) t(x)",
    )
    .await;
    assert_eq!(got, vec![s("13812345678"), s("027-87654321"), None, None]);
    // a phone that went through a spreadsheet as a float
    let got = strings(&ctx, "SELECT gh_phone(CAST(13812345678 AS DOUBLE))").await;
    assert_eq!(got, vec![s("13812345678")]);
}

#[tokio::test]
async fn gh_timestamp_beijing_and_round_trip() {
    let ctx = ctx();
    let col = column(
        &ctx,
        "SELECT gh_timestamp(x) FROM (VALUES ('2020-03-01 08:00'), ('2020-03-01T00:00:00Z'), ('2020-03-01'), ('43891.5'), ('bad')) t(x)",
    )
    .await;
    assert_eq!(
        col.data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let midnight = 1_583_020_800_000_000i64; // 2020-03-01T00:00:00Z
    let hour = 3_600_000_000i64;
    let got: Vec<Option<i64>> = col
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect();
    assert_eq!(
        got,
        vec![
            Some(midnight),
            Some(midnight),
            Some(midnight - 8 * hour),
            Some(midnight + 4 * hour),
            None
        ]
    );
    // The output of gh_timestamp (UTC, printed with its zone) is accepted unchanged.
    let col = column(
        &ctx,
        "SELECT gh_timestamp(gh_timestamp('2020-03-01 08:00:00.25'))",
    )
    .await;
    assert_eq!(
        col.as_primitive::<TimestampMicrosecondType>().value(0),
        midnight + 250_000
    );
    // A naive timestamp column is Beijing time.
    let col = column(
        &ctx,
        "SELECT gh_timestamp(CAST('2020-03-01T08:00:00' AS TIMESTAMP))",
    )
    .await;
    assert_eq!(
        col.as_primitive::<TimestampMicrosecondType>().value(0),
        midnight
    );
}

#[tokio::test]
async fn gh_text_normalisers() {
    let ctx = ctx();
    let cases = [
        (
            "SELECT gh_resident_id(x) FROM (VALUES ('11010519491231002x'), ('110105491231002'), ('420106198001011234'), (NULL)) t(x)",
            vec![s("11010519491231002X"), s("11010519491231002X"), None, None],
        ),
        (
            "SELECT gh_person_id(x) FROM (VALUES ('11010519491231002x'), ('110105491231002'), ('420106198001011234')) t(x)",
            vec![
                s("e7e0eb61ae93a5d9c2f43cd2056a34d9"),
                s("e7e0eb61ae93a5d9c2f43cd2056a34d9"),
                None,
            ],
        ),
        (
            "SELECT gh_name(x) FROM (VALUES (' 欧阳 明 '), ('欧阳　明'), (''), (NULL)) t(x)",
            vec![s("欧阳明"), s("欧阳明"), None, None],
        ),
        (
            "SELECT gh_admin_code(x) FROM (VALUES (420106), (42010600100), (420106001003007)) t(x)",
            vec![s("420106"), None, s("420106001003007")],
        ),
        (
            "SELECT gh_admin_code(x) FROM (VALUES (' 4201 '), ('4201a6')) t(x)",
            vec![s("4201"), None],
        ),
        (
            "SELECT gh_trim(x) FROM (VALUES ('  a b '), ('   '), (NULL)) t(x)",
            vec![s("a b"), None, None],
        ),
        (
            "SELECT gh_resident_id(arrow_cast(x, 'Utf8View')) FROM (VALUES ('11010519491231002x'), ('x')) t(x)",
            vec![s("11010519491231002X"), None],
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(strings(&ctx, sql).await, want, "{sql}");
    }
    // Scalar argument (constant-folded or not, the result is the same).
    assert_eq!(
        strings(&ctx, "SELECT gh_resident_id('110105491231002')").await,
        vec![s("11010519491231002X")]
    );
}

#[tokio::test]
async fn gh_bool_inputs() {
    let ctx = ctx();
    for (sql, want) in [
        (
            "SELECT gh_bool(x) FROM (VALUES ('是'), ('否'), ('有'), ('无'), ('Y'), ('no'), ('TRUE'), ('maybe'), (NULL)) t(x)",
            vec![
                Some(true),
                Some(false),
                Some(true),
                Some(false),
                Some(true),
                Some(false),
                Some(true),
                None,
                None,
            ],
        ),
        (
            "SELECT gh_bool(x) FROM (VALUES (1), (0), (2)) t(x)",
            vec![Some(true), Some(false), None],
        ),
        (
            "SELECT gh_bool(x) FROM (VALUES (true), (false)) t(x)",
            vec![Some(true), Some(false)],
        ),
    ] {
        let col = column(&ctx, sql).await;
        assert_eq!(col.data_type(), &DataType::Boolean);
        assert_eq!(col.as_boolean().iter().collect::<Vec<_>>(), want, "{sql}");
    }
}

#[tokio::test]
async fn gh_check_reasons() {
    let ctx = ctx();
    let cases = [
        (
            "SELECT gh_check('resident_id', x) FROM (VALUES ('420106198001011234'), ('11010519491231002x'), (''), (NULL), ('1101051949123100')) t(x)",
            vec![
                s("bad check digit: expected 7, found 4"),
                None,
                None,
                None,
                s("wrong length: 16 characters (a resident ID has 18, old ones 15)"),
            ],
        ),
        (
            "SELECT gh_check('date', x) FROM (VALUES ('2021-02-30'), ('2020年3月1日'), ('60'), ('  ')) t(x)",
            vec![
                s("impossible date 2021-02-30"),
                None,
                s("Excel serial 60 is 1900-02-29, a day that never existed"),
                None,
            ],
        ),
        (
            "SELECT gh_check('phone', x) FROM (VALUES (13812345678), (12345)) t(x)",
            vec![None, s("not a phone number: 5 digits")],
        ),
        (
            "SELECT gh_check('admin_code', '42010600100')",
            vec![s("not an admin code: 11 digits (need 4, 6, 9, 12 or 15)")],
        ),
        (
            "SELECT gh_check('bool', x) FROM (VALUES ('是'), ('maybe')) t(x)",
            vec![None, s("not a yes/no value")],
        ),
        (
            "SELECT gh_check('person_id', '110105194902300020')",
            vec![s("impossible birth date 1949-02-30")],
        ),
        (
            "SELECT gh_check('timestamp', x) FROM (VALUES ('2020-03-01 25:00'), ('2020-03-01 08:00')) t(x)",
            vec![s("impossible time 25:00:00"), None],
        ),
        ("SELECT gh_check('trim', '  ')", vec![None]),
        ("SELECT gh_check('name', 'x')", vec![None]),
    ];
    for (sql, want) in cases {
        assert_eq!(strings(&ctx, sql).await, want, "{sql}");
    }
}

#[tokio::test]
async fn gh_check_rejects_unknown_or_non_literal_name() {
    let ctx = ctx();
    let e = ctx
        .sql("SELECT gh_check('boolean', 'x')")
        .await
        .map(drop)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown normaliser \"boolean\""), "{e}");
    assert!(e.contains("known: resident_id, person_id"), "{e}");
    let e = match ctx
        .sql("SELECT gh_check(n, x) FROM (VALUES ('date', '2020-01-01')) t(n, x)")
        .await
    {
        Ok(df) => df.collect().await.map(drop).unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("literal normaliser name"), "{e}");
}

#[tokio::test]
async fn gh_json_object_keeps_raw_values() {
    let ctx = ctx();
    let got = strings(
        &ctx,
        "SELECT gh_json_object('身份证号', a, 'n', b, 'q\"uote', c, 'd', d) \
         FROM (VALUES ('42010619800101123x', 1, NULL, 43891.5), ('a\"b\\c\nd', NULL, 'z', NULL)) t(a, b, c, d)",
    )
    .await;
    let parsed: Vec<serde_json::Value> = got
        .iter()
        .map(|v| serde_json::from_str(v.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(
        parsed[0],
        serde_json::json!({"身份证号": "42010619800101123x", "n": "1", "q\"uote": null, "d": "43891.5"})
    );
    assert_eq!(
        parsed[1],
        serde_json::json!({"身份证号": "a\"b\\c\nd", "n": null, "q\"uote": "z", "d": null})
    );
    // Key order is preserved.
    assert!(got[0].as_deref().unwrap().starts_with("{\"身份证号\":"));
    // all-scalar call
    assert_eq!(
        strings(&ctx, "SELECT gh_json_object('a', 'x', 'b', NULL)").await,
        vec![s("{\"a\":\"x\",\"b\":null}")]
    );
    // names must be literals, and come in pairs
    for sql in [
        "SELECT gh_json_object(x, x) FROM (VALUES ('a')) t(x)",
        "SELECT gh_json_object('a')",
    ] {
        let r = match ctx.sql(sql).await {
            Ok(df) => df.collect().await.map(drop),
            Err(e) => Err(e),
        };
        assert!(r.is_err(), "{sql}");
    }
}

#[test]
fn udf_list_equality_and_redacted_key() {
    let names: Vec<String> = udfs(KEY).iter().map(|u| u.name().to_owned()).collect();
    assert_eq!(
        names,
        [
            "gh_resident_id",
            "gh_person_id",
            "gh_name",
            "gh_phone",
            "gh_date",
            "gh_timestamp",
            "gh_admin_code",
            "gh_bool",
            "gh_trim",
            "gh_check",
            "gh_json_object"
        ]
    );
    assert_eq!(
        normalizer_udf(Normalizer::Date, b"k1"),
        normalizer_udf(Normalizer::Date, b"k2")
    );
    assert_ne!(
        normalizer_udf(Normalizer::PersonId, b"k1"),
        normalizer_udf(Normalizer::PersonId, b"k2")
    );
    assert_eq!(
        normalizer_udf(Normalizer::PersonId, b"k1"),
        normalizer_udf(Normalizer::PersonId, b"k1")
    );
    let dbg = format!(
        "{:?}",
        normalizer_udf(Normalizer::PersonId, b"super-secret")
    );
    assert!(!dbg.contains("super") && !dbg.contains("115, 117"), "{dbg}");
}

/// Invokes a UDF directly on arrays (also covers arrays with no null buffer).
fn invoke(udf: &datafusion::logical_expr::ScalarUDF, arg: ArrayRef) -> ArrayRef {
    use arrow::datatypes::Field;
    let n = arg.len();
    let arg_field = Arc::new(Field::new("x", arg.data_type().clone(), true));
    let ret = udf
        .return_field_from_args(datafusion::logical_expr::ReturnFieldArgs {
            arg_fields: &[Arc::clone(&arg_field)],
            scalar_arguments: &[None],
        })
        .unwrap();
    let out = udf
        .invoke_with_args(ScalarFunctionArgs {
            args: vec![ColumnarValue::Array(arg)],
            arg_fields: vec![arg_field],
            number_rows: n,
            return_field: ret,
            config_options: Arc::new(Default::default()),
        })
        .unwrap();
    match out {
        ColumnarValue::Array(a) => a,
        ColumnarValue::Scalar(_) => panic!("array in, scalar out"),
    }
}

#[test]
fn direct_invocation_on_arrays() {
    let phones: ArrayRef = Arc::new(Int64Array::from(vec![13812345678, 2787654321]));
    let out = invoke(&normalizer_udf(Normalizer::Phone, KEY), phones);
    let out: &StringArray = out.as_string();
    assert_eq!(out.value(0), "13812345678");
    // 2787654321 lost its leading 0 as a number: not a phone
    assert!(out.is_null(1));

    let serials: ArrayRef = Arc::new(Float64Array::from(vec![Some(43891.0), None, Some(1e300)]));
    let out = invoke(&normalizer_udf(Normalizer::Date, KEY), serials);
    let got: Vec<Option<i32>> = out.as_primitive::<Date32Type>().iter().collect();
    assert_eq!(got, vec![Some(days(2020, 3, 1)), None, None]);
}

/// Rough throughput check; run with
/// `cargo test -p gridhub-normalize --release -- --ignored --nocapture throughput`.
#[test]
#[ignore]
fn throughput() {
    let n = 1_000_000;
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let d17 = format!(
                "4201061980{:02}{:02}{:03}",
                i % 12 + 1,
                i % 28 + 1,
                i % 1000
            );
            format!("{d17}{}", super::check_digit_by_hand(&d17))
        })
        .collect();
    let dates: Vec<String> = (0..n)
        .map(|i| format!("{}年{}月{}日", 1950 + i % 70, i % 12 + 1, i % 28 + 1))
        .collect();
    let phones: Vec<String> = (0..n)
        .map(|i| format!("+86 138 {:04} {:04}", i % 10000, i / 100))
        .collect();
    let cases = [
        (Normalizer::ResidentId, &ids),
        (Normalizer::PersonId, &ids),
        (Normalizer::Date, &dates),
        (Normalizer::Timestamp, &dates),
        (Normalizer::Phone, &phones),
        (Normalizer::Name, &phones),
    ];
    for (norm, data) in cases {
        let arr: ArrayRef = Arc::new(StringArray::from_iter_values(data.iter()));
        let udf = normalizer_udf(norm, KEY);
        let t = std::time::Instant::now();
        let out = invoke(&udf, arr);
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(out.null_count(), 0, "{norm}");
        println!("{norm:12} {:>8.2} M rows/s", n as f64 / secs / 1e6);
    }
}
