//! Planning a governed query: the SQL is parsed within bounds, must be one plain query, and
//! every table it names is resolved and decided once; the decisions are compiled into policy
//! views ([`super::views`]) in a session that holds nothing else (no information_schema, only
//! the allowed functions, the query's own memory pool); the plan is verified to scan policy
//! views only before it may run.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, MemorySchemaProvider,
    SchemaProvider,
};
use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::DefaultTableSource;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::DataFrame;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use gridhub_policy::{Access, Emergency, Policy, Principal, RowAccess, TableDecision, TableInfo};

use super::GovernedHub;
use super::guarded::GuardedTable;
use super::views::ViewBuilder;
use crate::error::{EngineError, Result};
use crate::hub::{CATALOG, SHARED_SCHEMA, source_schema};

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

/// A table a principal may read, as metadata calls list it.
#[derive(Debug, Clone)]
pub struct VisibleTable {
    /// `public` or `src_<source>`.
    pub schema: String,
    pub table: String,
    /// The columns the principal sees (masked ones nullable, denied ones absent).
    pub columns: SchemaRef,
    /// Why the table cannot be read now (its source is broken), if so.
    pub unavailable: Option<String>,
}

impl GovernedHub {
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
            .hub
            .sources()
            .iter()
            .any(|s| source_schema(&s.name) == schema)
        {
            let name = format!("{schema}.{table}");
            return Ok((schema, table, name));
        }
        Err(refuse(&format!("{schema}.{table}")))
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
        // Before any table is read: a load during planning makes the plan stale at once.
        let generation = self.hub.generation();
        let (policy_version, policy) = gov.policy()?;
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
        let state = &self.principal_base;
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
            .map_err(EngineError::plan)?;

        // The session the query is planned in holds the policy views and nothing else.
        let catalog = Arc::new(MemoryCatalogProvider::new());
        let now = gov.now();
        let emergencies = gov.emergencies();
        let views = ViewBuilder {
            hub: &self.hub,
            place_mask: self.place_mask().await?,
        };
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
                .hub
                .context()
                .table_provider(TableReference::partial(schema.as_str(), table.as_str()))
                .await
                .map_err(EngineError::plan)?;
            let reading = self.reading(&name).ok_or_else(|| EngineError::Denied {
                message: format!("{name} has no reading under policies"),
            })?;
            let view = views.policy_view(
                TableReference::partial(schema.as_str(), table.as_str()),
                provider,
                &decision,
                reading,
            )?;
            let schema_provider = match catalog.schema(&schema) {
                Some(s) => s,
                None => {
                    let s: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
                    catalog
                        .register_schema(&schema, s.clone())
                        .map_err(EngineError::plan)?;
                    s
                }
            };
            schema_provider
                .register_table(table, Arc::new(view))
                .map_err(EngineError::plan)?;
        }
        let (governed, runtime) = self.principal_session(catalog, limits)?;
        let decided = decisions.clone();
        let (who, why, sql_limits) = (
            principal.clone(),
            purpose.map(str::to_string),
            limits.sql.clone(),
        );
        // Planning recurses over the query: on a thread whose stack is known, whatever the
        // caller's (bounded by the SQL limits, so this is headroom, not the defence).
        let (frame, physical) = crate::bounds::planned(async move {
            let plan = governed.statement_to_plan(statement).await.map_err(|e| {
                explain_planning_error(EngineError::plan(e), &decided, &who, why.as_deref())
            })?;
            verify_only_policy_views(&plan)?;
            crate::bounds::check_plan(&plan, &sql_limits)?;
            let mut frame = DataFrame::new(governed, plan);
            if let Some(p) = params {
                frame = frame.with_param_values(p).map_err(EngineError::plan)?;
            }
            let physical = match stage {
                PlanStage::Logical => None,
                PlanStage::Physical => Some(
                    frame
                        .clone()
                        .create_physical_plan()
                        .await
                        .map_err(EngineError::execution)?,
                ),
            };
            Ok::<_, EngineError>((frame, physical))
        })
        .await?;
        Ok(GovernedPlan {
            frame,
            physical,
            runtime,
            valid_until,
            basis: PlanBasis {
                policy_version,
                emergencies,
                generation,
            },
        })
    }

    /// The session a principal's query is planned in: `catalog` (the policy views) and
    /// nothing else — the hub's principal session ([`principal_base_session`]) with the
    /// query's catalog — and the runtime of the query's own memory pool, when it has one.
    fn principal_session(
        &self,
        catalog: Arc<MemoryCatalogProvider>,
        limits: &QueryLimits,
    ) -> Result<(
        datafusion::execution::SessionState,
        Option<Arc<datafusion::execution::runtime_env::RuntimeEnv>>,
    )> {
        let catalogs = Arc::new(MemoryCatalogProviderList::new());
        datafusion::catalog::CatalogProviderList::register_catalog(
            catalogs.as_ref(),
            CATALOG.to_string(),
            catalog,
        );
        let mut state = self.principal_base.clone();
        state.register_catalog_list(catalogs);
        let runtime = match limits.memory_bytes {
            // Fair spill pool: sorts and aggregations spill to disk within it; what cannot
            // spill (a join's hash table) fails with ResourcesExhausted instead of taking
            // memory the rest of the hub needs.
            Some(bytes) => Some(
                datafusion::execution::runtime_env::RuntimeEnvBuilder::from_runtime_env(
                    state.runtime_env().as_ref(),
                )
                .with_memory_pool(Arc::new(
                    datafusion::execution::memory_pool::FairSpillPool::new(bytes),
                ))
                .build_arc()
                .map_err(EngineError::plan)?,
            ),
            None => None,
        };
        Ok((state, runtime))
    }

    /// Every function a principal's session can call, by kind and canonical name
    /// (`scalar:abs`, `aggregate:count`, `window:rank`, `table:…`; aliases name the same
    /// functions), read off a session built the way every governed query's is.
    pub fn principal_function_names(&self) -> Result<Vec<String>> {
        let (session, _) = self.principal_session(
            Arc::new(MemoryCatalogProvider::new()),
            &QueryLimits::default(),
        )?;
        Ok(function_names(&session))
    }

    /// Every function name the operator's session has (for comparison with
    /// [`Hub::principal_function_names`]).
    pub fn operator_function_names(&self) -> Vec<String> {
        function_names(&self.hub.context().state())
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

    /// The tables `principal` may read with `purpose`, with the columns the principal sees
    /// (denied ones absent), decided by the policy without planning a query. A table whose
    /// source cannot be read is listed with the reason.
    pub async fn visible_tables(
        &self,
        principal_id: &str,
        purpose: Option<&str>,
    ) -> Result<Vec<VisibleTable>> {
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
            let provider = self
                .hub
                .context()
                .table_provider(TableReference::partial(schema.as_str(), table.as_str()))
                .await;
            let (fields, unavailable) = match provider {
                Ok(p) => (
                    p.schema().fields().iter().cloned().collect::<Vec<_>>(),
                    p.downcast_ref::<crate::unavailable::UnavailableTable>()
                        .map(|u| u.reason().to_string()),
                ),
                Err(e) => (Vec::new(), Some(EngineError::plan(e).to_string())),
            };
            let fields: Vec<_> = fields
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
            if fields.is_empty() && unavailable.is_none() {
                continue;
            }
            out.push(VisibleTable {
                schema,
                table,
                columns: Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
                unavailable,
            });
        }
        Ok(out)
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
    /// The runtime it executes in when it has a memory pool of its own.
    pub(crate) runtime: Option<Arc<datafusion::execution::runtime_env::RuntimeEnv>>,
    /// The first instant at which an emergency that widened these decisions ends: the
    /// answer must not be read past it.
    pub(crate) valid_until: Option<DateTime<Utc>>,
    /// What it was decided under.
    pub(crate) basis: PlanBasis,
}

