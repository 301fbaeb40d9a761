//! Governance: every query a principal runs is planned against *policy views* only, and
//! audited.
//!
//! [`GovernedHub`] wraps the [`Hub`] it governs (which knows nothing of policies) and owns
//! the rest:
//!
//! - [`state`]: the policy store and active policy, principals, emergencies, clock, audit log;
//! - [`tags`]: the governed tables — each column's tag, each table's jurisdiction and masks;
//! - [`views`]: a decision compiled into a policy view (row filter in a [`GuardedTable`],
//!   masks on the catalog's column model);
//! - [`plan`]: bounded parsing, decisions, the principal's session, plan verification;
//! - [`query`]: the one pipeline every entry point takes (decide → views → plan → verify →
//!   execute as a stream → audit);
//! - [`stream`] and [`record`]: the streamed answer and its audit records;
//! - [`admin`]: policy changes, emergencies and the audit log as a principal.
//!
//! Fail closed at every step: the SQL must be one plain query; every table it names is
//! resolved and decided once (rows by admin-code prefix of the jurisdiction, whole, or
//! denied; each column clear, masked, denied, or opened only inside an emergency area); the
//! session it is planned in holds nothing but the views; before it runs, every scan of the
//! plan, subqueries included, must be the guarded table under one of those views; the audit
//! record is durable before any row leaves.

pub mod admin;
pub mod guarded;
pub mod operator;
pub mod plan;
pub mod query;
pub mod record;
pub mod state;
pub mod stream;
pub(crate) mod tags;
pub(crate) mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::logical_expr::ScalarUDF;

pub use guarded::GuardedTable;
pub use operator::{OPERATOR, OperatorAnswer, operator_principal, os_user};
pub use plan::{QueryLimits, VisibleTable};
pub use query::{GovernedAnswer, PlanUse, PlannedQuery, PreparedPlan};
pub use record::{AUDIT_PERSON_ID_BOUND, DecisionRow, decision_rows, describe_access};
pub use state::{Clock, Governance};
pub use stream::GovernedStream;

use crate::error::Result;
use crate::hub::Hub;
use tags::Reading;

/// A hub under its policies: the only way a principal's query reaches the hub's tables.
pub struct GovernedHub {
    hub: Arc<Hub>,
    governance: Governance,
    /// How each governed table is read: its jurisdiction expressions and mask choices.
    readings: HashMap<String, Reading>,
    /// `gh_mask_place` with the communities of the hub's load it was made for.
    place_mask: Mutex<Option<(u64, ScalarUDF)>>,
    /// The session a principal's query is planned in, without its policy views: built once
    /// (the hub's session config and functions do not change after it opens).
    principal_base: datafusion::execution::SessionState,
}

impl std::fmt::Debug for GovernedHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GovernedHub")
            .field("hub", &self.hub)
            .field("governance", &self.governance)
            .finish()
    }
}

impl GovernedHub {
    /// Govern `hub`: derive its governed tables, open its policy store and audit log (the
    /// default policy becomes version 1 of a new hub) and compile the active policy.
    pub async fn open(hub: Arc<Hub>) -> Result<GovernedHub> {
        let tables = tags::governed_tables(&hub).await;
        let governance = Governance::open(hub.config(), hub.store(), tables.tables).await?;
        let principal_base = plan::principal_base_session(hub.context().state());
        Ok(GovernedHub {
            hub,
            governance,
            readings: tables.readings,
            place_mask: Mutex::new(None),
            principal_base,
        })
    }

    /// Open the hub described by `config` and govern it.
    pub async fn open_config(config: crate::HubConfig) -> Result<GovernedHub> {
        Self::open(Arc::new(Hub::open(config).await?)).await
    }

    /// Read the config at `path`, open the hub and govern it.
    pub async fn open_path(path: &std::path::Path) -> Result<GovernedHub> {
        Self::open(Arc::new(Hub::open_path(path).await?)).await
    }

    /// The hub governed: sources, loads, the operator's session.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Policy, principals, emergencies, clock and audit log.
    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    /// How a governed table is read (its jurisdiction and mask choices).
    fn reading(&self, name: &str) -> Option<&Reading> {
        self.readings.get(name)
    }

    /// The place mask for the hub's current load (made once per load).
    async fn place_mask(&self) -> Result<ScalarUDF> {
        let generation = self.hub.generation();
        if let Some((made_for, udf)) = self
            .place_mask
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            && made_for == generation
        {
            return Ok(udf);
        }
        let Some(udf) = views::place_mask(&self.hub).await? else {
            // Places mask to NULL for now; the next query tries again.
            return Ok(gridhub_normalize::place_mask_udf(Default::default()));
        };
        *self.place_mask.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((generation, udf.clone()));
        Ok(udf)
    }
}
