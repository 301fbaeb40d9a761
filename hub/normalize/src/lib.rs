//! # gridhub-normalize
//!
//! Value normalisers for gridhub: they turn the messy values that community, street and
//! property-company sources hold (resident IDs with a lowercase `x`, phones written
//! `+86 138 1234 5678`, dates written `2020年3月1日` or as Excel serials, …) into the one
//! form the shared tables use, and explain in plain English why a value is rejected.
//! See `docs/config.md`, section "Normalisers", for how mappings use them.
//!
//! The crate has two layers.
//!
//! ## 1. Pure functions
//!
//! No DataFusion involved; each returns `Result<T, `[`NormError`]`>`, and the error's
//! `Display` is a short reason for the field worker ("bad check digit: expected 7,
//! found 4", "impossible date 2021-02-30", "not an admin code: 11 digits").
//!
//! | function | accepts | yields |
//! |---|---|---|
//! | [`resident_id`] | 18-char ID (check digit, birth date) or 15-digit legacy ID | 18-char ID |
//! | [`pseudonym`] / [`person_id`] | a normalised ID (a raw one) and a key | 32 hex chars |
//! | [`name`] | text; inner white space removed | text |
//! | [`phone`] | mobile / landline, `+86`, `0086`, spaces, dashes | `13812345678`, `027-87654321` |
//! | [`date()`] | `2020-03-01`, `2020/3/1`, `2020.3.1`, `2020年3月1日`, `20200301`, Excel serial | [`chrono::NaiveDate`] |
//! | [`timestamp`] | a date plus `HH:MM[:SS]`, ISO 8601 with offset, Excel serial with fraction | µs since epoch, UTC |
//! | [`admin_code`] | 4/6/9/12/15 digits | text |
//! | [`boolean`] | `是/否`, `有/无`, `Y/N`, `yes/no`, `true/false`, `1/0` | `bool` |
//! | [`trim`] | any text | trimmed text |
//!
//! Empty or white-space-only input is "no value": the functions return
//! [`NormError::Empty`], the UDFs return NULL and [`Normalizer::check`] returns `None`.
//!
//! The date rules (Excel serial 60, bare years, dates with times, Beijing time) are
//! described in [`mod@datetime`].
//!
//! ## 2. DataFusion UDFs
//!
//! [`register_all`] registers, for each [`Normalizer`], `gh_<name>(x)` (one argument of any
//! type, cast to text; returns the normalised value or NULL), plus
//! `gh_check('normaliser', x)` (the reason or NULL) and
//! `gh_json_object('name1', v1, …)` (raw values of a rejected row as a JSON object),
//! and the masks of [`mod@mask`] (`gh_mask_id_number`, `gh_mask_name`, `gh_mask_phone`,
//! `gh_mask_birth_date`).
//! [`normalizer_udf`], [`check_udf`] and [`json_object_udf`] build single UDFs for
//! callers that construct `Expr`s directly.
//!
//! ```
//! # async fn demo() -> datafusion::error::Result<()> {
//! let ctx = datafusion::prelude::SessionContext::new();
//! gridhub_normalize::register_all(&ctx, b"secret pseudonym key");
//! let df = ctx.sql("SELECT gh_date('2020年3月1日'), gh_check('phone', '12345')").await?;
//! # let _ = df; Ok(()) }
//! ```
//!
//! The UDF kernels walk each string array once, write into builders sized up front and
//! do not allocate per row (IDs, phones and codes are built in stack buffers; the HMAC key
//! schedule is computed once per batch).

pub mod datetime;
mod error;
mod id;
pub mod mask;
mod normalizer;
mod text;
mod udf;

pub use datetime::{date, timestamp};
pub use error::{NormError, Result};
pub use id::{person_id, pseudonym, resident_id};
pub use mask::{mask_id_number, mask_name, mask_phone, mask_place, mask_udfs, place_mask_udf};
pub use normalizer::{Normalizer, UnknownNormalizer};
pub use text::{admin_code, boolean, name, phone, trim};
pub use udf::{check_udf, json_object_udf, normalizer_udf, principal_use, register_all, udfs};

#[cfg(test)]
mod tests;