/// What a plan's decisions depend on beyond the principal, purpose and SQL: if any of it
/// changes, the plan is made again before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlanBasis {
    pub(crate) policy_version: i64,
    /// The emergencies in force when it was decided.
    pub(crate) emergencies: Vec<Emergency>,
    /// The hub's load ([`crate::Hub::generation`]) whose tables it reads.
    pub(crate) generation: u64,
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
    .map_err(EngineError::plan)?;
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
    let Some((qualifier, name)) = e.missing_field() else {
        return e;
    };
    for d in decisions {
        let table = d.table.rsplit('.').next().unwrap_or(&d.table);
        if qualifier.as_deref().is_some_and(|q| q != table) {
            continue;
        }
        let Some(c) = d.column(&name) else {
            continue;
        };
        let absent = c.access == Access::Denied
            && c.emergency_clear_areas.is_empty()
            && c.emergency_masked_areas.is_empty();
        if absent {
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
    e
}

/// The session every principal's query starts from, built once for a hub: its config without
/// information_schema, only the allowed functions ([`crate::functions`]), no table functions,
/// and no catalog (each query registers its policy views).
pub(crate) fn principal_base_session(
    state: datafusion::execution::SessionState,
) -> datafusion::execution::SessionState {
    let mut config = state.config().clone();
    config.options_mut().catalog.information_schema = false;
    // Otherwise the builder replaces our catalog with an empty default one.
    config
        .options_mut()
        .catalog
        .create_default_catalog_and_schema = false;
    let (scalar, aggregate, window) = crate::functions::allowed(&state);
    SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
        .with_scalar_functions(scalar)
        .with_aggregate_functions(aggregate)
        .with_window_functions(window)
        .with_higher_order_functions(Vec::new())
        .with_table_functions(HashMap::new())
        .build()
}
