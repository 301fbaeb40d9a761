//! The hub: a DataFusion session over every configured source.
//!
//! Opening a hub builds each source's connector and registers its raw tables under
//! `src_<source>`, compiles every mapping into a view over the raw table, merges the views
//! of each shared table by key, and registers `_rejects` and the `system.*` catalog tables.
//! Every shared table exists twice: `live.<table>` is a view planned through the mappings
//! down to the source scans (filters and projections push into them), and `public.<table>`
//! is what queries name by default — the table's snapshot written by the last load (see
//! [`crate::snapshot`]), or the live view while there is no valid snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::{MemTable, ViewTable};
use datafusion::error::DataFusionError;
use datafusion::execution::config::SessionConfig;
use datafusion::prelude::{DataFrame, SessionContext};
use gridhub_catalog::store::RefreshFailure;
use gridhub_catalog::{
    CatalogStore, LineageRecord, LoadStat, SharedTableCount, SourceRecord, SourceTableRecord,
    TableDef, shared_table, shared_tables,
};
use gridhub_connector::{CacheCheck, Connector, ConnectorContext, Health};
use gridhub_mapping::{CompiledMapping, MappingConfig, compile, merge, rejects_columns};

use crate::config::{HubConfig, OnError};
use crate::error::{EngineError, Result};
use crate::fault::{
    Drift, FaultMap, Serving, SourceFault, SourceStatus, TableFaults, needed_columns,
};
use crate::snapshot::{self, LoadMemoryPool, SnapshotSet, SnapshotWriter, Spilled};
use crate::system::{SystemCatalog, SystemSchema, SystemTable};
use crate::unavailable::UnavailableTable;

/// The catalog the hub registers everything in.
pub const CATALOG: &str = "gridhub";
/// Schema of the shared tables and `_rejects`.
pub const SHARED_SCHEMA: &str = "public";
/// Schema of the live views of the shared tables and `_rejects`.
pub const LIVE_SCHEMA: &str = "live";
/// Schema of the catalog's system tables.
pub const SYSTEM_SCHEMA: &str = "system";
/// Name of the table of rejected rows.
pub const REJECTS_TABLE: &str = "_rejects";

/// Schema name of a source's raw tables.
pub fn source_schema(source: &str) -> String {
    format!("src_{source}")
}

/// Microseconds since the epoch, now.
pub fn now_micros() -> i64 {
    micros(SystemTime::now())
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// What the hub found when it opened one source.
#[derive(Debug, Clone)]
pub struct SourceState {
    pub name: String,
    pub kind: String,
    pub label: Option<String>,
    /// What is served of it while it is broken.
    pub on_error: OnError,
    pub connector: Arc<dyn Connector>,
    /// What the connector's own health check said.
    pub health: Health,
    /// Raw tables registered (empty when nothing of the source is readable).
    pub tables: Vec<String>,
    /// Ok, or broken with the reason and what is served of it.
    pub status: SourceStatus,
}

impl SourceState {
    /// What the catalog store records of this source as it is now, last loaded at
    /// `last_load`.
    pub fn record(&self, last_load: Option<i64>) -> SourceRecord {
        SourceRecord {
            name: self.name.clone(),
            kind: self.kind.clone(),
            label: self.label.clone(),
            location: self.connector.location(),
            health: self.status.to_string(),
            materialised: self.connector.is_materialised(),
            last_refresh: self.connector.last_refresh().map(micros),
            last_load,
        }
    }
}

/// How one source did in [`Hub::refresh`].
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshOutcome {
    pub source: String,
    /// Rows written to the rebuilt cache (`None`: the source is read in place, nothing to
    /// rebuild), or why the source is broken (a materialised source keeps its old cache).
    pub result: std::result::Result<Option<u64>, String>,
    /// For schema drift: per table, `table: missing …; added …`.
    pub drift: Vec<String>,
}

impl RefreshOutcome {
    /// Rows written, when the cache was rebuilt.
    pub fn rows(&self) -> Option<u64> {
        self.result.as_ref().ok().copied().flatten()
    }

    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

impl std::fmt::Display for RefreshOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(Some(rows)) => write!(f, "{}: ok, {rows} rows", self.source),
            Ok(None) => write!(f, "{}: ok (read in place)", self.source),
            Err(why) => {
                write!(f, "{}: broken: {why}", self.source)?;
                if !self.drift.is_empty() {
                    write!(f, " [schema drift: {}]", self.drift.join(" | "))?;
                }
                Ok(())
            }
        }
    }
}

/// Columns of each raw table at the last load, by (source, table).
type KnownColumns = BTreeMap<(String, String), Vec<String>>;
/// Drift found by cache checks, by (source, table), until the hub reads it.
type DriftSink = Arc<Mutex<BTreeMap<(String, String), String>>>;

