//! The engine's one error enum. Messages are single sentences a user can act on.
//!
//! DataFusion's errors stay the `#[source]` of the engine's and are classified by their
//! typed variants ([`EngineError::plan`], [`EngineError::execution`]), never by their text.

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::parser::ParserError;
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
    /// The statement is not valid SQL, or does not plan (unknown column, wrong types). A
    /// syntax error carries where the parser stopped.
    #[error("SQL error{}: {message}", at(.position))]
    Sql {
        message: String,
        position: Option<SqlPosition>,
    },
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
            DataFusionError::SQL(..) => EngineError::syntax(&e),
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

/// Where in the statement the SQL parser stopped (both from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlPosition {
    pub line: u64,
    pub column: u64,
}

impl std::fmt::Display for SqlPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

fn at(position: &Option<SqlPosition>) -> String {
    position.map(|p| format!(" at {p}")).unwrap_or_default()
}

impl EngineError {
    /// How a query that ended with this error is recorded: refused by policy, or failed.
    pub fn outcome(&self) -> gridhub_audit::Outcome {
        match self {
            EngineError::Denied { .. } => gridhub_audit::Outcome::Denied,
            _ => gridhub_audit::Outcome::Error,
        }
    }

    /// A SQL error without a position (the statement parsed; planning refused it).
    pub fn sql(message: impl Into<String>) -> Self {
        EngineError::Sql {
            message: message.into(),
            position: None,
        }
    }

    /// A syntax error of the SQL parser, with the position it stopped at. DataFusion's own
    /// parser attaches a typed [`Diagnostic`](datafusion::common::Diagnostic) span; errors of
    /// sqlparser (0.62) carry their [`Location`](datafusion::sql::sqlparser::tokenizer::Location)
    /// only as the suffix its `Display` writes (" at Line: L, Column: C"), which is read
    /// back here and removed from the message.
    pub fn syntax(error: &DataFusionError) -> Self {
        let typed = error
            .diagnostic()
            .and_then(|d| d.span)
            .filter(|s| s.start.line > 0)
            .map(|s| SqlPosition {
                line: s.start.line,
                column: s.start.column,
            });
        let text = match error.find_root() {
            DataFusionError::SQL(parser, _) => match parser.as_ref() {
                ParserError::ParserError(m) | ParserError::TokenizerError(m) => m.clone(),
                other => other.to_string(),
            },
            other => other.to_string(),
        };
        let (message, written) = split_location(&text);
        EngineError::Sql {
            message: message.to_string(),
            position: typed.or(written),
        }
    }
}

/// `"Expected: …, found: FORM at Line: 1, Column: 13"` → the message and the position.
fn split_location(text: &str) -> (&str, Option<SqlPosition>) {
    let Some((message, location)) = text.rsplit_once(" at Line: ") else {
        return (text, None);
    };
    let parsed = location
        .split_once(", Column: ")
        .and_then(|(line, column)| {
            // A tokenizer error may follow its location with more text; the digits lead.
            let digits = |s: &str| -> Option<u64> {
                let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
                s[..end].parse().ok()
            };
            Some(SqlPosition {
                line: digits(line)?,
                column: digits(column)?,
            })
        });
    match parsed {
        Some(p) => (message, Some(p)),
        None => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parser_error_keeps_its_position_apart_from_its_message() {
        let e = datafusion::sql::parser::DFParser::parse_sql("SELECT name FORM person")
            .expect_err("not SQL");
        let EngineError::Sql { message, position } = EngineError::syntax(&e) else {
            panic!("not a SQL error");
        };
        assert_eq!(
            position,
            Some(SqlPosition {
                line: 1,
                column: 18
            })
        );
        assert!(!message.contains("Line"), "{message}");
        assert!(message.contains("found: person"), "{message}");
    }

    #[test]
    fn a_message_without_a_location_stays_whole() {
        assert_eq!(split_location("Expected: x"), ("Expected: x", None));
        assert_eq!(
            split_location("bad at Line: 2, Column: 5"),
            ("bad", Some(SqlPosition { line: 2, column: 5 }))
        );
    }
}
