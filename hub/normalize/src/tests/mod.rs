//! Table-driven tests of the pure normalisers.

mod udf;

use chrono::{NaiveDate, NaiveDateTime};

use crate::*;

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// Independent check-digit computation for the tests.
fn check_digit_by_hand(d17: &str) -> char {
    let sum: u32 = d17
        .chars()
        .zip(WEIGHTS)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize]
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn err<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn check_digit_helper_matches_hand_computation() {
    // 1*7+1*9+0*10+1*5+0*8+5*4+1*2+9*1+4*6+9*3+1*7+2*9+3*10+1*5+0*8+0*4+2*2 = 167,
    // 167 mod 11 = 2 → 'X'.
    assert_eq!(check_digit_by_hand("11010519491231002"), 'X');
    assert_eq!(check_digit_by_hand("42010619800101123"), '7');
}

#[test]
fn resident_id_valid() {
    let cases = [
        ("11010519491231002X", "11010519491231002X"),
        ("11010519491231002x", "11010519491231002X"),
        ("  110105 19491231 002x ", "11010519491231002X"),
        ("110105\u{3000}19491231002X", "11010519491231002X"),
        ("１１０１０５１９４９１２３１００２ｘ", "11010519491231002X"),
        ("420106198001011237", "420106198001011237"),
        ("420106198001010015", "420106198001010015"),
        ("440304200002291236", "440304200002291236"),
        ("320502197811117779", "320502197811117779"),
    ];
    for (raw, want) in cases {
        assert_eq!(resident_id(raw).as_deref(), Ok(want), "{raw:?}");
    }
}

#[test]
fn resident_id_15_to_18() {
    let d17 = "11010519491231002";
    let want = format!("{d17}{}", check_digit_by_hand(d17));
    assert_eq!(want, "11010519491231002X");
    assert_eq!(resident_id("110105491231002").unwrap(), want);
    assert_eq!(resident_id(" 110105 491231 002 ").unwrap(), want);
    let d17 = "42010619800101123";
    let want = format!("{d17}{}", check_digit_by_hand(d17));
    assert_eq!(resident_id("420106800101123").unwrap(), want);
}

#[test]
fn resident_id_invalid() {
    let cases = [
        ("420106198001011234", "bad check digit: expected 7, found 4"),
        ("110105194912310021", "bad check digit: expected X, found 1"),
        ("42010619800101123X", "bad check digit: expected 7, found X"),
        (
            "11010519491231002",
            "wrong length: 17 characters (a resident ID has 18, old ones 15)",
        ),
        (
            "11010519491231002X1",
            "wrong length: 19 characters (a resident ID has 18, old ones 15)",
        ),
        ("11010519491231002A", "non-digit 'A' at position 18"),
        ("1101051949123100X2", "non-digit 'X' at position 17"),
        ("11010549123100X", "non-digit 'X' at position 15"),
        ("张三", "non-digit '张' at position 1"),
        ("110105194902300020", "impossible birth date 1949-02-30"),
        ("110105490230002", "impossible birth date 1949-02-30"),
        (
            "110105209901010020",
            "birth date 2099-01-01 is in the future",
        ),
        ("110105189912310023", "birth date 1899-12-31 is before 1900"),
    ];
    for (raw, want) in cases {
        assert_eq!(err(resident_id(raw)), want, "{raw:?}");
    }
    assert_eq!(resident_id(""), Err(NormError::Empty));
    assert_eq!(resident_id(" \u{3000} "), Err(NormError::Empty));
}

