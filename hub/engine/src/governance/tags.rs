//! The governed tables and how each is read: the tag of every column (what policies decide
//! on), the jurisdiction expression of its rows, its mask choices and presence columns.
//!
//! Shared tables are as the catalog defines them. A raw source table's column takes its tag
//! and mask from the shared columns it feeds, read off the compiled mappings' column
//! references (a column no mapping reads holds something nobody has classified: the most
//! sensitive tag, whatever its neighbours hold; `_row` is public). `_rejects` holds raw
//! values of every kind: its `raw` column is the most sensitive.

use std::collections::HashMap;

use datafusion::common::{Column, TableReference};
use datafusion::logical_expr::{Expr, lit};
use gridhub_catalog::{ColumnDef, Mask, Tag, shared_table, shared_tables};
use gridhub_mapping::{ColumnRead, CompiledMapping};
use gridhub_policy::{ColumnInfo, TableInfo, TableKind};

use crate::hub::{Hub, REJECTS_TABLE, source_schema};

/// How a governed table is read under a policy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reading {
    /// The row's area code. Shared tables: the `area_code` column; raw tables: the mapping's
    /// area_code expression over the raw columns, one per mapping that gives one (a row must
    /// lie in the jurisdiction by each). Empty: the table has no jurisdiction.
    pub(crate) area: Vec<Expr>,
    /// Column → how it reads where masked (absent: [`Mask::Null`]).
    masks: HashMap<String, Mask>,
    /// Whether the area is the table's own `area_code` column (a shared table's).
    own_area_code: bool,
    /// Columns whose reading decides whether a row is shown at all (see
    /// [`gridhub_catalog::TableDef::presence_column`]): a row is shown only where each of
    /// them reads clear.
    pub(crate) presence: Vec<String>,
}

impl Reading {
    fn shared(def: &gridhub_catalog::TableDef) -> Reading {
        let own_area_code = def.has_area_code();
        Reading {
            area: if own_area_code {
                vec![column("area_code")]
            } else {
                Vec::new()
            },
            masks: def
                .columns
                .iter()
                .map(|c| (c.name.to_string(), c.mask))
                .collect(),
            own_area_code,
            presence: def
                .presence_column()
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }

    /// How column `name` reads where masked.
    pub(crate) fn mask(&self, name: &str) -> Mask {
        self.masks.get(name).copied().unwrap_or(Mask::Null)
    }

    /// Whether the rows' area is the table's own `area_code` column, so a snapshot's
    /// statistics on that column say where its rows lie.
    pub(crate) fn area_is_own_column(&self) -> bool {
        self.own_area_code
    }

    /// Rows whose area code starts with one of `areas` (by every area expression).
    pub(crate) fn in_areas(&self, areas: &[String]) -> Expr {
        if self.area.is_empty() {
            return lit(false);
        }
        self.area
            .iter()
            .map(|area| {
                areas
                    .iter()
                    .map(|a| area.clone().like(lit(format!("{a}%"))))
                    .reduce(Expr::or)
                    .unwrap_or(lit(false))
            })
            .reduce(Expr::and)
            .unwrap_or(lit(false))
    }
}

/// The governed tables as policies see them, and how each is read.
pub(crate) struct GovernedTables {
    pub(crate) tables: Vec<TableInfo>,
    pub(crate) readings: HashMap<String, Reading>,
}

/// The shared column whose tag and mask a raw column read by `read` takes: the raw value of
/// a pseudonymised `person_id` is a resident ID, so it is read as `person.id_number`
/// (identity), not as the public pseudonym it becomes.
fn fed_column(
    target: &'static gridhub_catalog::TableDef,
    read: &ColumnRead,
) -> Option<&'static ColumnDef> {
    if read.shared == "person_id" || read.transform.as_deref() == Some("person_id") {
        return shared_table("person").and_then(|d| d.column("id_number"));
    }
    target.column(read.shared)
}