/// Receives progress of a long operation (the CLI shows a bar).
pub trait Progress: Sync {
    fn start(&self, what: &str, total: u64);
    fn step(&self, what: &str);
    fn finish(&self);
}

/// Progress that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn step(&self, _: &str) {}
    fn finish(&self) {}
}

/// The result of [`Hub::load`].
#[derive(Debug, Clone)]
pub struct LoadSummary {
    pub stats: Vec<LoadStat>,
    pub shared: Vec<SharedTableCount>,
    /// What each table's snapshot plan spilled to the temp dir (every table written to the
    /// snapshot, `_rejects` included; empty when snapshots are off).
    pub spilled: BTreeMap<String, Spilled>,
}

/// An open hub.
pub struct Hub {
    config: HubConfig,
    ctx: SessionContext,
    store: Arc<CatalogStore>,
    sources: Arc<[SourceState]>,
    mappings: Vec<CompiledMapping>,
    /// How broken sources affect each shared table.
    faults: Arc<FaultMap>,
    /// Drift the cache checks found, read after a refresh.
    drift_sink: DriftSink,
    /// The live view of each shared table and `_rejects`.
    live: BTreeMap<String, Arc<dyn TableProvider>>,
    /// The snapshot set `public.*` is served from, if any.
    snapshot: Arc<Mutex<Option<SnapshotSet>>>,
    /// What the `system.*` tables read (shares the store, sources, faults and snapshot).
    system: Arc<SystemCatalog>,
    /// Bumped each time `public.*` is served from a new snapshot set (or a load ends):
    /// what was derived from the loaded data is stale once it moves on.
    generation: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config.path)
            .field("sources", &self.sources.len())
            .finish()
    }
}

/// Rows per row group of a snapshot's Parquet files.
const SNAPSHOT_ROW_GROUP_ROWS: usize = 128 * 1024;

impl Hub {
    /// Open the hub described by `config`. Materialised sources whose cache is missing are
    /// built now (and checked against their mappings before the cache is used). A source
    /// that cannot be read, or no longer fits its mappings, does not stop the hub: it is
    /// marked broken with the reason (see [`crate::fault`]), and what it feeds is served
    /// stale or refused per its `on_error`. Leftovers of interrupted refreshes and loads are
    /// removed first.
    pub async fn open(config: HubConfig) -> Result<Self> {
        let store = Arc::new(CatalogStore::open(&config.state_dir.join("catalog.db"))?);
        let mut session = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, SHARED_SCHEMA)
            .with_create_default_catalog_and_schema(true)
            .with_information_schema(true)
            .with_batch_size(config.batch_size);
        session.options_mut().execution.parquet.pushdown_filters = true;
        let ctx = SessionContext::new_with_config(session);
        gridhub_normalize::register_all(&ctx, config.pseudonym_key.as_bytes());

        for sc in &config.sources {
            gridhub_connectors::remove_cache_leftovers(
                &config.state_dir.join("cache").join(&sc.name),
            );
        }
        snapshot::remove_leftovers(&config);

        let last_loads: BTreeMap<String, i64> = store
            .sources()?
            .into_iter()
            .filter_map(|s| s.last_load.map(|t| (s.name, t)))
            .collect();
        // Columns of every raw table at the last load: what schema drift is measured against.
        let mut known_columns: KnownColumns = BTreeMap::new();
        for t in store.source_tables()? {
            known_columns.insert(
                (t.source.clone(), t.table.clone()),
                t.columns.iter().map(|(n, _)| n.clone()).collect(),
            );
        }
        let known_columns = Arc::new(known_columns);
        let failures: BTreeMap<String, RefreshFailure> = store
            .refresh_failures()?
            .into_iter()
            .map(|f| (f.source.clone(), f))
            .collect();
        let drift_sink: DriftSink = Arc::new(Mutex::new(BTreeMap::new()));

