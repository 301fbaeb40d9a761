//! The gridhub engine: reads the hub config, opens every source through its connector,
//! compiles the mappings into views over the raw tables, merges them into the shared
//! tables, and answers SQL with DataFusion.
//!
//! How a query flows: `Hub::sql` plans the SQL in one DataFusion session. `public.<table>`
//! is the shared table's snapshot from the last load (Parquet, see [`snapshot`]);
//! `live.<table>` is the view (merge over mapped projections over raw scans), where the
//! optimizer sees the whole plan and pushes filters and projections into the Parquet and
//! SQLite scans. Raw tables stay
//! queryable as `src_<source>.<table>`, rejected rows as `_rejects`, the catalog as
//! `system.*`.

pub mod bounds;
pub mod config;
pub mod error;
pub mod fault;
pub mod functions;
pub mod governance;
pub mod hub;
pub mod lifecycle;
pub mod snapshot;
pub mod system;
mod unavailable;

pub use bounds::SqlLimits;
pub use config::{HubConfig, OnError, ServerConfig, SourceConfig, TlsFiles};
pub use error::{EngineError, Result, SqlPosition};
pub use fault::{Serving, SourceFault, SourceStatus};
pub use governance::{
    Governance, GovernedAnswer, GovernedHub, GovernedStream, GuardedTable, OPERATOR,
    OperatorAnswer, PlanUse, PlannedQuery, PreparedPlan, QueryLimits, VisibleTable,
    describe_access, operator_principal, os_user,
};
pub use gridhub_policy::Principal;
pub use hub::{
    Hub, LIVE_SCHEMA, LoadSummary, NoProgress, Progress, REJECTS_TABLE, RefreshOutcome,
    SHARED_SCHEMA, SYSTEM_SCHEMA, SourceState, rejects_schema, source_schema,
};
pub use lifecycle::discard_derived_state;
pub use system::{ColumnRow, SourceRow, SystemCatalog, SystemTable, TableRow};
