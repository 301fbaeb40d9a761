//! The [`Normalizer`] enum: the names used in mapping configs.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use arrow::datatypes::{DataType, TimeUnit};

use crate::error::NormError;
use crate::{datetime, id, text};

/// One normaliser, as named in `[mappings.columns] … normalize = "…"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Normalizer {
    /// `resident_id`: 18-character resident ID.
    ResidentId,
    /// `person_id`: keyed pseudonym of the resident ID.
    PersonId,
    /// `name`: person name without white space.
    Name,
    /// `phone`: mobile or landline.
    Phone,
    /// `date`: `Date32`.
    Date,
    /// `timestamp`: `Timestamp(µs, "UTC")`.
    Timestamp,
    /// `admin_code`: 4/6/9/12/15-digit admin code.
    AdminCode,
    /// `bool`: yes/no.
    Bool,
    /// `trim`: trimmed text.
    Trim,
}

/// A normaliser name that is not one of [`Normalizer::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownNormalizer(pub String);

impl fmt::Display for UnknownNormalizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown normaliser {:?}; known: ", self.0)?;
        for (i, n) in Normalizer::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(n.name())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownNormalizer {}

impl Normalizer {
    /// All normalisers, in documentation order.
    pub const ALL: [Normalizer; 9] = [
        Normalizer::ResidentId,
        Normalizer::PersonId,
        Normalizer::Name,
        Normalizer::Phone,
        Normalizer::Date,
        Normalizer::Timestamp,
        Normalizer::AdminCode,
        Normalizer::Bool,
        Normalizer::Trim,
    ];

    /// The config name (`resident_id`, …, `bool`, `trim`).
    pub fn name(&self) -> &'static str {
        match self {
            Normalizer::ResidentId => "resident_id",
            Normalizer::PersonId => "person_id",
            Normalizer::Name => "name",
            Normalizer::Phone => "phone",
            Normalizer::Date => "date",
            Normalizer::Timestamp => "timestamp",
            Normalizer::AdminCode => "admin_code",
            Normalizer::Bool => "bool",
            Normalizer::Trim => "trim",
        }
    }

    /// The SQL function name (`gh_resident_id`, …, `gh_bool`, `gh_trim`).
    pub fn udf_name(&self) -> &'static str {
        match self {
            Normalizer::ResidentId => "gh_resident_id",
            Normalizer::PersonId => "gh_person_id",
            Normalizer::Name => "gh_name",
            Normalizer::Phone => "gh_phone",
            Normalizer::Date => "gh_date",
            Normalizer::Timestamp => "gh_timestamp",
            Normalizer::AdminCode => "gh_admin_code",
            Normalizer::Bool => "gh_bool",
            Normalizer::Trim => "gh_trim",
        }
    }

    /// The Arrow type of the normalised value.
    pub fn output_type(&self) -> DataType {
        match self {
            Normalizer::Date => DataType::Date32,
            Normalizer::Timestamp => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
            }
            Normalizer::Bool => DataType::Boolean,
            _ => DataType::Utf8,
        }
    }

    /// Why `raw` cannot be normalised, or `None` when it can — or when it is empty /
    /// white space only, which means "no value" rather than an error. `key` is only used
    /// by [`Normalizer::PersonId`] (and does not change the verdict).
    pub fn check(&self, raw: &str, key: &[u8]) -> Option<String> {
        let _ = key; // the pseudonym key never makes a valid ID invalid
        match self.validate(raw, crate::id::today_beijing()) {
            Ok(()) | Err(NormError::Empty) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// Validates without building the output (shared with `gh_check`).
    pub(crate) fn validate(&self, raw: &str, today: chrono::NaiveDate) -> Result<(), NormError> {
        match self {
            Normalizer::ResidentId | Normalizer::PersonId => {
                id::resident_id_core(raw, today).map(drop)
            }
            Normalizer::Name => text::trim_core(raw).map(drop),
            Normalizer::Phone => text::phone_core(raw).map(drop),
            Normalizer::Date => datetime::date32(raw).map(drop),
            Normalizer::Timestamp => datetime::timestamp(raw).map(drop),
            Normalizer::AdminCode => text::admin_code_core(raw).map(drop),
            Normalizer::Bool => text::boolean(raw).map(drop),
            Normalizer::Trim => text::trim_core(raw).map(drop),
        }
    }
}

impl fmt::Display for Normalizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Normalizer {
    type Err = UnknownNormalizer;

    /// Parses a config name (`resident_id`, `person_id`, `name`, `phone`, `date`,
    /// `timestamp`, `admin_code`, `bool`, `trim`); surrounding white space and ASCII case
    /// are ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Normalizer::ALL
            .into_iter()
            .find(|n| n.name().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownNormalizer(s.to_owned()))
    }
}
