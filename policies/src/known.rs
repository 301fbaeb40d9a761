//! What policies may name: tables with their columns and tags, sources, purposes. The engine
//! builds a [`Known`] from its catalog; [`Known::shared`] covers the shared tables alone.

use gridhub_catalog::{TableDef, Tag, shared_tables};

use crate::PURPOSES;

/// The object name of the rejects table.
pub const REJECTS: &str = "_rejects";

/// What kind of table a [`TableInfo`] describes; decides the object a policy line names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// A shared table (`person`): named by its name, columns as `person.phone`.
    Shared,
    /// A raw table of a source: named `source:<source>` as a whole.
    Raw { source: String },
    /// The rejects table: named `_rejects`, columns as `_rejects.<column>`.
    Rejects,
}

/// A column and its tag. Raw source columns carry the tag of the shared column they map to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ColumnInfo {
    pub name: String,
    pub tag: Tag,
}

/// A table as a query names it (`person`, `src_property_a.住户`, `_rejects`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableInfo {
    pub name: String,
    pub kind: TableKind,
    pub has_area_code: bool,
    pub columns: Vec<ColumnInfo>,
}

impl TableInfo {
    /// The shared table `def`, every column (provenance columns included) with its tag.
    pub fn shared(def: &TableDef) -> TableInfo {
        TableInfo {
            name: def.name.to_owned(),
            kind: TableKind::Shared,
            has_area_code: def.has_area_code(),
            columns: def
                .columns
                .iter()
                .map(|c| ColumnInfo {
                    name: c.name.to_owned(),
                    tag: c.tag,
                })
                .collect(),
        }
    }

    /// The object policy lines name this table by: `person`, `source:<source>`, `_rejects`.
    pub fn object(&self) -> String {
        match &self.kind {
            TableKind::Shared => self.name.clone(),
            TableKind::Raw { source } => format!("source:{source}"),
            TableKind::Rejects => REJECTS.to_owned(),
        }
    }

    /// Whether policy lines may name this table's columns one by one (`person.phone`).
    pub(crate) fn columns_nameable(&self) -> bool {
        !matches!(self.kind, TableKind::Raw { .. })
    }
}

/// What validation checks policy lines against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Shared tables, raw tables and the rejects table.
    pub tables: Vec<TableInfo>,
    /// Configured source names (objects `source:<name>`).
    pub sources: Vec<String>,
    /// Purposes a query may state (objects of the purpose field).
    pub purposes: Vec<String>,
}

impl Known {
    /// The shared tables of the catalog and the default [`PURPOSES`]; no sources, no rejects.
    pub fn shared() -> Known {
        Known {
            tables: shared_tables().iter().map(TableInfo::shared).collect(),
            sources: Vec::new(),
            purposes: PURPOSES.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// A shared or rejects table by name: the tables whose columns lines may name.
    pub(crate) fn nameable_table(&self, name: &str) -> Option<&TableInfo> {
        self.tables
            .iter()
            .find(|t| t.name == name && t.columns_nameable())
    }

    /// Names of the shared tables, for error messages.
    pub(crate) fn shared_names(&self) -> Vec<&str> {
        self.tables
            .iter()
            .filter(|t| t.kind == TableKind::Shared)
            .map(|t| t.name.as_str())
            .collect()
    }
}
