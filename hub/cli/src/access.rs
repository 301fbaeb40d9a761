//! `gridhub principals`, `gridhub policy …` and `gridhub audit …`: who may read what, the
//! policy's versions and emergencies, and the audit log.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use gridhub_audit::{AuditFilter, Outcome};
use gridhub_engine::Hub;

use crate::output::{Format, render};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file against the catalog (roles, tables, columns, tags, sources)
    Check {
        /// Policy file (CSV lines `p, role, area, object, action, purpose, emergency, effect`)
        file: PathBuf,
    },
    /// Activate a policy file as a new version (security officer); an invalid file is refused
    Apply {
        file: PathBuf,
        /// Acting principal (needs manage_policy)
        #[arg(long)]
        by: String,
        /// Why the policy changes (kept in the history)
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List policy versions: who applied what, when
    History {
        #[arg(long)]
        by: String,
    },
    /// Re-activate an older version (as a new version)
    Rollback {
        version: i64,
        #[arg(long)]
        by: String,
    },
    /// Print a version's text (default: the active one)
    Show {
        #[arg(long)]
        by: String,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Per table and column the query reads: clear / masked / denied / row filter, and the
    /// policy lines that decided
    Explain {
        /// Acting principal (needs manage_policy)
        #[arg(long)]
        by: String,
        /// The principal the query would run as
        #[arg(long = "as")]
        principal: String,
        #[arg(long)]
        purpose: Option<String>,
        sql: String,
    },
    /// Declare, end and list emergencies
    Emergency {
        #[command(subcommand)]
        what: EmergencyCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum EmergencyCommand {
    /// Open the emergency policy lines for an area until a time (RFC 3339, e.g. 2026-12-01T08:00:00+08:00)
    Declare {
        #[arg(long)]
        area: String,
        #[arg(long)]
        until: String,
        #[arg(long)]
        reason: String,
        #[arg(long)]
        by: String,
    },
    /// End an emergency now
    End {
        id: i64,
        #[arg(long)]
        by: String,
    },
    /// List emergencies, newest first
    List {
        #[arg(long)]
        by: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain: reports edited, deleted, inserted, reordered or truncated records
    Verify {
        #[arg(long)]
        by: String,
    },
    /// Search the audit log
    Search {
        #[arg(long)]
        by: String,
        /// Records that returned this person's health or location data
        #[arg(long)]
        person: Option<String>,
        /// Records of this principal
        #[arg(long)]
        principal: Option<String>,
        /// Records at or after this time (RFC 3339)
        #[arg(long)]
        since: Option<String>,
        /// Only records with this outcome (ok, denied, error)
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
}

/// A table of text columns, rendered like query results.
fn text_table(headers: &[&str], rows: Vec<Vec<String>>) -> Result<RecordBatch, String> {
    let schema = Arc::new(Schema::new(
        headers
            .iter()
            .map(|h| Field::new(*h, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let columns = (0..headers.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>(),
            )) as _
        })
        .collect();
    RecordBatch::try_new(schema, columns).map_err(|e| e.to_string())
}

fn show(batch: RecordBatch, format: Format) -> Result<(), String> {
    crate::print(&render(&[batch], format, None)?)
}

fn time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("'{text}' is not an RFC 3339 time (2026-12-01T08:00:00+08:00): {e}"))
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8"))
        .format("%Y-%m-%d %H:%M:%S %:z")
        .to_string()
}

pub fn principals(hub: &Hub, format: Format) -> Result<(), String> {
    let rows = hub
        .governance()
        .principals()
        .iter()
        .map(|p| {
            vec![
                p.id.clone(),
                p.name.clone().unwrap_or_default(),
                p.roles.join(", "),
                p.area.clone(),
            ]
        })
        .collect();
    show(text_table(&["id", "name", "roles", "area"], rows)?, format)
}

pub async fn policy(hub: &Hub, what: PolicyCommand) -> Result<(), String> {
    let e = |e: gridhub_engine::EngineError| e.to_string();
    match what {
        PolicyCommand::Check { file } => {
            let text = read(&file)?;
            let lines = hub.policy_check(&text).await.map_err(e)?;
            println!("{}: valid, {lines} policy lines", file.display());
            Ok(())
        }
        PolicyCommand::Apply { file, by, comment } => {
            let text = read(&file)?;
            let v = hub.policy_apply(&by, &text, &comment).await.map_err(e)?;
            println!(
                "policy version {} is active ({} lines, sha256 {})",
                v.version, v.line_count, v.sha256
            );
            Ok(())
        }
        PolicyCommand::History { by } => {
            let rows = hub
                .policy_history(&by)
                .map_err(e)?
                .into_iter()
                .map(|v| {
                    vec![
                        v.version.to_string(),
                        if v.active {
                            "active".into()
                        } else {
                            String::new()
                        },
                        v.applied_by,
                        fmt_time(v.applied_at),
                        v.line_count.to_string(),
                        v.rollback_of
                            .map(|r| format!("rollback to {r}"))
                            .unwrap_or_default(),
                        v.comment,
                        v.sha256[..12].to_string(),
                    ]
                })
                .collect();
            show(
                text_table(
                    &[
                        "version",
                        "",
                        "applied_by",
                        "applied_at",
                        "lines",
                        "rollback",
                        "comment",
                        "sha256",
                    ],
                    rows,
                )?,
                Format::Table,
            )
        }
        PolicyCommand::Rollback { version, by } => {
            let v = hub.policy_rollback(&by, version).await.map_err(e)?;
            println!(
                "policy version {version} is active again as version {}",
                v.version
            );
            Ok(())
        }
        PolicyCommand::Show { by, version } => {
            let v = hub.policy_show(&by, version).map_err(e)?;
            crate::print(&v.text.unwrap_or_default())
        }
        PolicyCommand::Explain {
            by,
            principal,
            purpose,
            sql,
        } => {
            let decisions = hub
                .policy_explain(&by, &principal, purpose.as_deref(), &sql)
                .await
                .map_err(e)?;
            let mut rows = Vec::new();
            for d in &decisions {
                for r in gridhub_engine::govern::decision_rows(d) {
                    rows.push(
                        [
                            "table", "rows", "column", "tag", "decision", "lines", "hint",
                        ]
                        .iter()
                        .map(|k| r.get(k).cloned().unwrap_or_default())
                        .collect(),
                    );
                }
                if let Some(reason) = &d.reason {
                    println!("{}: {reason}", d.table);
                }
            }
            show(
                text_table(
                    &[
                        "table",
                        "rows",
                        "column",
                        "tag",
                        "decision",
                        "decided by",
                        "what would allow it",
                    ],
                    rows,
                )?,
                Format::Table,
            )
        }
        PolicyCommand::Emergency { what } => emergency(hub, what).await,
    }
}

async fn emergency(hub: &Hub, what: EmergencyCommand) -> Result<(), String> {
    let e = |e: gridhub_engine::EngineError| e.to_string();
    match what {
        EmergencyCommand::Declare {
            area,
            until,
            reason,
            by,
        } => {
            let em = hub
                .emergency_declare(&by, &area, time(&until)?, &reason)
                .await
                .map_err(e)?;
            println!(
                "emergency {} declared for {} until {}",
                em.id,
                em.area,
                fmt_time(em.until)
            );
            Ok(())
        }
        EmergencyCommand::End { id, by } => {
            let em = hub.emergency_end(&by, id).await.map_err(e)?;
            println!("emergency {} for {} ended", em.id, em.area);
            Ok(())
        }
        EmergencyCommand::List { by } => {
            let rows = hub
                .emergency_list(&by)
                .map_err(e)?
                .into_iter()
                .map(|(em, active)| {
                    vec![
                        em.id.to_string(),
                        em.area,
                        if active { "active" } else { "over" }.to_string(),
                        fmt_time(em.until),
                        em.reason,
                        em.declared_by,
                        em.ended_by.unwrap_or_default(),
                    ]
                })
                .collect();
            show(
                text_table(
                    &[
                        "id",
                        "area",
                        "state",
                        "until",
                        "reason",
                        "declared_by",
                        "ended_by",
                    ],
                    rows,
                )?,
                Format::Table,
            )
        }
    }
}

pub fn audit(hub: &Hub, what: AuditCommand, format: Format) -> Result<(), String> {
    let e = |e: gridhub_engine::EngineError| e.to_string();
    match what {
        AuditCommand::Verify { by } => {
            let report = hub.audit_verify(&by).map_err(e)?;
            if report.ok() {
                println!(
                    "audit log intact: {} records, head {}",
                    report.records,
                    report.head.unwrap_or_default()
                );
                Ok(())
            } else {
                for p in &report.problems {
                    println!("record {}: {} — {}", p.seq, p.kind, p.detail);
                }
                Err(format!(
                    "the audit log was tampered with: {} problem(s) in {} records",
                    report.problems.len(),
                    report.records
                ))
            }
        }
        AuditCommand::Search {
            by,
            person,
            principal,
            since,
            outcome,
            limit,
        } => {
            let outcome = match outcome.as_deref() {
                None => None,
                Some("ok") => Some(Outcome::Ok),
                Some("denied") => Some(Outcome::Denied),
                Some("error") => Some(Outcome::Error),
                Some(o) => return Err(format!("unknown outcome '{o}' (ok, denied, error)")),
            };
            let filter = AuditFilter {
                person_id: person,
                principal,
                since: since.as_deref().map(time).transpose()?,
                until: None,
                outcome,
                limit,
            };
            let rows = hub
                .audit_search(&by, &filter)
                .map_err(e)?
                .into_iter()
                .map(|r| {
                    let rec = r.record;
                    vec![
                        r.seq.to_string(),
                        fmt_time(rec.at),
                        format!("{:?}", rec.kind).to_lowercase(),
                        rec.principal,
                        rec.purpose.unwrap_or_default(),
                        rec.outcome.as_str().to_string(),
                        rec.rows.map(|n| n.to_string()).unwrap_or_default(),
                        rec.tables.join(", "),
                        rec.text,
                        rec.message.unwrap_or_default(),
                    ]
                })
                .collect();
            show(
                text_table(
                    &[
                        "seq",
                        "at",
                        "kind",
                        "principal",
                        "purpose",
                        "outcome",
                        "rows",
                        "tables",
                        "text",
                        "message",
                    ],
                    rows,
                )?,
                format,
            )
        }
    }
}

fn read(file: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}
