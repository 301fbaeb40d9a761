//! The hub's operations as the gRPC API shapes them: each takes the hub and the acting
//! principal and returns the `gridhub.v1` message. The server's services answer with these,
//! and the CLI prints these same messages when it runs locally — so local and remote give
//! the same results by construction.

use std::sync::Arc;

use arrow::array::AsArray;
use chrono::{DateTime, Utc};
use gridhub_audit::{AuditFilter, Outcome};
use gridhub_engine::{EngineError, GovernedHub};
use gridhub_proto::v1 as pb;

use crate::error::ServerError;

type Result<T> = std::result::Result<T, ServerError>;

const REJECTS: &str = "
SELECT source, source_table, target_table, count(*) AS rows
FROM _rejects GROUP BY source, source_table, target_table
ORDER BY source, source_table, target_table";

/// Times as the CLI prints them: China Standard Time, to the second.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8"))
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

/// Parse an RFC 3339 time; a bad one is reported with the text and the accepted forms.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ServerError::BadTimestamp {
            text: text.to_string(),
            reason: e.to_string(),
        })
}

/// What a principal may learn from the catalog: the tables (by the names policies know)
/// it may read some rows of. Counts are given for those only; the operator (None) sees all.
struct CountScope(Option<std::collections::BTreeSet<String>>);

impl CountScope {
    async fn of(hub: &GovernedHub, caller: Option<&gridhub_policy::Principal>) -> Result<Self> {
        let Some(p) = caller else {
            return Ok(Self(None));
        };
        let visible = hub
            .visible_tables(&p.id, None)
            .await?
            .into_iter()
            .map(|t| {
                if t.schema == gridhub_engine::SHARED_SCHEMA {
                    t.table
                } else {
                    format!("{}.{}", t.schema, t.table)
                }
            })
            .collect();
        Ok(Self(Some(visible)))
    }

    fn table(&self, name: &str) -> bool {
        self.0.as_ref().is_none_or(|v| v.contains(name))
    }

    /// A source's counts: to whoever may read one of its raw tables.
    fn source(&self, source: &str) -> bool {
        let prefix = format!("{}.", gridhub_engine::source_schema(source));
        self.0
            .as_ref()
            .is_none_or(|v| v.iter().any(|t| t.starts_with(&prefix)))
    }
}

/// Audit that `caller` was told the counts of `tables` (the operator is not a principal).
fn audit_counts(
    hub: &GovernedHub,
    caller: Option<&gridhub_policy::Principal>,
    what: &str,
    counted: Vec<String>,
) -> Result<()> {
    if let Some(p) = caller {
        hub.governance().audit_change(
            p,
            gridhub_audit::RecordKind::Query,
            format!("{what}: row counts of {}", counted.join(", ")),
            Outcome::Ok,
            None,
        )?;
    }
    Ok(())
}

/// Microseconds since the epoch as the CLI prints times ("" when unknown).
fn fmt_micros(t: Option<i64>) -> String {
    t.and_then(DateTime::from_timestamp_micros)
        .map(fmt_time)
        .unwrap_or_default()
}

