//! Declarative mappings from source tables into gridhub's shared tables.
//!
//! A mapping (`[[mappings]]` in the hub config, see docs/config.md) says how each shared
//! column is computed from a source row: a source column, a SQL expression or a constant,
//! then a normaliser or a value map, then a cast to the shared type. [`compile`] turns it
//! into DataFusion logical plans over the raw table — the accepted rows and the rejected
//! rows with their reasons — so the shared table is a view: filters and projections on it
//! reach the source scan. [`merge`] combines several sources of one shared table by key,
//! each column from the most authoritative source that has a value.

pub mod compile;
pub mod config;
pub mod error;
pub mod merge;

pub use compile::{ColumnRead, CompiledMapping, compile, rejects_columns};
pub use config::{ColumnOrigin, ColumnSpec, MappingConfig, TablePrecedence};
pub use error::{MappingError, Result};
pub use merge::merge;
