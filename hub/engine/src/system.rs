//! The `system.*` tables: the catalog as SQL, built when queried.
//!
//! [`SystemSchema`] is a schema provider (the way DataFusion's `information_schema` works):
//! each table is a stream that reads the catalog store and the live source state at the
//! moment a query executes, so nothing is re-registered after a load. The same typed rows
//! ([`SystemCatalog::sources`], [`SystemCatalog::tables`], …) answer the catalog API
//! directly, without going through SQL.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use gridhub_catalog::model::timestamp_type;
use gridhub_catalog::{
    CatalogStore, LineageRecord, LoadStat, SourceRecord, SourceTableRecord, shared_tables,
};

use crate::error::{EngineError, Result};
use crate::fault::FaultMap;
use crate::hub::SourceState;
use crate::snapshot::SnapshotSet;

/// One table of the `system` schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemTable {
    Sources,
    SourceTables,
    Tables,
    Columns,
    Lineage,
    Loads,
}

impl SystemTable {
    pub const ALL: [SystemTable; 6] = [
        Self::Sources,
        Self::SourceTables,
        Self::Tables,
        Self::Columns,
        Self::Lineage,
        Self::Loads,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Sources => "sources",
            Self::SourceTables => "source_tables",
            Self::Tables => "tables",
            Self::Columns => "columns",
            Self::Lineage => "lineage",
            Self::Loads => "loads",
        }
    }

    /// What the table holds, for `gridhub tables` and the docs.
    pub fn description(self) -> &'static str {
        match self {
            Self::Sources => {
                "configured sources: type, location, health (ok / broken, why, what is served), refresh and load times"
            }
            Self::SourceTables => "raw tables of each source with their columns and row counts",
            Self::Tables => {
                "shared tables: label, key, rows after merging, contributing sources, snapshot served, broken sources"
            }
            Self::Columns => "columns of the shared tables with type, tag and Chinese label",
            Self::Lineage => "which source column or expression feeds which shared column",
            Self::Loads => "accepted and rejected rows per mapping at the last load",
        }
    }

    pub fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The table's columns (all nullable): known without reading anything.
    pub fn schema(self) -> SchemaRef {
        use DataType::{Boolean, Int64, Utf8};
        let ts = timestamp_type();
        let fields: Vec<(&str, DataType)> = match self {
            Self::Sources => vec![
                ("name", Utf8),
                ("type", Utf8),
                ("label", Utf8),
                ("location", Utf8),
                ("health", Utf8),
                ("materialised", Boolean),
                ("last_refresh", ts.clone()),
                ("last_load", ts.clone()),
                ("state", Utf8),
                ("reason", Utf8),
                ("drift", Utf8),
                ("serving", Utf8),
                ("broken_since", ts),
                ("on_error", Utf8),
            ],
            Self::SourceTables => vec![
                ("source", Utf8),
                ("table_name", Utf8),
                ("columns", Utf8),
                ("row_count", Int64),
            ],
            Self::Tables => vec![
                ("name", Utf8),
                ("label", Utf8),
                ("key", Utf8),
                ("rows", Int64),
                ("sources", Utf8),
                ("loaded_at", ts.clone()),
                ("served_from", Utf8),
                ("snapshot_at", ts),
                ("degraded", Utf8),
            ],
            Self::Columns => vec![
                ("table_name", Utf8),
                ("position", Int64),
                ("name", Utf8),
                ("data_type", Utf8),
                ("tag", Utf8),
                ("label", Utf8),
                ("is_key", Boolean),
            ],
            Self::Lineage => vec![
                ("shared_table", Utf8),
                ("shared_column", Utf8),
                ("source", Utf8),
                ("source_table", Utf8),
                ("source_expr", Utf8),
                ("transform", Utf8),
            ],
            Self::Loads => vec![
                ("source", Utf8),
                ("source_table", Utf8),
                ("target_table", Utf8),
                ("accepted", Int64),
                ("rejected", Int64),
                ("loaded_at", ts),
            ],
        };
        Arc::new(Schema::new(
            fields
                .into_iter()
                .map(|(n, t)| Field::new(n, t, true))
                .collect::<Vec<_>>(),
        ))
    }
}