/// Sources, shared tables, columns with tags, lineage — from the catalog's typed rows. No
/// resident data; row counts only of what `caller` may read (all for the operator, None),
/// and the counts given are audited.
pub async fn catalog(
    hub: &GovernedHub,
    caller: Option<&gridhub_policy::Principal>,
) -> Result<pb::Catalog> {
    let scope = CountScope::of(hub, caller).await?;
    let system = hub.hub().system();
    let mut counted = Vec::new();
    let loads = system.loads()?;
    // Ordered by name, as `gridhub catalog` lists them.
    let mut sources = system.sources()?;
    sources.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    let mut tables = system.tables()?;
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let mut columns = system.columns();
    columns.sort_by(|a, b| (&a.table, a.position).cmp(&(&b.table, b.position)));
    let sources = sources
        .into_iter()
        .map(|row| {
            let s = row.record;
            let counts = scope.source(&s.name);
            if counts && caller.is_some() {
                counted.push(format!("source {}", s.name));
            }
            let of_source = || loads.iter().filter(|l| l.source == s.name);
            let loaded = of_source().next().is_some();
            let total = |f: fn(&gridhub_catalog::LoadStat) -> u64| {
                (counts && loaded).then(|| of_source().map(f).sum::<u64>() as i64)
            };
            pb::Source {
                accepted: total(|l| l.accepted),
                rejected: total(|l| l.rejected),
                r#type: s.kind,
                label: s.label.unwrap_or_default(),
                health: s.health,
                cached: s.materialised,
                last_refresh: fmt_micros(s.last_refresh),
                location: s.location,
                name: s.name,
            }
        })
        .collect();
    let tables = tables
        .into_iter()
        .map(|t| {
            let rows = t.rows.filter(|_| scope.table(&t.name)).map(|n| n as i64);
            if rows.is_some() && caller.is_some() {
                counted.push(t.name.clone());
            }
            pb::SharedTable {
                label: t.label,
                key: t.key.join(", "),
                rows,
                sources: t.sources.join(","),
                name: t.name,
            }
        })
        .collect();
    let columns = columns
        .into_iter()
        .map(|c| pb::Column {
            table: c.table,
            name: c.name,
            data_type: c.data_type,
            tag: c.tag,
            label: c.label,
            is_key: c.is_key,
        })
        .collect();
    let lineage = system
        .lineage()
        .iter()
        .cloned()
        .map(|l| pb::Lineage {
            table: l.shared_table,
            column: l.shared_column,
            source: l.source,
            source_table: l.source_table,
            expression: l.source_expr,
            transform: l.transform.unwrap_or_default(),
        })
        .collect();
    if !counted.is_empty() {
        audit_counts(hub, caller, "catalog", counted)?;
    }
    Ok(pb::Catalog {
        sources,
        tables,
        columns,
        lineage,
    })
}

/// Rejected rows counted per source table and target (counts only), for the operator (None)
/// or a principal that may read `_rejects` (audited); nothing for anyone else.
pub async fn rejects(
    hub: &GovernedHub,
    caller: Option<&gridhub_policy::Principal>,
) -> Result<pb::RejectSummary> {
    let scope = CountScope::of(hub, caller).await?;
    if !scope.table(gridhub_engine::REJECTS_TABLE) {
        return Ok(pb::RejectSummary { counts: Vec::new() });
    }
    audit_counts(
        hub,
        caller,
        "rejects",
        vec![gridhub_engine::REJECTS_TABLE.into()],
    )?;
    let mut counts = Vec::new();
    for b in hub.hub().query(REJECTS).await? {
        let text = |i: usize| b.column(i).as_string_opt::<i32>();
        let (Some(source), Some(source_table), Some(target_table), Some(rows)) = (
            text(0),
            text(1),
            text(2),
            b.column(3)
                .as_primitive_opt::<arrow::datatypes::Int64Type>(),
        ) else {
            return Err(EngineError::Internal {
                message: format!("the rejects summary has columns {}", b.schema()),
            }
            .into());
        };
        for i in 0..b.num_rows() {
            counts.push(pb::RejectCount {
                source: source.value(i).to_string(),
                source_table: source_table.value(i).to_string(),
                target_table: target_table.value(i).to_string(),
                rows: rows.value(i),
            });
        }
    }
    Ok(pb::RejectSummary { counts })
}

fn version(v: gridhub_policy::PolicyVersion) -> pb::PolicyVersion {
    pb::PolicyVersion {
        version: v.version,
        active: v.active,
        applied_by: v.applied_by,
        applied_at: fmt_time(v.applied_at),
        line_count: v.line_count as i64,
        rollback_of: v.rollback_of,
        comment: v.comment,
        sha256: v.sha256,
        text: v.text,
    }
}

pub async fn policy_check(hub: &GovernedHub, text: &str) -> Result<pb::CheckResponse> {
    Ok(pb::CheckResponse {
        lines: hub.policy_check(text).await? as i64,
    })
}

