//! The server's one error enum and the one mapping from it to gRPC status codes. Messages
//! say what to change: which column or policy, which source, which limit. An internal error
//! (the hub's own state, store or encoding failed) is logged with a fresh id, and the client
//! gets only that id: the log has the details, the wire has none of the hub's internals.

use arrow_flight::error::FlightError;
use gridhub_engine::EngineError;
use gridhub_policy::PolicyError;
use tonic::{Code, Status};

/// The forms a time may be written in, as error messages list them.
pub const TIME_FORMS: &str = "RFC 3339, e.g. 2026-12-01T08:00:00+08:00 or 2026-12-01T00:00:00Z";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{message}")]
    Unauthenticated { message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("token store {path}: {message}")]
    TokenStore { path: String, message: String },
    #[error(
        "{principal} already runs {limit} queries, the most one principal may run at once \
         ([server] max_queries_per_principal); wait for one to finish"
    )]
    TooManyQueries { principal: String, limit: usize },
    #[error("the query ran longer than {seconds} s ([server] query_timeout_secs) and was stopped")]
    Timeout { seconds: u64 },
    #[error("{0}")]
    BadRequest(String),
    #[error("'{text}' is not a time ({reason}); write it as {TIME_FORMS}")]
    BadTimestamp { text: String, reason: String },
    /// A `DoGet` ticket this hub did not hand out.
    #[error("not a gridhub statement ticket: get one from GetFlightInfo")]
    BadTicket,
    #[error("no prepared statement {handle}: it was closed or expired (prepare it again)")]
    UnknownPreparedStatement { handle: String },
    #[error("{limit} prepared statements are open: close some")]
    TooManyPreparedStatements { limit: usize },
    #[error("parameter: {message}")]
    BadParameter { message: String },
    /// The hub could not encode its own answer (a schema, a ticket, a header, a batch).
    #[error("cannot encode {what}: {message}")]
    Encode { what: &'static str, message: String },
    #[error("cannot serve: {0}")]
    Startup(String),
}

impl ServerError {
    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            ServerError::Unauthenticated { .. } => Code::Unauthenticated,
            ServerError::Engine(e) => engine_code(e),
            ServerError::TokenStore { .. } | ServerError::Encode { .. } => Code::Internal,
            ServerError::TooManyQueries { .. } | ServerError::TooManyPreparedStatements { .. } => {
                Code::ResourceExhausted
            }
            ServerError::Timeout { .. } => Code::DeadlineExceeded,
            ServerError::BadRequest(_)
            | ServerError::BadTimestamp { .. }
            | ServerError::BadTicket
            | ServerError::BadParameter { .. } => Code::InvalidArgument,
            ServerError::UnknownPreparedStatement { .. } => Code::NotFound,
            ServerError::Startup(_) => Code::FailedPrecondition,
        }
    }

    /// A call that reached a service without passing the auth layer.
    pub fn not_authenticated() -> Self {
        ServerError::Unauthenticated {
            message: "the call was not authenticated".into(),
        }
    }

    /// An arrow encoding failure of the hub's answer.
    pub fn encode(what: &'static str, e: impl std::fmt::Display) -> Self {
        ServerError::Encode {
            what,
            message: e.to_string(),
        }
    }
}

fn engine_code(e: &EngineError) -> Code {
    match e {
        EngineError::Denied { .. } => Code::PermissionDenied,
        EngineError::UnknownTable { .. } => Code::NotFound,
        EngineError::Sql { .. } | EngineError::QueryTooLarge { .. } => Code::InvalidArgument,
        // The caller's credentials name a principal the config no longer has, or an action
        // names one that does not exist.
        EngineError::UnknownPrincipal { .. } => Code::NotFound,
        EngineError::Policy(p) => match p {
            PolicyError::Invalid(_) | PolicyError::Emergency(_) => Code::InvalidArgument,
            PolicyError::UnknownVersion { .. }
            | PolicyError::UnknownEmergency(_)
            | PolicyError::UnknownProposal(_) => Code::NotFound,
            // Approving or rejecting a proposal that was decided already.
            PolicyError::Proposal(_) => Code::FailedPrecondition,
            PolicyError::Store { .. } | PolicyError::Dir { .. } => Code::Internal,
        },
        // A source that cannot be read: the message names it.
        EngineError::Connector(_) => Code::Unavailable,
        EngineError::ResourcesExhausted { .. } | EngineError::LoadMemory { .. } => {
            Code::ResourceExhausted
        }
        EngineError::ConfigNotFound { .. }
        | EngineError::Config { .. }
        | EngineError::Mapping(_) => Code::FailedPrecondition,
        EngineError::Catalog(_) | EngineError::Audit(_) => Code::Internal,
        // A query that does not plan names something that is not there or does not fit.
        EngineError::Plan { .. } => Code::InvalidArgument,
        EngineError::Execution { .. }
        | EngineError::Internal { .. }
        | EngineError::Snapshot { .. } => Code::Internal,
    }
}