        let registry = gridhub_connectors::builtin_registry();
        let catalog = ctx
            .catalog(CATALOG)
            .expect("the default catalog is created with the session");
        let mut sources = Vec::new();
        for sc in &config.sources {
            let source_mappings: Vec<MappingConfig> = config
                .mappings
                .iter()
                .filter(|m| m.source == sc.name)
                .cloned()
                .collect();
            let connector = registry.build(
                &sc.kind,
                ConnectorContext {
                    source_name: sc.name.clone(),
                    base_dir: config.base_dir(),
                    cache_dir: config.state_dir.join("cache").join(&sc.name),
                    options: sc.options.clone(),
                    cache_check: Some(cache_check(
                        &ctx,
                        &sc.name,
                        source_mappings,
                        known_columns.clone(),
                        drift_sink.clone(),
                    )),
                },
            )?;
            let schema = Arc::new(MemorySchemaProvider::new());
            catalog
                .register_schema(&source_schema(&sc.name), schema.clone())
                .map_err(EngineError::plan)?;
            let health = connector.health().await;
            // A materialised source keeps serving its cache while its files are unreadable.
            let try_cache = connector.is_materialised() && sc.on_error == OnError::ServeStale;
            let registered = if health.is_ok() || try_cache {
                register_source_tables(&connector, &schema).await
            } else {
                Err(String::new())
            };
            let (tables, status) = match (&health, registered) {
                (Health::Ok, Ok(tables)) => (tables, SourceStatus::Ok),
                (Health::Unavailable(why), Ok(tables)) => (
                    tables,
                    SourceStatus::Broken(SourceFault {
                        reason: why.clone(),
                        drift: Vec::new(),
                        serving: Serving::StaleCache,
                        since: None,
                    }),
                ),
                (health, Err(why)) => {
                    let reason = match health {
                        Health::Unavailable(h) => h.clone(),
                        Health::Ok => why,
                    };
                    // Tables registered before the failure are not served.
                    for t in schema.table_names() {
                        let _ = datafusion::catalog::SchemaProvider::deregister_table(
                            schema.as_ref(),
                            &t,
                        );
                    }
                    (
                        Vec::new(),
                        SourceStatus::Broken(SourceFault {
                            reason,
                            drift: take_drift(&drift_sink, &sc.name),
                            serving: Serving::LastSnapshot,
                            since: None,
                        }),
                    )
                }
            };
            // The cache fits, but the last refresh failed: the cache is behind its source.
            let status = match (status, failures.get(&sc.name)) {
                (SourceStatus::Ok, Some(f)) if connector.is_materialised() => {
                    SourceStatus::Broken(SourceFault {
                        reason: format!("the last refresh failed: {}", f.reason),
                        drift: f.drift.iter().cloned().collect(),
                        serving: Serving::StaleCache,
                        since: Some(f.since),
                    })
                }
                (SourceStatus::Broken(mut fault), Some(f)) => {
                    fault.since = Some(f.since);
                    SourceStatus::Broken(fault)
                }
                (status, _) => status,
            };
            if let Some(fault) = status.fault() {
                tracing::warn!(source = %sc.name, "source broken: {fault}");
            }
            sources.push(SourceState {
                name: sc.name.clone(),
                kind: sc.kind.clone(),
                label: sc.label.clone(),
                on_error: sc.on_error,
                connector,
                health,
                tables,
                status,
            });
        }

        // Compile every mapping of a source that offers its table; a mapping that no longer
        // fits breaks its source, not the hub.
        let mut mappings = Vec::new();
        for m in &config.mappings {
            let target = shared_table(&m.target).expect("validated with the config");
            let state = sources
                .iter_mut()
                .find(|s| s.name == m.source)
                .expect("validated with the config");
            if state.tables.is_empty() && !state.status.is_ok() {
                continue; // nothing of the source is readable
            }
            let compiled = if !state.tables.contains(&m.table) {
                Err((
                    format!(
                        "mapping {} names table '{}', which source '{}' does not have (tables: {})",
                        m.label(),
                        m.table,
                        m.source,
                        state.tables.join(", ")
                    ),
                    None,
                ))
            } else {
                let raw = ctx
                    .table(TableReference::partial(
                        source_schema(&m.source),
                        m.table.as_str(),
                    ))
                    .await
                    .map_err(EngineError::plan)?;
                let present: Vec<String> = raw
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                let loaded_at = last_loads.get(&m.source).copied().or(Some(now_micros()));
                compile(&ctx, raw, m, target, loaded_at).map_err(|e| {
                    let before = known_columns.get(&(m.source.clone(), m.table.clone()));
                    let needed = needed_columns(m, before.map(Vec::as_slice).unwrap_or(&present));
                    let drift = Drift::between(&needed, &present, before.map(Vec::as_slice));
                    (e.to_string(), (!drift.is_empty()).then_some(drift))
                })
            };
            match compiled {
                Ok(c) => mappings.push(c),
                Err((reason, drift)) => {
                    tracing::warn!(source = %m.source, "mapping {} does not fit: {reason}", m.label());
                    let fault = match &mut state.status {
                        SourceStatus::Broken(f) => {
                            f.reason = format!("{}; {reason}", f.reason);
                            f
                        }
                        status => {
                            *status = SourceStatus::Broken(SourceFault {
                                reason,
                                drift: Vec::new(),
                                serving: Serving::LastSnapshot,
                                since: None,
                            });
                            match status {
                                SourceStatus::Broken(f) => f,
                                SourceStatus::Ok => unreachable!("set just above"),
                            }
                        }
                    };
                    if let Some(d) = drift {
                        fault.drift.push(format!("{}: {d}", m.table));
                    }
                    fault.serving = Serving::LastSnapshot;
                }
            }
        }
        // `refuse`: nothing of a broken source is served, not even its raw tables.
        for s in &mut sources {
            if s.on_error == OnError::Refuse
                && let SourceStatus::Broken(f) = &mut s.status
            {
                f.serving = Serving::Refused;
                let schema = catalog
                    .schema(&source_schema(&s.name))
                    .expect("registered above");
                for t in &s.tables {
                    let provider = schema.table(t).await.ok().flatten();
                    if let Some(p) = provider {
                        let _ = schema.deregister_table(t);
                        let _ = schema.register_table(
                            t.clone(),
                            Arc::new(UnavailableTable::new(
                                p.schema(),
                                format!(
                                    "table {}.{t} is refused: source '{}' is broken: {}",
                                    source_schema(&s.name),
                                    s.name,
                                    f.reason
                                ),
                            )),
                        );
                    }
                }
            }
        }
        let refused: BTreeSet<String> = sources
            .iter()
            .filter(|s| {
                s.status
                    .fault()
                    .is_some_and(|f| f.serving == Serving::Refused)
            })
            .map(|s| s.name.clone())
            .collect();
        mappings.retain(|m| !refused.contains(&m.source));
        let faults = Arc::new(table_faults(&config, &sources, &mappings));
        let sources: Arc<[SourceState]> = sources.into();
        let snapshot = Arc::new(Mutex::new(None));
        let mut sources_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in &mappings {
            let of = sources_of.entry(m.target.name.to_string()).or_default();
            if !of.contains(&m.source) {
                of.push(m.source.clone());
            }
        }
        let system = Arc::new(SystemCatalog {
            store: store.clone(),
            sources: sources.clone(),
            faults: faults.clone(),
            lineage: lineage(&config),
            sources_of,
            snapshot: Arc::clone(&snapshot),
        });
        catalog
            .register_schema(SYSTEM_SCHEMA, Arc::new(SystemSchema::new(system.clone())))
            .map_err(EngineError::plan)?;