fn proposal(p: gridhub_policy::Proposal) -> pb::Proposal {
    pb::Proposal {
        id: p.id,
        state: p.state.to_string(),
        proposed_by: p.proposed_by,
        proposed_at: fmt_time(p.proposed_at),
        comment: p.comment,
        line_count: p.line_count as i64,
        rollback_of: p.rollback_of,
        base_version: p.base_version,
        widening: p.widening,
        decided_by: p.decided_by.unwrap_or_default(),
        decided_at: p.decided_at.map(fmt_time).unwrap_or_default(),
        version: p.version,
        reason: p.reason.unwrap_or_default(),
        sha256: p.sha256,
    }
}

fn change(c: gridhub_policy::PolicyChange) -> pb::PolicyChange {
    match c {
        gridhub_policy::PolicyChange::Active(v) => pb::PolicyChange {
            version: Some(version(v)),
            proposal: None,
        },
        gridhub_policy::PolicyChange::Pending(p) => pb::PolicyChange {
            version: None,
            proposal: Some(proposal(p)),
        },
    }
}

pub async fn policy_apply(
    hub: &GovernedHub,
    by: &str,
    text: &str,
    comment: &str,
) -> Result<pb::PolicyChange> {
    Ok(change(hub.policy_apply(by, text, comment).await?))
}

pub async fn policy_approve(hub: &GovernedHub, by: &str, id: i64) -> Result<pb::PolicyChange> {
    let (p, v) = hub.policy_approve(by, id).await?;
    Ok(pb::PolicyChange {
        version: Some(version(v)),
        proposal: Some(proposal(p)),
    })
}

pub fn policy_reject(hub: &GovernedHub, by: &str, id: i64, reason: &str) -> Result<pb::Proposal> {
    Ok(proposal(hub.policy_reject(by, id, reason)?))
}

pub fn policy_proposals(hub: &GovernedHub, by: &str, all: bool) -> Result<pb::ProposalList> {
    Ok(pb::ProposalList {
        proposals: hub
            .policy_proposals(by, !all)?
            .into_iter()
            .map(proposal)
            .collect(),
    })
}

pub fn policy_history(hub: &GovernedHub, by: &str) -> Result<pb::PolicyHistory> {
    Ok(pb::PolicyHistory {
        versions: hub.policy_history(by)?.into_iter().map(version).collect(),
    })
}

pub async fn policy_rollback(hub: &GovernedHub, by: &str, v: i64) -> Result<pb::PolicyChange> {
    Ok(change(hub.policy_rollback(by, v).await?))
}

pub fn policy_show(hub: &GovernedHub, by: &str, v: Option<i64>) -> Result<pb::PolicyVersion> {
    Ok(version(hub.policy_show(by, v)?))
}

pub async fn policy_explain(
    hub: &GovernedHub,
    by: &str,
    principal: &str,
    purpose: Option<&str>,
    sql: &str,
) -> Result<pb::Explanation> {
    let decisions = hub.policy_explain(by, principal, purpose, sql).await?;
    let mut out = pb::Explanation::default();
    for d in &decisions {
        for r in gridhub_engine::governance::decision_rows(d) {
            out.rows.push(pb::ExplainRow {
                table: r.table,
                rows: r.rows,
                column: r.column,
                tag: r.tag,
                decision: r.decision,
                decided_by: r.decided_by,
                would_allow: r.would_allow.unwrap_or_default(),
            });
        }
        if let Some(reason) = &d.reason {
            out.reasons.push(pb::TableReason {
                table: d.table.clone(),
                reason: reason.clone(),
            });
        }
    }
    Ok(out)
}

fn emergency(e: gridhub_policy::Emergency, active: bool) -> pb::Emergency {
    pb::Emergency {
        id: e.id,
        area: e.area,
        active,
        until: fmt_time(e.until),
        reason: e.reason,
        declared_by: e.declared_by,
        ended_by: e.ended_by.unwrap_or_default(),
    }
}