/// A fresh id for one internal error: 8 random bytes as hex.
pub fn error_id() -> String {
    use rand::TryRngCore;
    let mut bytes = [0u8; 8];
    let _ = rand::rngs::OsRng.try_fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What a client reads for the internal error `id`.
pub fn internal_message(id: &str) -> String {
    format!("internal error {id} (the hub's log has the details)")
}

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        let code = e.code();
        if code == Code::Internal {
            let id = error_id();
            tracing::error!(error_id = %id, error = %e, "internal error");
            return Status::internal(internal_message(&id));
        }
        Status::new(code, e.to_string())
    }
}

/// Any error of the server or the engine as a status (through the one mapping).
pub fn status(e: impl Into<ServerError>) -> Status {
    Status::from(e.into())
}

/// A Flight encoder's or decoder's error as a status: a status it carries (the hub's own,
/// already mapped, or the transport's) stays as it is; anything else is `otherwise`.
pub fn flight_status(e: FlightError, otherwise: impl FnOnce(FlightError) -> ServerError) -> Status {
    match e {
        FlightError::Tonic(s) => *s,
        other => Status::from(otherwise(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_codes_clients_act_on() {
        let cases = [
            (
                ServerError::Engine(EngineError::Denied {
                    message: "x".into(),
                }),
                Code::PermissionDenied,
            ),
            (
                ServerError::Engine(EngineError::resources_exhausted("…".into())),
                Code::ResourceExhausted,
            ),
            (ServerError::Timeout { seconds: 1 }, Code::DeadlineExceeded),
            (
                ServerError::TooManyQueries {
                    principal: "p".into(),
                    limit: 1,
                },
                Code::ResourceExhausted,
            ),
            (
                ServerError::Unauthenticated {
                    message: "unknown token".into(),
                },
                Code::Unauthenticated,
            ),
            (
                ServerError::Engine(EngineError::sql("syntax")),
                Code::InvalidArgument,
            ),
            (
                ServerError::Engine(EngineError::QueryTooLarge {
                    message: "an expression is nested more than 128 deep".into(),
                }),
                Code::InvalidArgument,
            ),
            (
                ServerError::BadTimestamp {
                    text: "yesterday".into(),
                    reason: "input contains invalid characters".into(),
                },
                Code::InvalidArgument,
            ),
            (ServerError::BadTicket, Code::InvalidArgument),
            (
                ServerError::UnknownPreparedStatement { handle: "h".into() },
                Code::NotFound,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(Status::from(e).code(), code);
        }
    }

    /// The client reads an id, never the internal message (paths, SQL of the hub's own
    /// queries, store errors); a second failure gets another id.
    #[test]
    fn an_internal_error_reaches_the_client_as_an_id_only() {
        let internal = || {
            ServerError::Engine(EngineError::Internal {
                message: "/var/lib/gridhub/state/snapshot.parquet: secret detail".into(),
            })
        };
        let first = Status::from(internal());
        assert_eq!(first.code(), Code::Internal);
        let id = first
            .message()
            .strip_prefix("internal error ")
            .and_then(|rest| rest.strip_suffix(" (the hub's log has the details)"))
            .unwrap_or_else(|| panic!("{}", first.message()));
        assert_eq!(id.len(), 16);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert!(!first.message().contains("secret"), "{}", first.message());
        assert_ne!(Status::from(internal()).message(), first.message());
    }

    #[test]
    fn a_bad_time_names_the_text_and_the_accepted_forms() {
        let s = Status::from(ServerError::BadTimestamp {
            text: "yesterday".into(),
            reason: "input contains invalid characters".into(),
        });
        assert!(s.message().contains("'yesterday'"), "{}", s.message());
        assert!(s.message().contains("RFC 3339"), "{}", s.message());
        assert!(!s.message().contains("SQL"), "{}", s.message());
    }
}
