//! The built-in connectors of gridhub, one cargo feature and one module each:
//!
//! | kind | feature | module | queried |
//! |---|---|---|---|
//! | `csv` | `csv` | [`csv`] | UTF-8 in place; GBK/GB18030 materialised |
//! | `xlsx` | `xlsx` | [`xlsx`] | materialised |
//! | `parquet` | `parquet` | [`parquet`] | in place |
//! | `sqlite` | `sqlite` | [`sqlite`] | in place, filters pushed into SQLite |
//!
//! All features are on by default. [`builtin_registry`] registers the enabled kinds; the hub
//! builds sources from it by the `type` of each `[[sources]]` entry (see `docs/config.md`).
//!
//! Every connector parses its own options from [`ConnectorContext::parse_options`]: unknown
//! keys are an error naming the key, except the common `name`, `type` and `label`, which are
//! accepted and ignored. Relative paths are resolved against the config file's directory.
//! Missing or unreadable files surface as [`ConnectorError::Io`] naming the source and the
//! path (from `table`, `refresh` and `discover`); `health` reports them as
//! [`Health::Unavailable`](gridhub_connector::Health::Unavailable).
//!
//! CSV and xlsx columns are always text (`Utf8`), so identifiers keep their leading zeros;
//! the mapping casts them.
//!
//! # Materialised sources
//!
//! GBK/GB18030 CSV files and workbooks cannot be read in place. Each of their tables is
//! written once to `<cache_dir>/<table>.parquet` (snappy; written to a temporary file and
//! renamed into place) and served from there by DataFusion's Parquet listing table, so
//! filters and projections reach the scan. These tables get the extra column
//! [`ROW_NUMBER_COLUMN`](gridhub_connector::ROW_NUMBER_COLUMN) (`_row`, `Int64`): the line
//! (CSV) or row (xlsx) in the original file, the header being 1.
//!
//! * `table()` builds a table's cache when it is absent (or was built with other options)
//!   and otherwise serves it as it is, even when the source file has changed since;
//! * `refresh()` rebuilds every table's cache from the source into temporary files, checks
//!   each (read to the end, accepted by the context's `cache_check`) and only then renames
//!   them all into place: a failed refresh leaves every previous cache file as it was;
//! * `last_refresh()` is the modification time of the oldest cache file.
//!
//! A provider obtained before a refresh keeps reading the (replaced) cache file, but with
//! the schema it had; call `table()` again after a refresh when columns may have changed.
//!
//! [`ConnectorContext::parse_options`]: gridhub_connector::ConnectorContext::parse_options
//! [`ConnectorError::Io`]: gridhub_connector::ConnectorError::Io

use gridhub_connector::ConnectorRegistry;

#[cfg(any(feature = "csv", feature = "xlsx"))]
mod cache;
// Helpers are shared unevenly between connectors; with some features off a few go unused.
#[cfg_attr(
    not(all(
        feature = "csv",
        feature = "xlsx",
        feature = "parquet",
        feature = "sqlite"
    )),
    allow(dead_code)
)]
mod common;

#[cfg(feature = "csv")]
pub mod csv;
#[cfg(feature = "parquet")]
pub mod parquet;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "xlsx")]
pub mod xlsx;

/// Removes the leftovers of interrupted cache builds (temporary files whose writer no longer
/// runs) from a source's cache directory; returns the files removed.
pub fn remove_cache_leftovers(cache_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    #[cfg(any(feature = "csv", feature = "xlsx"))]
    {
        cache::remove_leftovers(cache_dir)
    }
    #[cfg(not(any(feature = "csv", feature = "xlsx")))]
    {
        let _ = cache_dir;
        Vec::new()
    }
}

/// A registry with every connector kind enabled by cargo features, by kind name.
pub fn builtin_registry() -> ConnectorRegistry {
    #[allow(unused_mut)]
    let mut registry = ConnectorRegistry::new();
    #[cfg(feature = "csv")]
    registry.register(std::sync::Arc::new(csv::CsvFactory));
    #[cfg(feature = "xlsx")]
    registry.register(std::sync::Arc::new(xlsx::XlsxFactory));
    #[cfg(feature = "parquet")]
    registry.register(std::sync::Arc::new(parquet::ParquetFactory));
    #[cfg(feature = "sqlite")]
    registry.register(std::sync::Arc::new(sqlite::SqliteFactory));
    registry
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_has_enabled_kinds() {
        let kinds = super::builtin_registry().kinds();
        #[cfg(feature = "csv")]
        assert!(kinds.contains(&"csv"));
        #[cfg(feature = "xlsx")]
        assert!(kinds.contains(&"xlsx"));
        #[cfg(feature = "parquet")]
        assert!(kinds.contains(&"parquet"));
        #[cfg(feature = "sqlite")]
        assert!(kinds.contains(&"sqlite"));
        let _ = kinds;
    }
}
