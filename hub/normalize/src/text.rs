//! Text-like normalisers: name, phone, admin code, boolean, trim.

use crate::error::{NormError, Result};

/// Maps full-width ASCII forms (U+FF01..U+FF5E, e.g. `１`, `－`, `（`) to ASCII and the
/// ideographic space U+3000 to a space; other characters are returned unchanged.
#[inline]
pub(crate) fn fold_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

/// White space for the normalisers: Unicode white space (which includes U+3000 and
/// U+00A0) plus the invisible zero-width space and byte-order mark.
#[inline]
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{200B}' || c == '\u{FEFF}'
}

/// Trims white space (including U+3000, zero-width space and BOM) at both ends.
#[inline]
pub(crate) fn trim_str(raw: &str) -> &str {
    raw.trim_matches(is_space)
}

/// Trims `raw`; empty → [`NormError::Empty`].
pub fn trim(raw: &str) -> Result<String> {
    trim_core(raw).map(str::to_owned)
}

pub(crate) fn trim_core(raw: &str) -> Result<&str> {
    let s = trim_str(raw);
    if s.is_empty() {
        Err(NormError::Empty)
    } else {
        Ok(s)
    }
}

/// Trims and removes all inner white space (ASCII, U+3000 ideographic space, NBSP,
/// zero-width space): `" 欧阳　明 "` → `"欧阳明"`. Empty → error.
pub fn name(raw: &str) -> Result<String> {
    let mut out = String::with_capacity(raw.len());
    name_into(raw, &mut out)?;
    Ok(out)
}

/// Appends the normalised name to `out`.
pub(crate) fn name_into(raw: &str, out: &mut String) -> Result<()> {
    let s = trim_core(raw)?;
    if s.contains(is_space) {
        out.extend(s.chars().filter(|&c| !is_space(c)));
    } else {
        out.push_str(s);
    }
    Ok(())
}

/// Checks an administrative division code: after trimming, digits only (full-width digits
/// are folded) and 4, 6, 9, 12 or 15 of them (city, district, street, community, grid).
pub fn admin_code(raw: &str) -> Result<String> {
    admin_code_core(raw).map(|c| c.as_str().to_owned())
}

/// A normalised admin code in a stack buffer.
#[derive(Clone, Copy)]
pub(crate) struct CodeBuf {
    buf: [u8; 15],
    len: usize,
}

impl CodeBuf {
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("ASCII")
    }
}

pub(crate) fn admin_code_core(raw: &str) -> Result<CodeBuf> {
    let s = trim_core(raw)?;
    let mut buf = [0u8; 15];
    let mut n = 0usize;
    for c in s.chars() {
        let c = fold_width(c);
        if !c.is_ascii_digit() {
            return Err(NormError::AdminCodeNonDigit(c));
        }
        if n < 15 {
            buf[n] = c as u8;
        }
        n += 1;
    }
    if matches!(n, 4 | 6 | 9 | 12 | 15) {
        Ok(CodeBuf { buf, len: n })
    } else {
        Err(NormError::AdminCodeLength(n))
    }
}

/// Parses a yes/no value: `是/否`, `有/无`, `Y/N`, `yes/no`, `true/false`, `1/0`
/// (ASCII case-insensitive, surrounding white space ignored).
pub fn boolean(raw: &str) -> Result<bool> {
    let s = trim_core(raw)?;
    const TRUE: [&str; 6] = ["是", "有", "1", "y", "yes", "true"];
    const FALSE: [&str; 6] = ["否", "无", "0", "n", "no", "false"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Ok(true)
    } else if FALSE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Ok(false)
    } else {
        Err(NormError::Unrecognised("not a yes/no value"))
    }
}

/// A normalised phone number in a small stack buffer (at most 13 ASCII bytes).
#[derive(Clone, Copy)]
pub(crate) struct PhoneBuf {
    buf: [u8; 16],
    len: usize,
}

impl PhoneBuf {
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).expect("ASCII")
    }
}

