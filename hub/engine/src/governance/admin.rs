//! Policy administration, emergencies and the audit log, as a principal: each action checks
//! the policy (`manage_policy`, `declare_emergency`, `read_audit`) and is itself audited.
//!
//! Separation of duties (GB/T 39477: administrator, auditor and operator are separate): a
//! policy change (apply or rollback) that widens any principal's access — compared decision
//! by decision with the active policy, see `gridhub_policy::widenings` — does not take
//! effect but becomes a pending proposal, which another principal allowed to
//! `manage_policy` approves or rejects. A change that would widen its proposer's own role
//! (or the approver's) is refused outright. A change that only narrows applies at once. No
//! change may leave the hub without a principal able to `manage_policy` or `read_audit`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use gridhub_audit::{
    AuditFilter, AuditLog, AuditOptions, AuditRecord, Outcome, RecordKind, StoredRecord,
    VerifyReport,
};
use gridhub_catalog::CatalogStore;
use gridhub_policy::{
    Emergency, NewProposal, Policy, PolicyChange, PolicyError, PolicyStore, PolicyVersion,
    Principal, Proposal, TableDecision, Widening, summarize, widenings,
};

use super::GovernedHub;
use crate::config::HubConfig;
use crate::error::{EngineError, Result};

/// How many widenings a proposal's diff summary names (then "and N more").
const SUMMARY_LINES: usize = 20;

