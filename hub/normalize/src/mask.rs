//! Masks (docs/domain.md, "Masks"): what a principal who may read a column only masked sees.
//! Each mask keeps the column's type, so a masked column can stand where the clear one was.
//!
//! | column | clear | masked | function |
//! |---|---|---|---|
//! | id_number | `420106198001011234` | `420106********1234` | [`mask_id_number`], `gh_mask_id_number` |
//! | name | `欧阳明` | `欧阳*` | [`mask_name`], `gh_mask_name` |
//! | phone | `13812345678` | `138****5678` | [`mask_phone`], `gh_mask_phone` |
//! | birth_date | `1980-05-17` | `1980-01-01` (the year only) | `gh_mask_birth_date` |
//!
//! Other masked columns (health, location, special) read as NULL of their type; the engine
//! writes those as typed NULL literals. The UDFs are opaque to DataFusion's optimizer, so a
//! predicate on a masked column is evaluated on the masked value wherever it is pushed.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Array, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Date32Type};
use chrono::{Datelike, NaiveDate};
use datafusion::common::{Result as DfResult, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Two-character surnames kept whole by [`mask_name`].
const COMPOUND_SURNAMES: &[&str] = &[
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒",
    "夏侯", "轩辕", "令狐", "钟离", "澹台", "公冶", "太史", "端木", "申屠", "南宫", "西门", "独孤",
    "百里", "呼延", "万俟", "闻人", "赫连", "第五",
];

/// `420106198001011234` → `420106********1234`. Shorter or odd values keep at most their
/// first and last quarter.
pub fn mask_id_number(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let (head, tail) = if chars.len() >= 15 {
        (6, 4)
    } else {
        (chars.len() / 4, chars.len() / 4)
    };
    keep_ends(&chars, head, tail)
}

/// `13812345678` → `138****5678`; other numbers keep their first 3 and last 4 digits when
/// long enough, else a quarter at each end.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() >= 11 {
        keep_ends(&chars, 3, 4)
    } else {
        keep_ends(&chars, chars.len() / 4, chars.len() / 4)
    }
}

/// `欧阳明` → `欧阳*`, `张三丰` → `张**`: the surname is kept, every other character starred.
pub fn mask_name(name: &str) -> String {
    let surname_len = if COMPOUND_SURNAMES.iter().any(|s| name.starts_with(s)) {
        2
    } else {
        1
    };
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= 1 {
        return "*".repeat(chars.len());
    }
    let kept = surname_len.min(chars.len() - 1);
    chars[..kept]
        .iter()
        .copied()
        .chain(std::iter::repeat_n('*', chars.len() - kept))
        .collect()
}

