//! Policy administration, emergencies and the audit log, as a principal: each action checks
//! the policy (`manage_policy`, `declare_emergency`, `read_audit`) and is itself audited.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use gridhub_audit::{
    AuditFilter, AuditLog, AuditOptions, AuditRecord, Outcome, RecordKind, StoredRecord,
    VerifyReport,
};
use gridhub_policy::{Emergency, PolicyStore, PolicyVersion, TableDecision};

use crate::error::{EngineError, Result};
use crate::hub::Hub;

impl Hub {
    /// Validate a policy text against this hub's tables, columns, tags, sources, roles and
    /// principals; returns the number of policy lines. Anyone may check.
    pub async fn policy_check(&self, text: &str) -> Result<usize> {
        Ok(self.governance().compile(text).await?.line_count())
    }

    /// Activate a new policy version. An invalid text is refused and the active version
    /// stays; the attempt is audited either way.
    pub async fn policy_apply(&self, by: &str, text: &str, comment: &str) -> Result<PolicyVersion> {
        let gov = self.governance();
        let actor = gov.principal(by)?.clone();
        gov.require(&actor, "manage_policy")?;
        let compiled = gov.compile(text).await;
        match compiled {
            Err(e) => {
                gov.audit_change(
                    &actor,
                    RecordKind::PolicyChange,
                    format!("apply policy ({comment}) refused"),
                    Outcome::Error,
                    Some(e.to_string()),
                )?;
                Err(e)
            }
            Ok(_) => {
                let v = gov.store().apply(text, by, comment, Utc::now())?;
                gov.audit_change(
                    &actor,
                    RecordKind::PolicyChange,
                    format!(
                        "apply policy version {} ({} lines, sha256 {}): {comment}",
                        v.version, v.line_count, v.sha256
                    ),
                    Outcome::Ok,
                    None,
                )?;
                gov.reload().await?;
                Ok(v)
            }
        }
    }

    /// Re-activate an older version as a new version.
    pub async fn policy_rollback(&self, by: &str, version: i64) -> Result<PolicyVersion> {
        let gov = self.governance();
        let actor = gov.principal(by)?.clone();
        gov.require(&actor, "manage_policy")?;
        let old = gov.store().get(version)?;
        if let Some(text) = old.as_ref().and_then(|v| v.text.clone()) {
            // An old version that no longer fits the config is refused like any apply.
            gov.compile(&text).await?;
        }
        let v = gov.store().rollback(version, by, Utc::now())?;
        gov.audit_change(
            &actor,
            RecordKind::PolicyChange,
            format!(
                "rollback to policy version {version} as version {}",
                v.version
            ),
            Outcome::Ok,
            None,
        )?;
        gov.reload().await?;
        Ok(v)
    }

    /// Versions, oldest first (policy managers and auditors).
    pub fn policy_history(&self, by: &str) -> Result<Vec<PolicyVersion>> {
        let gov = self.governance();
        let actor = gov.principal(by)?;
        gov.require(actor, "manage_policy")
            .or_else(|_| gov.require(actor, "read_audit"))?;
        Ok(gov.store().history()?)
    }

    /// The text of a version (default: the active one).
    pub fn policy_show(&self, by: &str, version: Option<i64>) -> Result<PolicyVersion> {
        let gov = self.governance();
        let actor = gov.principal(by)?;
        gov.require(actor, "manage_policy")
            .or_else(|_| gov.require(actor, "read_audit"))?;
        let v = match version {
            Some(n) => gov.store().get(n)?,
            None => gov.store().active()?,
        };
        v.ok_or_else(|| EngineError::Denied {
            message: format!("no policy version {}", version.unwrap_or_default()),
        })
    }

    /// Per table the query reads: rows, and every column's decision with the policy lines that
    /// decided, for `principal` with `purpose` now. Runs nothing; audited as the actor's read.
    pub async fn policy_explain(
        &self,
        by: &str,
        principal: &str,
        purpose: Option<&str>,
        sql: &str,
    ) -> Result<Vec<Arc<TableDecision>>> {
        let gov = self.governance();
        let actor = gov.principal(by)?.clone();
        gov.require(&actor, "manage_policy")?;
        let subject = gov.principal(principal)?.clone();
        let mut decisions = Vec::new();
        let planned = self.plan_as(&subject, purpose, sql, &mut decisions).await;
        if decisions.is_empty() {
            planned?;
        }
        Ok(decisions)
    }

