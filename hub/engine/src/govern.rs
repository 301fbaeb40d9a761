//! Governed queries: every query a principal runs is planned against *policy views* only.
//!
//! How a query is governed (fail closed at every step):
//! 1. The SQL must be one plain query (`SELECT`, `WITH`, set operations). `EXPLAIN`, `SET`,
//!    `SHOW`, DDL, DML and `COPY` are refused.
//! 2. Every table it names is resolved in the hub: shared tables and `_rejects` (`public`),
//!    raw source tables (`src_<source>`). `system.*`, `live.*` and `information_schema`
//!    are not open to principals.
//! 3. For each table, the policy decides once ([`Policy::decide`], cached): rows (admin-code
//!    prefix of the jurisdiction, whole, or denied) and every column (clear, masked, denied,
//!    or clear/masked only inside an emergency area). The decision is compiled into a view:
//!    `Projection(masks) ← scan of the guarded table`, whose scan applies the row filter
//!    (`area_code LIKE 'J%'`) below everything else of the query ([`crate::guarded`]: no
//!    user predicate is evaluated on a row outside the jurisdiction). Denied columns are absent;
//!    masks are opaque SQL functions that keep the column's type, so any predicate, join or
//!    aggregate of the user's query — pushed down or not — sees only the masked value.
//! 4. The user's query is planned in a session whose catalog holds nothing but those views
//!    (no information_schema). Before it runs, every scan in the plan, subqueries included,
//!    must be the guarded real table under one of those views ([`GuardedTable`]; DataFusion
//!    inlines views while planning): otherwise the query is refused.
//! 5. The outcome is appended to the audit log (durably) before the result is returned.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider,
    SchemaProvider, TableProvider,
};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::datasource::{DefaultTableSource, ViewTable, provider_as_source};
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::{FunctionRegistry, SessionStateBuilder};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF, lit, when};
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use futures::StreamExt;
use gridhub_audit::{AuditLog, AuditRecord, ColumnAccessRecord, Outcome, RecordKind};
use gridhub_catalog::{Tag, shared_table, shared_tables};
use gridhub_policy::{
    Access, ColumnDecision, ColumnInfo, Emergency, Known, PURPOSES, Policy, PolicyStore, Principal,
    RowAccess, TableDecision, TableInfo, TableKind,
};

use crate::error::{EngineError, Result};
pub use crate::guarded::GuardedTable;
use crate::hub::{CATALOG, Hub, REJECTS_TABLE, SHARED_SCHEMA, source_schema};

/// At most this many `person_id`s are recorded per audited read of health or location data;
/// beyond it the record says it is truncated.
pub const AUDIT_PERSON_ID_BOUND: usize = 10_000;

/// The clock decisions are taken at (tests set their own).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How sensitive a tag is; a raw value of unknown meaning takes the most sensitive tag.
fn sensitivity(tag: Tag) -> u8 {
    match tag {
        Tag::Public => 0,
        Tag::Contact => 1,
        Tag::Identity => 2,
        Tag::Special => 3,
        Tag::Health => 4,
        Tag::Location => 5,
    }
}

const MOST_SENSITIVE: Tag = Tag::Location;

/// The answer to a governed query.
#[derive(Debug)]
pub struct GovernedAnswer {
    pub batches: Vec<RecordBatch>,
    /// The decision for every table the query read.
    pub decisions: Vec<Arc<TableDecision>>,
    /// Sequence number of the audit record.
    pub audit_seq: u64,
}

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
    /// How each governed table is read: its jurisdiction expressions and mask choices.
    readings: HashMap<String, Reading>,
    /// `gh_mask_place` with the communities of the last load (made on first use).
    place_mask: Mutex<Option<ScalarUDF>>,
}

/// How a governed table is read under a policy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reading {
    /// The row's area code. Shared tables: the `area_code` column; raw tables: the mapping's
    /// area_code expression over the raw columns, one per mapping that gives one (a row must
    /// lie in the jurisdiction by each). Empty: the table has no jurisdiction.
    area: Vec<Expr>,
    /// Column → the shared column it holds or feeds, which chooses its mask.
    feeds: HashMap<String, String>,
    /// Columns whose reading decides whether a row is shown at all (see
    /// [`gridhub_catalog::TableDef::presence_column`]): a row is shown only where each of
    /// them reads clear.
    presence: Vec<String>,
}

impl Reading {
    fn shared(def: &gridhub_catalog::TableDef) -> Reading {
        Reading {
            area: if def.column("area_code").is_some() {
                vec![column("area_code")]
            } else {
                Vec::new()
            },
            feeds: HashMap::new(),
            presence: def
                .presence_column()
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }

    /// The shared column `name` holds or feeds (itself for shared tables).
    fn shared_column<'a>(&'a self, name: &'a str) -> &'a str {
        self.feeds.get(name).map(String::as_str).unwrap_or(name)
    }

    /// Rows whose area code starts with one of `areas` (by every area expression).
    fn in_areas(&self, areas: &[String]) -> Expr {
        if self.area.is_empty() {
            return lit(false);
        }
        self.area
            .iter()
            .map(|area| {
                areas
                    .iter()
                    .map(|a| area.clone().like(lit(format!("{a}%"))))
                    .reduce(Expr::or)
                    .unwrap_or(lit(false))
            })
            .reduce(Expr::and)
            .unwrap_or(lit(false))
    }
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance")
            .field("principals", &self.principals.len())
            .finish()
    }
}

