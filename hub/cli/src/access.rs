//! `gridhub principals`, `gridhub policy …` and `gridhub audit …`: who may read what, the
//! policy's versions and emergencies, and the audit log.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use clap::Subcommand;
use gridhub_engine::GovernedHub;
use gridhub_proto::v1 as pb;

use crate::backend::{Acting, Backend};
use crate::error::{CliError, Result};
use crate::output::{Format, render};

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate a policy file against the catalog (roles, tables, columns, tags, sources)
    Check {
        /// Policy file (CSV lines `p, role, area, object, action, purpose, emergency, effect`)
        file: PathBuf,
    },
    /// Activate a policy file as a new version (security officer); an invalid file is refused.
    /// A change that widens anybody's access becomes a pending proposal (`policy approve N` by
    /// another officer); one that widens your own role is refused
    Apply {
        file: PathBuf,
        /// Acting principal (needs manage_policy)
        #[arg(long)]
        by: Option<String>,
        /// Why the policy changes (kept in the history)
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List policy versions: who applied what, when
    History {
        #[arg(long)]
        by: Option<String>,
    },
    /// Re-activate an older version (as a new version); like apply, a rollback that widens
    /// access becomes a proposal
    Rollback {
        version: i64,
        #[arg(long)]
        by: Option<String>,
    },
    /// Approve a pending proposal: it becomes the active version (another officer than its
    /// proposer, whose own role it does not widen)
    Approve {
        proposal: i64,
        #[arg(long)]
        by: Option<String>,
    },
    /// Reject a pending proposal (or withdraw your own): nothing takes effect
    Reject {
        proposal: i64,
        #[arg(long)]
        by: Option<String>,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The pending proposals, with what each would widen
    Proposals {
        #[arg(long)]
        by: Option<String>,
    },
    /// Every widening change ever attempted — pending, approved, rejected, refused — with who
    /// proposed and decided it, when, and what it widens (read_audit)
    Changes {
        #[arg(long)]
        by: Option<String>,
    },
    /// Print a version's text (default: the active one)
    Show {
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        version: Option<i64>,
    },
    /// Per table and column the query reads: clear / masked / denied / row filter, and the
    /// policy lines that decided
    Explain {
        /// Acting principal (needs manage_policy)
        #[arg(long)]
        by: Option<String>,
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
        by: Option<String>,
    },
    /// End an emergency now
    End {
        id: i64,
        #[arg(long)]
        by: Option<String>,
    },
    /// List emergencies, newest first
    List {
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain: reports edited, deleted, inserted, reordered or truncated records,
    /// and a missing log
    Verify {
        #[arg(long)]
        by: Option<String>,
        /// Also compare the log with this witness file (`[hub] audit_witness`, or a copy of
        /// it): catches a rewrite with the audit key and a cut tail the anchor hides. With
        /// --server the file is read here and sent to the hub.
        #[arg(long, value_name = "WITNESS")]
        against: Option<PathBuf>,
    },
    /// Acknowledge that the audit log is missing (verify said "log missing"): start a new log
    /// whose first record says who acknowledged the loss and why; audited actions resume
    AcknowledgeMissing {
        #[arg(long)]
        by: Option<String>,
        /// Why, for the record (what happened to the old log, where its evidence is kept)
        #[arg(long)]
        reason: String,
    },
    /// Search the audit log
    Search {
        #[arg(long)]
        by: Option<String>,
        /// Records that returned this person's health or location data
        #[arg(long)]
        person: Option<String>,
        /// Records of this principal
        #[arg(long)]
        principal: Option<String>,
        /// Records at or after this time (RFC 3339)
        #[arg(long)]
        since: Option<String>,
        /// Only records with this outcome (ok, denied, error, started: a stream that began)
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
}

/// A table of text columns, rendered like query results.
pub fn text_table(headers: &[&str], rows: Vec<Vec<String>>) -> Result<RecordBatch> {
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
    Ok(RecordBatch::try_new(schema, columns)?)
}

pub fn show(batch: RecordBatch, format: Format) -> Result<()> {
    crate::print(&render(&[batch], format, None)?)
}

pub fn principals(hub: &GovernedHub, format: Format) -> Result<()> {
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

fn versions(versions: Vec<pb::PolicyVersion>) -> Result<RecordBatch> {
    let rows = versions
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
                v.applied_at,
                v.line_count.to_string(),
                v.rollback_of
                    .map(|r| format!("rollback to {r}"))
                    .unwrap_or_default(),
                v.comment,
                v.sha256.chars().take(12).collect(),
            ]
        })
        .collect();
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
    )
}