    /// Declare an emergency for `area` until `until`.
    pub async fn emergency_declare(
        &self,
        by: &str,
        area: &str,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<Emergency> {
        let gov = self.governance();
        let actor = gov.principal(by)?.clone();
        gov.require(&actor, "declare_emergency")?;
        let e = gov
            .store()
            .declare_emergency(area, until, reason, by, gov.now())?;
        gov.audit_change(
            &actor,
            RecordKind::Emergency,
            format!(
                "declare emergency {} for {area} until {until}: {reason}",
                e.id
            ),
            Outcome::Ok,
            None,
        )?;
        gov.reload().await?;
        Ok(e)
    }

    /// End an emergency now.
    pub async fn emergency_end(&self, by: &str, id: i64) -> Result<Emergency> {
        let gov = self.governance();
        let actor = gov.principal(by)?.clone();
        gov.require(&actor, "declare_emergency")?;
        let e = gov.store().end_emergency(id, by, gov.now())?;
        gov.audit_change(
            &actor,
            RecordKind::Emergency,
            format!("end emergency {id} for {}", e.area),
            Outcome::Ok,
            None,
        )?;
        gov.reload().await?;
        Ok(e)
    }

    /// Every emergency, newest first, with whether it is active now.
    pub fn emergency_list(&self, by: &str) -> Result<Vec<(Emergency, bool)>> {
        let gov = self.governance();
        let actor = gov.principal(by)?;
        gov.require(actor, "declare_emergency")
            .or_else(|_| gov.require(actor, "read_audit"))?;
        let now = gov.now();
        Ok(gov
            .store()
            .emergencies()?
            .into_iter()
            .map(|e| {
                let active = e.is_active(now);
                (e, active)
            })
            .collect())
    }

    /// Verify the audit chain (and whether the log is missing).
    pub fn audit_verify(&self, by: &str) -> Result<VerifyReport> {
        let gov = self.governance();
        gov.require(gov.principal(by)?, "read_audit")?;
        Ok(gov.audit().verify()?)
    }

    /// Verify the audit chain, then the log against a witness file's contents (`witness`,
    /// named `name` in the report): see `gridhub_audit::AuditLog::verify_against`.
    pub fn audit_verify_against(
        &self,
        by: &str,
        witness: &str,
        name: &str,
    ) -> Result<VerifyReport> {
        let gov = self.governance();
        gov.require(gov.principal(by)?, "read_audit")?;
        Ok(gov.audit().verify_against_text(witness, name)?)
    }

    /// Acknowledge that the audit log is missing (it was removed from a hub with history):
    /// a new log starts with a record saying who acknowledged it, why, and what showed the
    /// history, and audited actions resume. Needs `manage_policy`; refused when the log is
    /// not missing.
    pub fn audit_acknowledge_missing(&self, by: &str, reason: &str) -> Result<u64> {
        let gov = self.governance();
        let actor = gov.principal(by)?;
        gov.require(actor, "manage_policy")?;
        let missing = gov.audit().missing()?.unwrap_or_default();
        Ok(gov.audit().acknowledge_missing(&AuditRecord {
            at: Utc::now(),
            kind: RecordKind::AuditRestart,
            principal: actor.id.clone(),
            roles: actor.roles.clone(),
            area: actor.area.clone(),
            purpose: None,
            text: format!("acknowledge the loss of the audit log: {reason}"),
            tables: Vec::new(),
            columns: Vec::new(),
            rows: None,
            outcome: Outcome::Ok,
            message: Some(format!("the log was missing although {missing}")),
            duration_ms: None,
            person_ids: Vec::new(),
            person_ids_truncated: false,
            started_seq: None,
        })?)
    }

    /// Search the audit log.
    pub fn audit_search(&self, by: &str, filter: &AuditFilter) -> Result<Vec<StoredRecord>> {
        let gov = self.governance();
        gov.require(gov.principal(by)?, "read_audit")?;
        Ok(gov.audit().search(filter)?)
    }
}

/// Opens the hub's audit log, with its witness and what the hub's other state says about its
/// history. Called by `Governance::open` before the default policy is applied, so a policy
/// version in the store means the log was opened (and anchored) before.
pub(crate) fn open_audit_log(hub: &Hub, store: &PolicyStore) -> Result<AuditLog> {
    let config = hub.config();
    let path = config.state_dir.join("audit.db");
    let Some(key) = &config.audit_key else {
        // Only a hub without principals (the config refuses the rest): it audits nothing.
        return Ok(AuditLog::without_key(&path)?);
    };
    let options = AuditOptions {
        witness: config.audit_witness.clone(),
        witness_every: config.audit_witness_every,
        history: audit_history(hub, store)?,
    };
    Ok(AuditLog::open_with(&path, key.as_bytes(), &options)?)
}

/// Why the hub must already have an audit log, from the state next to it: policy versions
/// (the first is applied by the open that creates the log), emergencies and catalog loads
/// (a load runs in a hub that opened the log). `None` for a new hub.
fn audit_history(hub: &Hub, store: &PolicyStore) -> Result<Option<String>> {
    let versions = store.history()?.len();
    let emergencies = store.emergencies()?.len();
    let loads = hub
        .store()
        .sources()?
        .iter()
        .filter(|s| s.last_load.is_some())
        .count();
    let facts: Vec<String> = [
        (versions, "policy version"),
        (emergencies, "emergency"),
        (loads, "loaded source"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}{}", if n == 1 { "" } else { "s" }))
    .collect();
    Ok((!facts.is_empty()).then(|| format!("the hub's state has {}", facts.join(", "))))
}
