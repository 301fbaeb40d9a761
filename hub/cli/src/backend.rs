//! Where a command runs: on a local hub config, or on a running hub (`--server URL`). Both
//! answer with the same `gridhub.v1` messages (`gridhub_server::api` locally, the hub's
//! gRPC services remotely), which the commands print one way — local and remote output
//! agree by construction.

use std::path::PathBuf;

use arrow::array::RecordBatch;
use gridhub_engine::Hub;
use gridhub_proto::v1 as pb;
use gridhub_server::api;
use gridhub_server::client::{Remote, RemoteOptions, describe_status};

/// `--server URL --token T` and the TLS files: run on a hub server instead of a config.
/// Global: they may follow the subcommand (`gridhub policy history --server URL`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RemoteArg {
    /// A running hub: http://host:port, or https://host:port for TLS
    #[arg(long, env = "GRIDHUB_SERVER", global = true)]
    pub server: Option<String>,
    /// Bearer token for --server (`gridhub token issue`)
    #[arg(long, env = "GRIDHUB_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) of the hub's TLS certificate
    #[arg(long, global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS; its Subject CN is the principal
    #[arg(long, requires = "client_key", global = true)]
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM) for mTLS
    #[arg(long, requires = "client_cert", global = true)]
    pub client_key: Option<PathBuf>,
}

impl RemoteArg {
    /// Connect when `--server` is given.
    pub async fn connect(&self, purpose: Option<&str>) -> Result<Option<Remote>, String> {
        let Some(url) = &self.server else {
            return Ok(None);
        };
        if self.token.is_none() && self.client_cert.is_none() {
            return Err(format!(
                "--server {url}: pass --token T (gridhub token issue) or --client-cert/--client-key"
            ));
        }
        Remote::connect(&RemoteOptions {
            url: url.clone(),
            token: self.token.clone(),
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            purpose: purpose.map(str::to_string),
        })
        .await
        .map(Some)
    }
}

/// A local hub (the acting principal named by `--by`) or a remote one (the token's).
pub enum Backend {
    Local(std::sync::Arc<Hub>),
    Remote(Remote),
}

fn remote_error(s: tonic::Status) -> String {
    describe_status(&s)
}