fn keep_ends(chars: &[char], head: usize, tail: usize) -> String {
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < head || i + tail >= chars.len() {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// The first of January of the date's year.
pub fn mask_birth_date(date: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date)
}

/// The mask UDFs: `gh_mask_id_number`, `gh_mask_name`, `gh_mask_phone` (text → text) and
/// `gh_mask_birth_date` (date → date).
pub fn mask_udfs() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(TextMask::new(TextMaskKind::IdNumber)),
        ScalarUDF::new_from_impl(TextMask::new(TextMaskKind::Name)),
        ScalarUDF::new_from_impl(TextMask::new(TextMaskKind::Phone)),
        ScalarUDF::new_from_impl(BirthDateMask {
            signature: Signature::exact(vec![DataType::Date32], Volatility::Immutable),
        }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TextMaskKind {
    IdNumber,
    Name,
    Phone,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TextMask {
    kind: TextMaskKind,
    signature: Signature,
}

impl TextMask {
    fn new(kind: TextMaskKind) -> Self {
        Self {
            kind,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TextMask {
    fn name(&self) -> &str {
        match self.kind {
            TextMaskKind::IdNumber => "gh_mask_id_number",
            TextMaskKind::Name => "gh_mask_name",
            TextMaskKind::Phone => "gh_mask_phone",
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let array = only_argument(&args, self.name())?;
        let input = array.as_string::<i32>();
        let mask = match self.kind {
            TextMaskKind::IdNumber => mask_id_number,
            TextMaskKind::Name => mask_name,
            TextMaskKind::Phone => mask_phone,
        };
        Ok(map_text(input, input.value_data().len(), |v| Some(mask(v))))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct BirthDateMask {
    signature: Signature,
}

impl ScalarUDFImpl for BirthDateMask {
    fn name(&self) -> &str {
        "gh_mask_birth_date"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Date32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let array = only_argument(&args, self.name())?;
        let input = array.as_primitive::<Date32Type>();
        let out: Date32Array = input.unary_opt(|days| {
            let date = Date32Type::to_naive_date_opt(days)?;
            Some(Date32Type::from_naive_date(mask_birth_date(date)))
        });
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// The masked form of a location's place (docs/domain.md, "Masks": a place reads as its community's name): the
/// name of the community (12-digit admin code) the row's area code lies in, or null when it
/// lies in none of `communities` (code → name).
pub fn mask_place<'a>(
    area_code: &str,
    communities: &'a BTreeMap<String, String>,
) -> Option<&'a str> {
    area_code
        .get(..12)
        .and_then(|community| communities.get(community))
        .map(String::as_str)
}

/// `gh_mask_place(area_code)`: [`mask_place`] over a column of area codes, with the
/// communities known when the function was made (the hub makes one per load).
pub fn place_mask_udf(communities: BTreeMap<String, String>) -> ScalarUDF {
    ScalarUDF::new_from_impl(PlaceMask {
        communities,
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq)]
struct PlaceMask {
    /// Sorted, so that the function can be compared and hashed as DataFusion requires.
    communities: BTreeMap<String, String>,
    signature: Signature,
}

impl std::hash::Hash for PlaceMask {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.communities.len().hash(state);
    }
}

impl ScalarUDFImpl for PlaceMask {
    fn name(&self) -> &str {
        "gh_mask_place"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let array = only_argument(&args, self.name())?;
        let input = array.as_string::<i32>();
        Ok(map_text(input, input.len() * 12, |code| {
            mask_place(code, &self.communities)
        }))
    }
}

/// The one argument of a single-argument mask function `name`, as an array.
fn only_argument(args: &ScalarFunctionArgs, name: &str) -> DfResult<ArrayRef> {
    let [arg] = args.args.as_slice() else {
        return exec_err!("{name} takes one argument");
    };
    arg.to_array(args.number_rows)
}

/// `mask` over a text column: null where the value is null or `mask` answers `None`;
/// `data_capacity` is the bytes reserved for the masked text.
fn map_text<S: AsRef<str>>(
    input: &StringArray,
    data_capacity: usize,
    mask: impl Fn(&str) -> Option<S>,
) -> ColumnarValue {
    let mut out = StringBuilder::with_capacity(input.len(), data_capacity);
    for v in input.iter() {
        match v.and_then(&mask) {
            Some(masked) => out.append_value(masked),
            None => out.append_null(),
        }
    }
    ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_follow_the_domain_examples() {
        assert_eq!(mask_id_number("420106198001011234"), "420106********1234");
        assert_eq!(mask_name("欧阳明"), "欧阳*");
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(mask_name("李雷"), "李*");
        assert_eq!(mask_name("王"), "*");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("027-87654321"), "027*****4321");
        let d = NaiveDate::from_ymd_opt(1980, 5, 17).unwrap();
        assert_eq!(
            mask_birth_date(d),
            NaiveDate::from_ymd_opt(1980, 1, 1).unwrap()
        );
    }

    #[test]
    fn place_becomes_the_community_name() {
        let communities: BTreeMap<String, String> =
            [("420106009001".to_owned(), "积玉桥社区".to_owned())].into();
        assert_eq!(
            mask_place("420106009001002", &communities),
            Some("积玉桥社区")
        );
        assert_eq!(mask_place("420106009001", &communities), Some("积玉桥社区"));
        assert_eq!(mask_place("420106009002001", &communities), None);
        assert_eq!(mask_place("420106", &communities), None);
    }

    #[test]
    fn no_mask_reveals_the_middle() {
        let id = "42010619800101123X";
        let masked = mask_id_number(id);
        assert_eq!(masked.chars().count(), 18);
        assert!(!masked.contains("19800101"));
    }
}
