//! Dates and timestamps, hand-parsed (no regex, no allocation).
//!
//! Accepted date forms (after trimming; full-width digits and punctuation are folded):
//!
//! | form | example |
//! |---|---|
//! | ISO / dashes | `2020-03-01`, `2020-3-1` |
//! | slashes | `2020/3/1` |
//! | dots | `2020.3.1` |
//! | Chinese | `2020年3月1日` (`日` or `号` optional) |
//! | compact | `20200301` |
//! | Excel serial | `43891`, `43891.0`, `43891.5` (1–5 digits, optional fraction) |
//!
//! Any of them may be followed by a time: a `T` or spaces (nothing needed after `日`), then
//! `H:MM` or `HH:MM[:SS[.fraction]]`, then optionally spaces and a UTC offset `Z`, `+08:00`,
//! `+0800` or `+08`.
//!
//! Choices:
//! * **Excel serials** use the 1900 date system: serial 1 = 1900-01-01, 59 = 1900-02-28,
//!   61 = 1900-03-01. Serial 60 is Excel's fictitious 1900-02-29 and is an **error**, as
//!   is serial 0. A fraction is the time of day, rounded to the millisecond.
//! * A **4-digit number from 1900 to 2100** (optionally with a fraction, `2020.3`) is
//!   rejected as "only a year" rather than read as a serial in 1905.
//! * [`date`] takes the **calendar date as written** whenever a time is given, whatever the
//!   time or offset (`2020-03-01T23:30:00Z` → 2020-03-01); the time must still be valid.
//! * [`timestamp`] treats a value without offset as Beijing time (UTC+8); a bare date is
//!   midnight Beijing time (16:00 UTC the day before).
//! * Accepted years: 1900 to 2100 (of the date as written).

use chrono::{Datelike, Days, NaiveDate};

use crate::error::{NormError, Result};
use crate::text::trim_str;

const Y_MARK: u8 = 0x01;
const M_MARK: u8 = 0x02;
const D_MARK: u8 = 0x03;

const NOT_DATE: NormError = NormError::Unrecognised("not a date");
const NOT_TIME: NormError = NormError::Unrecognised("not a valid time after the date");

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_CE_DAYS: i32 = 719_163;
/// Beijing time is UTC+8 all year.
const BEIJING_OFFSET_SECS: i64 = 8 * 3600;
const MICROS_PER_DAY: i64 = 86_400_000_000;

#[derive(Debug, Clone, Copy)]
struct TimeOfDay {
    micros: i64,
    offset_secs: Option<i64>,
}

#[derive(Debug, Clone, Copy)]
struct Parsed {
    date: NaiveDate,
    time: Option<TimeOfDay>,
}

struct Cur<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cur<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i >= self.b.len()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    /// Reads a run of ASCII digits: (value, number of digits). The value saturates.
    fn digits(&mut self) -> (u64, usize) {
        let start = self.i;
        let mut v: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            v = v.saturating_mul(10).saturating_add(u64::from(c - b'0'));
            self.i += 1;
        }
        (v, self.i - start)
    }
    fn skip_spaces(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i - start
    }
}

/// Copies `s` into `buf` as ASCII: full-width forms folded, U+3000 → space, 年/月/日(号)
/// → marker bytes. Anything else non-ASCII is not part of a date.
fn fold_date<'b>(s: &str, buf: &'b mut [u8; 64]) -> Result<&'b [u8]> {
    let mut n = 0;
    for c in s.chars() {
        let b = match c {
            '年' => Y_MARK,
            '月' => M_MARK,
            '日' | '号' => D_MARK,
            '\u{3000}' => b' ',
            '\u{FF01}'..='\u{FF5E}' => (c as u32 - 0xFEE0) as u8,
            c if c.is_ascii() => c as u8,
            _ => return Err(NOT_DATE),
        };
        *buf.get_mut(n).ok_or(NOT_DATE)? = b;
        n += 1;
    }
    Ok(&buf[..n])
}

