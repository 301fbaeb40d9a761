//! The `system.*` tables: the catalog as SQL.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use gridhub_catalog::shared_tables;

use crate::error::{EngineError, Result};
use crate::hub::{Hub, boolean, int64, timestamps, ts_type, utf8};

/// The system tables and what they hold.
pub const TABLES: [(&str, &str); 6] = [
    (
        "sources",
        "configured sources: type, location, health (ok / broken, why, what is served), refresh and load times",
    ),
    (
        "source_tables",
        "raw tables of each source with their columns and row counts",
    ),
    (
        "tables",
        "shared tables: label, key, rows after merging, contributing sources, snapshot served, broken sources",
    ),
    (
        "columns",
        "columns of the shared tables with type, tag and Chinese label",
    ),
    (
        "lineage",
        "which source column or expression feeds which shared column",
    ),
    (
        "loads",
        "accepted and rejected rows per mapping at the last load",
    ),
];

fn batch(fields: Vec<(&str, DataType)>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let schema = Schema::new(
        fields
            .into_iter()
            .map(|(n, t)| Field::new(n, t, true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| EngineError::Internal {
        message: format!("a system table's columns do not fit its schema: {e}"),
    })
}

/// Build every system table from the catalog store and the hub's live state.
pub(crate) fn tables(hub: &Hub) -> Result<Vec<(&'static str, RecordBatch)>> {
    use DataType::{Boolean, Int64, Utf8};
    let store = hub.store();
    let recorded = store.sources()?;
    let live = hub.sources();

    let sources = batch(
        vec![
            ("name", Utf8),
            ("type", Utf8),
            ("label", Utf8),
            ("location", Utf8),
            ("health", Utf8),
            ("materialised", Boolean),
            ("last_refresh", ts_type()),
            ("last_load", ts_type()),
            ("state", Utf8),
            ("reason", Utf8),
            ("drift", Utf8),
            ("serving", Utf8),
            ("broken_since", ts_type()),
            ("on_error", Utf8),
        ],
        vec![
            utf8(live.iter().map(|s| Some(s.name.clone())).collect()),
            utf8(live.iter().map(|s| Some(s.kind.clone())).collect()),
            utf8(live.iter().map(|s| s.label.clone()).collect()),
            utf8(live.iter().map(|s| Some(s.connector.location())).collect()),
            utf8(live.iter().map(|s| Some(s.status.to_string())).collect()),
            boolean(
                live.iter()
                    .map(|s| Some(s.connector.is_materialised()))
                    .collect(),
            ),
            timestamps(
                live.iter()
                    .map(|s| {
                        s.connector
                            .last_refresh()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map(|d| d.as_micros() as i64)
                    })
                    .collect(),
            ),
            timestamps(
                live.iter()
                    .map(|s| {
                        recorded
                            .iter()
                            .find(|r| r.name == s.name)
                            .and_then(|r| r.last_load)
                    })
                    .collect(),
            ),
            utf8(
                live.iter()
                    .map(|s| Some(s.status.state().to_string()))
                    .collect(),
            ),
            utf8(
                live.iter()
                    .map(|s| s.status.fault().map(|f| f.reason.clone()))
                    .collect(),
            ),
            utf8(
                live.iter()
                    .map(|s| s.status.fault().and_then(|f| f.drift_text()))
                    .collect(),
            ),
            utf8(
                live.iter()
                    .map(|s| {
                        Some(
                            s.status
                                .fault()
                                .map(|f| f.serving.name())
                                .unwrap_or("source")
                                .to_string(),
                        )
                    })
                    .collect(),
            ),
            timestamps(
                live.iter()
                    .map(|s| s.status.fault().and_then(|f| f.since))
                    .collect(),
            ),
            utf8(
                live.iter()
                    .map(|s| Some(s.on_error.name().to_string()))
                    .collect(),
            ),
        ],
    )?;

    let st = store.source_tables()?;
    let source_tables = batch(
        vec![
            ("source", Utf8),
            ("table_name", Utf8),
            ("columns", Utf8),
            ("row_count", Int64),
        ],
        vec![
            utf8(st.iter().map(|t| Some(t.source.clone())).collect()),
            utf8(st.iter().map(|t| Some(t.table.clone())).collect()),
            utf8(
                st.iter()
                    .map(|t| {
                        Some(
                            t.columns
                                .iter()
                                .map(|(n, ty)| format!("{n}: {ty}"))
                                .collect::<Vec<_>>()
                                .join(", "),
                        )
                    })
                    .collect(),
            ),
            int64(st.iter().map(|t| t.row_count.map(|n| n as i64)).collect()),
        ],
    )?;

    let counts = store.shared_counts()?;
    let snapshot = hub.snapshot();
    let defs = shared_tables();
    let count_of = |name: &str| counts.iter().find(|c| c.table == name);
    let tables = batch(
        vec![
            ("name", Utf8),
            ("label", Utf8),
            ("key", Utf8),
            ("rows", Int64),
            ("sources", Utf8),
            ("loaded_at", ts_type()),
            ("served_from", Utf8),
            ("snapshot_at", ts_type()),
            ("degraded", Utf8),
        ],
        vec![
            utf8(defs.iter().map(|d| Some(d.name.to_string())).collect()),
            utf8(defs.iter().map(|d| Some(d.label.to_string())).collect()),
            utf8(defs.iter().map(|d| Some(d.key.join(", "))).collect()),
            int64(
                defs.iter()
                    .map(|d| count_of(d.name).map(|c| c.rows as i64))
                    .collect(),
            ),
            utf8(
                defs.iter()
                    .map(|d| Some(hub.sources_of(d.name).join(",")))
                    .collect(),
            ),
            timestamps(
                defs.iter()
                    .map(|d| count_of(d.name).map(|c| c.loaded_at))
                    .collect(),
            ),
            utf8(
                defs.iter()
                    .map(|d| {
                        let refused = hub
                            .table_faults(d.name)
                            .is_some_and(|f| !f.refused.is_empty());
                        let served =
                            !refused && snapshot.as_ref().and_then(|s| s.file(d.name)).is_some();
                        Some(if served { "snapshot" } else { "live" }.to_string())
                    })
                    .collect(),
            ),
            timestamps(
                defs.iter()
                    .map(|d| {
                        snapshot
                            .as_ref()
                            .filter(|s| s.file(d.name).is_some())
                            .map(|s| s.manifest.built_at)
                    })
                    .collect(),
            ),
            utf8(
                defs.iter()
                    .map(|d| hub.table_faults(d.name).and_then(|f| f.describe()))
                    .collect(),
            ),
        ],
    )?;

    let cols: Vec<(&str, usize, &gridhub_catalog::ColumnDef, bool)> = defs
        .iter()
        .flat_map(|d| {
            d.columns
                .iter()
                .enumerate()
                .map(move |(i, c)| (d.name, i, c, d.key.contains(&c.name)))
        })
        .collect();
    let columns = batch(
        vec![
            ("table_name", Utf8),
            ("position", Int64),
            ("name", Utf8),
            ("data_type", Utf8),
            ("tag", Utf8),
            ("label", Utf8),
            ("is_key", Boolean),
        ],
        vec![
            utf8(cols.iter().map(|c| Some(c.0.to_string())).collect()),
            int64(cols.iter().map(|c| Some(c.1 as i64)).collect()),
            utf8(cols.iter().map(|c| Some(c.2.name.to_string())).collect()),
            utf8(
                cols.iter()
                    .map(|c| Some(c.2.data_type.to_string()))
                    .collect(),
            ),
            utf8(cols.iter().map(|c| Some(c.2.tag.to_string())).collect()),
            utf8(cols.iter().map(|c| Some(c.2.label.to_string())).collect()),
            boolean(cols.iter().map(|c| Some(c.3)).collect()),
        ],
    )?;

    let lin = hub.lineage();
    let lineage = batch(
        vec![
            ("shared_table", Utf8),
            ("shared_column", Utf8),
            ("source", Utf8),
            ("source_table", Utf8),
            ("source_expr", Utf8),
            ("transform", Utf8),
        ],
        vec![
            utf8(lin.iter().map(|l| Some(l.shared_table.clone())).collect()),
            utf8(lin.iter().map(|l| Some(l.shared_column.clone())).collect()),
            utf8(lin.iter().map(|l| Some(l.source.clone())).collect()),
            utf8(lin.iter().map(|l| Some(l.source_table.clone())).collect()),
            utf8(lin.iter().map(|l| Some(l.source_expr.clone())).collect()),
            utf8(lin.iter().map(|l| l.transform.clone()).collect()),
        ],
    )?;

    let ls = store.load_stats()?;
    let loads = batch(
        vec![
            ("source", Utf8),
            ("source_table", Utf8),
            ("target_table", Utf8),
            ("accepted", Int64),
            ("rejected", Int64),
            ("loaded_at", ts_type()),
        ],
        vec![
            utf8(ls.iter().map(|l| Some(l.source.clone())).collect()),
            utf8(ls.iter().map(|l| Some(l.source_table.clone())).collect()),
            utf8(ls.iter().map(|l| Some(l.target_table.clone())).collect()),
            int64(ls.iter().map(|l| Some(l.accepted as i64)).collect()),
            int64(ls.iter().map(|l| Some(l.rejected as i64)).collect()),
            timestamps(ls.iter().map(|l| Some(l.loaded_at)).collect()),
        ],
    )?;

    Ok(vec![
        ("sources", sources),
        ("source_tables", source_tables),
        ("tables", tables),
        ("columns", columns),
        ("lineage", lineage),
        ("loads", loads),
    ])
}
