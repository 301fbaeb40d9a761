//! The mapping crate's one error enum. Every variant names the mapping it happened in.

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("mapping {mapping}: shared table {table} has no column '{column}' (columns: {known})")]
    UnknownTargetColumn {
        mapping: String,
        table: String,
        column: String,
        known: String,
    },
    #[error("mapping {mapping}, column {column}: {message}")]
    BadSpec {
        mapping: String,
        column: String,
        message: String,
    },
    #[error("mapping {mapping}: {source}")]
    Plan {
        mapping: String,
        #[source]
        source: Box<datafusion::error::DataFusionError>,
    },
    #[error("shared table {table} has no mapped source")]
    NoSources { table: String },
}

pub type Result<T, E = MappingError> = std::result::Result<T, E>;
