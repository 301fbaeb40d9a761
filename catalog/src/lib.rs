//! The gridhub catalog: the shared-table model (schemas, tags, Chinese labels) and the
//! persisted catalog of sources, their tables, lineage, row counts and refresh times.
//!
//! The model ([`model`]) is compiled in: it is the contract every connector maps into and
//! every policy keys off. The store ([`store`]) is an embedded SQLite database under the
//! hub's state directory, so what the hub learned about its sources survives a restart;
//! the engine serves it as the `system.*` tables and `gridhub catalog` prints it.

pub mod model;
pub mod store;

pub use model::{ColumnDef, Mask, TableDef, Tag, shared_table, shared_table_names, shared_tables};
pub use store::{
    CatalogError, CatalogStore, LineageRecord, LoadStat, SharedTableCount, SourceRecord,
    SourceTableRecord,
};
