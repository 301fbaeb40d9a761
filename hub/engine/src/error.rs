//! The engine's one error enum. Messages are single sentences a user can act on.

use gridhub_catalog::CatalogError;
use gridhub_connector::ConnectorError;
use gridhub_mapping::MappingError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "config file not found: {path} (run `gridhub demo` to create one, or pass --config FILE)"
    )]
    ConfigNotFound { path: String },
    #[error("config {path}: {message}")]
    Config { path: String, message: String },
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("unknown table '{table}' (known tables: {known})")]
    UnknownTable { table: String, known: String },
    #[error("SQL error: {message}")]
    Sql { message: String },
    #[error("access denied: {message}")]
    Denied { message: String },
    /// A governed query failed (the message is the original error, as audited).
    #[error("{message}")]
    Governed { message: String },
    #[error("unknown principal '{id}' (principals: {known})")]
    UnknownPrincipal { id: String, known: String },
    #[error(transparent)]
    Policy(#[from] gridhub_policy::PolicyError),
    #[error(transparent)]
    Audit(#[from] gridhub_audit::AuditError),
    #[error("query failed: {message}")]
    Query { message: String },
    /// A query beyond the hub's bounds on SQL size, nesting or plan size.
    #[error("query too large: {message}")]
    QueryTooLarge { message: String },
    /// A query outgrew its memory pool (the message says which operator and how much).
    #[error("{message}")]
    ResourcesExhausted { message: String },
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
