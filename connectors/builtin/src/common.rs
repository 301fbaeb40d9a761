//! Helpers shared by the built-in connectors: option checks, file checks, column naming
//! and DataFusion listing tables over single local files.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use gridhub_connector::{ConnectorContext, ConnectorError, Health, Result};

/// `InvalidOptions` for the source of `ctx`.
pub(crate) fn invalid_options(
    ctx: &ConnectorContext,
    message: impl Into<String>,
) -> ConnectorError {
    ConnectorError::InvalidOptions {
        source_name: ctx.source_name.clone(),
        message: message.into(),
    }
}

/// `UnknownTable` for the source of `ctx`.
pub(crate) fn unknown_table<'a>(
    ctx: &ConnectorContext,
    table: &str,
    known: impl IntoIterator<Item = &'a String>,
) -> ConnectorError {
    let known: Vec<&str> = known.into_iter().map(String::as_str).collect();
    ConnectorError::UnknownTable {
        source_name: ctx.source_name.clone(),
        table: table.to_string(),
        known: known.join(", "),
    }
}

/// Declares `$factory`, the [`ConnectorFactory`](gridhub_connector::ConnectorFactory) that
/// builds `$connector`s (through `$connector::new`) under the module's `KIND`.
macro_rules! connector_factory {
    ($factory:ident, $connector:ident) => {
        #[doc = concat!("Builds [`", stringify!($connector), "`]s.")]
        #[derive(Debug, Default, Clone, Copy)]
        pub struct $factory;

        impl gridhub_connector::ConnectorFactory for $factory {
            fn kind(&self) -> &'static str {
                KIND
            }

            fn build(
                &self,
                ctx: gridhub_connector::ConnectorContext,
            ) -> gridhub_connector::Result<std::sync::Arc<dyn gridhub_connector::Connector>> {
                Ok(std::sync::Arc::new($connector::new(ctx)?))
            }
        }
    };
}
pub(crate) use connector_factory;

/// The tables of a source made of files: (table, file), sorted by table name.
#[derive(Debug)]
pub(crate) struct FileTables(Vec<(String, PathBuf)>);

impl FileTables {
    /// Every (table, file), in table order.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, (String, PathBuf)> {
        self.0.iter()
    }

    /// How many tables there are.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The table names, in order (what `discover` answers).
    pub(crate) fn names(&self) -> Vec<String> {
        self.0.iter().map(|(name, _)| name.clone()).collect()
    }

    /// The file of `table`, or `UnknownTable` naming the known ones.
    pub(crate) fn file_of(&self, ctx: &ConnectorContext, table: &str) -> Result<&Path> {
        self.0
            .iter()
            .find(|(name, _)| name == table)
            .map(|(_, path)| path.as_path())
            .ok_or_else(|| unknown_table(ctx, table, self.0.iter().map(|(n, _)| n)))
    }

    /// Human-readable location: the files, comma-separated.
    pub(crate) fn location(&self) -> String {
        self.0
            .iter()
            .map(|(_, p)| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every file must exist and be readable.
    pub(crate) fn health(&self, ctx: &ConnectorContext) -> Health {
        for (_, path) in &self.0 {
            if let Err(e) = check_readable_file(ctx, path) {
                return Health::Unavailable(e.to_string());
            }
        }
        Health::Ok
    }
}

/// The file tables of a source configured with either `path` (one file, table = file stem)
/// or `tables = { name = "file" }` (paths relative to the config directory).
pub(crate) fn file_tables(
    ctx: &ConnectorContext,
    path: Option<&str>,
    tables: Option<&BTreeMap<String, String>>,
) -> Result<FileTables> {
    match (path, tables) {
        (Some(_), Some(_)) => Err(invalid_options(
            ctx,
            "give either `path` (one file) or `tables`, not both",
        )),
        (None, None) => Err(invalid_options(
            ctx,
            "missing option `path` (one file) or `tables = { name = \"file\" }`",
        )),
        (Some(path), None) => {
            if path.trim().is_empty() {
                return Err(invalid_options(ctx, "option `path` is empty"));
            }
            let resolved = ctx.resolve(path);
            let stem = resolved
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| {
                    invalid_options(ctx, format!("option `path` = {path:?} has no file name"))
                })?;
            Ok(FileTables(vec![(stem, resolved)]))
        }
        (None, Some(tables)) => {
            if tables.is_empty() {
                return Err(invalid_options(ctx, "option `tables` is empty"));
            }
            tables
                .iter()
                .map(|(name, file)| {
                    if name.trim().is_empty() {
                        return Err(invalid_options(
                            ctx,
                            "option `tables` has an empty table name",
                        ));
                    }
                    if file.trim().is_empty() {
                        return Err(invalid_options(
                            ctx,
                            format!("option `tables.{name}` is an empty path"),
                        ));
                    }
                    Ok((name.clone(), ctx.resolve(file)))
                })
                .collect::<Result<_>>()
                .map(FileTables)
        }
    }
}

