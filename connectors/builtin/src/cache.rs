//! The Parquet cache of materialised sources (GBK/GB18030 CSV, xlsx).
//!
//! Every table is one Parquet file `<cache_dir>/<table>.parquet`, written to a temporary file
//! in the same directory and renamed over the old one, so readers never see a half-written
//! cache. A refresh stages every table of a source this way and renames them only when all of
//! them are complete ([`StagedFile`]); leftovers of an interrupted build are removed by
//! [`remove_leftovers`] when the hub opens. The file's key-value metadata carries a fingerprint of the options it was built
//! with; a cache built with other options (another encoding, header row, …) counts as absent.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use ::parquet::arrow::ArrowWriter;
use ::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use ::parquet::basic::Compression;
use ::parquet::file::metadata::KeyValue;
use ::parquet::file::properties::WriterProperties;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::listing::ListingOptions;

use crate::common::{parquet_format, single_file_listing_table};

/// Key of the fingerprint in the Parquet key-value metadata.
const FINGERPRINT_KEY: &str = "gridhub.cache";

/// Rows per row group: small enough for row-group pruning to matter on lookups.
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The cache file of a table. Characters that are unsafe in file names are escaped as `%XX`,
/// so `居民` stays `居民.parquet` while `a/b` becomes `a%2Fb.parquet`.
pub(crate) fn cache_path(cache_dir: &Path, table: &str) -> PathBuf {
    let mut name = String::with_capacity(table.len() + 8);
    for ch in table.chars() {
        if ch.is_alphanumeric() || ch == '_' || ch == '-' || (ch == '.' && !name.is_empty()) {
            name.push(ch);
        } else {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                name.push_str(&format!("%{b:02X}"));
            }
        }
    }
    name.push_str(".parquet");
    cache_dir.join(name)
}

/// The fingerprint stored in a cache file, if it is a readable Parquet file.
pub(crate) fn stored_fingerprint(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).ok()?;
    meta.metadata()
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == FINGERPRINT_KEY)
        .and_then(|kv| kv.value.clone())
}

/// Whether the cache file exists and was built with `fingerprint`.
pub(crate) fn is_current(path: &Path, fingerprint: &str) -> bool {
    stored_fingerprint(path).as_deref() == Some(fingerprint)
}

/// Modification time of a cache file.
pub(crate) fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

/// The oldest modification time among the cache files that exist.
pub(crate) fn oldest_mtime<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Option<SystemTime> {
    paths.into_iter().filter_map(mtime).min()
}

/// Why building a table's cache failed: reading the source or writing the cache.
#[derive(Debug)]
pub(crate) enum BuildError {
    /// The source cannot be read or parsed (the message says where).
    Source(String),
    /// The cache file cannot be written (the message names it).
    Cache(String),
    /// The table was read but the cache check refused it (the message says why).
    Rejected(String),
}

impl From<String> for BuildError {
    fn from(message: String) -> Self {
        BuildError::Source(message)
    }
}

impl From<&str> for BuildError {
    fn from(message: &str) -> Self {
        BuildError::Source(message.to_string())
    }
}

impl BuildError {
    /// The connector error: `Io` naming the source file, or `Source` naming the cache.
    pub(crate) fn into_connector_error(
        self,
        ctx: &gridhub_connector::ConnectorContext,
        source_file: &Path,
        table: &str,
    ) -> gridhub_connector::ConnectorError {
        match self {
            BuildError::Source(message) => ctx.io_error(source_file, message),
            BuildError::Cache(message) => ctx.error(format!(
                "table '{table}': cannot write the cache: {message}"
            )),
            BuildError::Rejected(message) => ctx.error(format!(
                "table '{table}' ({}) no longer fits: {message}; the previous cache is kept",
                source_file.display()
            )),
        }
    }
}

/// A DataFusion Parquet listing table over a cache file (schema from the file).
pub(crate) fn provider(path: &Path) -> Result<Arc<dyn TableProvider>, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let meta =
        ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(|e| e.to_string())?;
    let schema: SchemaRef = Arc::new(Schema::new(meta.schema().fields().clone()));
    let options = ListingOptions::new(Arc::new(parquet_format()));
    single_file_listing_table(path, options, schema).map_err(|e| e.to_string())
}

/// Writes one table's cache file: Parquet (snappy) into a temporary file next to the final
/// one, renamed into place by [`CacheWriter::finish`]. Dropped unfinished, it removes the
/// temporary file and leaves the previous cache untouched.
pub(crate) struct CacheWriter {
    tmp_path: PathBuf,
    final_path: PathBuf,
    writer: Option<ArrowWriter<BufWriter<File>>>,
    rows: u64,
}

