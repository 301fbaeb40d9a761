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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::UInt64Array;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::format_as_file_type;
use datafusion::datasource::file_format::parquet::{ParquetFormat, ParquetFormatFactory};
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, UnboundedMemoryPool,
};
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::physical_plan::ExecutionPlan;
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
    EngineError::Snapshot {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writing a snapshot's plan failed: memory exhaustion keeps its kind.
fn write_error(path: &Path, e: datafusion::error::DataFusionError) -> EngineError {
    match e.find_root() {
        datafusion::error::DataFusionError::ResourcesExhausted(_) => EngineError::execution(e),
        _ => io(path, e),
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

    /// Stream `df` into the table's Parquet file; returns the rows written and what the
    /// plan spilled on the way.
    pub async fn write(&mut self, table: &str, df: DataFrame) -> Result<Written> {
        let path = self.root.join(&self.name).join(format!("{table}.parquet"));
        // What `DataFrame::write_parquet` plans, run here so that the executed plan's
        // metrics (its spills) can be read afterwards.
        let (state, plan) = df.into_parts();
        let plan = LogicalPlanBuilder::copy_to(
            plan,
            path.to_string_lossy().into_owned(),
            format_as_file_type(Arc::new(ParquetFormatFactory::new())),
            HashMap::from([("single_file_output".to_string(), "true".to_string())]),
            Vec::new(),
        )
        .and_then(|b| b.build())
        .map_err(|e| io(&path, e))?;
        let df = DataFrame::new(state, plan);
        let task = Arc::new(df.task_ctx());
        let physical = df
            .create_physical_plan()
            .await
            .map_err(|e| write_error(&path, e))?;
        let batches = datafusion::physical_plan::collect(Arc::clone(&physical), task)
            .await
            .map_err(|e| write_error(&path, e))?;
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
        Ok(Written {
            rows,
            spilled: Spilled::of(physical.as_ref()),
        })
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

/// What [`SnapshotWriter::write`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Rows written to the table's file.
    pub rows: u64,
    /// What the table's plan spilled to the temp dir while computing them.
    pub spilled: Spilled,
}

/// What one table's load plan spilled to the temp dir (sums over its operators, from their
/// metrics): zero files when every merge fitted in the load's memory pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spilled {
    /// Spill files written.
    pub files: usize,
    /// Rows written to them.
    pub rows: usize,
    /// Bytes written to them.
    pub bytes: usize,
}

impl Spilled {
    /// The spills of an executed plan and all its inputs.
    fn of(plan: &dyn ExecutionPlan) -> Self {
        let mut total = plan.children().into_iter().fold(Self::default(), |t, c| {
            let s = Self::of(c.as_ref());
            Self {
                files: t.files + s.files,
                rows: t.rows + s.rows,
                bytes: t.bytes + s.bytes,
            }
        });
        if let Some(m) = plan.metrics() {
            total.files += m.spill_count().unwrap_or(0);
            total.rows += m.spilled_rows().unwrap_or(0);
            total.bytes += m.spilled_bytes().unwrap_or(0);
        }
        total
    }
}

/// The memory pool a load's plans run in.
///
/// The merges (aggregates, sorts, repartitions: the consumers that can spill) share
/// `merge_bytes` fairly, as in a [`FairSpillPool`], and spill beyond their share. The
/// Parquet writer's buffers cannot spill: in one pool with the merges, a merge that has
/// taken its share leaves the writer nothing, and the load fails or not depending on how
/// the plans' partitions happen to interleave. They are therefore accounted apart
/// ([`MemoryPool::reserved`] includes them) and never refused; what they hold is bounded by
/// the snapshot's row groups, not by the data (at most one row group per file is buffered).
#[derive(Debug)]
pub struct LoadMemoryPool {
    merges: FairSpillPool,
    writer: UnboundedMemoryPool,
}

impl LoadMemoryPool {
    /// A pool in which the merges may hold `merge_bytes`.
    pub fn new(merge_bytes: usize) -> Self {
        Self {
            merges: FairSpillPool::new(merge_bytes),
            writer: UnboundedMemoryPool::default(),
        }
    }

    /// The pool that accounts `consumer`: DataFusion's Parquet sink names every
    /// reservation it makes `ParquetSink…`.
    fn of(&self, consumer: &MemoryConsumer) -> &dyn MemoryPool {
        if consumer.name().starts_with("ParquetSink") {
            &self.writer
        } else {
            &self.merges
        }
    }

    /// Bytes the snapshot writer holds now.
    pub fn writer_reserved(&self) -> usize {
        self.writer.reserved()
    }
}

impl std::fmt::Display for LoadMemoryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "load(merges: {}, writer: accounted apart)", self.merges)
    }
}

impl MemoryPool for LoadMemoryPool {
    fn name(&self) -> &str {
        "load"
    }
    fn register(&self, consumer: &MemoryConsumer) {
        self.of(consumer).register(consumer)
    }
    fn unregister(&self, consumer: &MemoryConsumer) {
        self.of(consumer).unregister(consumer)
    }
    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.of(reservation.consumer())
            .grow(reservation, additional)
    }
    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.of(reservation.consumer()).shrink(reservation, shrink)
    }
    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        self.of(reservation.consumer())
            .try_grow(reservation, additional)
    }
    fn reserved(&self) -> usize {
        self.merges.reserved() + self.writer.reserved()
    }
    fn memory_limit(&self) -> MemoryLimit {
        // The limit the merges are held to; the writer is bounded by its row groups.
        self.merges.memory_limit()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merge_holding_the_whole_pool_does_not_starve_the_snapshot_writer() {
        let pool: Arc<dyn MemoryPool> = Arc::new(LoadMemoryPool::new(1000));
        let merge = MemoryConsumer::new("GroupedHashAggregateStream[0]")
            .with_can_spill(true)
            .register(&pool);
        merge.try_grow(1000).unwrap();
        // Beyond the pool the merge is refused (and spills) …
        assert!(merge.try_grow(1).is_err());
        // … and so is any other consumer that cannot spill, as in a FairSpillPool …
        let other = MemoryConsumer::new("HashJoinInput").register(&pool);
        assert!(other.try_grow(1).is_err());
        // … but the Parquet writer's buffers are accounted apart and always granted.
        let writer = MemoryConsumer::new("ParquetSink(ArrowColumnWriter)").register(&pool);
        writer.try_grow(5000).unwrap();
        let load = pool.downcast_ref::<LoadMemoryPool>().unwrap();
        assert_eq!(load.writer_reserved(), 5000);
        assert_eq!(pool.reserved(), 6000);
        // Freeing the writer gives nothing to the merges: their share is their own.
        drop(writer);
        assert_eq!(pool.reserved(), 1000);
        assert!(merge.try_grow(1).is_err());
        drop(merge);
        assert_eq!(pool.reserved(), 0);
        other.try_grow(1000).unwrap();
    }
}