/// The governed tables of `hub`: shared tables, every raw table of its sources, `_rejects`.
pub(crate) async fn governed_tables(hub: &Hub) -> GovernedTables {
    let mut tables: Vec<TableInfo> = shared_tables().iter().map(TableInfo::shared).collect();
    let mut readings: HashMap<String, Reading> = shared_tables()
        .iter()
        .map(|d| (d.name.to_string(), Reading::shared(d)))
        .collect();
    for s in hub.sources() {
        for t in &s.tables {
            let columns: Vec<String> = hub
                .context()
                .table_provider(TableReference::partial(source_schema(&s.name), t.as_str()))
                .await
                .map(|p| {
                    p.schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect()
                })
                .unwrap_or_default();
            let mappings: Vec<&CompiledMapping> = hub
                .mappings()
                .iter()
                .filter(|m| m.source == s.name && &m.source_table == t)
                .collect();
            let (info, reading) = raw_table(&s.name, t, &columns, &mappings);
            readings.insert(info.name.clone(), reading);
            tables.push(info);
        }
    }
    tables.push(TableInfo {
        name: REJECTS_TABLE.to_string(),
        kind: TableKind::Rejects,
        has_area_code: false,
        columns: gridhub_mapping::rejects_columns()
            .iter()
            .map(|c| ColumnInfo {
                name: c.to_string(),
                tag: if *c == "raw" {
                    Tag::MOST_SENSITIVE
                } else {
                    Tag::Public
                },
            })
            .collect(),
    });
    readings.insert(REJECTS_TABLE.to_string(), Reading::default());
    GovernedTables { tables, readings }
}

/// A raw table with `columns`, read by `mappings`: its policy view and its reading.
fn raw_table(
    source: &str,
    table: &str,
    columns: &[String],
    mappings: &[&CompiledMapping],
) -> (TableInfo, Reading) {
    let mut infos = Vec::with_capacity(columns.len());
    let mut masks = HashMap::new();
    let mut presence = Vec::new();
    for c in columns {
        // Every (mapping, read) that references this raw column: the shared columns it feeds.
        let fed: Vec<(&CompiledMapping, &ColumnRead)> = mappings
            .iter()
            .flat_map(|m| m.reads.iter().map(move |r| (*m, r)))
            .filter(|(_, r)| r.raw.contains(c))
            .collect();
        let fed = || fed.iter().copied();
        let tag = if c == gridhub_connector::ROW_NUMBER_COLUMN {
            Tag::Public
        } else {
            fed()
                .filter_map(|(m, r)| fed_column(m.target, r))
                .map(|d| d.tag)
                .max()
                .unwrap_or(Tag::MOST_SENSITIVE)
        };
        infos.push(ColumnInfo {
            name: c.clone(),
            tag,
        });
        // A raw column that is, as configured, one shared column's value (alone in its
        // expression) reads masked like that column: the most sensitive one when it is
        // several.
        if let Some(def) = fed()
            .filter(|(_, r)| r.raw.len() == 1)
            .filter_map(|(m, r)| fed_column(m.target, r))
            .max_by_key(|d| d.tag)
        {
            masks.insert(c.clone(), def.mask);
        }
        // Raw columns that feed a shared table's presence column decide, like it, whether a
        // raw row is shown at all.
        if fed().any(|(m, r)| m.target.presence_column() == Some(r.shared)) {
            presence.push(c.clone());
        }
    }
    let area: Vec<Expr> = mappings
        .iter()
        .filter_map(|m| m.area_code.clone())
        .collect();
    let info = TableInfo {
        name: format!("{}.{table}", source_schema(source)),
        kind: TableKind::Raw {
            source: source.to_string(),
        },
        has_area_code: !area.is_empty(),
        columns: infos,
    };
    let reading = Reading {
        area,
        masks,
        own_area_code: false,
        presence,
    };
    (info, reading)
}

pub(crate) fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}