/// Checks that `path` is an existing, readable regular file.
pub(crate) fn check_readable_file(ctx: &ConnectorContext, path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| ctx.io_error(path, e))?;
    if !meta.is_file() {
        return Err(ctx.io_error(path, "not a regular file"));
    }
    std::fs::File::open(path).map_err(|e| ctx.io_error(path, e))?;
    Ok(())
}

/// Column names from header cells: cells are trimmed, blank cells become `column_N`
/// (N = 1-based position), and repeated names get `_2`, `_3`, … suffixes. Names in
/// `reserved` (e.g. `_row`) count as already taken.
pub(crate) fn column_names<I, S>(headers: I, reserved: &[&str]) -> Vec<String>
where
    I: IntoIterator<Item = Option<S>>,
    S: AsRef<str>,
{
    let raw: Vec<String> = headers
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let trimmed = h.as_ref().map(|s| s.as_ref().trim()).unwrap_or_default();
            if trimmed.is_empty() {
                format!("column_{}", i + 1)
            } else {
                trimmed.to_string()
            }
        })
        .collect();
    // Names as given are claimed first, so a later generated suffix never steals a name
    // that a header spells out explicitly.
    let mut taken: HashSet<String> = reserved.iter().map(|s| s.to_string()).collect();
    let explicit: HashSet<&str> = raw.iter().map(String::as_str).collect();
    let mut out = Vec::with_capacity(raw.len());
    for name in &raw {
        if taken.insert(name.clone()) {
            out.push(name.clone());
            continue;
        }
        let mut n = 2;
        loop {
            let candidate = format!("{name}_{n}");
            if !explicit.contains(candidate.as_str()) && taken.insert(candidate.clone()) {
                out.push(candidate);
                break;
            }
            n += 1;
        }
    }
    out
}

/// Absolute, normalised form of a local path (symlinks resolved when the file exists).
pub(crate) fn absolute_path(path: &Path) -> std::io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(p) => Ok(p),
        Err(_) => std::path::absolute(path),
    }
}

/// Percent-encodes every byte of `s` except unreserved URL characters and `/`.
pub(crate) fn percent_encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A `file://` listing URL for exactly one local file. Built from an encoded URL rather than
/// a plain path so that characters like `[`, `*` or `?` in file names are never taken for a
/// glob.
pub(crate) fn file_listing_url(path: &Path) -> datafusion::error::Result<ListingTableUrl> {
    let abs = absolute_path(path)?;
    let s = abs.to_str().ok_or_else(|| {
        datafusion::error::DataFusionError::Plan(format!(
            "path is not valid UTF-8: {}",
            abs.display()
        ))
    })?;
    ListingTableUrl::parse(format!("file://{}", percent_encode_path(s)))
}

/// A DataFusion listing table over one local file with an explicit schema.
pub(crate) fn single_file_listing_table(
    path: &Path,
    options: ListingOptions,
    schema: SchemaRef,
) -> datafusion::error::Result<Arc<dyn TableProvider>> {
    let url = file_listing_url(path)?;
    // The URL names exactly one file, so no extension filter is needed (and `.txt` or
    // extension-less files still work).
    let options = options.with_file_extension("");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

#[cfg(any(feature = "parquet", feature = "csv", feature = "xlsx"))]
/// Parquet read options for in-place and cached Parquet files: filters are evaluated while
/// decoding (row-level pushdown) on top of row-group and page pruning.
pub(crate) fn parquet_format() -> datafusion::datasource::file_format::parquet::ParquetFormat {
    let mut options = datafusion::config::TableParquetOptions::default();
    options.global.pushdown_filters = true;
    options.global.reorder_filters = true;
    datafusion::datasource::file_format::parquet::ParquetFormat::default().with_options(options)
}

/// Runs blocking work off the async runtime.
pub(crate) async fn blocking<T, F>(ctx: &ConnectorContext, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ctx.error(format!("background task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_blank_and_duplicates() {
        let names = column_names(
            [
                Some("姓名"),
                None,
                Some(" 姓名 "),
                Some(""),
                Some("姓名"),
                Some("_row"),
            ],
            &["_row"],
        );
        assert_eq!(
            names,
            ["姓名", "column_2", "姓名_2", "column_4", "姓名_3", "_row_2"]
        );
    }

    #[test]
    fn generated_suffix_skips_explicit_names() {
        let names = column_names([Some("a"), Some("a"), Some("a_2")], &[]);
        assert_eq!(names, ["a", "a_3", "a_2"]);
    }

    #[test]
    fn url_encoding_keeps_glob_chars_literal() {
        let url = file_listing_url(Path::new("/tmp/数据[1] #?%.csv")).unwrap();
        assert_eq!(
            url.prefix().as_ref(),
            "tmp/数据[1] #?%.csv",
            "the object-store path must be the file itself"
        );
    }
}