/// A configured source as the catalog reports it: the hub's live state joined with what the
/// store recorded of its last load.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRow {
    /// The source as the hub sees it now, with the last load the store recorded.
    pub record: SourceRecord,
    /// `ok` or `broken`.
    pub state: String,
    pub reason: Option<String>,
    pub drift: Option<String>,
    /// What is served of it: `source`, or the fallback while broken.
    pub serving: String,
    pub broken_since: Option<i64>,
    pub on_error: String,
}

/// A shared table as the catalog reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    pub name: String,
    pub label: String,
    pub key: Vec<String>,
    /// Rows after merging, at the last load.
    pub rows: Option<u64>,
    pub sources: Vec<String>,
    pub loaded_at: Option<i64>,
    /// `snapshot` or `live`.
    pub served_from: &'static str,
    pub snapshot_at: Option<i64>,
    /// Which broken sources affect it, if any.
    pub degraded: Option<String>,
}

/// A column of a shared table.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnRow {
    pub table: String,
    pub position: usize,
    pub name: String,
    pub data_type: String,
    pub tag: String,
    pub label: String,
    pub is_key: bool,
}

/// What the `system.*` tables read: the catalog store and the hub's state, shared with the
/// hub (the snapshot served changes with each load; the rest is fixed while the hub is open).
#[derive(Debug)]
pub struct SystemCatalog {
    pub(crate) store: Arc<CatalogStore>,
    pub(crate) sources: Arc<[SourceState]>,
    pub(crate) faults: Arc<FaultMap>,
    pub(crate) lineage: Vec<LineageRecord>,
    /// The sources mapped into each shared table, in config order.
    pub(crate) sources_of: BTreeMap<String, Vec<String>>,
    pub(crate) snapshot: Arc<Mutex<Option<SnapshotSet>>>,
}

impl SystemCatalog {
    /// Every configured source, as the hub found it when it opened.
    pub fn sources(&self) -> Result<Vec<SourceRow>> {
        let recorded = self.store.sources()?;
        Ok(self
            .sources
            .iter()
            .map(|s| {
                let fault = s.status.fault();
                let last_load = recorded
                    .iter()
                    .find(|r| r.name == s.name)
                    .and_then(|r| r.last_load);
                SourceRow {
                    record: s.record(last_load),
                    state: s.status.state().to_string(),
                    reason: fault.map(|f| f.reason.clone()),
                    drift: fault.and_then(|f| f.drift_text()),
                    serving: fault.map(|f| f.serving.name()).unwrap_or("source").into(),
                    broken_since: fault.and_then(|f| f.since),
                    on_error: s.on_error.name().to_string(),
                }
            })
            .collect())
    }

    /// Raw tables of each source at the last load.
    pub fn source_tables(&self) -> Result<Vec<SourceTableRecord>> {
        Ok(self.store.source_tables()?)
    }

    /// Every shared table with its counts at the last load and what serves it now.
    pub fn tables(&self) -> Result<Vec<TableRow>> {
        let counts = self.store.shared_counts()?;
        let snapshot = self.snapshot.lock().expect("snapshot lock").clone();
        Ok(shared_tables()
            .iter()
            .map(|d| {
                let count = counts.iter().find(|c| c.table == d.name);
                let faults = self.faults.get(d.name).filter(|f| !f.is_empty());
                let refused = faults.is_some_and(|f| !f.refused.is_empty());
                let file = snapshot.as_ref().filter(|s| s.file(d.name).is_some());
                TableRow {
                    name: d.name.to_string(),
                    label: d.label.to_string(),
                    key: d.key.iter().map(|k| k.to_string()).collect(),
                    rows: count.map(|c| c.rows),
                    sources: self.sources_of.get(d.name).cloned().unwrap_or_default(),
                    loaded_at: count.map(|c| c.loaded_at),
                    served_from: if !refused && file.is_some() {
                        "snapshot"
                    } else {
                        "live"
                    },
                    snapshot_at: file.map(|s| s.manifest.built_at),
                    degraded: faults.and_then(|f| f.describe()),
                }
            })
            .collect())
    }