fn make_date(year: u64, month: u64, day: u64) -> Result<NaiveDate> {
    let (year, month, day) = (year as i32, month as u32, day as u32);
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(NormError::ImpossibleDate {
        year,
        month,
        day,
    })?;
    in_range(date)
}

fn in_range(date: NaiveDate) -> Result<NaiveDate> {
    if (1900..=2100).contains(&date.year()) {
        Ok(date)
    } else {
        Err(NormError::DateOutOfRange(date))
    }
}

/// `^\d{1,5}(\.\d*)?$` → an Excel serial (1900 date system).
fn excel(b: &[u8]) -> Result<Option<Parsed>> {
    let n_int = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n_int == 0 || n_int > 5 {
        return Ok(None);
    }
    let frac: &[u8] = match &b[n_int..] {
        [] => &[],
        [b'.', rest @ ..] if rest.iter().all(u8::is_ascii_digit) => rest,
        _ => return Ok(None),
    };
    let has_frac = n_int < b.len();
    let serial = b[..n_int]
        .iter()
        .fold(0u64, |a, &c| a * 10 + u64::from(c - b'0'));
    if n_int == 4 && (1900..=2100).contains(&serial) {
        return Err(NormError::YearOnly(serial as u32));
    }
    if serial == 0 || serial == 60 {
        return Err(NormError::ExcelSerial(serial));
    }
    // Excel counts the non-existent 1900-02-29 as serial 60.
    let base = if serial < 60 {
        NaiveDate::from_ymd_opt(1899, 12, 31)
    } else {
        NaiveDate::from_ymd_opt(1899, 12, 30)
    }
    .expect("valid base date");
    let mut date = base
        .checked_add_days(Days::new(serial))
        .ok_or(NormError::ExcelSerial(serial))?;
    let mut time = None;
    if has_frac {
        let mut mant: u64 = 0;
        let mut scale: f64 = 1.0;
        for &c in frac.iter().take(15) {
            mant = mant * 10 + u64::from(c - b'0');
            scale *= 10.0;
        }
        let mut ms = (mant as f64 / scale * 86_400_000.0).round() as i64;
        if ms >= 86_400_000 {
            ms -= 86_400_000;
            date = date.succ_opt().ok_or(NormError::ExcelSerial(serial))?;
        }
        time = Some(TimeOfDay {
            micros: ms * 1000,
            offset_secs: None,
        });
    }
    Ok(Some(Parsed {
        date: in_range(date)?,
        time,
    }))
}

fn parse_time(c: &mut Cur<'_>) -> Result<TimeOfDay> {
    let (hour, nh) = c.digits();
    if !(1..=2).contains(&nh) || !c.eat(b':') {
        return Err(NOT_TIME);
    }
    let (minute, nm) = c.digits();
    if nm != 2 {
        return Err(NOT_TIME);
    }
    let (mut second, mut micros) = (0u64, 0u64);
    if c.eat(b':') {
        let (s, ns) = c.digits();
        if ns != 2 {
            return Err(NOT_TIME);
        }
        second = s;
        if c.eat(b'.') || c.eat(b',') {
            let (f, nf) = c.digits();
            micros = match nf {
                1..=6 => f * 10u64.pow(6 - nf as u32),
                7..=9 => f / 10u64.pow(nf as u32 - 6),
                _ => return Err(NOT_TIME),
            };
        }
    }
    c.skip_spaces();
    let offset_secs = match c.peek() {
        None => None,
        Some(b'Z' | b'z') => {
            c.i += 1;
            Some(0)
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let (v, n) = c.digits();
            let (oh, om) = match n {
                4 => (v / 100, v % 100),
                2 if c.eat(b':') => match c.digits() {
                    (m, 2) => (v, m),
                    _ => return Err(NOT_TIME),
                },
                2 => (v, 0),
                _ => return Err(NOT_TIME),
            };
            if oh > 18 || om > 59 {
                return Err(NOT_TIME);
            }
            let secs = (oh * 3600 + om * 60) as i64;
            Some(if sign == b'-' { -secs } else { secs })
        }
        Some(_) => return Err(NOT_TIME),
    };
    if !c.done() {
        return Err(NOT_TIME);
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(NormError::ImpossibleTime {
            hour: hour.min(99) as u32,
            minute: minute as u32,
            second: second as u32,
        });
    }
    Ok(TimeOfDay {
        micros: (((hour * 60 + minute) * 60 + second) * 1_000_000 + micros) as i64,
        offset_secs,
    })
}