fn local_error(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Backend {
    /// The acting principal of an administrative command: `--by` locally; remotely the
    /// caller's credentials say who acts, and `--by` is refused rather than ignored.
    fn actor(&self, by: &Option<String>) -> Result<String, String> {
        match (self, by) {
            (Backend::Local(_), Some(by)) => Ok(by.clone()),
            (Backend::Local(_), None) => {
                Err("name the acting principal with --by ID (a security officer or auditor)".into())
            }
            (Backend::Remote(_), Some(_)) => {
                Err("with --server the token's principal acts: drop --by".into())
            }
            (Backend::Remote(_), None) => Ok(String::new()),
        }
    }

    /// A principal named with `--as` locally (remotely the token says who asks).
    fn asker(&self, principal: Option<&str>) -> Result<Option<gridhub_engine::Principal>, String> {
        match (self, principal) {
            (Backend::Local(hub), Some(id)) => hub
                .governance()
                .principal(id)
                .cloned()
                .map(Some)
                .map_err(local_error),
            (Backend::Remote(_), Some(_)) => {
                Err("with --server the token's principal asks: drop --as".into())
            }
            (_, None) => Ok(None),
        }
    }

    pub async fn catalog(&self, principal: Option<&str>) -> Result<pb::Catalog, String> {
        let asker = self.asker(principal)?;
        match self {
            Backend::Local(hub) => api::catalog(hub, asker.as_ref()).await.map_err(local_error),
            Backend::Remote(r) => r
                .catalog()
                .get_catalog(pb::GetCatalogRequest {})
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn rejects(&self, principal: Option<&str>) -> Result<pb::RejectSummary, String> {
        let asker = self.asker(principal)?;
        match self {
            Backend::Local(hub) => api::rejects(hub, asker.as_ref()).await.map_err(local_error),
            Backend::Remote(r) => r
                .catalog()
                .list_rejects(pb::ListRejectsRequest {})
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    /// A query as a principal with a purpose (remotely: the token's principal).
    pub async fn query(
        &self,
        principal: Option<&str>,
        purpose: Option<&str>,
        sql: &str,
    ) -> Result<Vec<RecordBatch>, String> {
        match self {
            Backend::Local(hub) => match principal {
                Some(id) => hub
                    .query_as(id, purpose, sql)
                    .await
                    .map(|a| a.batches)
                    .map_err(local_error),
                None if !hub.governance().principals().is_empty() => Err(format!(
                    "this hub has principals: run the query as one with --as ID [--purpose P] (principals: {})",
                    hub.governance()
                        .principals()
                        .iter()
                        .map(|p| p.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                None => hub.query(sql).await.map_err(local_error),
            },
            Backend::Remote(r) => {
                if principal.is_some() {
                    return Err(
                        "with --server the token's principal runs the query: drop --as".into(),
                    );
                }
                // The purpose travels as the connection's header (set at connect).
                r.query(sql).await.map_err(remote_error)
            }
        }
    }

    pub async fn policy_check(&self, text: &str) -> Result<pb::CheckResponse, String> {
        match self {
            Backend::Local(hub) => api::policy_check(hub, text).await.map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .check(pb::PolicyText { text: text.into() })
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn policy_apply(
        &self,
        by: &Option<String>,
        text: &str,
        comment: &str,
    ) -> Result<pb::PolicyChange, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::policy_apply(hub, &by, text, comment)
                .await
                .map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .apply(pb::ApplyRequest {
                    text: text.into(),
                    comment: comment.into(),
                })
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn policy_history(&self, by: &Option<String>) -> Result<pb::PolicyHistory, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::policy_history(hub, &by).map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .history(pb::HistoryRequest {})
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn policy_rollback(
        &self,
        by: &Option<String>,
        version: i64,
    ) -> Result<pb::PolicyChange, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::policy_rollback(hub, &by, version)
                .await
                .map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .rollback(pb::RollbackRequest { version })
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn policy_approve(
        &self,
        by: &Option<String>,
        id: i64,
    ) -> Result<pb::PolicyChange, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::policy_approve(hub, &by, id).await.map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .approve(pb::ProposalRequest { id })
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn policy_reject(
        &self,
        by: &Option<String>,
        id: i64,
        reason: &str,
    ) -> Result<pb::Proposal, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::policy_reject(hub, &by, id, reason).map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .reject(pb::RejectRequest {
                    id,
                    reason: reason.into(),
                })
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn policy_proposals(
        &self,
        by: &Option<String>,
        all: bool,
    ) -> Result<pb::ProposalList, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::policy_proposals(hub, &by, all).map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .list_proposals(pb::ListProposalsRequest { all })
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn policy_show(
        &self,
        by: &Option<String>,
        version: Option<i64>,
    ) -> Result<pb::PolicyVersion, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::policy_show(hub, &by, version).map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .show(pb::ShowRequest { version })
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn policy_explain(
        &self,
        by: &Option<String>,
        principal: &str,
        purpose: Option<&str>,
        sql: &str,
    ) -> Result<pb::Explanation, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::policy_explain(hub, &by, principal, purpose, sql)
                .await
                .map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .explain(pb::ExplainRequest {
                    principal: principal.into(),
                    purpose: purpose.map(str::to_string),
                    sql: sql.into(),
                })
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn emergency_declare(
        &self,
        by: &Option<String>,
        area: &str,
        until: &str,
        reason: &str,
    ) -> Result<pb::Emergency, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::emergency_declare(hub, &by, area, until, reason)
                .await
                .map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .declare_emergency(pb::DeclareEmergencyRequest {
                    area: area.into(),
                    until: until.into(),
                    reason: reason.into(),
                })
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn emergency_end(
        &self,
        by: &Option<String>,
        id: i64,
    ) -> Result<pb::Emergency, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::emergency_end(hub, &by, id).await.map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .end_emergency(pb::EndEmergencyRequest { id })
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    pub async fn emergency_list(&self, by: &Option<String>) -> Result<pb::EmergencyList, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::emergency_list(hub, &by).map_err(local_error),
            Backend::Remote(r) => r
                .policy()
                .list_emergencies(pb::ListEmergenciesRequest {})
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    /// Verify the audit log, against the witness text `q` carries if any (remotely it is
    /// sent to the hub, which compares it with its log).
    pub async fn audit_verify(
        &self,
        by: &Option<String>,
        q: pb::VerifyRequest,
    ) -> Result<pb::VerifyReport, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::audit_verify(hub, &by, &q).map_err(local_error),
            Backend::Remote(r) => r
                .audit()
                .verify(q)
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }

    /// Acknowledge a missing audit log (on the hub's own config only: the loss of the log
    /// is handled where the state dir is, not over the network).
    pub async fn audit_acknowledge_missing(
        &self,
        by: &Option<String>,
        reason: &str,
    ) -> Result<u64, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => hub
                .audit_acknowledge_missing(&by, reason)
                .map_err(local_error),
            Backend::Remote(_) => Err("acknowledge a missing audit log on the hub's host, with \
                                       its config (without --server)"
                .into()),
        }
    }

    pub async fn audit_search(
        &self,
        by: &Option<String>,
        q: pb::SearchRequest,
    ) -> Result<pb::AuditRecords, String> {
        let by = self.actor(by)?;
        match self {
            Backend::Local(hub) => api::audit_search(hub, &by, &q).map_err(local_error),
            Backend::Remote(r) => r
                .audit()
                .search(q)
                .await
                .map(|r| r.into_inner())
                .map_err(remote_error),
        }
    }
}