fn mobile(d: &[u8]) -> Result<PhoneBuf> {
    debug_assert_eq!(d.len(), 11);
    if !(b'3'..=b'9').contains(&d[1]) {
        return Err(NormError::Phone("a mobile number starts with 13 to 19"));
    }
    let mut buf = [0u8; 16];
    buf[..11].copy_from_slice(d);
    Ok(PhoneBuf { buf, len: 11 })
}

/// `d` starts with the trunk prefix `0`.
fn landline(d: &[u8]) -> Result<PhoneBuf> {
    if d.len() < 3 {
        return Err(NormError::PhoneLength(d.len()));
    }
    // Area codes: 010 and 020..029 have two digits after the 0, all others three.
    let area = match d[1] {
        b'1' if d[2] == b'0' => 3,
        b'2' => 3,
        b'3'..=b'9' => 4,
        _ => return Err(NormError::Phone("unknown area code")),
    };
    let local = d.get(area..).unwrap_or(&[]);
    if !(7..=8).contains(&local.len()) {
        return Err(NormError::PhoneLength(d.len()));
    }
    if local[0] == b'0' || local[0] == b'1' {
        return Err(NormError::Phone("a local number cannot start with 0 or 1"));
    }
    let mut buf = [0u8; 16];
    buf[..area].copy_from_slice(&d[..area]);
    buf[area] = b'-';
    buf[area + 1..area + 1 + local.len()].copy_from_slice(local);
    Ok(PhoneBuf {
        buf,
        len: area + 1 + local.len(),
    })
}

pub(crate) fn phone_core(raw: &str) -> Result<PhoneBuf> {
    let s = trim_core(raw)?;
    let mut d = [0u8; 20];
    let mut n = 0usize;
    let mut plus = false;
    for c in s.chars() {
        match fold_width(c) {
            c @ '0'..='9' => {
                if n < d.len() {
                    d[n] = c as u8;
                }
                n += 1;
            }
            '+' if n == 0 && !plus => plus = true,
            '-' | '(' | ')' | '\u{2010}'..='\u{2015}' => {}
            c if is_space(c) => {}
            c => return Err(NormError::PhoneChar(c)),
        }
    }
    if n > d.len() {
        return Err(NormError::PhoneLength(n));
    }
    let d = &d[..n];
    if d.is_empty() {
        return Err(NormError::Unrecognised("not a phone number"));
    }
    // International prefix: +86 / 0086 always; bare 86 only before an 11-digit mobile.
    let international = if plus {
        if !d.starts_with(b"86") {
            return Err(NormError::Phone("not a Chinese number"));
        }
        Some(&d[2..])
    } else if d.starts_with(b"0086") {
        Some(&d[4..])
    } else if d.len() == 13 && d.starts_with(b"861") {
        Some(&d[2..])
    } else {
        None
    };
    let d = match international {
        Some(rest) => {
            if rest.first() == Some(&b'1') && rest.len() == 11 {
                return mobile(rest);
            }
            if rest.first().is_some_and(|&b| b != b'0') && rest.len() < 19 {
                // +86 27 8765 4321 → 027-87654321 (the trunk 0 is dropped abroad)
                let mut with0 = [0u8; 20];
                with0[0] = b'0';
                with0[1..=rest.len()].copy_from_slice(rest);
                return landline(&with0[..=rest.len()]);
            }
            rest
        }
        None => d,
    };
    match d.first() {
        Some(b'1') if d.len() == 11 => mobile(d),
        Some(b'0') => landline(d),
        Some(b'2'..=b'9') if (7..=8).contains(&d.len()) => {
            Err(NormError::Phone("landline without area code"))
        }
        _ => Err(NormError::PhoneLength(d.len())),
    }
}

/// Normalises a Chinese phone number.
///
/// Spaces, dashes and parentheses are removed; a leading `+86` / `0086` (or `86` before an
/// 11-digit mobile) is dropped. Mobiles (11 digits, `1[3-9]…`) become `13812345678`;
/// landlines (`0` + 2–3 digit area code + 7–8 digits) become `027-87654321`.
pub fn phone(raw: &str) -> Result<String> {
    phone_core(raw).map(|p| p.as_str().to_owned())
}
