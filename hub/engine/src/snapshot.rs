//! Materialised snapshots of the shared tables and `_rejects`.
//!
//! Answering every query through the live views re-reads every source, re-applies every
//! mapping (keyed hashes, normalisers) and re-merges tables fed by several sources. A load
//! therefore writes each merged table once to Parquet under `state_dir/snapshots/<id>/`, and
//! the hub serves `public.<table>` from there; the live views stay queryable as
//! `live.<table>` (and are what a table is served from while it has no valid snapshot).
//!
//! A snapshot set is valid only for the config it was built from: its manifest records a
//! fingerprint of the sources, mappings, precedence and pseudonym key, and a hub whose config
//! differs ignores it. Sets are switched atomically: the new set is written to its own
//! directory, then the `CURRENT` file is replaced (write + rename) to name it. The previous
//! set is kept so a query still reading it is not cut off; older ones are removed.
//! Leftovers of a load that was interrupted (a set without manifest, a temporary `CURRENT`)
//! are removed by [`remove_leftovers`] when the hub opens. A table fed by a broken source
//! that is left out of the live view is carried over from the previous set
//! ([`SnapshotWriter::keep`]) instead of being rewritten without that source's rows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::HubConfig;
use crate::error::{EngineError, Result};

const CURRENT_FILE: &str = "CURRENT";
const MANIFEST_FILE: &str = "manifest.json";
/// Marks a set directory being written, by the writing process: `.writing.<pid>`.
const WRITING_PREFIX: &str = ".writing.";

/// What a snapshot set holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Fingerprint of the config the set was built from.
    pub fingerprint: String,
    /// When the set was built, µs since the epoch (UTC).
    pub built_at: i64,
    /// Rows per table.
    pub tables: BTreeMap<String, u64>,
}

/// A snapshot set on disk.
#[derive(Debug, Clone)]
pub struct SnapshotSet {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl SnapshotSet {
    /// The Parquet file of a table, when the set has it.
    pub fn file(&self, table: &str) -> Option<PathBuf> {
        self.manifest
            .tables
            .contains_key(table)
            .then(|| self.dir.join(format!("{table}.parquet")))
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Query {
        message: format!("snapshot {}: {e}", path.display()),
    }
}

/// The directory all snapshot sets live in.
pub fn root(config: &HubConfig) -> PathBuf {
    config.state_dir.join("snapshots")
}

/// Fingerprint of everything that decides a shared table's content other than the source
/// data itself: sources, mappings, precedence and the pseudonym key.
pub fn fingerprint(config: &HubConfig) -> String {
    let mut h = Sha256::new();
    h.update(format!("{:?}", config.sources));
    h.update(format!("{:?}", config.mappings));
    h.update(format!("{:?}", config.tables));
    h.update(config.pseudonym_key.as_bytes());
    hex::encode(h.finalize())
}

/// The current snapshot set, if there is one built from this config.
pub fn current(config: &HubConfig) -> Option<SnapshotSet> {
    let root = root(config);
    let name = std::fs::read_to_string(root.join(CURRENT_FILE)).ok()?;
    let dir = root.join(name.trim());
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join(MANIFEST_FILE)).ok()?).ok()?;
    if manifest.fingerprint != fingerprint(config) {
        tracing::info!(
            "snapshot in {} was built from another config; serving live views",
            dir.display()
        );
        return None;
    }
    let set = SnapshotSet { dir, manifest };
    let complete = set
        .manifest
        .tables
        .keys()
        .all(|t| set.file(t).is_some_and(|f| f.is_file()));
    complete.then_some(set)
}

/// Builds a new snapshot set; [`SnapshotWriter::commit`] makes it current.
pub struct SnapshotWriter {
    root: PathBuf,
    name: String,
    manifest: Manifest,
}

impl SnapshotWriter {
    pub fn new(config: &HubConfig, built_at: i64) -> Result<Self> {
        let root = root(config);
        let name = format!("{built_at}");
        let dir = root.join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        // Until the manifest is written, this names the process writing the set, so that
        // another process opening the hub does not take it for an interrupted load.
        let marker = dir.join(format!("{WRITING_PREFIX}{}", std::process::id()));
        std::fs::write(&marker, b"").map_err(|e| io(&marker, e))?;
        Ok(Self {
            root,
            name,
            manifest: Manifest {
                fingerprint: fingerprint(config),
                built_at,
                tables: BTreeMap::new(),
            },
        })
    }