/// Print what an apply or rollback did: the active version, or the proposal that waits.
fn print_change(
    change: pb::PolicyChange,
    active: impl FnOnce(&pb::PolicyVersion) -> String,
) -> Result<()> {
    match (change.version, change.proposal) {
        (Some(v), _) => println!("{}", active(&v)),
        (None, Some(p)) => {
            println!(
                "policy proposal {}: the change widens access, so it does not take effect until \
                 another officer approves it (`gridhub policy approve {}`); it widens:",
                p.id, p.id
            );
            for line in p.widening.lines() {
                println!("  {line}");
            }
        }
        (None, None) => {
            return Err(CliError::Answer(
                "the hub answered with neither a version nor a proposal",
            ));
        }
    }
    Ok(())
}

fn proposals(proposals: Vec<pb::Proposal>) -> Result<RecordBatch> {
    let rows = proposals
        .into_iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.state,
                p.proposed_by,
                p.proposed_at,
                p.comment,
                p.decided_by,
                p.decided_at,
                p.version.map(|v| v.to_string()).unwrap_or_default(),
                p.reason,
                p.widening,
            ]
        })
        .collect();
    text_table(
        &[
            "proposal",
            "state",
            "proposed_by",
            "proposed_at",
            "comment",
            "decided_by",
            "decided_at",
            "version",
            "reason",
            "widens",
        ],
        rows,
    )
}

