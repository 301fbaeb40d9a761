//! The CLI's one error enum. Every command fails with one sentence on stderr (`error: …`)
//! and exit code 1; the variants say where the failure came from.

use gridhub_engine::EngineError;
use gridhub_server::ServerError;
use gridhub_server::client::describe_status;
use gridhub_synth::SynthError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The hub config, its sources, the policy or the audit log, opened here.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The hub server's side: its startup, the token store, the in-process transport.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// A hub's answer to a call (in-process or over the network), as the hub said it.
    #[error("{}", describe_status(.0))]
    Hub(#[from] tonic::Status),
    /// Reaching a hub server (`--server`): the URL, TLS or the credentials.
    #[error("{0}")]
    Connect(String),
    /// Options that do not go together, or a value out of range.
    #[error("{0}")]
    Usage(String),
    /// Writing the synthetic city.
    #[error("synthetic city: {0}")]
    Synth(#[from] SynthError),
    /// A file named on the command line.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Printing the answer.
    #[error("cannot print the answer: {0}")]
    Output(String),
    /// A hub answer without a part it must have.
    #[error("{0}")]
    Answer(&'static str),
    /// `gridhub refresh`: some sources are broken (each keeps its previous cache).
    #[error(
        "{} of {total} sources are broken ({}); the others were refreshed, and each broken \
         source keeps its previous cache",
        .broken.len(),
        .broken.join(", ")
    )]
    BrokenSources { broken: Vec<String>, total: usize },
    /// `gridhub audit verify` found problems.
    #[error(
        "the audit log was tampered with: {problems} problem(s) in {records} records{}",
        acknowledge_hint(.log_missing)
    )]
    AuditTampered {
        problems: usize,
        records: i64,
        log_missing: bool,
    },
    /// A benchmark could not run or its check failed (the message says which).
    #[error("{0}")]
    Bench(String),
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// What to do about a missing audit log.
fn acknowledge_hint(log_missing: &bool) -> &'static str {
    if *log_missing {
        "; audited actions are refused until the loss is acknowledged \
         (gridhub audit acknowledge-missing --by ID --reason TEXT)"
    } else {
        ""
    }
}

impl From<arrow::error::ArrowError> for CliError {
    fn from(e: arrow::error::ArrowError) -> Self {
        CliError::Output(e.to_string())
    }
}

impl From<datafusion::error::DataFusionError> for CliError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        CliError::Bench(e.to_string())
    }
}