/// `first (and N more)`.
fn first_and_more(items: &[&Widening]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

impl GovernedHub {
    /// Compile a policy text against this hub and refuse it if it would lock the hub's
    /// administration out (no lines, nobody to `manage_policy` or to `read_audit`).
    async fn compile_administrable(&self, text: &str) -> Result<Policy> {
        let gov = self.governance();
        let policy = gov.compile(text).await?;
        let problems = policy.administration_problems(gov.principals());
        if problems.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyError::Invalid(problems).into())
        }
    }

    /// The widenings from the active policy to `new`, computed off the async runtime (a few
    /// thousand decisions).
    async fn widenings_to(&self, new: Policy) -> Result<(i64, Vec<Widening>)> {
        let gov = self.governance();
        let (base, old) = gov.policy()?;
        let principals = gov.principals().to_vec();
        let known = gov.known().clone();
        let now = gov.now();
        let widened =
            tokio::task::spawn_blocking(move || widenings(&old, &new, &principals, &known, now))
                .await
                .map_err(|e| EngineError::Internal {
                    message: format!("comparing the policies failed: {e}"),
                })?;
        Ok((base, widened))
    }

    /// Validate a policy text against this hub's tables, columns, tags, sources, roles and
    /// principals, and that it keeps the hub administrable; returns the number of policy
    /// lines. Anyone may check.
    pub async fn policy_check(&self, text: &str) -> Result<usize> {
        Ok(self.compile_administrable(text).await?.line_count())
    }

    /// Change the policy to `text`. An invalid or lock-out text is refused and the active
    /// version stays. A text that only narrows access (or changes nothing) becomes the active
    /// version at once; one that widens anybody's access becomes a pending proposal
    /// ([`Hub::policy_approve`]), or is refused if it widens the applier's own role. Every
    /// outcome is audited.
    pub async fn policy_apply(&self, by: &str, text: &str, comment: &str) -> Result<PolicyChange> {
        let gov = self.governance();
        let actor = gov.principal(by)?.clone();
        gov.require(&actor, "manage_policy")?;
        let label = format!("apply policy ({comment})");
        let compiled = self.compile_administrable(text).await;
        let compiled = self.refused_if_err(&actor, &label, compiled)?;
        self.policy_change(&actor, text, comment, None, compiled, &label)
            .await
    }

    /// Re-activate an older version as a new version: like an apply of its text (refused if
    /// it no longer fits the config or would lock the administration out; a proposal if it
    /// widens access).
    pub async fn policy_rollback(&self, by: &str, version: i64) -> Result<PolicyChange> {
        let gov = self.governance();
        let actor = gov.principal(by)?.clone();
        gov.require(&actor, "manage_policy")?;
        let label = format!("rollback to policy version {version}");
        let old = gov.store().existing(version)?;
        let text = old.text.unwrap_or_default();
        let compiled = self.compile_administrable(&text).await;
        let compiled = self.refused_if_err(&actor, &label, compiled)?;
        self.policy_change(
            &actor,
            &text,
            &format!("rollback to {version}"),
            Some(version),
            compiled,
            &label,
        )
        .await
    }

    /// Audit a refused change (invalid, or it would lock the administration out).
    fn refused_if_err<T>(&self, actor: &Principal, label: &str, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.governance().audit_change(
                actor,
                RecordKind::PolicyChange,
                format!("{label} refused"),
                Outcome::Error,
                Some(e.to_string()),
            )?;
        }
        r
    }

    /// Apply a validated change at once if it widens nothing; otherwise propose it, or refuse
    /// it when it widens the actor's own role.
    async fn policy_change(
        &self,
        actor: &Principal,
        text: &str,
        comment: &str,
        rollback_of: Option<i64>,
        compiled: Policy,
        label: &str,
    ) -> Result<PolicyChange> {
        let gov = self.governance();
        let (base, widened) = self.widenings_to(compiled).await?;
        let now = Utc::now();
        if widened.is_empty() {
            let v = match rollback_of {
                Some(old) => gov.store().rollback(old, &actor.id, now)?,
                None => gov.store().apply(text, &actor.id, comment, now)?,
            };
            gov.audit_change(
                actor,
                RecordKind::PolicyChange,
                format!(
                    "{label} as policy version {} ({} lines, sha256 {}): widens no access",
                    v.version, v.line_count, v.sha256
                ),
                Outcome::Ok,
                None,
            )?;
            gov.reload().await?;
            return Ok(PolicyChange::Active(v));
        }
        let summary = summarize(&widened, SUMMARY_LINES);
        let proposal = NewProposal {
            text,
            by: &actor.id,
            comment,
            rollback_of,
            base_version: Some(base),
            widening: &summary,
            now,
        };
        let own: Vec<&Widening> = widened.iter().filter(|w| w.concerns(actor)).collect();
        if !own.is_empty() {
            let reason = format!(
                "it widens the access of {} (roles {}) itself: {}",
                actor.id,
                actor.roles.join(", "),
                first_and_more(&own)
            );
            let refused = gov.store().record_refused(&proposal, &reason)?;
            gov.audit_change(
                actor,
                RecordKind::PolicyChange,
                format!("{label} refused as policy change {}: {reason}", refused.id),
                Outcome::Denied,
                Some(summary),
            )?;
            return Err(EngineError::Denied {
                message: format!(
                    "policy change refused (recorded as change {}): {reason}; nobody may widen \
                     his own role's access — another principal allowed to manage_policy, of \
                     another role, must propose it",
                    refused.id
                ),
            });
        }
        let p = gov.store().propose(&proposal)?;
        gov.audit_change(
            actor,
            RecordKind::PolicyChange,
            format!(
                "{label} proposed as policy proposal {}: it widens access and takes effect \
                 only when another principal allowed to manage_policy approves it",
                p.id
            ),
            Outcome::Ok,
            Some(summary),
        )?;
        Ok(PolicyChange::Pending(p))
    }

    /// Activate a pending proposal. The approver must be allowed to `manage_policy`, must not
    /// be its proposer, and the change must not widen the approver's own role either; it is
    /// validated and compared again against the policy active now. Audited either way.
    pub async fn policy_approve(&self, by: &str, id: i64) -> Result<(Proposal, PolicyVersion)> {
        let gov = self.governance();
        let actor = gov.principal(by)?.clone();
        gov.require(&actor, "manage_policy")?;
        let label = format!("approve policy proposal {id}");
        let p = gov.store().pending_proposal(id)?;
        let deny = |message: String| -> Result<(Proposal, PolicyVersion)> {
            gov.audit_change(
                &actor,
                RecordKind::PolicyChange,
                format!("{label} refused"),
                Outcome::Denied,
                Some(message.clone()),
            )?;
            Err(EngineError::Denied { message })
        };
        if p.proposed_by == actor.id {
            return deny(format!(
                "{} proposed policy proposal {id}: another principal allowed to manage_policy \
                 must approve it (separation of duties)",
                actor.id
            ));
        }
        let text = p.text.clone().unwrap_or_default();
        let compiled = self.compile_administrable(&text).await;
        let compiled = self.refused_if_err(&actor, &label, compiled)?;
        let (base, widened) = self.widenings_to(compiled).await?;
        let own: Vec<&Widening> = widened.iter().filter(|w| w.concerns(&actor)).collect();
        if !own.is_empty() {
            return deny(format!(
                "approving policy proposal {id} would widen the access of {} (roles {}) \
                 itself: {}; another principal, of another role, must approve it",
                actor.id,
                actor.roles.join(", "),
                first_and_more(&own)
            ));
        }
        let summary = if widened.is_empty() {
            format!("widens nothing against the active version {base}")
        } else {
            summarize(&widened, SUMMARY_LINES)
        };
        let (p, v) = gov.store().approve(id, by, &summary, Utc::now())?;
        gov.audit_change(
            &actor,
            RecordKind::PolicyChange,
            format!(
                "{label} (proposed by {}) as policy version {} ({} lines, sha256 {})",
                p.proposed_by, v.version, v.line_count, v.sha256
            ),
            Outcome::Ok,
            Some(summary),
        )?;
        gov.reload().await?;
        Ok((p, v))
    }

    /// Reject a pending proposal: nothing takes effect. Another principal allowed to
    /// `manage_policy`, or the proposer himself (withdrawing it). Audited.
    pub fn policy_reject(&self, by: &str, id: i64, reason: &str) -> Result<Proposal> {
        let gov = self.governance();
        let actor = gov.principal(by)?.clone();
        gov.require(&actor, "manage_policy")?;
        let p = gov.store().reject(id, by, reason, Utc::now())?;
        gov.audit_change(
            &actor,
            RecordKind::PolicyChange,
            format!(
                "{} policy proposal {id} (proposed by {})",
                if p.proposed_by == actor.id {
                    "withdraw"
                } else {
                    "reject"
                },
                p.proposed_by
            ),
            Outcome::Ok,
            (!reason.is_empty()).then(|| reason.to_owned()),
        )?;
        Ok(p)
    }

    /// Proposals, oldest first. `pending_only`: the ones waiting (policy managers and
    /// auditors); otherwise every widening change ever attempted — pending, approved,
    /// rejected, refused — with who and when and its diff (auditors: `read_audit`).
    pub fn policy_proposals(&self, by: &str, pending_only: bool) -> Result<Vec<Proposal>> {
        let gov = self.governance();
        let actor = gov.principal(by)?;
        if pending_only {
            gov.require(actor, "manage_policy")
                .or_else(|_| gov.require(actor, "read_audit"))?;
        } else {
            gov.require(actor, "read_audit")?;
        }
        Ok(gov.store().proposals(pending_only)?)
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

    /// Declare an emergency for `area` until `until`, at most `[policy] emergency_max_hours`
    /// ahead (a longer one is refused, and the refusal audited).
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
        let now = gov.now();
        let max = self.hub.config().policy.emergency_max;
        if until - now > max {
            let message = format!(
                "expiry {until} is {} hours away, beyond the maximum of {} hours ([policy] \
                 emergency_max_hours): declare it until {} at the latest, and declare a new \
                 one if it must go on",
                (until - now).num_hours(),
                max.num_hours(),
                now + max
            );
            gov.audit_change(
                &actor,
                RecordKind::Emergency,
                format!("declare emergency for {area} until {until} refused"),
                Outcome::Denied,
                Some(message.clone()),
            )?;
            return Err(PolicyError::Emergency(message).into());
        }
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
pub(crate) fn open_audit_log(
    config: &HubConfig,
    catalog: &CatalogStore,
    store: &PolicyStore,
) -> Result<AuditLog> {
    let path = config.state_dir.join("audit.db");
    let Some(key) = &config.audit_key else {
        // Only a hub without principals (the config refuses the rest): it audits nothing.
        return Ok(AuditLog::without_key(&path)?);
    };
    let options = AuditOptions {
        witness: config.audit_witness.clone(),
        witness_every: config.audit_witness_every,
        history: audit_history(catalog, store)?,
    };
    Ok(AuditLog::open_with(&path, key.as_bytes(), &options)?)
}

/// Why the hub must already have an audit log, from the state next to it: policy versions
/// (the first is applied by the open that creates the log), emergencies and catalog loads
/// (a load runs in a hub that opened the log). `None` for a new hub.
fn audit_history(catalog: &CatalogStore, store: &PolicyStore) -> Result<Option<String>> {
    let versions = store.history()?.len();
    let emergencies = store.emergencies()?.len();
    let loads = catalog
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
