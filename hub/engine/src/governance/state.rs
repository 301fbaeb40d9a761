//! The governance state of a hub: the policy store and the active compiled policy, the
//! principals, the emergencies in force, the clock decisions are taken at, and the audit log.
//! It knows the governed tables as policies see them ([`TableInfo`]) and nothing of how they
//! are planned or read.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use gridhub_audit::{AuditLog, AuditRecord, Outcome, RecordKind};
use gridhub_catalog::CatalogStore;
use gridhub_policy::{Emergency, Known, PURPOSES, Policy, PolicyStore, Principal, TableInfo};

use crate::config::HubConfig;
use crate::error::{EngineError, Result};

/// The clock decisions are taken at (tests set their own).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The policy, its store, the principals and the audit log of a hub.
pub struct Governance {
    store: PolicyStore,
    audit: Arc<AuditLog>,
    principals: Vec<Principal>,
    known: Known,
    /// Active policy version and its compiled form, or why none can be used.
    active: RwLock<std::result::Result<(i64, Arc<Policy>), String>>,
    emergencies: RwLock<Vec<Emergency>>,
    clock: RwLock<Clock>,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance")
            .field("principals", &self.principals.len())
            .finish()
    }
}

impl Governance {
    /// Open the policy store and audit log under the config's state dir, governing `tables`.
    /// With no policy applied yet, the default policy becomes version 1.
    pub(crate) async fn open(
        config: &HubConfig,
        catalog: &CatalogStore,
        tables: Vec<TableInfo>,
    ) -> Result<Self> {
        let store = PolicyStore::open(&config.state_dir.join("policy.db"))?;
        // Before the default policy is applied: a policy version means an earlier open.
        let audit = super::admin::open_audit_log(config, catalog, &store)?;
        let known = Known {
            tables,
            sources: config.sources.iter().map(|s| s.name.clone()).collect(),
            purposes: PURPOSES.iter().map(|p| p.to_string()).collect(),
        };
        let governance = Self {
            store,
            audit: Arc::new(audit),
            principals: config.principals.clone(),
            known,
            active: RwLock::new(Err("no policy loaded".into())),
            emergencies: RwLock::new(Vec::new()),
            clock: RwLock::new(Arc::new(Utc::now)),
        };
        if governance.store.active()?.is_none() {
            let policy = governance.compile(gridhub_policy::DEFAULT_POLICY).await?;
            let v = governance.store.apply(
                policy.text(),
                "gridhub",
                "default policy (policies/policy.csv)",
                Utc::now(),
            )?;
            *governance.active.write().expect("policy lock") = Ok((v.version, Arc::new(policy)));
        }
        governance.reload_and(false).await?;
        Ok(governance)
    }

    /// Compile a policy text against this hub's tables and principals.
    pub async fn compile(&self, text: &str) -> Result<Policy> {
        Ok(Policy::compile(
            gridhub_policy::DEFAULT_MODEL,
            text,
            &self.principals,
            &self.known,
        )
        .await?)
    }

    /// Pick up the active policy version and the emergencies from the store (another
    /// process may have changed them). A version that no longer compiles against this
    /// hub's config closes every governed query until a valid one is applied. A newly
    /// compiled version makes its shared verdicts on a thread of its own
    /// ([`Policy::prepare`]), so principals' first queries after a policy change find them.
    pub async fn reload(&self) -> Result<()> {
        self.reload_and(true).await
    }

    /// [`reload`](Self::reload), preparing a newly compiled version's verdicts when
    /// `prepare` (not when the hub opens: its first queries find them made as they go).
    async fn reload_and(&self, prepare: bool) -> Result<()> {
        let active = self.store.active_version()?;
        let current = self
            .active
            .read()
            .expect("policy lock")
            .as_ref()
            .ok()
            .map(|a| a.0);
        if let Some(version) = active
            && Some(version) != current
            && let Some(v) = self.store.get(version)?
        {
            let text = v.text.clone().unwrap_or_default();
            let compiled = match self.compile(&text).await {
                Ok(p) => {
                    let policy = Arc::new(p);
                    if prepare {
                        self.prepare_in_background(&policy);
                    }
                    Ok((v.version, policy))
                }
                Err(e) => Err(format!(
                    "the active policy version {} does not fit this hub's config: {e}",
                    v.version
                )),
            };
            *self.active.write().expect("policy lock") = compiled;
        }
        *self.emergencies.write().expect("emergency lock") =
            self.store.emergencies_in_force(self.now())?;
        Ok(())
    }