#[test]
fn pseudonym_stable_and_key_dependent() {
    let id = "11010519491231002X";
    let a = pseudonym(b"test-key", id);
    // Known answer computed independently (Python hmac/hashlib).
    assert_eq!(a, "e7e0eb61ae93a5d9c2f43cd2056a34d9");
    assert_eq!(pseudonym(b"test-key", id), a);
    assert_eq!(
        pseudonym(b"other-key", id),
        "72c378e3eb715b8b108fe9a62b0dfd70"
    );
    assert_ne!(pseudonym(b"test-key", "420106198001011237"), a);
    assert_eq!(a.len(), 32);
    assert!(
        a.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    // person_id normalises first: legacy and lowercase forms give the same pseudonym.
    assert_eq!(person_id(b"test-key", "110105491231002").unwrap(), a);
    assert_eq!(person_id(b"test-key", "11010519491231002x").unwrap(), a);
    assert_eq!(
        err(person_id(b"test-key", "420106198001011234")),
        "bad check digit: expected 7, found 4"
    );
}

#[test]
fn name_cases() {
    let cases = [
        ("欧阳 明", Ok("欧阳明")),
        (" 欧阳\u{3000}明 ", Ok("欧阳明")),
        ("张\t三\u{200B}", Ok("张三")),
        ("阿卜杜·热合曼", Ok("阿卜杜·热合曼")),
        ("Li Lei", Ok("LiLei")),
        ("", Err(NormError::Empty)),
        (" \u{3000} ", Err(NormError::Empty)),
    ];
    for (raw, want) in cases {
        assert_eq!(name(raw), want.map(str::to_owned), "{raw:?}");
    }
}

#[test]
fn trim_cases() {
    assert_eq!(trim("  a b ").unwrap(), "a b");
    assert_eq!(trim("\u{3000}社区\u{3000}").unwrap(), "社区");
    assert_eq!(trim(" \t "), Err(NormError::Empty));
    assert_eq!(trim(""), Err(NormError::Empty));
}

#[test]
fn phone_valid() {
    let cases = [
        ("+86 138 1234 5678", "13812345678"),
        ("138-1234-5678", "13812345678"),
        ("13812345678", "13812345678"),
        (" 0086 138 1234 5678 ", "13812345678"),
        ("8613812345678", "13812345678"),
        ("(+86) 199-1234-5678", "19912345678"),
        ("１３８－１２３４－５６７８", "13812345678"),
        ("027-8765 4321", "027-87654321"),
        ("(027) 87654321", "027-87654321"),
        ("02787654321", "027-87654321"),
        ("010-62345678", "010-62345678"),
        ("0571-8888888", "0571-8888888"),
        ("0571 88888888", "0571-88888888"),
        ("+86 27 8765 4321", "027-87654321"),
        ("+86 (0)27 8765 4321", "027-87654321"),
    ];
    for (raw, want) in cases {
        assert_eq!(phone(raw).as_deref(), Ok(want), "{raw:?}");
    }
}

#[test]
fn phone_invalid() {
    let cases = [
        (
            "12812345678",
            "not a phone number: a mobile number starts with 13 to 19",
        ),
        ("1381234567", "not a phone number: 10 digits"),
        ("138123456789", "not a phone number: 12 digits"),
        ("87654321", "not a phone number: landline without area code"),
        (
            "+1 415 555 0100",
            "not a phone number: not a Chinese number",
        ),
        ("138-1234-567a", "not a phone number: unexpected 'a'"),
        ("138.1234.5678", "not a phone number: unexpected '.'"),
        ("00-12345678", "not a phone number: unknown area code"),
        ("027-876543", "not a phone number: 9 digits"),
        (
            "010-12345678",
            "not a phone number: a local number cannot start with 0 or 1",
        ),
        ("12345", "not a phone number: 5 digits"),
        ("--", "not a phone number"),
    ];
    for (raw, want) in cases {
        assert_eq!(err(phone(raw)), want, "{raw:?}");
    }
    assert_eq!(phone("  "), Err(NormError::Empty));
}

#[test]
fn admin_code_cases() {
    for ok in [
        "4201",
        "420106",
        "420106001",
        "420106001003",
        "420106001003007",
    ] {
        assert_eq!(admin_code(ok).as_deref(), Ok(ok));
        assert_eq!(admin_code(&format!(" {ok}\u{3000}")).as_deref(), Ok(ok));
    }
    assert_eq!(admin_code("４２０１０６").as_deref(), Ok("420106"));
    let bad = [
        (
            "42010600100",
            "not an admin code: 11 digits (need 4, 6, 9, 12 or 15)",
        ),
        ("42", "not an admin code: 2 digits (need 4, 6, 9, 12 or 15)"),
        (
            "4201060010030071",
            "not an admin code: 16 digits (need 4, 6, 9, 12 or 15)",
        ),
        ("4201a6", "not an admin code: 'a' is not a digit"),
        ("4201 06", "not an admin code: ' ' is not a digit"),
        ("-420106", "not an admin code: '-' is not a digit"),
    ];
    for (raw, want) in bad {
        assert_eq!(err(admin_code(raw)), want, "{raw:?}");
    }
    assert_eq!(admin_code(""), Err(NormError::Empty));
}

#[test]
fn boolean_cases() {
    let cases = [
        ("是", true),
        ("否", false),
        ("有", true),
        ("无", false),
        ("Y", true),
        ("n", false),
        ("yes", true),
        ("NO", false),
        ("True", true),
        ("FALSE", false),
        ("1", true),
        ("0", false),
        (" 是 ", true),
    ];
    for (raw, want) in cases {
        assert_eq!(boolean(raw), Ok(want), "{raw:?}");
    }
    for bad in ["maybe", "2", "是的", "yess", "t"] {
        assert_eq!(err(boolean(bad)), "not a yes/no value", "{bad:?}");
    }
    assert_eq!(boolean(""), Err(NormError::Empty));
}

#[test]
fn date_formats() {
    let d = ymd(2020, 3, 1);
    let cases = [
        "2020-03-01",
        "2020-3-1",
        "2020/3/1",
        "2020/03/01",
        "2020.3.1",
        "2020年3月1日",
        "2020年03月01日",
        "2020年3月1号",
        "2020年3月1",
        "２０２０年３月１日",
        "２０２０－０３－０１",
        "20200301",
        "43891",
        "43891.0",
        "43891.75",
        " 2020-03-01\u{3000}",
        "2020-03-01 00:00:00",
        "2020-03-01 13:45",
        "2020-03-01T23:30:00Z",
        "2020-03-01T01:00:00+08:00",
        "2020/3/1 8:05",
        "2020年3月1日 08:30",
        "2020年3月1日8:30:15",
    ];
    for raw in cases {
        assert_eq!(date(raw), Ok(d), "{raw:?}");
    }
}

#[test]
fn date_excel_serials() {
    let cases = [
        ("43891", ymd(2020, 3, 1)),
        ("44197", ymd(2021, 1, 1)),
        ("44197.0", ymd(2021, 1, 1)),
        ("1", ymd(1900, 1, 1)),
        ("59", ymd(1900, 2, 28)),
        ("61", ymd(1900, 3, 1)),
        ("25569", ymd(1970, 1, 1)),
        ("73415", ymd(2100, 12, 31)),
        ("1899", ymd(1905, 3, 13)),
    ];
    for (raw, want) in cases {
        assert_eq!(date(raw), Ok(want), "{raw:?}");
    }
    let bad = [
        (
            "60",
            "Excel serial 60 is 1900-02-29, a day that never existed",
        ),
        ("0", "Excel serial 0 is not a date"),
        ("73416", "date 2101-01-01 is outside 1900 to 2100"),
        ("1980", "not a full date: only the year 1980"),
        ("2020.3", "not a full date: only the year 2020"),
    ];
    for (raw, want) in bad {
        assert_eq!(err(date(raw)), want, "{raw:?}");
    }
}

#[test]
fn date_invalid() {
    let cases = [
        ("2021-02-30", "impossible date 2021-02-30"),
        ("2021/2/30", "impossible date 2021-02-30"),
        ("20210230", "impossible date 2021-02-30"),
        ("2021年2月30日", "impossible date 2021-02-30"),
        ("2019-02-29", "impossible date 2019-02-29"),
        ("2020-13-01", "impossible date 2020-13-01"),
        ("2020-00-10", "impossible date 2020-00-10"),
        ("2020-01-32", "impossible date 2020-01-32"),
        ("1899-12-31", "date 1899-12-31 is outside 1900 to 2100"),
        ("2101-01-01", "date 2101-01-01 is outside 1900 to 2100"),
        ("abc", "not a date"),
        ("2020-03", "not a date"),
        ("2020-3/1", "not a date"),
        ("202003", "not a date"),
        ("2020-03-01x", "not a date"),
        ("2020-03-01 x", "not a valid time after the date"),
        ("2020-03-01 8", "not a valid time after the date"),
        ("2020-03-01 25:00", "impossible time 25:00:00"),
        ("2020-03-01 12:60", "impossible time 12:60:00"),
        ("2020年3月1日 晚上", "not a date"),
        ("10:30", "not a date"),
    ];
    for (raw, want) in cases {
        assert_eq!(err(date(raw)), want, "{raw:?}");
    }
    assert_eq!(date(""), Err(NormError::Empty));
    assert_eq!(date("   "), Err(NormError::Empty));
    assert_eq!(date("2020-02-29"), Ok(ymd(2020, 2, 29)));
}

fn utc_micros(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, us: u32) -> i64 {
    let t: NaiveDateTime = ymd(y, mo, d).and_hms_micro_opt(h, mi, s, us).unwrap();
    t.and_utc().timestamp_micros()
}

#[test]
fn timestamp_beijing_to_utc() {
    let midnight_utc = utc_micros(2020, 3, 1, 0, 0, 0, 0);
    let cases = [
        // naive = Beijing time (UTC+8)
        ("2020-03-01 08:00", midnight_utc),
        ("2020-03-01 08:00:00", midnight_utc),
        ("2020-03-01T08:00:00", midnight_utc),
        ("2020/3/1 8:00", midnight_utc),
        ("2020.3.1 08:00", midnight_utc),
        ("2020年3月1日 08:00", midnight_utc),
        ("2020年3月1日8:00", midnight_utc),
        ("20200301 08:00:00", midnight_utc),
        // bare date = midnight Beijing = 16:00 UTC the day before
        ("2020-03-01", utc_micros(2020, 2, 29, 16, 0, 0, 0)),
        ("2020年3月1日", utc_micros(2020, 2, 29, 16, 0, 0, 0)),
        // ISO 8601 with offset
        ("2020-03-01T00:00:00Z", midnight_utc),
        ("2020-03-01T08:00:00+08:00", midnight_utc),
        ("2020-03-01T08:00:00+0800", midnight_utc),
        ("2020-03-01T08:00:00+08", midnight_utc),
        ("2020-03-01 08:00:00 +08:00", midnight_utc),
        ("2020-02-29T19:00:00-05:00", midnight_utc),
        (
            "2020-03-01T00:00:00.5Z",
            utc_micros(2020, 3, 1, 0, 0, 0, 500_000),
        ),
        (
            "2020-03-01T00:00:00.123456789Z",
            utc_micros(2020, 3, 1, 0, 0, 0, 123_456),
        ),
        (
            "2020-03-01 10:20:30.25",
            utc_micros(2020, 3, 1, 2, 20, 30, 250_000),
        ),
        // Excel serial with fraction (Beijing time)
        ("43891", utc_micros(2020, 2, 29, 16, 0, 0, 0)),
        ("43891.5", utc_micros(2020, 3, 1, 4, 0, 0, 0)),
        ("43891.4166666667", utc_micros(2020, 3, 1, 2, 0, 0, 0)),
        ("43891.99999999999", utc_micros(2020, 3, 1, 16, 0, 0, 0)),
        ("44197.75", utc_micros(2021, 1, 1, 10, 0, 0, 0)),
    ];
    for (raw, want) in cases {
        assert_eq!(timestamp(raw), Ok(want), "{raw:?}");
    }
}

#[test]
fn timestamp_invalid() {
    let cases = [
        ("2020-03-01 24:00", "impossible time 24:00:00"),
        ("2020-03-01 23:59:60", "impossible time 23:59:60"),
        ("2020-03-01 8", "not a valid time after the date"),
        ("2020-03-01 08:00 +25:00", "not a valid time after the date"),
        ("2020-03-01 08:00 CST", "not a valid time after the date"),
        ("2020-03-01T", "not a date"),
        ("2021-02-30 08:00", "impossible date 2021-02-30"),
        (
            "60.5",
            "Excel serial 60 is 1900-02-29, a day that never existed",
        ),
        ("yesterday", "not a date"),
    ];
    for (raw, want) in cases {
        assert_eq!(err(timestamp(raw)), want, "{raw:?}");
    }
    assert_eq!(timestamp(" "), Err(NormError::Empty));
}

#[test]
fn normalizer_names_and_types() {
    use arrow::datatypes::{DataType, TimeUnit};
    let cases = [
        (
            "resident_id",
            Normalizer::ResidentId,
            "gh_resident_id",
            DataType::Utf8,
        ),
        (
            "person_id",
            Normalizer::PersonId,
            "gh_person_id",
            DataType::Utf8,
        ),
        ("name", Normalizer::Name, "gh_name", DataType::Utf8),
        ("phone", Normalizer::Phone, "gh_phone", DataType::Utf8),
        ("date", Normalizer::Date, "gh_date", DataType::Date32),
        (
            "timestamp",
            Normalizer::Timestamp,
            "gh_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        (
            "admin_code",
            Normalizer::AdminCode,
            "gh_admin_code",
            DataType::Utf8,
        ),
        ("bool", Normalizer::Bool, "gh_bool", DataType::Boolean),
        ("trim", Normalizer::Trim, "gh_trim", DataType::Utf8),
    ];
    assert_eq!(cases.len(), Normalizer::ALL.len());
    for (name, n, udf, ty) in cases {
        assert_eq!(name.parse::<Normalizer>(), Ok(n));
        assert_eq!(n.name(), name);
        assert_eq!(n.to_string(), name);
        assert_eq!(n.udf_name(), udf);
        assert_eq!(n.output_type(), ty);
    }
    let e = "boolean".parse::<Normalizer>().unwrap_err().to_string();
    assert_eq!(
        e,
        "unknown normaliser \"boolean\"; known: resident_id, person_id, name, phone, date, \
         timestamp, admin_code, bool, trim"
    );
}

#[test]
fn normalizer_check() {
    let key = b"k";
    let cases: [(Normalizer, &str, Option<&str>); 18] = [
        (Normalizer::ResidentId, "11010519491231002x", None),
        (
            Normalizer::ResidentId,
            "420106198001011234",
            Some("bad check digit: expected 7, found 4"),
        ),
        (Normalizer::ResidentId, "  ", None),
        (
            Normalizer::PersonId,
            "110105194902300020",
            Some("impossible birth date 1949-02-30"),
        ),
        (Normalizer::PersonId, "110105491231002", None),
        (Normalizer::Name, "欧阳 明", None),
        (Normalizer::Name, "", None),
        (Normalizer::Phone, "027-8765 4321", None),
        (
            Normalizer::Phone,
            "12345",
            Some("not a phone number: 5 digits"),
        ),
        (
            Normalizer::Date,
            "2021-02-30",
            Some("impossible date 2021-02-30"),
        ),
        (Normalizer::Date, "43891.0", None),
        (
            Normalizer::Timestamp,
            "2020-03-01 25:00",
            Some("impossible time 25:00:00"),
        ),
        (Normalizer::Timestamp, "2020-03-01T08:00:00Z", None),
        (
            Normalizer::AdminCode,
            "42010600100",
            Some("not an admin code: 11 digits (need 4, 6, 9, 12 or 15)"),
        ),
        (Normalizer::AdminCode, "420106", None),
        (Normalizer::Bool, "maybe", Some("not a yes/no value")),
        (Normalizer::Bool, "是", None),
        (Normalizer::Trim, "\u{3000}", None),
    ];
    for (n, raw, want) in cases {
        assert_eq!(n.check(raw, key).as_deref(), want, "{n} {raw:?}");
    }
}