        let mut hub = Self {
            config,
            ctx,
            store,
            sources,
            mappings,
            faults,
            drift_sink,
            live: BTreeMap::new(),
            snapshot,
            system,
            generation: std::sync::atomic::AtomicU64::new(0),
        };
        hub.live = hub.live_tables()?;
        hub.register_schema(LIVE_SCHEMA)?;
        for (name, table) in &hub.live {
            hub.register(LIVE_SCHEMA, name, table.clone())?;
        }
        let current = if hub.config.snapshots {
            snapshot::current(&hub.config)
        } else {
            None
        };
        hub.serve(current)?;
        Ok(hub)
    }

    /// Read the config at `path` and open the hub.
    pub async fn open_path(path: &std::path::Path) -> Result<Self> {
        Self::open(HubConfig::load(path)?).await
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn store(&self) -> &CatalogStore {
        &self.store
    }

    pub fn sources(&self) -> &[SourceState] {
        &self.sources
    }

    /// How broken sources affect a shared table (`None`: not at all).
    pub fn table_faults(&self, table: &str) -> Option<&TableFaults> {
        self.faults.get(table).filter(|f| !f.is_empty())
    }

    /// Which load the served data is from: changes whenever the data does.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn mappings(&self) -> &[CompiledMapping] {
        &self.mappings
    }

    fn register(&self, schema: &str, name: &str, table: Arc<dyn TableProvider>) -> Result<()> {
        self.ctx
            .register_table(TableReference::partial(schema, name), table)
            .map(|_| ())
            .map_err(EngineError::plan)
    }

    fn register_schema(&self, name: &str) -> Result<()> {
        let catalog = self.ctx.catalog(CATALOG).expect("default catalog");
        if catalog.schema(name).is_none() {
            catalog
                .register_schema(name, Arc::new(MemorySchemaProvider::new()))
                .map_err(EngineError::plan)?;
        }
        Ok(())
    }

    /// Serve `public.*` from a snapshot set (each table it holds) and the live views (the
    /// rest, or everything when there is no set).
    fn serve(&self, set: Option<SnapshotSet>) -> Result<()> {
        for (name, live) in &self.live {
            let refused = self.faults.get(name).is_some_and(|f| !f.refused.is_empty());
            let file = set.as_ref().and_then(|s| s.file(name)).filter(|_| !refused);
            let table = match file {
                Some(file) => snapshot::provider(&file, live.schema())?,
                None => live.clone(),
            };
            self.ctx
                .deregister_table(TableReference::partial(SHARED_SCHEMA, name.as_str()))
                .ok();
            self.register(SHARED_SCHEMA, name, table)?;
        }
        *self.snapshot.lock().expect("snapshot lock") = set;
        Ok(())
    }

    /// The snapshot set `public.*` is served from, if any.
    pub fn snapshot(&self) -> Option<SnapshotSet> {
        self.snapshot.lock().expect("snapshot lock").clone()
    }

    /// The live view of every shared table and of `_rejects`. A table fed by a refusing
    /// broken source, or whose every source is broken, fails with an error naming them;
    /// otherwise it merges what its working sources (and stale caches) offer.
    fn live_tables(&self) -> Result<BTreeMap<String, Arc<dyn TableProvider>>> {
        let mut out = BTreeMap::new();
        for def in shared_tables() {
            let parts: Vec<(String, DataFrame)> = self
                .mappings
                .iter()
                .filter(|m| m.target.name == def.name)
                .map(|m| Ok((m.source.clone(), m.accepted()?)))
                .collect::<Result<_>>()?;
            let faults = self.faults.get(def.name);
            let failing: Vec<&String> = match faults {
                Some(f) if !f.refused.is_empty() => f.refused.iter().collect(),
                Some(f) if parts.is_empty() && !f.absent.is_empty() => f.absent.iter().collect(),
                _ => Vec::new(),
            };
            let table: Arc<dyn TableProvider> = if !failing.is_empty() {
                let why: Vec<String> = failing
                    .iter()
                    .map(|name| {
                        let fault = self
                            .sources
                            .iter()
                            .find(|s| &&s.name == name)
                            .and_then(|s| s.status.fault())
                            .map(|f| f.to_string())
                            .unwrap_or_default();
                        format!("source '{name}' is broken: {fault}")
                    })
                    .collect();
                Arc::new(UnavailableTable::new(
                    def.schema(),
                    format!(
                        "shared table {} is unavailable: {}",
                        def.name,
                        why.join("; ")
                    ),
                ))
            } else if parts.is_empty() {
                Arc::new(empty_table(def.schema())?)
            } else {
                let merged = merge(def, &self.config.precedence(def.name), parts)?;
                view(merged)
            };
            out.insert(def.name.to_string(), table);
        }

        let mut rejects: Option<DataFrame> = None;
        for m in &self.mappings {
            let r = m.rejects()?;
            rejects = Some(match rejects {
                None => r,
                Some(all) => all.union(r).map_err(EngineError::plan)?,
            });
        }
        let rejects: Arc<dyn TableProvider> = match rejects {
            Some(df) => view(df),
            None => Arc::new(empty_table(rejects_schema())?),
        };
        out.insert(REJECTS_TABLE.to_string(), rejects);
        Ok(out)
    }

    /// Rebuild the caches of materialised sources and report on every source (all, or the
    /// named ones). Each source is refreshed on its own: a failure is reported for that
    /// source (and recorded in the catalog store until a refresh succeeds, so the source
    /// reads as broken while it serves its old cache) and the others are still refreshed.
    /// A source read in place is reported as the hub found it when it opened. Reopen the
    /// hub afterwards to plan over the rebuilt caches.
    pub async fn refresh(
        &self,
        only: &[String],
        progress: &dyn Progress,
    ) -> Result<Vec<RefreshOutcome>> {
        for name in only {
            if !self.sources.iter().any(|s| &s.name == name) {
                return Err(EngineError::Config {
                    path: self.config.path.display().to_string(),
                    message: format!(
                        "no source '{name}' (sources: {})",
                        self.sources
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
        let chosen: Vec<&SourceState> = self
            .sources
            .iter()
            .filter(|s| only.is_empty() || only.contains(&s.name))
            .collect();
        progress.start("refreshing sources", chosen.len() as u64);
        let mut out = Vec::new();
        for s in chosen {
            progress.step(&s.name);
            if !s.connector.is_materialised() {
                out.push(RefreshOutcome {
                    source: s.name.clone(),
                    result: match s.status.fault() {
                        None => Ok(None),
                        Some(f) => Err(f.reason.clone()),
                    },
                    drift: s
                        .status
                        .fault()
                        .map(|f| f.drift.clone())
                        .unwrap_or_default(),
                });
                continue;
            }
            take_drift(&self.drift_sink, &s.name);
            let outcome = match s.connector.refresh().await {
                Ok(report) => {
                    self.store.clear_refresh_failure(&s.name)?;
                    RefreshOutcome {
                        source: s.name.clone(),
                        result: Ok(Some(report.tables.iter().map(|(_, n)| n).sum())),
                        drift: Vec::new(),
                    }
                }
                Err(e) => {
                    let drift = take_drift(&self.drift_sink, &s.name);
                    let reason = e.to_string();
                    tracing::warn!(source = %s.name, "refresh failed: {reason}");
                    self.store.record_refresh_failure(&RefreshFailure {
                        source: s.name.clone(),
                        reason: reason.clone(),
                        drift: (!drift.is_empty()).then(|| drift.join(" | ")),
                        since: now_micros(),
                    })?;
                    RefreshOutcome {
                        source: s.name.clone(),
                        result: Err(reason),
                        drift,
                    }
                }
            };
            out.push(outcome);
        }
        progress.finish();
        Ok(out)
    }

    /// Count accepted and rejected rows of every mapping and the rows of every shared table,
    /// and record them, the sources and the lineage in the catalog store.
    pub async fn load(&self, progress: &dyn Progress) -> Result<LoadSummary> {
        let loaded_at = now_micros();
        let raw_tables: usize = self.sources.iter().map(|s| s.tables.len()).sum();
        let shared_with_sources: Vec<&TableDef> = shared_tables()
            .iter()
            .filter(|d| {
                self.mappings.iter().any(|m| m.target.name == d.name)
                    || self.table_faults(d.name).is_some()
            })
            .collect();
        progress.start(
            "loading",
            (raw_tables + self.mappings.len() + shared_with_sources.len()) as u64,
        );

        for s in self.sources.iter() {
            // A broken source keeps the tables recorded at its last good load (drift is
            // measured against them), unless what it serves is its last good cache.
            let current = match s.status.fault() {
                None => true,
                Some(f) => f.serving == Serving::StaleCache,
            };
            let mut tables = Vec::new();
            for t in s.tables.iter().filter(|_| current) {
                progress.step(&format!("{}.{t}", s.name));
                let df = self
                    .ctx
                    .table(TableReference::partial(source_schema(&s.name), t.as_str()))
                    .await
                    .map_err(|e| self.describe(e))?;
                let columns = df
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| (f.name().clone(), f.data_type().to_string()))
                    .collect();
                let rows = df.count().await.map_err(|e| {
                    EngineError::execution(
                        e.context(format!("counting rows of {}.{t}", source_schema(&s.name))),
                    )
                })? as u64;
                tables.push(SourceTableRecord {
                    source: s.name.clone(),
                    table: t.clone(),
                    columns,
                    row_count: Some(rows),
                });
            }
            if current {
                self.store.replace_source_tables(&s.name, &tables)?;
            }
            self.store
                .upsert_source(&s.record(s.status.is_ok().then_some(loaded_at)))?;
        }
        self.store.retain_sources(
            &self
                .sources
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>(),
        )?;

        let mut stats = Vec::new();
        for m in &self.mappings {
            progress.step(&m.label());
            let batches =
                m.counts()?.collect().await.map_err(|e| {
                    EngineError::execution(e.context(format!("loading {}", m.label())))
                })?;
            let (accepted, rejected) = first_two_counts(&batches);
            stats.push(LoadStat {
                source: m.source.clone(),
                source_table: m.source_table.clone(),
                target_table: m.target.name.to_string(),
                accepted,
                rejected,
                loaded_at,
            });
        }
        // Snapshot every table fed by a source (and `_rejects`), counting rows as written.
        let mut writer = if self.config.snapshots {
            Some(SnapshotWriter::new(&self.config, loaded_at)?)
        } else {
            None
        };
        let mut shared = Vec::new();
        let mut spilled = BTreeMap::new();
        let load_state = self.load_state()?;
        let previous = self.snapshot();
        for def in shared_with_sources {
            progress.step(def.name);
            let faults = self.faults.get(def.name);
            if faults.is_some_and(|f| !f.refused.is_empty()) {
                continue; // refused: neither served nor snapshotted
            }
            // A table a broken source is left out of keeps its last snapshot (stale, but
            // with that source's rows) rather than being rewritten without them.
            let kept = match (writer.as_mut(), previous.as_ref()) {
                (Some(w), Some(prev)) if faults.is_some_and(|f| !f.absent.is_empty()) => {
                    w.keep(def.name, prev)?
                }
                _ => None,
            };
            if let Some(rows) = kept {
                shared.push(SharedTableCount {
                    table: def.name.to_string(),
                    rows,
                    sources: self.sources_of(def.name),
                    loaded_at,
                });
                continue;
            }
            if !self.mappings.iter().any(|m| m.target.name == def.name) {
                continue; // every source of it is broken and there is no snapshot to keep
            }
            let live = self
                .ctx
                .table(TableReference::partial(LIVE_SCHEMA, def.name))
                .await
                .map_err(|e| self.describe(e))?;
            let live = DataFrame::new(load_state.clone(), live.logical_plan().clone());
            let rows = match writer.as_mut() {
                Some(w) => {
                    let written = w.write(def.name, live).await.map_err(|e| match e {
                        EngineError::ResourcesExhausted { source } => EngineError::LoadMemory {
                            source,
                            limit_mb: self.config.load_memory_mb,
                        },
                        e => e,
                    })?;
                    spilled.insert(def.name.to_string(), written.spilled);
                    written.rows
                }
                None => live.count().await.map_err(|e| self.describe(e))? as u64,
            };
            shared.push(SharedTableCount {
                table: def.name.to_string(),
                rows,
                sources: self.sources_of(def.name),
                loaded_at,
            });
        }
        if let Some(mut w) = writer {
            let rejects = self
                .ctx
                .table(TableReference::partial(LIVE_SCHEMA, REJECTS_TABLE))
                .await
                .map_err(|e| self.describe(e))?;
            let written = w.write(REJECTS_TABLE, rejects).await?;
            spilled.insert(REJECTS_TABLE.to_string(), written.spilled);
            self.serve(Some(w.commit()?))?;
        }
        self.store.replace_load(&stats, &shared)?;
        self.store.replace_lineage(self.system.lineage())?;
        progress.finish();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(LoadSummary {
            stats,
            shared,
            spilled,
        })
    }

    /// The session state a load writes snapshots with: a memory pool of `load_memory_mb`
    /// (merges spill beyond it), row groups of 128 Ki rows (smaller groups prune better).
    fn load_state(&self) -> Result<datafusion::execution::SessionState> {
        let state = self.ctx.state();
        // A bounded memory pool: a merge whose groups outgrow it spills sorted runs to the
        // temp dir and merges them streaming, instead of holding a million entities.
        let limit = self.config.load_memory_mb;
        // The snapshot writer's buffers are accounted apart from it (see LoadMemoryPool).
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(LoadMemoryPool::new(limit << 20)))
            .build_arc()
            .map_err(|e| self.describe(e))?;
        let mut config = state.config().clone();
        config.options_mut().execution.parquet.max_row_group_size = SNAPSHOT_ROW_GROUP_ROWS;
        // Otherwise the builder registers a fresh default catalog in the shared catalog
        // list, in place of the hub's.
        config
            .options_mut()
            .catalog
            .create_default_catalog_and_schema = false;
        Ok(
            datafusion::execution::SessionStateBuilder::new_from_existing(state)
                .with_config(config)
                .with_runtime_env(runtime)
                .build(),
        )
    }

    /// The sources mapped into a shared table, each once, in config order.
    pub fn sources_of(&self, table: &str) -> Vec<String> {
        self.system
            .sources_of
            .get(table)
            .cloned()
            .unwrap_or_default()
    }

    /// Which source column feeds which shared column, from the config.
    pub fn lineage(&self) -> &[LineageRecord] {
        self.system.lineage()
    }

    /// The catalog the `system.*` tables show, as typed rows.
    pub fn system(&self) -> &SystemCatalog {
        &self.system
    }

    /// Plan a SQL query. Errors come back as one clear sentence.
    pub async fn sql(&self, sql: &str) -> Result<DataFrame> {
        // The operator's SQL is bounded like a principal's: a deep expression must not take
        // the process down (see crate::bounds).
        let state = self.ctx.state();
        let recursion_limit = state.config().options().sql_parser.recursion_limit.get();
        let statement = crate::bounds::parse_bounded(
            sql,
            &crate::bounds::SqlLimits::default(),
            recursion_limit,
        )
        .await?;
        self.check_tables(&state, &statement)?;
        let plan = state
            .statement_to_plan(statement)
            .await
            .map_err(|e| self.describe(e))?;
        self.ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| self.describe(e))
    }

    /// Plan and run a SQL query, collecting the batches.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        self.sql(sql)
            .await?
            .collect()
            .await
            .map_err(|e| self.describe(e))
    }

    /// Every table a query can name, qualified where it is not a shared table.
    pub fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = shared_tables().iter().map(|t| t.name.to_string()).collect();
        names.push(REJECTS_TABLE.to_string());
        for t in self.live.keys() {
            names.push(format!("{LIVE_SCHEMA}.{t}"));
        }
        for s in self.sources.iter() {
            for t in &s.tables {
                names.push(format!("{}.{t}", source_schema(&s.name)));
            }
        }
        for t in SystemTable::ALL {
            names.push(format!("{SYSTEM_SCHEMA}.{}", t.name()));
        }
        names
    }

    /// Turn a DataFusion error into one sentence a user can act on (by its kind).
    pub fn describe(&self, e: DataFusionError) -> EngineError {
        EngineError::plan(e)
    }

    /// Refuse a statement that names a table this hub does not have, naming the ones it has.
    fn check_tables(
        &self,
        state: &datafusion::execution::SessionState,
        statement: &datafusion::sql::parser::Statement,
    ) -> Result<()> {
        use datafusion::sql::parser::Statement as DfStatement;
        use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
        // Other statements name tables they create or write: DataFusion judges those.
        let is_query =
            matches!(statement, DfStatement::Statement(s) if matches!(**s, SqlStatement::Query(_)));
        if !is_query {
            return Ok(());
        }
        for reference in state
            .resolve_table_references(statement)
            .map_err(EngineError::plan)?
        {
            if !self
                .ctx
                .table_exist(reference.clone())
                .map_err(EngineError::plan)?
            {
                let name = match (reference.catalog(), reference.schema()) {
                    (Some(c), Some(s)) if c == CATALOG && s == SHARED_SCHEMA => {
                        reference.table().to_string()
                    }
                    (None, Some(s)) if s == SHARED_SCHEMA => reference.table().to_string(),
                    (Some(c), _) if c == CATALOG => format!(
                        "{}.{}",
                        reference.schema().unwrap_or(SHARED_SCHEMA),
                        reference.table()
                    ),
                    _ => reference.to_string(),
                };
                return Err(EngineError::UnknownTable {
                    table: name,
                    known: self.table_names().join(", "),
                });
            }
        }
        Ok(())
    }
}