pub async fn emergency_declare(
    hub: &GovernedHub,
    by: &str,
    area: &str,
    until: &str,
    reason: &str,
) -> Result<pb::Emergency> {
    let e = hub
        .emergency_declare(by, area, parse_time(until)?, reason)
        .await?;
    let active = e.is_active(hub.governance().now());
    Ok(emergency(e, active))
}

pub async fn emergency_end(hub: &GovernedHub, by: &str, id: i64) -> Result<pb::Emergency> {
    Ok(emergency(hub.emergency_end(by, id).await?, false))
}

pub fn emergency_list(hub: &GovernedHub, by: &str) -> Result<pb::EmergencyList> {
    Ok(pb::EmergencyList {
        emergencies: hub
            .emergency_list(by)?
            .into_iter()
            .map(|(e, active)| emergency(e, active))
            .collect(),
    })
}

/// Verify the audit chain, and against the witness text the request carries, if any.
pub fn audit_verify(
    hub: &GovernedHub,
    by: &str,
    q: &pb::VerifyRequest,
) -> Result<pb::VerifyReport> {
    let report = match &q.witness {
        Some(text) => {
            let name = match q.witness_name.as_str() {
                "" => "sent by the client",
                n => n,
            };
            hub.audit_verify_against(by, text, name)?
        }
        None => hub.audit_verify(by)?,
    };
    Ok(pb::VerifyReport {
        records: report.records as i64,
        head: report.head.unwrap_or_default(),
        problems: report
            .problems
            .into_iter()
            .map(|p| pb::VerifyProblem {
                seq: p.seq as i64,
                kind: p.kind.to_string(),
                detail: p.detail,
            })
            .collect(),
    })
}

pub fn audit_search(
    hub: &GovernedHub,
    by: &str,
    q: &pb::SearchRequest,
) -> Result<pb::AuditRecords> {
    let outcome = match q.outcome.as_deref() {
        None | Some("") => None,
        Some("ok") => Some(Outcome::Ok),
        Some("denied") => Some(Outcome::Denied),
        Some("error") => Some(Outcome::Error),
        Some("started") => Some(Outcome::Started),
        Some(o) => {
            return Err(ServerError::BadRequest(format!(
                "unknown outcome '{o}' (ok, denied, error, started)"
            )));
        }
    };
    let filter = AuditFilter {
        person_id: q.person.clone(),
        principal: q.principal.clone(),
        since: q.since.as_deref().map(parse_time).transpose()?,
        until: None,
        outcome,
        limit: q.limit.map(|n| n.max(0) as usize),
    };
    Ok(pb::AuditRecords {
        records: hub
            .audit_search(by, &filter)?
            .into_iter()
            .map(|r| {
                let rec = r.record;
                pb::AuditEntry {
                    seq: r.seq as i64,
                    at: fmt_time(rec.at),
                    kind: format!("{:?}", rec.kind).to_lowercase(),
                    principal: rec.principal,
                    purpose: rec.purpose.unwrap_or_default(),
                    outcome: rec.outcome.as_str().to_string(),
                    rows: rec.rows.map(|n| n as i64),
                    tables: rec.tables,
                    text: rec.text,
                    message: rec.message.unwrap_or_default(),
                }
            })
            .collect(),
    })
}

/// Health: serving or degraded (a source is unavailable), the active policy version, and
/// the caller as the hub knows it.
pub async fn health(
    hub: &Arc<GovernedHub>,
    caller: &gridhub_policy::Principal,
) -> Result<pb::HealthResponse> {
    let catalog = catalog(hub, Some(caller)).await?;
    let degraded = catalog.sources.iter().any(|s| s.health != "ok");
    Ok(pb::HealthResponse {
        status: if degraded { "degraded" } else { "serving" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        policy_version: hub.governance().policy().ok().map(|(v, _)| v),
        principal: caller.id.clone(),
        roles: caller.roles.clone(),
        area: caller.area.clone(),
        sources: catalog.sources,
    })
}