    /// Stream `df` into the table's Parquet file; returns the rows written.
    pub async fn write(&mut self, table: &str, df: DataFrame) -> Result<u64> {
        let path = self.root.join(&self.name).join(format!("{table}.parquet"));
        let batches = df
            .write_parquet(
                &path.to_string_lossy(),
                DataFrameWriteOptions::new().with_single_file_output(true),
                None,
            )
            .await
            .map_err(|e| io(&path, e))?;
        let rows = batches
            .iter()
            .filter_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<UInt64Array>()
                    .map(|a| a.iter().flatten().sum::<u64>())
            })
            .sum();
        self.manifest.tables.insert(table.to_string(), rows);
        Ok(rows)
    }

    /// Carry a table over from `previous` (hard-linked, copied where links are not
    /// possible) instead of writing it anew; returns its rows, or `None` when `previous`
    /// does not hold it.
    pub fn keep(&mut self, table: &str, previous: &SnapshotSet) -> Result<Option<u64>> {
        let (Some(from), Some(rows)) = (previous.file(table), previous.manifest.tables.get(table))
        else {
            return Ok(None);
        };
        let to = self.root.join(&self.name).join(format!("{table}.parquet"));
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).map_err(|e| io(&to, e))?;
        }
        self.manifest.tables.insert(table.to_string(), *rows);
        Ok(Some(*rows))
    }

    /// Write the manifest, point `CURRENT` at this set, and remove sets older than the
    /// previous one.
    pub fn commit(self) -> Result<SnapshotSet> {
        let dir = self.root.join(&self.name);
        let manifest_path = dir.join(MANIFEST_FILE);
        let json = serde_json::to_vec_pretty(&self.manifest).map_err(|e| io(&manifest_path, e))?;
        std::fs::write(&manifest_path, json).map_err(|e| io(&manifest_path, e))?;
        let previous = std::fs::read_to_string(self.root.join(CURRENT_FILE))
            .ok()
            .map(|s| s.trim().to_string());
        let _ = std::fs::remove_file(dir.join(format!("{WRITING_PREFIX}{}", std::process::id())));
        let tmp = self
            .root
            .join(format!("{CURRENT_FILE}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &self.name).map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, self.root.join(CURRENT_FILE)).map_err(|e| io(&tmp, e))?;
        if let Ok(entries) = std::fs::read_dir(&self.root) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let keep =
                    name == self.name || Some(&name) == previous.as_ref() || !entry.path().is_dir();
                if !keep {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(SnapshotSet {
            dir,
            manifest: self.manifest,
        })
    }
}

/// Whether a process with this id runs now (`None` when it cannot be told).
fn process_alive(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(pid != 0 && proc.join(pid.to_string()).exists())
}

/// Whether a leftover written by process `pid` may be removed: its writer no longer runs
/// (where that cannot be told: it is older than an hour).
fn abandoned(pid: Option<u32>, path: &Path) -> bool {
    match pid.and_then(process_alive) {
        Some(alive) => !alive,
        None => std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age > std::time::Duration::from_secs(3600)),
    }
}

/// Remove what interrupted loads left under the snapshot directory: temporary `CURRENT`
/// files, set directories without a manifest whose writer no longer runs, and complete sets
/// newer than the current one (a load killed between its manifest and `CURRENT`). The
/// current set and the newest older one (kept for queries still reading it) stay. Returns
/// the paths removed.
pub fn remove_leftovers(config: &HubConfig) -> Vec<PathBuf> {
    let root = root(config);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return Vec::new();
    };
    let current = std::fs::read_to_string(root.join(CURRENT_FILE))
        .ok()
        .map(|s| s.trim().to_string());
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_file() {
            if let Some(rest) = name.strip_prefix(&format!("{CURRENT_FILE}.")) {
                let pid = rest
                    .strip_suffix(".tmp")
                    .and_then(|p| p.parse::<u32>().ok());
                if name.ends_with(".tmp")
                    && abandoned(pid.or(Some(0)), &path)
                    && std::fs::remove_file(&path).is_ok()
                {
                    removed.push(path);
                }
            }
            continue;
        }
        if Some(&name) == current.as_ref() {
            continue;
        }
        let complete = path.join(MANIFEST_FILE).is_file();
        let remove = if complete {
            // Sets are named by build time: newer than CURRENT means never made current.
            match (
                current.as_deref().and_then(|c| c.parse::<i64>().ok()),
                name.parse::<i64>(),
            ) {
                (Some(c), Ok(n)) => n > c,
                _ => false,
            }
        } else {
            let writer = std::fs::read_dir(&path).ok().and_then(|it| {
                it.flatten().find_map(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .strip_prefix(WRITING_PREFIX)
                        .and_then(|p| p.parse::<u32>().ok())
                })
            });
            abandoned(writer.or(Some(0)), &path)
        };
        if remove && std::fs::remove_dir_all(&path).is_ok() {
            tracing::info!(dir = %path.display(), "removed the leftover of an interrupted load");
            removed.push(path);
        }
    }
    removed
}