    /// Start [`Policy::prepare`] for the governed tables on a thread of its own; a thread
    /// that cannot be started only means the verdicts are made by the first queries.
    fn prepare_in_background(&self, policy: &Arc<Policy>) {
        let policy = Arc::clone(policy);
        let tables = self.known.tables.clone();
        let now = self.now();
        let started = std::thread::Builder::new()
            .name("gridhub-policy-prepare".into())
            .spawn(move || {
                let began = std::time::Instant::now();
                let calls = policy.prepare(&tables, now);
                tracing::debug!(
                    calls,
                    ms = began.elapsed().as_millis() as u64,
                    "policy verdicts prepared"
                );
            });
        if let Err(e) = started {
            tracing::warn!("cannot start preparing the policy's verdicts: {e}");
        }
    }

    pub fn principals(&self) -> &[Principal] {
        &self.principals
    }

    pub fn principal(&self, id: &str) -> Result<&Principal> {
        self.principals
            .iter()
            .find(|p| p.id == id)
            .ok_or_else(|| EngineError::UnknownPrincipal {
                id: id.to_string(),
                known: self
                    .principals
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The active policy and its version.
    pub fn policy(&self) -> Result<(i64, Arc<Policy>)> {
        self.active
            .read()
            .expect("policy lock")
            .clone()
            .map_err(|message| EngineError::Denied { message })
    }

    pub fn store(&self) -> &PolicyStore {
        &self.store
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The audit log, shared (a streamed answer appends its record when it ends).
    pub fn audit_log(&self) -> Arc<AuditLog> {
        self.audit.clone()
    }

    pub fn known(&self) -> &Known {
        &self.known
    }

    pub fn emergencies(&self) -> Vec<Emergency> {
        self.emergencies.read().expect("emergency lock").clone()
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock.read().expect("clock lock"))()
    }

    /// The clock decisions are taken at.
    pub fn clock(&self) -> Clock {
        self.clock.read().expect("clock lock").clone()
    }

    /// Replace the clock (tests: emergency expiry without waiting).
    pub fn set_clock(&self, clock: Clock) {
        *self.clock.write().expect("clock lock") = clock;
    }

    /// The table as policies see it.
    pub fn table_info(&self, name: &str) -> Option<&TableInfo> {
        self.known.tables.iter().find(|t| t.name == name)
    }

    /// Check that `principal` may do a hub action (`manage_policy`, `declare_emergency`,
    /// `read_audit`), or a clear denial.
    pub fn require(&self, principal: &Principal, action: &str) -> Result<()> {
        let (_, policy) = self.policy()?;
        if policy.allows(principal, action) {
            Ok(())
        } else {
            Err(EngineError::Denied {
                message: format!(
                    "{} (roles {}) may not {action}: no policy line allows it",
                    principal.id,
                    principal.roles.join(", ")
                ),
            })
        }
    }

    /// Append an audit record for a change made by `principal`.
    pub fn audit_change(
        &self,
        principal: &Principal,
        kind: RecordKind,
        text: String,
        outcome: Outcome,
        message: Option<String>,
    ) -> Result<u64> {
        Ok(self.audit.append(&AuditRecord {
            at: Utc::now(),
            kind,
            principal: principal.id.clone(),
            roles: principal.roles.clone(),
            area: principal.area.clone(),
            purpose: None,
            text,
            tables: Vec::new(),
            columns: Vec::new(),
            rows: None,
            outcome,
            message,
            duration_ms: None,
            person_ids: Vec::new(),
            person_ids_truncated: false,
            started_seq: None,
        })?)
    }
}
