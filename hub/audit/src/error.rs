//! The crate's one error enum. Every variant names the file it is about.

/// Why an audit-log operation failed.
///
/// Tampering found by [`AuditLog::verify`](crate::AuditLog::verify) is not an error: it is
/// reported in the [`VerifyReport`](crate::VerifyReport). Errors are what stops an operation.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// SQLite failed on the log database (unreadable file, not a database, disk full, locked).
    #[error("audit log {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    /// The directory of the log could not be created.
    #[error("audit log {path}: cannot create its directory: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The configured audit key is empty, which would make the chain forgeable by anyone.
    #[error(
        "audit log {path}: the audit key is empty; configure a secret audit key (kept outside \
         the state directory)"
    )]
    EmptyKey { path: String },
    /// The log was opened without a key ([`AuditLog::without_key`](crate::AuditLog::without_key)):
    /// it records and verifies nothing.
    #[error(
        "audit log {path}: the hub has no audit key, so it has no audit log; configure [hub] \
         audit_key_file (a file outside the state directory)"
    )]
    NoKey { path: String },
    /// The database was written by a newer gridhub.
    #[error(
        "audit log {path} has schema version {found}, this gridhub reads version {supported}; \
         upgrade gridhub"
    )]
    Version {
        path: String,
        found: i64,
        supported: i64,
    },
    /// The head anchor file could not be read or written.
    #[error("audit head anchor {path}: {source}")]
    Anchor {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A record was committed, but the head anchor could not be updated after it.
    #[error(
        "audit log: record {seq} was committed, but its head anchor {path} could not be \
         written ({source}); check the free space and permissions of the state directory"
    )]
    AnchorWrite {
        path: String,
        seq: u64,
        #[source]
        source: std::io::Error,
    },
    /// A record was committed without its sync ([`crate::AuditLog::append_deferred`]), and the
    /// later sync of the log failed.
    #[error(
        "audit log: record {seq} was committed, but {path} could not be synced ({source}); \
         check the state directory's file system"
    )]
    Sync {
        path: String,
        seq: u64,
        #[source]
        source: std::io::Error,
    },
    /// The witness file could not be read, or (when the log opens) written.
    #[error("audit witness {path}: {source}")]
    Witness {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A record was committed, but its head could not be appended to the witness.
    #[error(
        "audit log: record {seq} was committed, but the witness {path} could not be written \
         ({source}); check that its file system is mounted and writable"
    )]
    WitnessWrite {
        path: String,
        seq: u64,
        #[source]
        source: std::io::Error,
    },
    /// Appending was refused because the log does not continue from what was last anchored
    /// or authenticated: the log was tampered with, or the key changed. Nothing was written.
    #[error("audit log {path}: refusing to append: {reason}")]
    Refused { path: String, reason: String },
    /// A stored record does not parse (search returns records, so it cannot skip one).
    #[error(
        "audit log {path}: record {seq} does not parse as an audit record ({source}); run the \
         audit verification to see what was changed"
    )]
    Corrupt {
        path: String,
        seq: i64,
        #[source]
        source: serde_json::Error,
    },
    /// A record could not be encoded as JSON.
    #[error("audit log {path}: the record cannot be encoded as JSON: {source}")]
    Encode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with [`AuditError`].
pub type Result<T, E = AuditError> = std::result::Result<T, E>;
