//! The error type of the normalisers.

use std::fmt;

use chrono::NaiveDate;

/// Why a value could not be normalised.
///
/// The `Display` text is a short English reason meant for the field worker who has to fix
/// the source row ("bad check digit: expected 7, found 4", "impossible date 2021-02-30").
/// It never repeats the whole raw value, so it can be logged next to a masked row.
///
/// Every variant is `Copy` and carries no heap data, so producing an error costs nothing
/// on the hot path of a UDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NormError {
    /// Empty or white-space-only input. This means "no value" (NULL) rather than bad
    /// data: the UDFs return NULL for it and [`crate::Normalizer::check`] reports nothing.
    Empty,
    /// A resident ID with the wrong number of characters (after removing spaces).
    IdLength(usize),
    /// A resident ID with a character that is not a digit (or not the final `X`).
    /// `position` counts characters from 1, spaces removed.
    IdNonDigit { found: char, position: usize },
    /// The ISO 7064 MOD 11-2 check character does not match.
    CheckDigit { expected: char, found: char },
    /// The birth date embedded in a resident ID is not a calendar date.
    ImpossibleBirthDate { year: i32, month: u32, day: u32 },
    /// The birth date embedded in a resident ID is before 1900-01-01.
    BirthDateTooEarly(NaiveDate),
    /// The birth date embedded in a resident ID is after today (Beijing time).
    BirthDateInFuture(NaiveDate),
    /// A date that does not exist in the calendar (`2021-02-30`, month 13).
    ImpossibleDate { year: i32, month: u32, day: u32 },
    /// A real date outside the accepted range 1900-01-01 ..= 2100-12-31.
    DateOutOfRange(NaiveDate),
    /// A bare year (`1980`) or year.month (`2020.3`), which would otherwise be read as an
    /// Excel serial day number.
    YearOnly(u32),
    /// Excel serial day number that is not a real day (0, or 60 = Excel's fictitious
    /// 1900-02-29).
    ExcelSerial(u64),
    /// A time of day with hour ≥ 24, minute ≥ 60 or second ≥ 60, or a bad UTC offset.
    ImpossibleTime { hour: u32, minute: u32, second: u32 },
    /// A phone number containing a character other than digits, spaces, dashes,
    /// parentheses and a leading `+`.
    PhoneChar(char),
    /// A phone number with the wrong number of digits.
    PhoneLength(usize),
    /// Another phone problem, described by the text.
    Phone(&'static str),
    /// An admin code with the wrong number of digits.
    AdminCodeLength(usize),
    /// An admin code containing a non-digit.
    AdminCodeNonDigit(char),
    /// The value is not of the expected kind at all; the text says which kind
    /// ("not a date", "not a yes/no value", …).
    Unrecognised(&'static str),
}

impl fmt::Display for NormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NormError::Empty => f.write_str("empty value"),
            NormError::IdLength(n) => write!(
                f,
                "wrong length: {n} characters (a resident ID has 18, old ones 15)"
            ),
            NormError::IdNonDigit { found, position } => {
                write!(f, "non-digit {found:?} at position {position}")
            }
            NormError::CheckDigit { expected, found } => {
                write!(f, "bad check digit: expected {expected}, found {found}")
            }
            NormError::ImpossibleBirthDate { year, month, day } => {
                write!(f, "impossible birth date {year:04}-{month:02}-{day:02}")
            }
            NormError::BirthDateTooEarly(d) => write!(f, "birth date {d} is before 1900"),
            NormError::BirthDateInFuture(d) => write!(f, "birth date {d} is in the future"),
            NormError::ImpossibleDate { year, month, day } => {
                write!(f, "impossible date {year:04}-{month:02}-{day:02}")
            }
            NormError::DateOutOfRange(d) => write!(f, "date {d} is outside 1900 to 2100"),
            NormError::YearOnly(y) => write!(f, "not a full date: only the year {y}"),
            NormError::ExcelSerial(60) => {
                f.write_str("Excel serial 60 is 1900-02-29, a day that never existed")
            }
            NormError::ExcelSerial(n) => write!(f, "Excel serial {n} is not a date"),
            NormError::ImpossibleTime {
                hour,
                minute,
                second,
            } => write!(f, "impossible time {hour:02}:{minute:02}:{second:02}"),
            NormError::PhoneChar(c) => write!(f, "not a phone number: unexpected {c:?}"),
            NormError::PhoneLength(n) => write!(f, "not a phone number: {n} digits"),
            NormError::Phone(why) => write!(f, "not a phone number: {why}"),
            NormError::AdminCodeLength(n) => {
                write!(f, "not an admin code: {n} digits (need 4, 6, 9, 12 or 15)")
            }
            NormError::AdminCodeNonDigit(c) => {
                write!(f, "not an admin code: {c:?} is not a digit")
            }
            NormError::Unrecognised(what) => f.write_str(what),
        }
    }
}

impl std::error::Error for NormError {}

/// `Result` with [`NormError`].
pub type Result<T, E = NormError> = std::result::Result<T, E>;
