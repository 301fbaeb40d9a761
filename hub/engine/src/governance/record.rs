//! The audit records of governed queries: one function builds a query's record from its
//! principal, purpose, text and decisions, whatever the entry point (collected, streamed,
//! prepared); and how a decision reads in a record or in `policy explain`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use datafusion::arrow::array::{AsArray, RecordBatch};
use gridhub_audit::{AuditRecord, ColumnAccessRecord, Outcome, RecordKind};
use gridhub_catalog::Tag;
use gridhub_policy::{Access, ColumnDecision, Principal, RowAccess, TableDecision};

/// At most this many `person_id`s are recorded per audited read of health or location data;
/// beyond it the record says it is truncated.
pub const AUDIT_PERSON_ID_BOUND: usize = 10_000;

/// How a column was read, for the audit log and `policy explain`.
pub fn describe_access(c: &ColumnDecision) -> String {
    let base = match c.access {
        Access::Clear => "clear",
        Access::Masked => "masked",
        Access::Denied => "denied",
    };
    let mut s = base.to_string();
    if !c.emergency_clear_areas.is_empty() {
        s.push_str(&format!(
            "; clear in emergency {}",
            c.emergency_clear_areas.join(", ")
        ));
    }
    if !c.emergency_masked_areas.is_empty() {
        s.push_str(&format!(
            "; masked in emergency {}",
            c.emergency_masked_areas.join(", ")
        ));
    }
    s
}

/// Whether a query's decisions open a health or location column (then the `person_id`s it
/// returns are audited).
pub(crate) fn reads_sensitive(decisions: &[Arc<TableDecision>]) -> bool {
    decisions.iter().any(|d| {
        d.columns.iter().any(|c| {
            matches!(c.tag, Tag::Health | Tag::Location)
                && (c.access != Access::Denied
                    || !c.emergency_clear_areas.is_empty()
                    || !c.emergency_masked_areas.is_empty())
        })
    })
}

/// The audit record of a query.
#[allow(clippy::too_many_arguments)]
pub(crate) fn query_record(
    principal: &Principal,
    purpose: Option<&str>,
    sql: &str,
    decisions: &[Arc<TableDecision>],
    rows: Option<u64>,
    outcome: Outcome,
    message: Option<String>,
    started: Instant,
    (person_ids, person_ids_truncated): (Vec<String>, bool),
) -> AuditRecord {
    AuditRecord {
        at: Utc::now(),
        kind: RecordKind::Query,
        principal: principal.id.clone(),
        roles: principal.roles.clone(),
        area: principal.area.clone(),
        purpose: purpose.map(str::to_string),
        text: sql.to_string(),
        tables: decisions.iter().map(|d| d.table.clone()).collect(),
        columns: decisions
            .iter()
            .flat_map(|d| {
                d.columns.iter().map(|c| ColumnAccessRecord {
                    table: d.table.clone(),
                    column: c.column.clone(),
                    decision: describe_access(c),
                })
            })
            .collect(),
        rows,
        outcome,
        message,
        duration_ms: Some(started.elapsed().as_millis() as u64),
        person_ids,
        person_ids_truncated,
        started_seq: None,
    }
}

/// One column of a table decision, as `gridhub policy explain` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    pub table: String,
    /// `area_code LIKE '…%'`, `all rows` or `denied`.
    pub rows: String,
    pub column: String,
    pub tag: String,
    /// What the principal gets of the column (see [`describe_access`]).
    pub decision: String,
    /// The policy lines that decided it.
    pub decided_by: String,
    /// What would allow it, when denied or masked.
    pub would_allow: Option<String>,
}

/// A table decision as rows, one per column.
pub fn decision_rows(d: &TableDecision) -> Vec<DecisionRow> {
    let rows = match &d.rows {
        RowAccess::Jurisdiction(a) => format!("area_code LIKE '{a}%'"),
        RowAccess::All => "all rows".into(),
        RowAccess::Denied => "denied".into(),
    };
    d.columns
        .iter()
        .map(|c| DecisionRow {
            table: d.table.clone(),
            rows: rows.clone(),
            column: c.column.clone(),
            tag: c.tag.to_string(),
            decision: describe_access(c),
            decided_by: c.lines.join(" | "),
            would_allow: c.hint.clone(),
        })
        .collect()
}

/// The distinct `person_id`s of an answer, at most [`AUDIT_PERSON_ID_BOUND`].
#[derive(Default)]
pub(crate) struct PersonIds {
    seen: BTreeSet<String>,
    pub(crate) truncated: bool,
}

impl PersonIds {
    /// Take note of a batch's `person_id`s; returns those not seen before (within the bound).
    pub(crate) fn add(&mut self, batch: &RecordBatch) -> Vec<String> {
        let mut new = Vec::new();
        for (i, f) in batch.schema().fields().iter().enumerate() {
            if f.name() != "person_id" {
                continue;
            }
            let Some(values) = batch.column(i).as_string_opt::<i32>() else {
                continue;
            };
            for v in values.iter().flatten() {
                if self.seen.contains(v) {
                    continue;
                }
                if self.seen.len() >= AUDIT_PERSON_ID_BOUND {
                    self.truncated = true;
                    continue;
                }
                self.seen.insert(v.to_string());
                new.push(v.to_string());
            }
        }
        new
    }

    /// The `person_id`s seen, sorted, and whether some were left out.
    pub(crate) fn into_sorted(self) -> (Vec<String>, bool) {
        (self.seen.into_iter().collect(), self.truncated)
    }
}