pub async fn policy(backend: &Backend, what: PolicyCommand) -> Result<()> {
    let mut policy = backend.client().policy();
    match what {
        PolicyCommand::Check { file } => {
            let text = read(&file)?;
            let checked = policy.check(pb::PolicyText { text }).await?.into_inner();
            println!("{}: valid, {} policy lines", file.display(), checked.lines);
            Ok(())
        }
        PolicyCommand::Apply { file, comment, .. } => {
            let text = read(&file)?;
            let change = policy
                .apply(pb::ApplyRequest { text, comment })
                .await?
                .into_inner();
            print_change(change, |v| {
                format!(
                    "policy version {} is active ({} lines, sha256 {})",
                    v.version, v.line_count, v.sha256
                )
            })
        }
        PolicyCommand::History { .. } => {
            let history = policy.history(pb::HistoryRequest {}).await?.into_inner();
            show(versions(history.versions)?, Format::Table)
        }
        PolicyCommand::Rollback { version, .. } => {
            let change = policy
                .rollback(pb::RollbackRequest { version })
                .await?
                .into_inner();
            print_change(change, |v| {
                format!(
                    "policy version {version} is active again as version {}",
                    v.version
                )
            })
        }
        PolicyCommand::Approve { proposal, .. } => {
            let change = policy
                .approve(pb::ProposalRequest { id: proposal })
                .await?
                .into_inner();
            let v = change
                .version
                .ok_or(CliError::Answer("the hub answered without a version"))?;
            println!(
                "policy proposal {proposal} approved: policy version {} is active ({} lines, \
                 sha256 {})",
                v.version, v.line_count, v.sha256
            );
            Ok(())
        }
        PolicyCommand::Reject {
            proposal, reason, ..
        } => {
            let p = policy
                .reject(pb::RejectRequest {
                    id: proposal,
                    reason,
                })
                .await?
                .into_inner();
            println!("policy proposal {} rejected: nothing changes", p.id);
            Ok(())
        }
        PolicyCommand::Proposals { .. } => {
            let list = policy
                .list_proposals(pb::ListProposalsRequest { all: false })
                .await?
                .into_inner();
            show(proposals(list.proposals)?, Format::Table)
        }
        PolicyCommand::Changes { .. } => {
            let list = policy
                .list_proposals(pb::ListProposalsRequest { all: true })
                .await?
                .into_inner();
            show(proposals(list.proposals)?, Format::Table)
        }
        PolicyCommand::Show { version, .. } => {
            let v = policy.show(pb::ShowRequest { version }).await?.into_inner();
            crate::print(&v.text.unwrap_or_default())
        }
        PolicyCommand::Explain {
            principal,
            purpose,
            sql,
            ..
        } => {
            let explained = policy
                .explain(pb::ExplainRequest {
                    principal,
                    purpose,
                    sql,
                })
                .await?
                .into_inner();
            for r in &explained.reasons {
                println!("{}: {}", r.table, r.reason);
            }
            let rows = explained
                .rows
                .into_iter()
                .map(|r| {
                    vec![
                        r.table,
                        r.rows,
                        r.column,
                        r.tag,
                        r.decision,
                        r.decided_by,
                        r.would_allow,
                    ]
                })
                .collect();
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
        PolicyCommand::Emergency { what } => emergency(backend, what).await,
    }
}

async fn emergency(backend: &Backend, what: EmergencyCommand) -> Result<()> {
    let mut policy = backend.client().policy();
    match what {
        EmergencyCommand::Declare {
            area,
            until,
            reason,
            ..
        } => {
            let em = policy
                .declare_emergency(pb::DeclareEmergencyRequest {
                    area,
                    until,
                    reason,
                })
                .await?
                .into_inner();
            println!(
                "emergency {} declared for {} until {}",
                em.id, em.area, em.until
            );
            Ok(())
        }
        EmergencyCommand::End { id, .. } => {
            let em = policy
                .end_emergency(pb::EndEmergencyRequest { id })
                .await?
                .into_inner();
            println!("emergency {} for {} ended", em.id, em.area);
            Ok(())
        }
        EmergencyCommand::List { .. } => {
            let rows = policy
                .list_emergencies(pb::ListEmergenciesRequest {})
                .await?
                .into_inner()
                .emergencies
                .into_iter()
                .map(|em| {
                    vec![
                        em.id.to_string(),
                        em.area,
                        if em.active { "active" } else { "over" }.to_string(),
                        em.until,
                        em.reason,
                        em.declared_by,
                        em.ended_by,
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

pub async fn audit(backend: &Backend, what: AuditCommand, format: Format) -> Result<()> {
    let mut audit = backend.client().audit();
    match what {
        AuditCommand::Verify { against, .. } => {
            let request = match &against {
                Some(path) => pb::VerifyRequest {
                    witness: Some(read(path)?),
                    witness_name: path.display().to_string(),
                },
                None => pb::VerifyRequest::default(),
            };
            let report = audit.verify(request).await?.into_inner();
            if report.problems.is_empty() {
                let against = against
                    .map(|w| format!(", agrees with the witness {}", w.display()))
                    .unwrap_or_default();
                println!(
                    "audit log intact: {} records, head {}{against}",
                    report.records, report.head
                );
                Ok(())
            } else {
                for p in &report.problems {
                    println!("record {}: {} — {}", p.seq, p.kind, p.detail);
                }
                Err(CliError::AuditTampered {
                    problems: report.problems.len(),
                    records: report.records,
                    log_missing: report.problems.iter().any(|p| p.kind == "log missing"),
                })
            }
        }
        AuditCommand::AcknowledgeMissing { reason, .. } => {
            let seq = backend.audit_acknowledge_missing(&reason)?;
            println!(
                "a new audit log starts with record {seq}, which records the acknowledgement; \
                 keep the old witness and state as evidence"
            );
            Ok(())
        }
        AuditCommand::Search {
            person,
            principal,
            since,
            outcome,
            limit,
            ..
        } => {
            let query = pb::SearchRequest {
                person,
                principal,
                since,
                outcome,
                limit: limit.map(|n| n as i64),
            };
            let rows = audit
                .search(query)
                .await?
                .into_inner()
                .records
                .into_iter()
                .map(|r| {
                    vec![
                        r.seq.to_string(),
                        r.at,
                        r.kind,
                        r.principal,
                        r.purpose,
                        r.outcome,
                        r.rows.map(|n| n.to_string()).unwrap_or_default(),
                        r.tables.join(", "),
                        r.text,
                        r.message,
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

fn read(file: &PathBuf) -> Result<String> {
    std::fs::read_to_string(file).map_err(|source| CliError::Read {
        path: file.display().to_string(),
        source,
    })
}

impl PolicyCommand {
    /// Who the command acts as: `--by`, except for `check`, which any caller may run.
    pub fn acting(&self) -> Acting<'_> {
        match self {
            PolicyCommand::Check { .. } => Acting::Anyone,
            PolicyCommand::Apply { by, .. }
            | PolicyCommand::History { by }
            | PolicyCommand::Rollback { by, .. }
            | PolicyCommand::Approve { by, .. }
            | PolicyCommand::Reject { by, .. }
            | PolicyCommand::Proposals { by }
            | PolicyCommand::Changes { by }
            | PolicyCommand::Show { by, .. }
            | PolicyCommand::Explain { by, .. } => Acting::By(by),
            PolicyCommand::Emergency { what } => match what {
                EmergencyCommand::Declare { by, .. }
                | EmergencyCommand::End { by, .. }
                | EmergencyCommand::List { by } => Acting::By(by),
            },
        }
    }
}

impl AuditCommand {
    /// Who the command acts as: `--by`.
    pub fn acting(&self) -> Acting<'_> {
        match self {
            AuditCommand::Verify { by, .. }
            | AuditCommand::AcknowledgeMissing { by, .. }
            | AuditCommand::Search { by, .. } => Acting::By(by),
        }
    }
}
