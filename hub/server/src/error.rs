//! The server's one error enum and the one mapping from the hub's errors to gRPC status
//! codes. Messages say what to change: which column or policy, which source, which limit.

use gridhub_engine::EngineError;
use gridhub_policy::PolicyError;
use tonic::{Code, Status};

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
    #[error("cannot serve: {0}")]
    Startup(String),
}

impl ServerError {
    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            ServerError::Unauthenticated { .. } => Code::Unauthenticated,
            ServerError::Engine(e) => engine_code(e),
            ServerError::TokenStore { .. } => Code::Internal,
            ServerError::TooManyQueries { .. } => Code::ResourceExhausted,
            ServerError::Timeout { .. } => Code::DeadlineExceeded,
            ServerError::BadRequest(_) => Code::InvalidArgument,
            ServerError::Startup(_) => Code::FailedPrecondition,
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

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

/// Engine errors straight to a status (through the one mapping).
pub fn status(e: impl Into<ServerError>) -> Status {
    Status::from(e.into())
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
                ServerError::Engine(EngineError::Sql {
                    message: "syntax".into(),
                }),
                Code::InvalidArgument,
            ),
            (
                ServerError::Engine(EngineError::QueryTooLarge {
                    message: "an expression is nested more than 128 deep".into(),
                }),
                Code::InvalidArgument,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(Status::from(e).code(), code);
        }
    }
}