impl CacheWriter {
    pub(crate) fn create(
        final_path: &Path,
        schema: SchemaRef,
        fingerprint: &str,
    ) -> Result<Self, BuildError> {
        let cache_err = BuildError::Cache;
        let dir = final_path.parent().ok_or_else(|| {
            cache_err(format!("no parent directory for {}", final_path.display()))
        })?;
        std::fs::create_dir_all(dir)
            .map_err(|e| cache_err(format!("cannot create directory {}: {e}", dir.display())))?;
        let file_name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let tmp_path = dir.join(format!(".{file_name}.{}.{nanos}.tmp", std::process::id()));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp_path)
            .map_err(|e| cache_err(format!("cannot create {}: {e}", tmp_path.display())))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                FINGERPRINT_KEY.to_string(),
                fingerprint.to_string(),
            )]))
            .build();
        let mut this = Self {
            tmp_path,
            final_path: final_path.to_path_buf(),
            writer: None,
            rows: 0,
        };
        let writer =
            ArrowWriter::try_new(BufWriter::with_capacity(1 << 20, file), schema, Some(props))
                .map_err(|e| cache_err(format!("cannot write {}: {e}", this.tmp_path.display())))?;
        this.writer = Some(writer);
        Ok(this)
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), BuildError> {
        let writer = self.writer.as_mut().expect("writer is open until finish");
        writer.write(batch).map_err(|e| {
            BuildError::Cache(format!("cannot write {}: {e}", self.tmp_path.display()))
        })?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Closes and syncs the temporary file without replacing the cache: the caller commits
    /// it once every table of the source is staged (or drops it, keeping the old cache).
    pub(crate) fn stage(mut self) -> Result<StagedFile, BuildError> {
        let writer = self.writer.take().expect("writer is open until finish");
        let tmp = self.tmp_path.display().to_string();
        let cache_err =
            |e: &dyn std::fmt::Display| BuildError::Cache(format!("cannot write {tmp}: {e}"));
        let buffered = writer.into_inner().map_err(|e| cache_err(&e))?;
        let file = buffered.into_inner().map_err(|e| cache_err(e.error()))?;
        file.sync_all().map_err(|e| cache_err(&e))?;
        drop(file);
        Ok(StagedFile {
            tmp_path: std::mem::take(&mut self.tmp_path),
            final_path: self.final_path.clone(),
            rows: self.rows,
            committed: false,
        })
    }
}

/// A complete, synced cache file under its temporary name. [`StagedFile::commit`] renames it
/// over the cache; dropped uncommitted, it is removed and the previous cache stays.
#[derive(Debug)]
pub(crate) struct StagedFile {
    tmp_path: PathBuf,
    final_path: PathBuf,
    /// Rows written.
    pub(crate) rows: u64,
    committed: bool,
}

impl StagedFile {
    /// Renames the file over the cache file (atomic on one file system). Returns the rows.
    pub(crate) fn commit(mut self) -> Result<u64, BuildError> {
        std::fs::rename(&self.tmp_path, &self.final_path).map_err(|e| {
            BuildError::Cache(format!(
                "cannot rename {} to {}: {e}",
                self.tmp_path.display(),
                self.final_path.display()
            ))
        })?;
        self.committed = true;
        Ok(self.rows)
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// Renames every staged file over its cache file, in order; returns (table, rows).
pub(crate) fn commit_all(staged: Vec<(String, StagedFile)>) -> Result<Vec<(String, u64)>, String> {
    let mut out = Vec::with_capacity(staged.len());
    for (table, file) in staged {
        match file.commit() {
            Ok(rows) => out.push((table, rows)),
            Err(BuildError::Cache(m) | BuildError::Source(m) | BuildError::Rejected(m)) => {
                return Err(format!(
                    "table '{table}': cannot put the rebuilt cache in place: {m}"
                ));
            }
        }
    }
    Ok(out)
}

/// Whether a process with this id runs now (`None` when it cannot be told).
fn process_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(pid != 0 && proc.join(pid.to_string()).exists())
}

/// Removes what interrupted cache builds left in `cache_dir`: temporary files
/// (`.<table>.parquet.<pid>.<nanos>.tmp`) whose writing process no longer runs (where that
/// cannot be told, those older than an hour). Returns the files removed. A missing
/// directory is not an error.
pub(crate) fn remove_leftovers(cache_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(cache_dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with('.') && name.ends_with(".tmp")) {
            continue;
        }
        let parts: Vec<&str> = name.split('.').collect();
        let pid = parts
            .len()
            .checked_sub(3)
            .and_then(|i| parts[i].parse::<u32>().ok());
        let stale = match pid.and_then(process_alive) {
            Some(alive) => !alive,
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age > std::time::Duration::from_secs(3600)),
        };
        if stale && std::fs::remove_file(entry.path()).is_ok() {
            tracing::info!(file = %entry.path().display(), "removed the leftover of an interrupted cache build");
            removed.push(entry.path());
        }
    }
    removed
}

impl Drop for CacheWriter {
    fn drop(&mut self) {
        // After `stage` the temporary file belongs to the StagedFile (the path is emptied).
        if !self.tmp_path.as_os_str().is_empty() {
            self.writer = None;
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_names() {
        let dir = Path::new("/c");
        assert_eq!(cache_path(dir, "居民"), Path::new("/c/居民.parquet"));
        assert_eq!(cache_path(dir, "a/b"), Path::new("/c/a%2Fb.parquet"));
        assert_eq!(cache_path(dir, ".."), Path::new("/c/%2E..parquet"));
        assert_eq!(cache_path(dir, "x y"), Path::new("/c/x%20y.parquet"));
    }
}
