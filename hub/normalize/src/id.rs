//! Resident ID numbers (居民身份证号码) and their pseudonyms.

use chrono::{Duration, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{NormError, Result};
use crate::text::{fold_width, is_space};

/// ISO 7064 MOD 11-2 weights of the first 17 digits (2^(17-i) mod 11).
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each value of (weighted sum mod 11).
const CHECK: &[u8; 11] = b"10X98765432";

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Today's date in Beijing (UTC+8), the upper bound of a birth date.
pub(crate) fn today_beijing() -> NaiveDate {
    (Utc::now() + Duration::hours(8)).date_naive()
}

/// The check character of 17 ASCII digits.
pub(crate) fn check_char(d17: &[u8]) -> u8 {
    let sum: u32 = d17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

/// Core of [`resident_id`]: no allocation, `today` given by the caller.
pub(crate) fn resident_id_core(raw: &str, today: NaiveDate) -> Result<[u8; 18]> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(NormError::Empty);
    }
    let mut buf = [0u8; 18];
    let mut n = 0usize;
    for c in s.chars() {
        let c = fold_width(c);
        if is_space(c) {
            continue;
        }
        let b = match c {
            '0'..='9' | 'X' => c as u8,
            'x' => b'X',
            _ => {
                return Err(NormError::IdNonDigit {
                    found: c,
                    position: n + 1,
                });
            }
        };
        if n < 18 {
            buf[n] = b;
        }
        n += 1;
    }
    // `X` is only allowed as the 18th character.
    let digits = match n {
        18 => 17,
        15 => 15,
        _ => return Err(NormError::IdLength(n)),
    };
    if let Some(p) = buf[..digits].iter().position(|&b| b == b'X') {
        return Err(NormError::IdNonDigit {
            found: 'X',
            position: p + 1,
        });
    }
    if n == 15 {
        let mut out = [0u8; 18];
        out[..6].copy_from_slice(&buf[..6]);
        out[6..8].copy_from_slice(b"19");
        out[8..17].copy_from_slice(&buf[6..15]);
        out[17] = check_char(&out[..17]);
        check_birth_date(&out, today)?;
        return Ok(out);
    }
    let expected = check_char(&buf[..17]);
    if buf[17] != expected {
        return Err(NormError::CheckDigit {
            expected: expected as char,
            found: buf[17] as char,
        });
    }
    check_birth_date(&buf, today)?;
    Ok(buf)
}

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0, |a, &b| a * 10 + u32::from(b - b'0'))
}

fn check_birth_date(id: &[u8; 18], today: NaiveDate) -> Result<()> {
    let (year, month, day) = (num(&id[6..10]) as i32, num(&id[10..12]), num(&id[12..14]));
    let date = NaiveDate::from_ymd_opt(year, month, day).ok_or(NormError::ImpossibleBirthDate {
        year,
        month,
        day,
    })?;
    if year < 1900 {
        return Err(NormError::BirthDateTooEarly(date));
    }
    if date > today {
        return Err(NormError::BirthDateInFuture(date));
    }
    Ok(())
}

fn ascii(b: &[u8]) -> String {
    // The normalisers only ever put ASCII into their buffers.
    String::from_utf8(b.to_vec()).expect("ASCII")
}

/// Normalises a resident ID number to its 18-character form.
///
/// Trims, removes inner white space (ASCII, U+3000), folds full-width digits and turns a
/// final `x` into `X`. An 18-character ID must have 17 digits, a correct ISO 7064 MOD 11-2
/// check character and a real birth date between 1900-01-01 and today (Beijing time). A
/// 15-digit legacy ID gets `19` inserted before its 6-digit birth date and a computed check
/// character.
///
/// ```
/// assert_eq!(gridhub_normalize::resident_id(" 11010519491231002x ").unwrap(), "11010519491231002X");
/// assert_eq!(gridhub_normalize::resident_id("110105491231002").unwrap(), "11010519491231002X");
/// ```
pub fn resident_id(raw: &str) -> Result<String> {
    resident_id_core(raw, today_beijing()).map(|b| ascii(&b))
}

/// A keyed HMAC-SHA256 over the normalised ID, first 16 bytes as 32 lowercase hex chars.
pub(crate) fn pseudonym_hex(mac: &HmacSha256, normalized_id: &[u8]) -> [u8; 32] {
    let mut mac = mac.clone();
    mac.update(normalized_id);
    let digest = mac.finalize().into_bytes();
    let mut out = [0u8; 32];
    hex::encode_to_slice(&digest[..16], &mut out).expect("32 = 2 * 16");
    out
}

pub(crate) fn new_mac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// The pseudonym (`person_id`) of an already normalised resident ID: HMAC-SHA256 keyed with
/// `key`, first 16 bytes, 32 lowercase hex characters. Stable for a key, unlinkable without
/// it. Normalise the ID with [`resident_id`] first, or use [`person_id`].
pub fn pseudonym(key: &[u8], normalized_id: &str) -> String {
    ascii(&pseudonym_hex(&new_mac(key), normalized_id.as_bytes()))
}

/// [`resident_id`] followed by [`pseudonym`]: the `person_id` normaliser.
pub fn person_id(key: &[u8], raw: &str) -> Result<String> {
    let id = resident_id_core(raw, today_beijing())?;
    Ok(ascii(&pseudonym_hex(&new_mac(key), &id)))
}