impl Governance {
    /// Open the policy store and audit log under the state dir. With no policy applied yet,
    /// the default policy becomes version 1.
    pub(crate) async fn open(governed: GovernedTables, hub: &Hub) -> Result<Self> {
        let config = hub.config();
        let store = PolicyStore::open(&config.state_dir.join("policy.db"))?;
        // Before the default policy is applied: a policy version means an earlier open.
        let audit = crate::admin::open_audit_log(hub, &store)?;
        let known = Known {
            tables: governed.tables,
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
            readings: governed.readings,
            place_mask: Mutex::new(None),
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
        governance.reload().await?;
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
    /// hub's config closes every governed query until a valid one is applied.
    pub async fn reload(&self) -> Result<()> {
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
                Ok(p) => Ok((v.version, Arc::new(p))),
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

    /// How a governed table is read (its jurisdiction and mask choices).
    pub(crate) fn reading(&self, name: &str) -> Option<&Reading> {
        self.readings.get(name)
    }

    /// Forget the place mask's communities (the shared tables were reloaded).
    pub(crate) fn forget_communities(&self) {
        *self.place_mask.lock().unwrap_or_else(|e| e.into_inner()) = None;
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

/// The tables policies govern, with the tag of every column: shared tables as the catalog
/// defines them; raw tables with the tag of the shared columns their columns feed (an
/// unmapped column takes the most sensitive tag of its table; `_row` is public); `_rejects`
/// with its raw values at the most sensitive tag.
pub(crate) async fn governed_tables(hub: &Hub) -> GovernedTables {
    let mut out: Vec<TableInfo> = shared_tables().iter().map(TableInfo::shared).collect();
    let mut readings: HashMap<String, Reading> = shared_tables()
        .iter()
        .map(|d| (d.name.to_string(), Reading::shared(d)))
        .collect();
    let lineage = hub.lineage();
    for s in hub.sources() {
        for t in &s.tables {
            let schema = hub
                .context()
                .table_provider(TableReference::partial(source_schema(&s.name), t.as_str()))
                .await
                .ok()
                .map(|p| p.schema())
                .map(|schema| {
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let feeds = |column: &str| -> Option<Tag> {
                lineage
                    .iter()
                    .filter(|l| l.source == s.name && &l.source_table == t)
                    .filter(|l| mentions(&l.source_expr, column))
                    .filter_map(fed_tag)
                    .max_by_key(|tag| sensitivity(*tag))
            };
            let mapped: Vec<Option<Tag>> = schema.iter().map(|c| feeds(c)).collect();
            // A raw column no mapping reads holds something nobody has classified: it takes
            // the most sensitive tag, whatever its neighbours hold.
            let unmapped_tag = MOST_SENSITIVE;
            // Raw columns that feed a shared table's presence column decide, like it, whether
            // a raw row is shown at all.
            let presence: Vec<String> = schema
                .iter()
                .filter(|c| {
                    lineage
                        .iter()
                        .filter(|l| l.source == s.name && &l.source_table == t)
                        .filter(|l| mentions(&l.source_expr, c))
                        .any(|l| {
                            shared_table(&l.shared_table)
                                .and_then(|d| d.presence_column())
                                .is_some_and(|p| p == l.shared_column)
                        })
                })
                .cloned()
                .collect();
            let name = format!("{}.{t}", source_schema(&s.name));
            let area: Vec<Expr> = hub
                .mappings()
                .iter()
                .filter(|m| m.source == s.name && &m.source_table == t)
                .filter_map(|m| m.area_code.clone())
                .collect();
            // A raw column that is, as configured, a shared column chooses that one's mask
            // (the most sensitive one when it feeds several).
            let mut feeds: HashMap<String, (u8, String)> = HashMap::new();
            for l in lineage
                .iter()
                .filter(|l| l.source == s.name && &l.source_table == t)
                .filter(|l| schema.contains(&l.source_expr))
            {
                let rank = fed_tag(l).map_or(0, sensitivity);
                let keep = feeds
                    .get(&l.source_expr)
                    .is_some_and(|(old, _)| *old >= rank);
                if !keep {
                    feeds.insert(l.source_expr.clone(), (rank, fed_column(l).to_string()));
                }
            }
            let has_area_code = !area.is_empty();
            let feeds = feeds
                .into_iter()
                .map(|(raw, (_, fed))| (raw, fed))
                .collect();
            readings.insert(
                name.clone(),
                Reading {
                    area,
                    feeds,
                    presence,
                },
            );
            out.push(TableInfo {
                name,
                kind: TableKind::Raw {
                    source: s.name.clone(),
                },
                has_area_code,
                columns: schema
                    .iter()
                    .zip(mapped)
                    .map(|(c, tag)| ColumnInfo {
                        name: c.clone(),
                        tag: if c == gridhub_connector::ROW_NUMBER_COLUMN {
                            Tag::Public
                        } else {
                            tag.unwrap_or(unmapped_tag)
                        },
                    })
                    .collect(),
            });
        }
    }
    out.push(TableInfo {
        name: REJECTS_TABLE.to_string(),
        kind: TableKind::Rejects,
        has_area_code: false,
        columns: gridhub_mapping::rejects_columns()
            .iter()
            .map(|c| ColumnInfo {
                name: c.to_string(),
                tag: if *c == "raw" {
                    MOST_SENSITIVE
                } else {
                    Tag::Public
                },
            })
            .collect(),
    });
    readings.insert(REJECTS_TABLE.to_string(), Reading::default());
    GovernedTables {
        tables: out,
        readings,
    }
}

/// The governed tables as policies see them, and how each is read.
pub(crate) struct GovernedTables {
    tables: Vec<TableInfo>,
    readings: HashMap<String, Reading>,
}

/// The shared column whose tag and mask a raw column feeding `l` takes: the raw value of a
/// pseudonymised `person_id` is a resident ID, so it is read as `id_number` (identity), not as
/// the public pseudonym it becomes.
fn fed_column(l: &gridhub_catalog::LineageRecord) -> &str {
    if l.shared_column == "person_id" || l.transform.as_deref() == Some("person_id") {
        "id_number"
    } else {
        &l.shared_column
    }
}

/// The tag of what a raw column feeding `l` holds (see [`fed_column`]).
fn fed_tag(l: &gridhub_catalog::LineageRecord) -> Option<Tag> {
    if fed_column(l) == "id_number" {
        return Some(Tag::Identity);
    }
    shared_table(&l.shared_table)
        .and_then(|d| d.column(&l.shared_column))
        .map(|c| c.tag)
}

/// Whether a lineage expression (a column name, or a SQL expression) reads `column`.
fn mentions(expr: &str, column: &str) -> bool {
    expr == column || expr.contains(&format!("\"{column}\"")) || {
        expr.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|token| token == column)
    }
}

/// The filter the presence columns put on a table's rows: none when each reads clear; rows
/// of the emergency areas that open it to clear reading; otherwise no row at all.
fn presence_filter(decision: &TableDecision, reading: &Reading) -> Option<Expr> {
    reading
        .presence
        .iter()
        .filter_map(|name| match decision.column(name) {
            Some(c) if c.access == Access::Clear => None,
            Some(c) if !c.emergency_clear_areas.is_empty() => {
                Some(reading.in_areas(&c.emergency_clear_areas))
            }
            _ => Some(lit(false)),
        })
        .reduce(Expr::and)
}

/// Whether `provider` is a snapshot of a shared table whose every row's `area_code` starts
/// with `area` (raw tables and live views are never proven).
fn proven_inside(provider: &Arc<dyn TableProvider>, reading: &Reading, area: &str) -> bool {
    reading.feeds.is_empty()
        && reading.area.len() == 1
        && reading.area[0] == column("area_code")
        && provider
            .downcast_ref::<crate::snapshot::SnapshotTable>()
            .is_some_and(|s| s.all_rows_in(area))
}

fn column(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// NULL of a column's type: what a masked or closed value reads as.
fn typed_null(data_type: &DataType) -> Result<Expr> {
    ScalarValue::try_from(data_type)
        .map(lit)
        .map_err(|e| EngineError::Query {
            message: e.to_string(),
        })
}

impl Hub {
    /// The masked form of a column, chosen by the shared column it holds or feeds: the
    /// DOMAIN.md masks for ID number, name, phone and birth date; a place reads as its
    /// community's name; NULL of the column's type for everything else.
    fn mask(
        &self,
        name: &str,
        data_type: &DataType,
        reading: &Reading,
        place_mask: &ScalarUDF,
    ) -> Result<Expr> {
        let udf = match (reading.shared_column(name), data_type) {
            ("id_number", DataType::Utf8) => Some("gh_mask_id_number"),
            ("name" | "reported_by", DataType::Utf8) => Some("gh_mask_name"),
            ("phone", DataType::Utf8) => Some("gh_mask_phone"),
            ("birth_date", DataType::Date32) => Some("gh_mask_birth_date"),
            ("place", DataType::Utf8) if reading.area.len() == 1 => {
                return Ok(place_mask.call(vec![reading.area[0].clone()]));
            }
            _ => None,
        };
        Ok(match udf {
            Some(f) => self
                .context()
                .udf(f)
                .map_err(|e| EngineError::Query {
                    message: e.to_string(),
                })?
                .call(vec![column(name)]),
            None => typed_null(data_type)?,
        })
    }

    /// The expression a column is read through, or None when it is absent.
    fn column_expr(
        &self,
        c: &ColumnDecision,
        data_type: &DataType,
        reading: &Reading,
        place_mask: &ScalarUDF,
    ) -> Result<Option<Expr>> {
        let mask = || self.mask(&c.column, data_type, reading, place_mask);
        let base = match c.access {
            Access::Clear => Some(column(&c.column)),
            Access::Masked => Some(mask()?),
            Access::Denied => None,
        };
        if c.emergency_clear_areas.is_empty() && c.emergency_masked_areas.is_empty() {
            return Ok(base);
        }
        let mut otherwise = match base {
            Some(e) => e,
            None => typed_null(data_type)?,
        };
        if !c.emergency_masked_areas.is_empty() {
            otherwise = when(reading.in_areas(&c.emergency_masked_areas), mask()?)
                .otherwise(otherwise)
                .map_err(|e| EngineError::Query {
                    message: e.to_string(),
                })?;
        }
        if c.emergency_clear_areas.is_empty() {
            return Ok(Some(otherwise));
        }
        Ok(Some(
            when(
                reading.in_areas(&c.emergency_clear_areas),
                column(&c.column),
            )
            .otherwise(otherwise)
            .map_err(|e| EngineError::Query {
                message: e.to_string(),
            })?,
        ))
    }

    async fn community_rows(&self) -> datafusion::error::Result<Vec<RecordBatch>> {
        self.context()
            .sql(&format!(
                "SELECT code, name FROM {CATALOG}.{SHARED_SCHEMA}.admin_unit \
                 WHERE length(code) = 12 AND name IS NOT NULL"
            ))
            .await?
            .collect()
            .await
    }

    /// `gh_mask_place` knowing the communities of the loaded `admin_unit` (code → name),
    /// made once per load.
    async fn place_mask(&self) -> Result<ScalarUDF> {
        let gov = self.governance();
        if let Some(udf) = gov
            .place_mask
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(udf);
        }
        // admin_unit unreadable (its source down, no snapshot): places mask to NULL for now,
        // and the next query tries again.
        let Ok(batches) = self.community_rows().await else {
            return Ok(gridhub_normalize::place_mask_udf(Default::default()));
        };
        let mut communities = std::collections::BTreeMap::new();
        for b in &batches {
            let codes =
                datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).map_err(|e| {
                    EngineError::Query {
                        message: e.to_string(),
                    }
                })?;
            let names =
                datafusion::arrow::compute::cast(b.column(1), &DataType::Utf8).map_err(|e| {
                    EngineError::Query {
                        message: e.to_string(),
                    }
                })?;
            for (code, name) in codes
                .as_string::<i32>()
                .iter()
                .zip(names.as_string::<i32>())
            {
                if let (Some(code), Some(name)) = (code, name) {
                    communities.insert(code.to_string(), name.to_string());
                }
            }
        }
        let udf = gridhub_normalize::place_mask_udf(communities);
        *gov.place_mask.lock().unwrap_or_else(|e| e.into_inner()) = Some(udf.clone());
        Ok(udf)
    }

    /// Compile a decision into the view a principal reads the table through.
    fn policy_view(
        &self,
        reference: TableReference,
        provider: Arc<dyn TableProvider>,
        decision: &TableDecision,
        reading: &Reading,
        place_mask: &ScalarUDF,
    ) -> Result<ViewTable> {
        let err = |e: DataFusionError| EngineError::Query {
            message: e.to_string(),
        };
        let schema = provider.schema();
        let rows = match &decision.rows {
            // A snapshot whose every row lies in the jurisdiction (its file's exact statistics
            // prove it) needs no row filter: a city-wide principal pays nothing for it.
            RowAccess::Jurisdiction(area) if proven_inside(&provider, reading, area) => None,
            // No jurisdiction expression: `in_areas` is false, so no row (fail closed).
            RowAccess::Jurisdiction(area) => Some(reading.in_areas(std::slice::from_ref(area))),
            RowAccess::All => None,
            RowAccess::Denied => {
                return Err(EngineError::Denied {
                    message: decision.reason.clone().unwrap_or_else(|| {
                        format!("table {} is closed to this principal", decision.table)
                    }),
                });
            }
        };
        let rows = match (rows, presence_filter(decision, reading)) {
            (rows, None) => rows,
            (None, Some(p)) => Some(p),
            (Some(r), Some(p)) => Some(r.and(p)),
        };
        // The row filter runs inside the guarded scan, below every predicate of the query.
        let guarded: Arc<dyn TableProvider> = Arc::new(GuardedTable::new(provider.clone(), rows));
        let plan =
            LogicalPlanBuilder::scan(reference, provider_as_source(guarded), None).map_err(err)?;
        let mut exprs = Vec::new();
        for field in schema.fields() {
            // A column the decision does not know is denied.
            let Some(c) = decision.column(field.name()) else {
                continue;
            };
            if let Some(e) = self.column_expr(c, field.data_type(), reading, place_mask)? {
                exprs.push(e.alias(field.name()));
            }
        }
        if exprs.is_empty() {
            return Err(EngineError::Denied {
                message: format!(
                    "no column of {} is readable by this principal with this purpose",
                    decision.table
                ),
            });
        }
        let plan = plan.project(exprs).map_err(err)?.build().map_err(err)?;
        Ok(ViewTable::new(plan, None))
    }

    /// Resolve a table a governed query names: (schema, table, the name policies know it by).
    fn governed_name(&self, reference: &TableReference) -> Result<(String, String, String)> {
        let refuse = |what: &str| EngineError::Denied {
            message: format!(
                "{what} cannot be read by a principal: only shared tables, _rejects and raw source tables are governed"
            ),
        };
        if let Some(catalog) = reference.catalog()
            && catalog != CATALOG
        {
            return Err(refuse(&format!("catalog {catalog}")));
        }
        let schema = reference.schema().unwrap_or(SHARED_SCHEMA).to_string();
        let table = reference.table().to_string();
        if schema == SHARED_SCHEMA {
            return Ok((schema, table.clone(), table));
        }
        if self
            .sources()
            .iter()
            .any(|s| source_schema(&s.name) == schema)
        {
            let name = format!("{schema}.{table}");
            return Ok((schema, table, name));
        }
        Err(refuse(&format!("{schema}.{table}")))
    }

    /// Run `sql` as `principal_id` with `purpose`, under the active policy; audited.
    pub async fn query_as(
        &self,
        principal_id: &str,
        purpose: Option<&str>,
        sql: &str,
    ) -> Result<GovernedAnswer> {
        let gov = self.governance();
        let principal = gov.principal(principal_id)?.clone();
        let started = Instant::now();
        let mut decisions: Vec<Arc<TableDecision>> = Vec::new();
        let result = self
            .run_governed(&principal, purpose, sql, &mut decisions)
            .await;
        let (outcome, message, batches) = match result {
            Ok(batches) => (Outcome::Ok, None, Some(batches)),
            Err(EngineError::Denied { message }) => (Outcome::Denied, Some(message), None),
            Err(e) => (Outcome::Error, Some(e.to_string()), None),
        };
        let (person_ids, truncated) = match &batches {
            Some(b) if reads_sensitive(&decisions) => person_ids(b),
            _ => (Vec::new(), false),
        };
        let record = query_record(
            &principal,
            purpose,
            sql,
            &decisions,
            batches
                .as_ref()
                .map(|b| b.iter().map(|b| b.num_rows() as u64).sum()),
            outcome,
            message.clone(),
            started,
            (person_ids, truncated),
        );
        // Durable before the result is returned; if it cannot be recorded, nothing is.
        let audit_seq = gov.audit().append(&record)?;
        match batches {
            Some(batches) => Ok(GovernedAnswer {
                batches,
                decisions,
                audit_seq,
            }),
            None => Err(match outcome {
                Outcome::Denied => EngineError::Denied {
                    message: message.unwrap_or_default(),
                },
                _ => EngineError::Governed {
                    message: message.unwrap_or_default(),
                },
            }),
        }
    }

    /// Plan a governed query (no audit): the plan and the decisions of the tables it reads.
    pub async fn plan_as(
        &self,
        principal: &Principal,
        purpose: Option<&str>,
        sql: &str,
        decisions: &mut Vec<Arc<TableDecision>>,
    ) -> Result<DataFrame> {
        self.plan_as_within(principal, purpose, sql, decisions, &QueryLimits::default())
            .await
    }

    /// [`Hub::plan_as`] under `limits` (the plan runs in its own memory pool when one is set).
    pub async fn plan_as_within(
        &self,
        principal: &Principal,
        purpose: Option<&str>,
        sql: &str,
        decisions: &mut Vec<Arc<TableDecision>>,
        limits: &QueryLimits,
    ) -> Result<DataFrame> {
        Ok(self
            .plan_governed(
                principal,
                purpose,
                sql,
                None,
                PlanStage::Logical,
                decisions,
                limits,
            )
            .await?
            .frame)
    }

    /// Plan a governed query (with `params` bound to `$1`, … when given) up to `stage`: the
    /// frame, its physical plan, and until when its decisions hold.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn plan_governed(
        &self,
        principal: &Principal,
        purpose: Option<&str>,
        sql: &str,
        params: Option<datafusion::common::ParamValues>,
        stage: PlanStage,
        decisions: &mut Vec<Arc<TableDecision>>,
        limits: &QueryLimits,
    ) -> Result<GovernedPlan> {
        let gov = self.governance();
        gov.reload().await?;
        let (_, policy) = gov.policy()?;
        if let Some(p) = purpose
            && !gov.known().purposes.iter().any(|k| k == p)
        {
            return Err(EngineError::Denied {
                message: format!(
                    "unknown purpose '{p}' (purposes: {})",
                    gov.known().purposes.join(", ")
                ),
            });
        }
        let state = self.context().state();
        let recursion_limit = state.config().options().sql_parser.recursion_limit.get();
        let statement = crate::bounds::parse_bounded(sql, &limits.sql, recursion_limit).await?;
        let is_query = matches!(&statement, DfStatement::Statement(s) if matches!(**s, SqlStatement::Query(_)));
        if !is_query {
            return Err(EngineError::Denied {
                message: "only queries (SELECT, WITH, UNION …) may run as a principal; EXPLAIN, SHOW, SET, DDL, DML and COPY are refused".into(),
            });
        }
        let references = state
            .resolve_table_references(&statement)
            .map_err(|e| self.describe(e))?;

        // The session the query is planned in holds the policy views and nothing else.
        let catalog = Arc::new(MemoryCatalogProvider::new());
        let now = gov.now();
        let emergencies = gov.emergencies();
        let place_mask = self.place_mask().await?;
        let mut seen = BTreeSet::new();
        let mut valid_until: Option<DateTime<Utc>> = None;
        for reference in &references {
            let (schema, table, name) = self.governed_name(reference)?;
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(info) = gov.table_info(&name) else {
                // Name only what this principal may read: the list of every table (raw
                // source tables included) is itself something to govern.
                return Err(EngineError::UnknownTable {
                    table: name.clone(),
                    known: self
                        .readable(principal, purpose, &policy, &emergencies, now)
                        .map(|(info, _)| info.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            let decision = policy.decide(principal, purpose, &emergencies, now, info);
            if !emergencies.is_empty() {
                // Decisions an emergency widened hold only while it lasts: the stream stops
                // when the first of the emergencies that reach this principal ends.
                let ordinary = policy.decide(principal, purpose, &[], now, info);
                if !same_access(&decision, &ordinary) {
                    valid_until = emergencies
                        .iter()
                        .filter(|e| overlaps(&e.area, &principal.area))
                        .map(|e| e.until)
                        .chain(valid_until)
                        .min();
                }
            }
            decisions.push(decision.clone());
            let provider = self
                .context()
                .table_provider(TableReference::partial(schema.as_str(), table.as_str()))
                .await
                .map_err(|e| self.describe(e))?;
            let reading = gov.reading(&name).ok_or_else(|| EngineError::Denied {
                message: format!("{name} has no reading under policies"),
            })?;
            let view = self.policy_view(
                TableReference::partial(schema.as_str(), table.as_str()),
                provider,
                &decision,
                reading,
                &place_mask,
            )?;
            let schema_provider = match catalog.schema(&schema) {
                Some(s) => s,
                None => {
                    let s: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
                    catalog
                        .register_schema(&schema, s.clone())
                        .map_err(|e| self.describe(e))?;
                    s
                }
            };
            schema_provider
                .register_table(table, Arc::new(view))
                .map_err(|e| self.describe(e))?;
        }
        let governed = self.principal_session(state, catalog, limits)?;
        let decided: &[Arc<TableDecision>] = decisions;
        // Planning recurses over the query: on a thread whose stack is known, whatever the
        // caller's (bounded by the SQL limits, so this is headroom, not the defence).
        let (frame, physical) = crate::bounds::on_planner_stack(async move {
            let plan = governed.statement_to_plan(statement).await.map_err(|e| {
                explain_planning_error(self.describe(e), decided, principal, purpose)
            })?;
            verify_only_policy_views(&plan)?;
            crate::bounds::check_plan(&plan, &limits.sql)?;
            let mut frame = DataFrame::new(governed, plan);
            if let Some(p) = params {
                frame = frame.with_param_values(p).map_err(|e| self.describe(e))?;
            }
            let physical = match stage {
                PlanStage::Logical => None,
                PlanStage::Physical => Some(
                    frame
                        .clone()
                        .create_physical_plan()
                        .await
                        .map_err(crate::stream::execution_error)?,
                ),
            };
            Ok::<_, EngineError>((frame, physical))
        })?;
        Ok(GovernedPlan {
            frame,
            physical,
            valid_until,
        })
    }

    /// The session a principal's query is planned in: `catalog` (the policy views) and
    /// nothing else — no information_schema, only the allowed functions
    /// ([`crate::functions`]), no table functions, the query's own memory pool.
    fn principal_session(
        &self,
        state: datafusion::execution::SessionState,
        catalog: Arc<MemoryCatalogProvider>,
        limits: &QueryLimits,
    ) -> Result<datafusion::execution::SessionState> {
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        datafusion::catalog::CatalogProviderList::register_catalog(
            catalogs.as_ref(),
            CATALOG.to_string(),
            catalog,
        );
        let mut config = state.config().clone();
        config.options_mut().catalog.information_schema = false;
        // Otherwise the builder replaces our catalog with an empty default one.
        config
            .options_mut()
            .catalog
            .create_default_catalog_and_schema = false;
        let (scalar, aggregate, window) = crate::functions::allowed(&state);
        let mut builder = SessionStateBuilder::new_from_existing(state)
            .with_config(config)
            .with_catalog_list(catalogs)
            .with_scalar_functions(scalar)
            .with_aggregate_functions(aggregate)
            .with_window_functions(window)
            .with_higher_order_functions(Vec::new())
            .with_table_functions(HashMap::new());
        if let Some(bytes) = limits.memory_bytes {
            // Fair spill pool: sorts and aggregations spill to disk within it; what cannot
            // spill (a join's hash table) fails with ResourcesExhausted instead of taking
            // memory the rest of the hub needs.
            let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::from_runtime_env(
                self.context().runtime_env().as_ref(),
            )
            .with_memory_pool(Arc::new(
                datafusion::execution::memory_pool::FairSpillPool::new(bytes),
            ))
            .build_arc()
            .map_err(|e| self.describe(e))?;
            builder = builder.with_runtime_env(runtime);
        }
        Ok(builder.build())
    }

    /// Every function a principal's session can call, by kind and canonical name
    /// (`scalar:abs`, `aggregate:count`, `window:rank`, `table:…`; aliases name the same
    /// functions), read off a session built the way every governed query's is.
    pub fn principal_function_names(&self) -> Result<Vec<String>> {
        let session = self.principal_session(
            self.context().state(),
            Arc::new(MemoryCatalogProvider::new()),
            &QueryLimits::default(),
        )?;
        Ok(function_names(&session))
    }

    /// Every function name the operator's session has (for comparison with
    /// [`Hub::principal_function_names`]).
    pub fn operator_function_names(&self) -> Vec<String> {
        function_names(&self.context().state())
    }

    /// The tables `principal` may read some rows of with `purpose`, with their decisions.
    fn readable<'a>(
        &'a self,
        principal: &'a Principal,
        purpose: Option<&'a str>,
        policy: &'a Policy,
        emergencies: &'a [Emergency],
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = (&'a TableInfo, Arc<TableDecision>)> + 'a {
        self.governance()
            .known()
            .tables
            .iter()
            .map(move |info| {
                (
                    info,
                    policy.decide(principal, purpose, emergencies, now, info),
                )
            })
            .filter(|(_, decision)| decision.rows != RowAccess::Denied)
    }

    /// The tables `principal` may read with `purpose`, each as (schema, table, the columns
    /// the principal sees: denied ones absent), decided by the policy without planning a
    /// query. A table whose source cannot be read is left out.
    pub async fn visible_tables(
        &self,
        principal_id: &str,
        purpose: Option<&str>,
    ) -> Result<Vec<(String, String, SchemaRef)>> {
        let gov = self.governance();
        let principal = gov.principal(principal_id)?.clone();
        gov.reload().await?;
        let (_, policy) = gov.policy()?;
        let now = gov.now();
        let emergencies = gov.emergencies();
        let mut out = Vec::new();
        for (info, decision) in self.readable(&principal, purpose, &policy, &emergencies, now) {
            let (schema, table) = match info.name.split_once('.') {
                Some((s, t)) => (s.to_string(), t.to_string()),
                None => (SHARED_SCHEMA.to_string(), info.name.clone()),
            };
            let Ok(provider) = self
                .context()
                .table_provider(TableReference::partial(schema.as_str(), table.as_str()))
                .await
            else {
                continue;
            };
            let fields: Vec<_> = provider
                .schema()
                .fields()
                .iter()
                .filter_map(|f| {
                    let c = decision.column(f.name())?;
                    let readable = c.access != Access::Denied
                        || !c.emergency_clear_areas.is_empty()
                        || !c.emergency_masked_areas.is_empty();
                    readable.then(|| {
                        let clear = c.access == Access::Clear;
                        f.as_ref().clone().with_nullable(f.is_nullable() || !clear)
                    })
                })
                .collect();
            if fields.is_empty() {
                continue;
            }
            out.push((
                schema,
                table,
                Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
            ));
        }
        Ok(out)
    }

    async fn run_governed(
        &self,
        principal: &Principal,
        purpose: Option<&str>,
        sql: &str,
        decisions: &mut Vec<Arc<TableDecision>>,
    ) -> Result<Vec<RecordBatch>> {
        let plan = self
            .plan_governed(
                principal,
                purpose,
                sql,
                None,
                PlanStage::Physical,
                decisions,
                &QueryLimits::default(),
            )
            .await?;
        let task = Arc::new(plan.frame.task_ctx());
        // The collected answer is counted in the query's memory pool like its operators.
        let held = MemoryConsumer::new("gridhub collected answer").register(task.memory_pool());
        let physical = plan.physical.expect("planned to the physical stage");
        // Collected, so executed where planning ran: on a stack of known size.
        crate::bounds::on_planner_stack(async move {
            let mut stream = datafusion::physical_plan::execute_stream(physical, task)
                .map_err(crate::stream::execution_error)?;
            let mut batches = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(crate::stream::execution_error)?;
                held.try_grow(batch.get_array_memory_size())
                    .map_err(crate::stream::execution_error)?;
                batches.push(batch);
            }
            Ok(batches)
        })
    }
}

/// Every function of a session by kind and canonical name (`scalar:abs`, `aggregate:count`,
/// `table:generate_series`, …), sorted; aliases are names of these same functions.
fn function_names(state: &datafusion::execution::SessionState) -> Vec<String> {
    let mut names: Vec<String> = state
        .scalar_functions()
        .values()
        .map(|f| format!("scalar:{}", f.name()))
        .chain(
            state
                .aggregate_functions()
                .values()
                .map(|f| format!("aggregate:{}", f.name())),
        )
        .chain(
            state
                .window_functions()
                .values()
                .map(|f| format!("window:{}", f.name())),
        )
        .chain(state.table_functions().keys().map(|n| format!("table:{n}")))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// How far [`Hub::plan_governed`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanStage {
    /// The logical plan (its schema and parameters): enough to prepare a statement.
    Logical,
    /// Also the physical plan, ready to execute.
    Physical,
}

/// A planned governed query.
pub(crate) struct GovernedPlan {
    pub(crate) frame: DataFrame,
    /// The physical plan, when asked for ([`PlanStage::Physical`]).
    pub(crate) physical: Option<Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
    /// The first instant at which an emergency that widened these decisions ends: the
    /// answer must not be read past it.
    pub(crate) valid_until: Option<DateTime<Utc>>,
}

/// Whether two decisions for one table give the same access (lines and hints aside).
fn same_access(a: &TableDecision, b: &TableDecision) -> bool {
    a.rows == b.rows
        && a.columns.len() == b.columns.len()
        && a.columns.iter().zip(&b.columns).all(|(x, y)| {
            x.column == y.column
                && x.access == y.access
                && x.emergency_clear_areas == y.emergency_clear_areas
                && x.emergency_masked_areas == y.emergency_masked_areas
        })
}

/// Whether two admin codes' areas overlap (one is a prefix of the other).
fn overlaps(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Refuse a plan with any scan that is not a policy view, or any statement that is not a
/// query (checked again here: the parser check is not the only line of defence).
fn verify_only_policy_views(plan: &LogicalPlan) -> Result<()> {
    let mut problem: Option<String> = None;
    plan.apply_with_subqueries(|node| {
        let bad = match node {
            LogicalPlan::TableScan(scan) => {
                let guarded = scan
                    .source
                    .downcast_ref::<DefaultTableSource>()
                    .is_some_and(|s| s.table_provider.is::<GuardedTable>());
                (!guarded).then(|| format!("the scan of {} is not a policy view", scan.table_name))
            }
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => Some("EXPLAIN".into()),
            LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::Extension(_) => Some(format!("a {} node", node.display())),
            _ => None,
        };
        if let Some(bad) = bad {
            problem = Some(bad);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| EngineError::Query {
        message: e.to_string(),
    })?;
    match problem {
        None => Ok(()),
        Some(p) => Err(EngineError::Denied {
            message: format!("query refused: {p} (the hub cannot prove the policy applies)"),
        }),
    }
}

/// A planning error that names a column the principal may not read becomes a sentence that
/// says which column, its tag, and what would allow it.
fn explain_planning_error(
    e: EngineError,
    decisions: &[Arc<TableDecision>],
    principal: &Principal,
    purpose: Option<&str>,
) -> EngineError {
    let text = e.to_string();
    if !text.contains("No field named") && !text.contains("no field named") {
        return e;
    }
    for d in decisions {
        for c in &d.columns {
            let absent = c.access == Access::Denied
                && c.emergency_clear_areas.is_empty()
                && c.emergency_masked_areas.is_empty();
            let named = [
                format!("named {}", c.column),
                format!("named \"{}\"", c.column),
                format!("named {}.{}", d.table, c.column),
            ]
            .iter()
            .any(|n| {
                text.split(n.as_str())
                    .skip(1)
                    .any(|rest| !rest.starts_with(|ch: char| ch.is_alphanumeric() || ch == '_'))
            });
            if absent && named {
                return EngineError::Denied {
                    message: format!(
                        "column {}.{} ({}) is denied to {} with purpose {}{}",
                        d.table,
                        c.column,
                        c.tag,
                        principal.id,
                        purpose.unwrap_or("(none)"),
                        c.hint
                            .as_ref()
                            .map(|h| format!(": {h}"))
                            .unwrap_or_default()
                    ),
                };
            }
        }
    }
    e
}

/// How a column was read, for the audit log and `policy explain`.
pub fn describe_access(c: &ColumnDecision) -> String {
    let base = match c.access {
        Access::Clear => "clear",
        Access::Masked => "masked",
        Access::Denied => "denied",
    };
    let mut s = base.to_string();
    if !c.emergency_clear_areas.is_empty() {
        s.push_str(&format!(
            "; clear in emergency {}",
            c.emergency_clear_areas.join(", ")
        ));
    }
    if !c.emergency_masked_areas.is_empty() {
        s.push_str(&format!(
            "; masked in emergency {}",
            c.emergency_masked_areas.join(", ")
        ));
    }
    s
}

/// Limits a governed query runs under (the hub server's guards; locally only the SQL
/// bounds, which hold everywhere).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryLimits {
    /// The query's own memory pool, in bytes: its operators and the batches of its answer
    /// on their way out are counted in it.
    pub memory_bytes: Option<usize>,
    /// Bounds on the SQL text, its nesting and the plan.
    pub sql: crate::bounds::SqlLimits,
}

/// Whether a query's decisions open a health or location column (then the `person_id`s it
/// returns are audited).
pub(crate) fn reads_sensitive(decisions: &[Arc<TableDecision>]) -> bool {
    decisions.iter().any(|d| {
        d.columns.iter().any(|c| {
            matches!(c.tag, Tag::Health | Tag::Location)
                && (c.access != Access::Denied
                    || !c.emergency_clear_areas.is_empty()
                    || !c.emergency_masked_areas.is_empty())
        })
    })
}

/// The audit record of a query.
#[allow(clippy::too_many_arguments)]
pub(crate) fn query_record(
    principal: &Principal,
    purpose: Option<&str>,
    sql: &str,
    decisions: &[Arc<TableDecision>],
    rows: Option<u64>,
    outcome: Outcome,
    message: Option<String>,
    started: Instant,
    (person_ids, person_ids_truncated): (Vec<String>, bool),
) -> AuditRecord {
    AuditRecord {
        at: Utc::now(),
        kind: RecordKind::Query,
        principal: principal.id.clone(),
        roles: principal.roles.clone(),
        area: principal.area.clone(),
        purpose: purpose.map(str::to_string),
        text: sql.to_string(),
        tables: decisions.iter().map(|d| d.table.clone()).collect(),
        columns: decisions
            .iter()
            .flat_map(|d| {
                d.columns.iter().map(|c| ColumnAccessRecord {
                    table: d.table.clone(),
                    column: c.column.clone(),
                    decision: describe_access(c),
                })
            })
            .collect(),
        rows,
        outcome,
        message,
        duration_ms: Some(started.elapsed().as_millis() as u64),
        person_ids,
        person_ids_truncated,
        started_seq: None,
    }
}

/// Distinct `person_id`s in a result, at most [`AUDIT_PERSON_ID_BOUND`].
pub(crate) fn person_ids(batches: &[RecordBatch]) -> (Vec<String>, bool) {
    let mut ids = crate::stream::PersonIds::default();
    for b in batches {
        ids.add(b);
    }
    ids.into_sorted()
}

/// A table decision laid out per column, for `gridhub policy explain`.
pub fn decision_rows(d: &TableDecision) -> Vec<BTreeMap<&'static str, String>> {
    let rows = match &d.rows {
        RowAccess::Jurisdiction(a) => format!("area_code LIKE '{a}%'"),
        RowAccess::All => "all rows".into(),
        RowAccess::Denied => "denied".into(),
    };
    d.columns
        .iter()
        .map(|c| {
            let mut m = BTreeMap::new();
            m.insert("table", d.table.clone());
            m.insert("rows", rows.clone());
            m.insert("column", c.column.clone());
            m.insert("tag", c.tag.to_string());
            m.insert("decision", describe_access(c));
            m.insert("lines", c.lines.join(" | "));
            m.insert("hint", c.hint.clone().unwrap_or_default());
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn lineage_mentions_whole_names_only() {
        assert!(mentions("姓名", "姓名"));
        assert!(mentions("gh_phone(\"电话\")", "电话"));
        assert!(mentions("coalesce(phone, mobile)", "phone"));
        assert!(!mentions("phone_old", "phone"));
    }
}
