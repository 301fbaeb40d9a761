//! The crate's one error type.

use std::fmt;

/// Where a validation problem is: a policy line, the model, or a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// 1-based line number in the policy text.
    Line(usize),
    /// The Casbin model text.
    Model,
    /// A principal of the hub configuration, by id.
    Principal(String),
    /// The policy as a whole (what it leaves possible, not one line).
    Policy,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Model => f.write_str("model"),
            Location::Principal(id) => write!(f, "principal '{id}'"),
            Location::Policy => f.write_str("policy"),
        }
    }
}

/// One validation problem: where, and what is wrong (with the valid choices).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The model, the policy lines or the principals do not validate; every problem found.
    #[error("policy does not validate ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    /// The policy database failed.
    #[error("policy store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The policy database's directory cannot be created.
    #[error("policy store {path}: cannot create directory: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `policy rollback` to a version the store does not have.
    #[error("unknown policy version {version} (known versions: {known})")]
    UnknownVersion { version: i64, known: String },
    /// `emergency end` of an id the store does not have.
    #[error("unknown emergency {0} (see `gridhub policy emergency list`)")]
    UnknownEmergency(i64),
    /// An emergency that cannot be declared or ended as asked.
    #[error("emergency: {0}")]
    Emergency(String),
    /// `policy approve` / `policy reject` of an id the store does not have.
    #[error("unknown policy proposal {0} (see `gridhub policy proposals`)")]
    UnknownProposal(i64),
    /// A proposal that cannot be approved or rejected as asked.
    #[error("policy proposal: {0}")]
    Proposal(String),
}

impl PolicyError {
    /// The validation problems, if this is a validation error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            PolicyError::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

/// Result with [`PolicyError`].
pub type Result<T, E = PolicyError> = std::result::Result<T, E>;