    /// The columns of every shared table, in table then column order.
    pub fn columns(&self) -> Vec<ColumnRow> {
        shared_tables()
            .iter()
            .flat_map(|d| {
                d.columns.iter().enumerate().map(move |(i, c)| ColumnRow {
                    table: d.name.to_string(),
                    position: i,
                    name: c.name.to_string(),
                    data_type: c.data_type.to_string(),
                    tag: c.tag.to_string(),
                    label: c.label.to_string(),
                    is_key: d.key.contains(&c.name),
                })
            })
            .collect()
    }

    /// Which source column feeds which shared column, from the config.
    pub fn lineage(&self) -> &[LineageRecord] {
        &self.lineage
    }

    /// Accepted and rejected rows per mapping at the last load.
    pub fn loads(&self) -> Result<Vec<LoadStat>> {
        Ok(self.store.load_stats()?)
    }

    /// One system table's rows, now.
    pub fn batch(&self, table: SystemTable) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = match table {
            SystemTable::Sources => {
                let r = self.sources()?;
                vec![
                    utf8(r.iter().map(|s| Some(s.record.name.as_str()))),
                    utf8(r.iter().map(|s| Some(s.record.kind.as_str()))),
                    utf8(r.iter().map(|s| s.record.label.as_deref())),
                    utf8(r.iter().map(|s| Some(s.record.location.as_str()))),
                    utf8(r.iter().map(|s| Some(s.record.health.as_str()))),
                    boolean(r.iter().map(|s| s.record.materialised)),
                    timestamps(r.iter().map(|s| s.record.last_refresh)),
                    timestamps(r.iter().map(|s| s.record.last_load)),
                    utf8(r.iter().map(|s| Some(s.state.as_str()))),
                    utf8(r.iter().map(|s| s.reason.as_deref())),
                    utf8(r.iter().map(|s| s.drift.as_deref())),
                    utf8(r.iter().map(|s| Some(s.serving.as_str()))),
                    timestamps(r.iter().map(|s| s.broken_since)),
                    utf8(r.iter().map(|s| Some(s.on_error.as_str()))),
                ]
            }
            SystemTable::SourceTables => {
                let r = self.source_tables()?;
                let columns: Vec<String> = r
                    .iter()
                    .map(|t| {
                        t.columns
                            .iter()
                            .map(|(n, ty)| format!("{n}: {ty}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .collect();
                vec![
                    utf8(r.iter().map(|t| Some(t.source.as_str()))),
                    utf8(r.iter().map(|t| Some(t.table.as_str()))),
                    utf8(columns.iter().map(|c| Some(c.as_str()))),
                    int64(r.iter().map(|t| t.row_count.map(|n| n as i64))),
                ]
            }
            SystemTable::Tables => {
                let r = self.tables()?;
                let keys: Vec<String> = r.iter().map(|t| t.key.join(", ")).collect();
                let sources: Vec<String> = r.iter().map(|t| t.sources.join(",")).collect();
                vec![
                    utf8(r.iter().map(|t| Some(t.name.as_str()))),
                    utf8(r.iter().map(|t| Some(t.label.as_str()))),
                    utf8(keys.iter().map(|k| Some(k.as_str()))),
                    int64(r.iter().map(|t| t.rows.map(|n| n as i64))),
                    utf8(sources.iter().map(|s| Some(s.as_str()))),
                    timestamps(r.iter().map(|t| t.loaded_at)),
                    utf8(r.iter().map(|t| Some(t.served_from))),
                    timestamps(r.iter().map(|t| t.snapshot_at)),
                    utf8(r.iter().map(|t| t.degraded.as_deref())),
                ]
            }
            SystemTable::Columns => {
                let r = self.columns();
                vec![
                    utf8(r.iter().map(|c| Some(c.table.as_str()))),
                    int64(r.iter().map(|c| Some(c.position as i64))),
                    utf8(r.iter().map(|c| Some(c.name.as_str()))),
                    utf8(r.iter().map(|c| Some(c.data_type.as_str()))),
                    utf8(r.iter().map(|c| Some(c.tag.as_str()))),
                    utf8(r.iter().map(|c| Some(c.label.as_str()))),
                    boolean(r.iter().map(|c| c.is_key)),
                ]
            }
            SystemTable::Lineage => {
                let r = &self.lineage;
                vec![
                    utf8(r.iter().map(|l| Some(l.shared_table.as_str()))),
                    utf8(r.iter().map(|l| Some(l.shared_column.as_str()))),
                    utf8(r.iter().map(|l| Some(l.source.as_str()))),
                    utf8(r.iter().map(|l| Some(l.source_table.as_str()))),
                    utf8(r.iter().map(|l| Some(l.source_expr.as_str()))),
                    utf8(r.iter().map(|l| l.transform.as_deref())),
                ]
            }
            SystemTable::Loads => {
                let r = self.loads()?;
                vec![
                    utf8(r.iter().map(|l| Some(l.source.as_str()))),
                    utf8(r.iter().map(|l| Some(l.source_table.as_str()))),
                    utf8(r.iter().map(|l| Some(l.target_table.as_str()))),
                    int64(r.iter().map(|l| Some(l.accepted as i64))),
                    int64(r.iter().map(|l| Some(l.rejected as i64))),
                    timestamps(r.iter().map(|l| Some(l.loaded_at))),
                ]
            }
        };
        RecordBatch::try_new(table.schema(), columns).map_err(|e| EngineError::Internal {
            message: format!("system.{} does not fit its schema: {e}", table.name()),
        })
    }
}

fn utf8<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}
fn int64(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(values.collect::<Int64Array>())
}
fn boolean(values: impl Iterator<Item = bool>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<BooleanArray>())
}
fn timestamps(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(
        values
            .collect::<TimestampMicrosecondArray>()
            .with_timezone("UTC"),
    )
}

/// The `system` schema: its tables exist by name and read the catalog when executed.
#[derive(Debug)]
pub struct SystemSchema {
    catalog: Arc<SystemCatalog>,
}

impl SystemSchema {
    pub fn new(catalog: Arc<SystemCatalog>) -> Self {
        Self { catalog }
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        SystemTable::ALL
            .iter()
            .map(|t| t.name().to_string())
            .collect()
    }

    async fn table(
        &self,
        name: &str,
    ) -> std::result::Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        let Some(table) = SystemTable::by_name(name) else {
            return Ok(None);
        };
        let partition = SystemPartition {
            table,
            schema: table.schema(),
            catalog: self.catalog.clone(),
        };
        let provider = StreamingTable::try_new(table.schema(), vec![Arc::new(partition)])?;
        Ok(Some(Arc::new(provider)))
    }

    fn table_exist(&self, name: &str) -> bool {
        SystemTable::by_name(name).is_some()
    }
}

/// One system table as a stream: its rows are read when the query executes.
#[derive(Debug)]
struct SystemPartition {
    table: SystemTable,
    schema: SchemaRef,
    catalog: Arc<SystemCatalog>,
}

impl PartitionStream for SystemPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (catalog, table) = (self.catalog.clone(), self.table);
        let rows = futures::stream::once(async move {
            catalog
                .batch(table)
                .map_err(|e| DataFusionError::External(Box::new(e)))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), rows))
    }
}
