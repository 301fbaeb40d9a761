//! Integration tests of the built-in connectors against real files, queried through a
//! DataFusion `SessionContext`.

mod support;

#[cfg(feature = "csv")]
mod csv;
#[cfg(feature = "parquet")]
mod parquet;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "xlsx")]
mod xlsx;

mod options;