fn parse(raw: &str) -> Result<Parsed> {
    let s = trim_str(raw);
    if s.is_empty() {
        return Err(NormError::Empty);
    }
    let mut buf = [0u8; 64];
    let b = if s.is_ascii() {
        s.as_bytes()
    } else {
        fold_date(s, &mut buf)?
    };
    if let Some(p) = excel(b)? {
        return Ok(p);
    }
    let mut c = Cur { b, i: 0 };
    let (v1, n1) = c.digits();
    let (date, chinese_end) = match n1 {
        8 => (make_date(v1 / 10000, v1 / 100 % 100, v1 % 100)?, false),
        4 => {
            let sep = c.peek().ok_or(NOT_DATE)?;
            let end = match sep {
                b'-' | b'/' | b'.' => sep,
                Y_MARK => M_MARK,
                _ => return Err(NOT_DATE),
            };
            c.i += 1;
            let (m, nm) = c.digits();
            if !(1..=2).contains(&nm) || !c.eat(end) {
                return Err(NOT_DATE);
            }
            let (d, nd) = c.digits();
            if !(1..=2).contains(&nd) {
                return Err(NOT_DATE);
            }
            let chinese_end = sep == Y_MARK && c.eat(D_MARK);
            (make_date(v1, m, d)?, chinese_end)
        }
        _ => return Err(NOT_DATE),
    };
    if c.done() {
        return Ok(Parsed { date, time: None });
    }
    let separated = c.eat(b'T') || c.skip_spaces() > 0 || chinese_end;
    if !separated || c.done() {
        return Err(NOT_DATE);
    }
    let time = parse_time(&mut c)?;
    Ok(Parsed {
        date,
        time: Some(time),
    })
}

/// Days since 1970-01-01 (Arrow `Date32`).
pub(crate) fn date32(raw: &str) -> Result<i32> {
    parse(raw).map(|p| p.date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS)
}

/// Parses a date in any of the [accepted forms](self); a trailing time is checked and
/// ignored (the date is taken as written).
///
/// ```
/// use chrono::NaiveDate;
/// let d = NaiveDate::from_ymd_opt(2020, 3, 1).unwrap();
/// for raw in ["2020-03-01", "2020/3/1", "2020.3.1", "2020年3月1日", "20200301", "43891", "43891.0"] {
///     assert_eq!(gridhub_normalize::date(raw).unwrap(), d);
/// }
/// assert_eq!(gridhub_normalize::date("2021-02-30").unwrap_err().to_string(), "impossible date 2021-02-30");
/// ```
pub fn date(raw: &str) -> Result<NaiveDate> {
    parse(raw).map(|p| p.date)
}

/// Parses a date and optional time into microseconds since 1970-01-01T00:00:00 UTC.
///
/// Values without an offset (and bare dates, at midnight) are Beijing time (UTC+8).
///
/// ```
/// // 2020-03-01 08:00 in Beijing is midnight UTC.
/// assert_eq!(gridhub_normalize::timestamp("2020-03-01 08:00").unwrap(), 1_583_020_800_000_000);
/// assert_eq!(gridhub_normalize::timestamp("2020-03-01T00:00:00Z").unwrap(), 1_583_020_800_000_000);
/// ```
pub fn timestamp(raw: &str) -> Result<i64> {
    let p = parse(raw)?;
    let days = i64::from(p.date.num_days_from_ce() - UNIX_EPOCH_CE_DAYS);
    let (micros, offset) = match p.time {
        None => (0, BEIJING_OFFSET_SECS),
        Some(t) => (t.micros, t.offset_secs.unwrap_or(BEIJING_OFFSET_SECS)),
    };
    Ok(days * MICROS_PER_DAY + micros - offset * 1_000_000)
}
