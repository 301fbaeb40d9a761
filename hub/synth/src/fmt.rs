//! Small allocation-free formatters: resident IDs, dates and times in every source's style,
//! phone numbers, Excel serials. All write into a caller's `String`.

use std::fmt::Write;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

/// ISO 7064 MOD 11-2 weights of the first 17 digits.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each value of (weighted sum mod 11).
pub(crate) const CHECK: &[u8; 11] = b"10X98765432";

/// The check character of 17 ASCII digits.
pub(crate) fn check_char(d17: &[u8]) -> u8 {
    let sum: u32 = d17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

/// An 18-character resident ID: region, birth date, sequence (odd = male), check digit.
pub(crate) fn resident_id(region: u32, birth: NaiveDate, seq: u32) -> [u8; 18] {
    let mut out = [b'0'; 18];
    let mut s = String::with_capacity(18);
    let _ = write!(
        s,
        "{region:06}{:04}{:02}{:02}{seq:03}",
        birth.year(),
        birth.month(),
        birth.day()
    );
    out[..17].copy_from_slice(&s.as_bytes()[..17]);
    out[17] = check_char(&out[..17]);
    out
}

/// The legacy 15-digit form of an 18-character ID born in the 1900s: region, yyMMdd, seq.
pub(crate) fn legacy_id(id: &[u8; 18]) -> [u8; 15] {
    let mut out = [0u8; 15];
    out[..6].copy_from_slice(&id[..6]);
    out[6..15].copy_from_slice(&id[8..17]);
    out
}

pub(crate) fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).expect("ASCII")
}

/// `2022-11-29`
pub(crate) fn date_iso(s: &mut String, d: NaiveDate) {
    let _ = write!(s, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day());
}

/// `1980年1月1日`
pub(crate) fn date_cn(s: &mut String, d: NaiveDate) {
    let _ = write!(s, "{}年{}月{}日", d.year(), d.month(), d.day());
}

/// `19800101`
pub(crate) fn date_compact(s: &mut String, d: NaiveDate) {
    let _ = write!(s, "{:04}{:02}{:02}", d.year(), d.month(), d.day());
}

/// `2020/3/1`
pub(crate) fn date_slash(s: &mut String, d: NaiveDate) {
    let _ = write!(s, "{}/{}/{}", d.year(), d.month(), d.day());
}

/// `2021.3.5`
pub(crate) fn date_dot(s: &mut String, d: NaiveDate) {
    let _ = write!(s, "{}.{}.{}", d.year(), d.month(), d.day());
}

/// `2023-05-06 14:30:00`
pub(crate) fn datetime_iso(s: &mut String, t: NaiveDateTime) {
    date_iso(s, t.date());
    let _ = write!(s, " {:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
}

/// `2023/5/6 14:30`
pub(crate) fn datetime_slash(s: &mut String, t: NaiveDateTime) {
    date_slash(s, t.date());
    let _ = write!(s, " {:02}:{:02}", t.hour(), t.minute());
}

/// `2024-01-15T08:00:00+08:00`
pub(crate) fn datetime_rfc3339_beijing(s: &mut String, t: NaiveDateTime) {
    date_iso(s, t.date());
    let _ = write!(
        s,
        "T{:02}:{:02}:{:02}+08:00",
        t.hour(),
        t.minute(),
        t.second()
    );
}

/// Days since 1899-12-30: the Excel (1900 system) serial of a date after 1900-03-01.
pub(crate) fn excel_serial(d: NaiveDate) -> f64 {
    let base = NaiveDate::from_ymd_opt(1899, 12, 30).expect("valid");
    (d - base).num_days() as f64
}

/// Excel serial of a date and time (fraction = time of day).
pub(crate) fn excel_serial_time(t: NaiveDateTime) -> f64 {
    excel_serial(t.date()) + f64::from(t.num_seconds_from_midnight()) / 86_400.0
}

/// A phone as the model stores it: 0 = none; ≥ 10^10 an 11-digit mobile; otherwise the
/// 8-digit local part of a Wuhan (027) landline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PhoneStyle {
    /// `13812345678`, landline `027-87654321`
    Plain,
    /// `138-1234-5678`
    Dashed,
    /// `+86 13812345678`
    Plus86,
    /// landline `027-8765 4321` (register style)
    Spaced,
}

pub(crate) fn is_mobile(phone: u64) -> bool {
    phone >= 10_000_000_000
}

pub(crate) fn phone(s: &mut String, phone: u64, style: PhoneStyle) {
    if phone == 0 {
        return;
    }
    if is_mobile(phone) {
        match style {
            PhoneStyle::Dashed => {
                let _ = write!(
                    s,
                    "{}-{:04}-{:04}",
                    phone / 100_000_000,
                    phone / 10_000 % 10_000,
                    phone % 10_000
                );
            }
            PhoneStyle::Plus86 => {
                let _ = write!(s, "+86 {phone}");
            }
            PhoneStyle::Plain | PhoneStyle::Spaced => {
                let _ = write!(s, "{phone}");
            }
        }
    } else if style == PhoneStyle::Spaced {
        let _ = write!(s, "027-{} {:04}", phone / 10_000, phone % 10_000);
    } else {
        let _ = write!(s, "027-{phone}");
    }
}

/// The normalised form of a model phone (what `gh_phone` yields).
pub(crate) fn phone_normalised(phone: u64) -> Option<String> {
    if phone == 0 {
        None
    } else if is_mobile(phone) {
        Some(phone.to_string())
    } else {
        Some(format!("027-{phone}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digit_matches_known_ids() {
        // GB 11643 example: 11010519491231002X.
        assert_eq!(check_char(b"11010519491231002"), b'X');
        let id = resident_id(420106, NaiveDate::from_ymd_opt(1980, 1, 1).unwrap(), 123);
        assert_eq!(&ascii(&id)[..17], "42010619800101123");
        let legacy = legacy_id(&id);
        assert_eq!(ascii(&legacy), "420106800101123");
    }

    #[test]
    fn formats() {
        let d = NaiveDate::from_ymd_opt(2020, 3, 1).unwrap();
        let t = d.and_hms_opt(9, 5, 0).unwrap();
        let mut s = String::new();
        date_cn(&mut s, d);
        s.push('|');
        date_slash(&mut s, d);
        s.push('|');
        datetime_slash(&mut s, t);
        s.push('|');
        datetime_rfc3339_beijing(&mut s, t);
        assert_eq!(
            s,
            "2020年3月1日|2020/3/1|2020/3/1 09:05|2020-03-01T09:05:00+08:00"
        );
        assert_eq!(excel_serial(d), 43891.0);
        let mut p = String::new();
        phone(&mut p, 13812345678, PhoneStyle::Dashed);
        p.push('|');
        phone(&mut p, 87654321, PhoneStyle::Spaced);
        p.push('|');
        phone(&mut p, 13812345678, PhoneStyle::Plus86);
        assert_eq!(p, "138-1234-5678|027-8765 4321|+86 13812345678");
    }
}