/// Register every table of a source; on failure, the reason (naming the source).
async fn register_source_tables(
    connector: &Arc<dyn Connector>,
    schema: &Arc<MemorySchemaProvider>,
) -> std::result::Result<Vec<String>, String> {
    let tables = connector.discover().await.map_err(|e| e.to_string())?;
    for t in &tables {
        let provider = connector.table(t).await.map_err(|e| e.to_string())?;
        schema
            .register_table(t.clone(), provider)
            .map_err(|e| e.to_string())?;
    }
    Ok(tables)
}

/// The check a rebuilt cache table of `source` must pass before it replaces the old one:
/// every mapping of that table still compiles over the new columns. A refusal records the
/// drift (columns missing / added) in `sink`.
fn cache_check(
    ctx: &SessionContext,
    source: &str,
    mappings: Vec<MappingConfig>,
    known: Arc<KnownColumns>,
    sink: DriftSink,
) -> CacheCheck {
    let ctx = ctx.clone();
    let source = source.to_string();
    CacheCheck::new(move |table, schema| {
        let present: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        for m in mappings.iter().filter(|m| m.table == table) {
            let target = shared_table(&m.target).expect("validated with the config");
            let empty =
                MemTable::try_new(schema.clone(), vec![vec![]]).map_err(|e| e.to_string())?;
            let raw = ctx.read_table(Arc::new(empty)).map_err(|e| e.to_string())?;
            if let Err(e) = compile(&ctx, raw, m, target, None) {
                let before = known.get(&(source.clone(), table.to_string()));
                let needed = needed_columns(m, before.map(Vec::as_slice).unwrap_or(&present));
                let drift = Drift::between(&needed, &present, before.map(Vec::as_slice));
                if !drift.is_empty() {
                    sink.lock()
                        .expect("drift lock")
                        .insert((source.clone(), table.to_string()), drift.to_string());
                }
                return Err(e.to_string());
            }
        }
        Ok(())
    })
}