/// A table provider over one snapshot file, with the schema of the table it stands for
/// (Parquet does not keep every detail of it, e.g. non-null keys), and the range of its area
/// codes read from the file's own statistics.
pub fn provider(file: &Path, schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    let area = area_range(file);
    Ok(Arc::new(SnapshotTable {
        inner: listing(file, schema)?,
        area,
    }))
}

/// The range of a snapshot file's `area_code`: every row's value lies within it and none is
/// null, by the exact statistics of every row group.
#[derive(Debug, Clone, PartialEq)]
struct AreaRange {
    min: String,
    max: String,
}

/// `None` unless every row group has exact, non-null statistics for `area_code`.
fn area_range(file: &Path) -> Option<AreaRange> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    use datafusion::parquet::file::statistics::Statistics;
    let reader = SerializedFileReader::new(std::fs::File::open(file).ok()?).ok()?;
    let meta = reader.metadata();
    let index = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == "area_code")?;
    let mut range: Option<AreaRange> = None;
    for group in meta.row_groups() {
        let stats = group.column(index).statistics()?;
        if stats.null_count_opt()? != 0 || !stats.min_is_exact() || !stats.max_is_exact() {
            return None;
        }
        let Statistics::ByteArray(values) = stats else {
            return None;
        };
        let min = values.min_opt()?.as_utf8().ok()?.to_string();
        let max = values.max_opt()?.as_utf8().ok()?.to_string();
        range = Some(match range {
            None => AreaRange { min, max },
            Some(r) => AreaRange {
                min: r.min.min(min),
                max: r.max.max(max),
            },
        });
    }
    range
}

/// A snapshot table: the Parquet file's listing table, and what its statistics prove about
/// its rows' jurisdictions (kept with the provider, so the proof is about the file scanned).
#[derive(Debug)]
pub struct SnapshotTable {
    inner: Arc<dyn TableProvider>,
    area: Option<AreaRange>,
}

impl SnapshotTable {
    /// Whether every row's `area_code` starts with `prefix`: the strings that start with a
    /// prefix form one interval in byte order, so it is enough that the least and the
    /// greatest value do, and that there is no null.
    pub fn all_rows_in(&self, prefix: &str) -> bool {
        self.area
            .as_ref()
            .is_some_and(|r| r.min.starts_with(prefix) && r.max.starts_with(prefix))
    }
}

#[async_trait::async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
    fn table_type(&self) -> datafusion::logical_expr::TableType {
        self.inner.table_type()
    }
    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::logical_expr::Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }
    fn statistics(&self) -> Option<datafusion::common::Statistics> {
        self.inner.statistics()
    }
    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        self.inner.scan(state, projection, filters, limit).await
    }
    async fn scan_with_args<'a>(
        &self,
        state: &dyn datafusion::catalog::Session,
        args: datafusion::catalog::ScanArgs<'a>,
    ) -> datafusion::error::Result<datafusion::catalog::ScanResult> {
        self.inner.scan_with_args(state, args).await
    }
}

fn listing(file: &Path, schema: SchemaRef) -> Result<Arc<dyn TableProvider>> {
    let url = ListingTableUrl::parse(file.to_string_lossy()).map_err(|e| io(file, e))?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(
        ListingTable::try_new(config).map_err(|e| io(file, e))?,
    ))
}
