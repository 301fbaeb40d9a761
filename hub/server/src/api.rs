//! The hub's operations as the gRPC API shapes them: each takes the hub and the acting
//! principal and returns the `gridhub.v1` message. The server's services answer with these,
//! and the CLI prints these same messages when it runs locally — so local and remote give
//! the same results by construction.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};
use gridhub_audit::{AuditFilter, Outcome};
use gridhub_engine::{EngineError, GovernedHub};
use gridhub_proto::v1 as pb;

use crate::error::ServerError;

type Result<T> = std::result::Result<T, ServerError>;

const SOURCES: &str = "
SELECT s.name AS source, s.type, s.label, s.health,
       s.materialised AS cached, s.last_refresh,
       sum(l.accepted) AS accepted, sum(l.rejected) AS rejected, s.location
FROM system.sources s LEFT JOIN system.loads l ON l.source = s.name
GROUP BY s.name, s.type, s.label, s.health, s.materialised, s.last_refresh, s.location
ORDER BY s.name";

const TABLES: &str = "
SELECT name AS shared_table, label, key, rows, sources FROM system.tables ORDER BY name";

const COLUMNS: &str = "
SELECT table_name, name AS column_name, data_type, tag, label, is_key
FROM system.columns ORDER BY table_name, position";

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

/// One column of a catalog answer as text, by name (NULL → None).
fn texts(batches: &[RecordBatch], name: &str) -> Result<Vec<Option<String>>> {
    let mut out = Vec::new();
    for b in batches {
        let column = b
            .column_by_name(name)
            .ok_or_else(|| EngineError::Internal {
                message: format!("catalog answer has no column {name}"),
            })?;
        let column =
            arrow::compute::cast(column, &DataType::Utf8).map_err(|e| EngineError::Internal {
                message: e.to_string(),
            })?;
        let column = column
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("cast to Utf8");
        out.extend((0..column.len()).map(|i| column.is_valid(i).then(|| column.value(i).into())));
    }
    Ok(out)
}

fn number(v: Option<String>) -> Option<i64> {
    v.and_then(|s| s.parse().ok())
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

/// Sources, shared tables, columns with tags, lineage. No resident data; row counts only
/// of what `caller` may read (all for the operator, None), and the counts given are audited.
pub async fn catalog(
    hub: &GovernedHub,
    caller: Option<&gridhub_policy::Principal>,
) -> Result<pb::Catalog> {
    let scope = CountScope::of(hub, caller).await?;
    let mut counted = Vec::new();
    let s = hub.hub().query(SOURCES).await?;
    let [
        name,
        kind,
        label,
        health,
        cached,
        refresh,
        accepted,
        rejected,
        location,
    ] = [
        "source",
        "type",
        "label",
        "health",
        "cached",
        "last_refresh",
        "accepted",
        "rejected",
        "location",
    ]
    .map(|c| texts(&s, c));
    let mut sources = Vec::new();
    let (mut kind, mut label, mut health, mut cached, mut refresh) =
        (kind?, label?, health?, cached?, refresh?);
    let (mut accepted, mut rejected, mut location) = (accepted?, rejected?, location?);
    for (i, n) in name?.into_iter().enumerate() {
        let n = n.unwrap_or_default();
        let counts = scope.source(&n);
        if !counts {
            accepted[i] = None;
            rejected[i] = None;
        } else if caller.is_some() {
            counted.push(format!("source {n}"));
        }
        sources.push(pb::Source {
            name: n,
            r#type: kind[i].take().unwrap_or_default(),
            label: label[i].take().unwrap_or_default(),
            health: health[i].take().unwrap_or_default(),
            cached: cached[i].take().as_deref() == Some("true"),
            last_refresh: refresh[i].take().unwrap_or_default(),
            accepted: number(accepted[i].take()),
            rejected: number(rejected[i].take()),
            location: location[i].take().unwrap_or_default(),
        });
    }
    let t = hub.hub().query(TABLES).await?;
    let (mut label, mut key, mut rows, mut srcs) = (
        texts(&t, "label")?,
        texts(&t, "key")?,
        texts(&t, "rows")?,
        texts(&t, "sources")?,
    );
    let tables = texts(&t, "shared_table")?
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            let n = n.unwrap_or_default();
            let rows = number(rows[i].take()).filter(|_| scope.table(&n));
            if rows.is_some() && caller.is_some() {
                counted.push(n.clone());
            }
            pb::SharedTable {
                name: n,
                label: label[i].take().unwrap_or_default(),
                key: key[i].take().unwrap_or_default(),
                rows,
                sources: srcs[i].take().unwrap_or_default(),
            }
        })
        .collect();
    let c = hub.hub().query(COLUMNS).await?;
    let (mut name, mut kind, mut tag, mut label, mut is_key) = (
        texts(&c, "column_name")?,
        texts(&c, "data_type")?,
        texts(&c, "tag")?,
        texts(&c, "label")?,
        texts(&c, "is_key")?,
    );
    let columns = texts(&c, "table_name")?
        .into_iter()
        .enumerate()
        .map(|(i, t)| pb::Column {
            table: t.unwrap_or_default(),
            name: name[i].take().unwrap_or_default(),
            data_type: kind[i].take().unwrap_or_default(),
            tag: tag[i].take().unwrap_or_default(),
            label: label[i].take().unwrap_or_default(),
            is_key: is_key[i].take().as_deref() == Some("true"),
        })
        .collect();
    let lineage = hub
        .hub()
        .lineage()
        .into_iter()
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
    let r = hub.hub().query(REJECTS).await?;
    let (mut source_table, mut target_table, mut rows) = (
        texts(&r, "source_table")?,
        texts(&r, "target_table")?,
        texts(&r, "rows")?,
    );
    let counts = texts(&r, "source")?
        .into_iter()
        .enumerate()
        .map(|(i, s)| pb::RejectCount {
            source: s.unwrap_or_default(),
            source_table: source_table[i].take().unwrap_or_default(),
            target_table: target_table[i].take().unwrap_or_default(),
            rows: number(rows[i].take()).unwrap_or_default(),
        })
        .collect();
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
            let get = |k: &str| r.get(k).cloned().unwrap_or_default();
            out.rows.push(pb::ExplainRow {
                table: get("table"),
                rows: get("rows"),
                column: get("column"),
                tag: get("tag"),
                decision: get("decision"),
                decided_by: get("lines"),
                would_allow: get("hint"),
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
