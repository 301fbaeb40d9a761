//! What is recorded: one [`AuditRecord`] per query, policy change or emergency, and the
//! [`AuditFilter`] to find records again.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// One audited event. Its JSON encoding (fields in this order) is what the chain
/// authenticates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the event happened.
    pub at: DateTime<Utc>,
    pub kind: RecordKind,
    /// Who acted.
    pub principal: String,
    /// The principal's roles at the time.
    pub roles: Vec<String>,
    /// The principal's jurisdiction code.
    pub area: String,
    /// The declared purpose of a query, if any.
    pub purpose: Option<String>,
    /// The SQL text, or a description of the change (`apply policy version 3`,
    /// `declare emergency 420106001 until …`).
    pub text: String,
    /// Tables the query read.
    pub tables: Vec<String>,
    /// The decision taken for each column read.
    pub columns: Vec<ColumnAccessRecord>,
    /// Rows returned.
    pub rows: Option<u64>,
    pub outcome: Outcome,
    /// The error or denial message.
    pub message: Option<String>,
    pub duration_ms: Option<u64>,
    /// The `person_id`s returned, for reads of health or location columns; indexed for
    /// [`AuditFilter::person_id`].
    pub person_ids: Vec<String>,
    /// More person_ids were returned than the hub's bound, so `person_ids` is incomplete.
    pub person_ids_truncated: bool,
    /// For the record that ends a streamed query: the sequence number of the record that
    /// said it started (written, durably, before the first batch left the hub).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_seq: Option<u64>,
}

/// What kind of event a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A query run by a principal.
    Query,
    /// The `person_id`s of a streamed read of health or location data, written before the
    /// rows that hold them leave the hub; `started_seq` names the query's start record.
    QueryRows,
    /// A policy version applied or rolled back.
    PolicyChange,
    /// An emergency declared, extended or ended.
    Emergency,
    /// A token issued or revoked (reserved for the hub server).
    Token,
    /// An operator acknowledged that the audit log was missing, and a new one starts with
    /// this record ([`AuditLog::acknowledge_missing`](crate::AuditLog::acknowledge_missing)).
    AuditRestart,
}

/// How the audited event ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
    Error,
    /// A streamed query began sending; a later record with `started_seq` pointing here says
    /// how it ended. Without one, it started and never finished (the hub stopped mid-stream).
    Started,
}

impl Outcome {
    /// The serde name (`ok`, `denied`, `error`), also stored in the log's `outcome` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
            Outcome::Started => "started",
        }
    }
}

/// The decision taken for one column a query read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnAccessRecord {
    pub table: String,
    pub column: String,
    /// `clear`, `masked`, `denied`, `clear (emergency 420106001)`, …
    pub decision: String,
}

/// A record as stored: its sequence number and chain hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    pub seq: u64,
    pub record: AuditRecord,
    /// HMAC-SHA256 of the record in the chain, lowercase hex.
    pub hash: String,
}

/// Which records [`AuditLog::search`](crate::AuditLog::search) returns: those matching every
/// field that is set, ordered by sequence number, at most `limit` (default
/// [`AuditFilter::DEFAULT_LIMIT`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Records whose `person_ids` contain this person.
    pub person_id: Option<String>,
    pub principal: Option<String>,
    /// Records at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Records strictly before this instant.
    pub until: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub limit: Option<usize>,
}

impl AuditFilter {
    /// The number of records returned when `limit` is not set.
    pub const DEFAULT_LIMIT: usize = 1000;
}

/// The text stored in the log's `at` column: RFC 3339 UTC with nanoseconds and `Z`, fixed
/// width, so that text order is time order and `since`/`until` compare as text.
pub(crate) fn at_text(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}