/// The drift the cache checks of `source` found (`table: …` each), taken out of the sink.
fn take_drift(sink: &DriftSink, source: &str) -> Vec<String> {
    let mut sink = sink.lock().expect("drift lock");
    let keys: Vec<(String, String)> = sink.keys().filter(|(s, _)| s == source).cloned().collect();
    keys.into_iter()
        .filter_map(|k| sink.remove(&k).map(|d| format!("{}: {d}", k.1)))
        .collect()
}

/// How the broken sources affect each shared table they map into.
fn table_faults(
    config: &HubConfig,
    sources: &[SourceState],
    mappings: &[CompiledMapping],
) -> FaultMap {
    let mut out = FaultMap::new();
    for m in &config.mappings {
        let Some(state) = sources.iter().find(|s| s.name == m.source) else {
            continue;
        };
        let Some(fault) = state.status.fault() else {
            continue;
        };
        let included = mappings.iter().any(|c| {
            c.source == m.source && c.source_table == m.table && c.target.name == m.target
        });
        let entry: &mut TableFaults = out.entry(m.target.clone()).or_default();
        match fault.serving {
            Serving::Refused => entry.refused.insert(m.source.clone()),
            // A mapping of a broken source that still fits reads current data, unless the
            // source is served from its stale cache.
            Serving::StaleCache if included => entry.stale.insert(m.source.clone()),
            _ if included => false,
            _ => entry.absent.insert(m.source.clone()),
        };
    }
    out
}

fn view(df: DataFrame) -> Arc<dyn TableProvider> {
    Arc::new(ViewTable::new(df.logical_plan().clone(), None))
}

fn empty_table(schema: SchemaRef) -> Result<MemTable> {
    MemTable::try_new(schema, vec![vec![]]).map_err(EngineError::plan)
}

/// The schema of `_rejects`.
pub fn rejects_schema() -> SchemaRef {
    Arc::new(Schema::new(
        rejects_columns()
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

fn first_two_counts(batches: &[RecordBatch]) -> (u64, u64) {
    let get = |i: usize| {
        batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .and_then(|b| {
                b.column(i)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or(0) as u64
    };
    (get(0), get(1))
}

/// Which source column feeds which shared column, from the config.
fn lineage(config: &HubConfig) -> Vec<LineageRecord> {
    let mut out = Vec::new();
    for m in &config.mappings {
        for (column, spec) in &m.columns {
            out.push(LineageRecord {
                shared_table: m.target.clone(),
                shared_column: column.clone(),
                source: m.source.clone(),
                source_table: m.table.clone(),
                source_expr: spec.origin().map(|o| o.to_string()).unwrap_or_else(|e| e),
                transform: spec.transform(),
            });
        }
    }
    out
}
