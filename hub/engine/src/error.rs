//! The engine's one error enum. Messages are single sentences a user can act on.
//!
//! DataFusion's errors stay the `#[source]` of the engine's and are classified by their
//! typed variants ([`EngineError::plan`], [`EngineError::execution`]), never by their text.

use datafusion::error::DataFusionError;
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
    /// The SQL text does not parse.
    #[error("SQL error: {message}")]
    Sql { message: String },
    /// The query does not plan: a column, function or type that does not exist or fit.
    #[error("SQL error: {}", planning_message(source))]
    Plan {
        #[source]
        source: DataFusionError,
    },
    #[error("access denied: {message}")]
    Denied { message: String },
    #[error("unknown principal '{id}' (principals: {known})")]
    UnknownPrincipal { id: String, known: String },
    #[error(transparent)]
    Policy(#[from] gridhub_policy::PolicyError),
    #[error(transparent)]
    Audit(#[from] gridhub_audit::AuditError),
    /// The plan failed while it ran (a source read, a cast of a value).
    #[error("query failed: {source}")]
    Execution {
        #[source]
        source: DataFusionError,
    },
    /// Something the hub itself got wrong (a bug, or state it cannot read); the server logs
    /// it with an id and tells the client only the id.
    #[error("internal error: {message}")]
    Internal { message: String },
    /// A query beyond the hub's bounds on SQL size, nesting or plan size.
    #[error("query too large: {message}")]
    QueryTooLarge { message: String },
    /// A load's merge outgrew its memory pool (it spills what it can).
    #[error(
        "{} — the load's memory pool is too small for this merge: raise [hub] load_memory_mb (now {limit_mb} MiB)",
        .source.find_root()
    )]
    LoadMemory {
        #[source]
        source: DataFusionError,
        limit_mb: usize,
    },
    /// A snapshot file or directory that cannot be written or read.
    #[error("snapshot {path}: {message}")]
    Snapshot { path: String, message: String },
    /// A query outgrew its memory pool (the message says which operator and how much).
    #[error("{}", .source.find_root())]
    ResourcesExhausted {
        #[source]
        source: DataFusionError,
    },
}

impl EngineError {
    /// A DataFusion error while parsing or planning, by its kind.
    pub fn plan(e: DataFusionError) -> EngineError {
        match e.find_root() {
            DataFusionError::SQL(parser, _) => EngineError::Sql {
                message: parser.to_string().replace("sql parser error: ", ""),
            },
            DataFusionError::ResourcesExhausted(_) => EngineError::ResourcesExhausted { source: e },
            _ => EngineError::Plan { source: e },
        }
    }

    /// A DataFusion error while the plan runs: memory exhaustion keeps its kind.
    pub fn execution(e: DataFusionError) -> EngineError {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(_) => EngineError::ResourcesExhausted { source: e },
            _ => EngineError::Execution { source: e },
        }
    }

    /// A query stopped because it needs more memory than it may use.
    pub fn resources_exhausted(message: String) -> EngineError {
        EngineError::ResourcesExhausted {
            source: DataFusionError::ResourcesExhausted(message),
        }
    }

    /// The column a planning error says does not exist: (qualifier, name).
    pub fn missing_field(&self) -> Option<(Option<String>, String)> {
        let EngineError::Plan { source } = self else {
            return None;
        };
        let DataFusionError::SchemaError(err, _) = source.find_root() else {
            return None;
        };
        match err.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { field, .. } => Some((
                field.relation.as_ref().map(|r| r.table().to_string()),
                field.name.clone(),
            )),
            _ => None,
        }
    }
}

/// A planning error as one sentence: the planner's message without DataFusion's prefix.
fn planning_message(e: &DataFusionError) -> String {
    match e.find_root() {
        DataFusionError::Plan(message) => message.clone(),
        DataFusionError::SchemaError(err, _) => err.to_string(),
        other => other.to_string(),
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
