//! Access policy for gridhub: who may read what, decided by Casbin.
//!
//! - [`DEFAULT_MODEL`] (`policies/model.conf`) is the Casbin model; [`DEFAULT_POLICY`]
//!   (`policies/policy.csv`) the default policy implementing the role table of docs/domain.md.
//!   `policies/README.md` documents the line format and the default decisions.
//! - [`Policy::compile`] validates a model and policy against what the hub [`Known`]s and
//!   the configured [`Principal`]s, reporting every problem with its line number.
//! - [`Policy::decide`] answers, per (principal, purpose, emergencies, table), which rows
//!   and how each column may be read ([`TableDecision`]); the engine compiles that into its
//!   plans (row filter by admin-code prefix, mask functions, absent denied columns).
//!   Decisions are cached: Casbin scans every policy line on every call.
//! - [`PolicyStore`] keeps policy versions (apply, history, rollback), [`Proposal`]s (changes
//!   that widen access, waiting for a second officer) and declared [`Emergency`]s in SQLite.
//! - [`widenings`] compares two compiled policies over the hub's principals, tables, purposes
//!   and emergency states: what a change would open; [`Policy::administration_problems`] says
//!   whether a policy would lock the hub's administration out.
//!
//! There is no DataFusion here: this crate decides, the engine enforces.

mod change;
mod decide;
mod emergency;
mod error;
mod known;
mod parse;
mod store;
pub mod synthetic;

use serde::{Deserialize, Serialize};

pub use change::{ADMINISTRATION, Widening, summarize, widenings};
pub use decide::{Access, ColumnDecision, Policy, RowAccess, TableDecision};
pub use emergency::Emergency;
pub use error::{Location, PolicyError, Problem, Result};
pub use known::{ColumnInfo, Known, REJECTS, TableInfo, TableKind};
pub use parse::count_lines;
pub use store::{NewProposal, PolicyChange, PolicyStore, PolicyVersion, Proposal, ProposalState};

/// The Casbin model (`policies/model.conf`).
pub const DEFAULT_MODEL: &str = include_str!("../model.conf");

/// The default policy (`policies/policy.csv`).
pub const DEFAULT_POLICY: &str = include_str!("../policy.csv");

/// The roles policy lines and principals may name.
pub const ROLES: &[&str] = &[
    "city_analyst",
    "district_analyst",
    "street_officer",
    "community_worker",
    "grid_worker",
    "health_officer",
    "volunteer",
    "property_company",
    "security_officer",
    "auditor",
];

/// The actions policy lines may name.
pub const ACTIONS: &[&str] = &[
    "read_rows",
    "read_all_rows",
    "read_clear",
    "read_masked",
    "pull",
    "manage_policy",
    "declare_emergency",
    "read_audit",
];

/// The purposes a query may state (the default of [`Known::purposes`]).
pub const PURPOSES: &[&str] = &[
    "routine",
    "statistics",
    "elderly_care",
    "epidemic_response",
    "emergency_response",
    "service_delivery",
    "audit",
];

/// A user of the hub, from the hub configuration's `[[principals]]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Roles from [`ROLES`].
    pub roles: Vec<String>,
    /// Jurisdiction: an admin code; rows of tables with area_code are limited to it.
    pub area: String,
}

/// Whether `code` is an admin code: 4 (city), 6 (district), 9 (street), 12 (community) or
/// 15 (grid) digits.
pub fn is_admin_code(code: &str) -> bool {
    matches!(code.len(), 4 | 6 | 9 | 12 | 15) && code.bytes().all(|b| b.is_ascii_digit())
}
