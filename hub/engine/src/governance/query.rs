//! The one governed pipeline every entry point takes — a local query, a Flight SQL statement,
//! a prepared statement, a replica pull or a report run:
//!
//! 1. **decide** each table the SQL names under the active policy, purpose and emergencies;
//! 2. **build** the policy views ([`super::views`]);
//! 3. **plan** in a session that holds nothing else, and **verify** the plan scans policy
//!    views only ([`super::plan`]);
//! 4. **execute** as a stream whose start record is durable before it is handed out
//!    ([`GovernedStream`]);
//! 5. **audit** its end, whatever ends it; a refusal at any step is audited before it is
//!    returned.
//!
//! [`GovernedHub::query_as`] is the collected form of [`GovernedHub::stream_as`];
//! [`GovernedHub::plan_query`] stops after step 3 and [`GovernedHub::run_planned`] goes on
//! from there (a Flight SQL GetFlightInfo plans, its DoGet runs: planned once);
//! [`GovernedHub::prepare_as`] stops after step 3 with the logical plan.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use gridhub_audit::Outcome;
use gridhub_policy::{Principal, TableDecision};

use super::GovernedHub;
use super::plan::{GovernedPlan, PlanBasis, PlanStage, QueryLimits};
use super::record::{query_record, reads_sensitive};
use super::stream::{GovernedStream, StreamStart};
use crate::error::{EngineError, Result};

/// The answer to a governed query, collected.
#[derive(Debug)]
pub struct GovernedAnswer {
    pub batches: Vec<RecordBatch>,
    /// The decision for every table the query read.
    pub decisions: Vec<Arc<TableDecision>>,
    /// Sequence number of the audit record that closes the query (outcome and rows).
    pub audit_seq: u64,
}

/// A governed query decided, planned and verified but not started
/// ([`GovernedHub::plan_query`]), with what it was decided under.
pub struct PlannedQuery {
    principal: Principal,
    purpose: Option<String>,
    sql: String,
    params: Option<ParamValues>,
    /// The SQL as audited (with the parameters' values).
    text: String,
    decisions: Vec<Arc<TableDecision>>,
    plan: GovernedPlan,
    limits: QueryLimits,
    started: Instant,
}

impl std::fmt::Debug for PlannedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlannedQuery")
            .field("principal", &self.principal.id)
            .field("purpose", &self.purpose)
            .field("text", &self.text)
            .finish_non_exhaustive()
    }
}

impl PlannedQuery {
    /// The principal it was planned for.
    pub fn principal_id(&self) -> &str {
        &self.principal.id
    }

    /// The purpose it was planned with.
    pub fn purpose(&self) -> Option<&str> {
        self.purpose.as_deref()
    }

    /// The SQL it was planned from (parameters apart).
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The answer's schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(self.plan.frame.schema().as_arrow().clone())
    }
}

/// Whether [`GovernedHub::run_planned`] ran the plan it was given or made it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanUse {
    Kept,
    /// What the plan was decided under had changed: planned again from its SQL.
    MadeAgain,
}

/// What a client needs to prepare a statement: the answer's schema and the parameters.
#[derive(Debug, Clone)]
pub struct PreparedPlan {
    pub schema: SchemaRef,
    /// `$1`, `$2`, … (or `$name`) in order, with the type the plan infers (None: unknown).
    pub parameters: Vec<(String, Option<DataType>)>,
}

impl GovernedHub {
    /// Run `sql` as `principal_id` with `purpose` under the active policy, collecting the
    /// answer (the hub's SQL bounds apply; no memory pool of its own).
    pub async fn query_as(
        &self,
        principal_id: &str,
        purpose: Option<&str>,
        sql: &str,
    ) -> Result<GovernedAnswer> {
        // Collected, so executed on a planner thread's stack like the planning (which then
        // runs inline there), whatever the caller's stack.
        crate::bounds::on_planner_stack(async {
            let stream = self
                .stream_as(principal_id, purpose, sql, None, &QueryLimits::default())
                .await?;
            let decisions = stream.decisions().to_vec();
            let (batches, audit_seq) = stream.collect().await?;
            Ok(GovernedAnswer {
                batches,
                decisions,
                audit_seq,
            })
        })
    }

    /// Run `sql` as `principal_id` with `purpose` under the active policy and `limits`,
    /// streaming the answer. `params` bind `$1`, `$2`, … of a prepared statement. A refusal
    /// or planning error is audited and returned with its kind (denied, SQL, memory, …).
    pub async fn stream_as(
        &self,
        principal_id: &str,
        purpose: Option<&str>,
        sql: &str,
        params: Option<ParamValues>,
        limits: &QueryLimits,
    ) -> Result<GovernedStream> {
        let planned = self
            .plan_query(principal_id, purpose, sql, params, limits)
            .await?;
        self.start(planned)
    }

    /// Steps 1–3 of the pipeline for `sql` as `principal_id` with `purpose` under `limits`:
    /// decided, planned to the physical plan and verified, not started. A refusal is audited.
    /// [`GovernedHub::run_planned`] runs it, now or later (a Flight SQL GetFlightInfo plans,
    /// its DoGet runs).
    pub async fn plan_query(
        &self,
        principal_id: &str,
        purpose: Option<&str>,
        sql: &str,
        params: Option<ParamValues>,
        limits: &QueryLimits,
    ) -> Result<PlannedQuery> {
        let gov = self.governance();
        let principal = gov.principal(principal_id)?.clone();
        let started = Instant::now();
        let text = match &params {
            Some(p) => format!("{sql} /* parameters: {} */", describe_params(p)),
            None => sql.to_string(),
        };
        let mut decisions = Vec::new();
        let planned = self
            .plan_governed(
                &principal,
                purpose,
                sql,
                params.clone(),
                PlanStage::Physical,
                &mut decisions,
                limits,
            )
            .await;
        let plan = match planned {
            Ok(p) => p,
            Err(e) => {
                return Err(self.audit_refusal(&principal, purpose, &text, &decisions, started, e));
            }
        };
        Ok(PlannedQuery {
            principal,
            purpose: purpose.map(str::to_string),
            sql: sql.to_string(),
            params,
            text,
            decisions,
            plan,
            limits: limits.clone(),
            started,
        })
    }

    /// Step 4 and 5 for a query [`GovernedHub::plan_query`] planned: run it, unless what it
    /// was decided under has changed since (another policy version, emergencies declared or
    /// ended, a new load) — then it is planned again first, from its SQL, and that plan runs.
    pub async fn run_planned(&self, planned: PlannedQuery) -> Result<(GovernedStream, PlanUse)> {
        let gov = self.governance();
        gov.reload().await?;
        let current = gov.policy().ok().map(|(version, _)| PlanBasis {
            policy_version: version,
            emergencies: gov.emergencies(),
            generation: self.hub.generation(),
        });
        if current.as_ref() == Some(&planned.plan.basis) {
            return Ok((self.start(planned)?, PlanUse::Kept));
        }
        let again = self
            .plan_query(
                &planned.principal.id,
                planned.purpose.as_deref(),
                &planned.sql,
                planned.params,
                &planned.limits,
            )
            .await?;
        Ok((self.start(again)?, PlanUse::MadeAgain))
    }

    /// Execute a planned query as a stream whose start record is durable before it is
    /// handed out.
    fn start(&self, planned: PlannedQuery) -> Result<GovernedStream> {
        let gov = self.governance();
        let schema = planned.schema();
        let PlannedQuery {
            principal,
            purpose,
            text,
            decisions,
            plan,
            started,
            ..
        } = planned;
        let purpose = purpose.as_deref();
        let refused = |decisions: &[Arc<TableDecision>], e: EngineError| {
            self.audit_refusal(&principal, purpose, &text, decisions, started, e)
        };
        let task = plan.frame.task_ctx();
        let task = Arc::new(match plan.runtime {
            Some(runtime) => task.with_runtime(runtime),
            None => task,
        });
        let pool = task.memory_pool().clone();
        let Some(physical) = plan.physical else {
            return Err(refused(
                &decisions,
                EngineError::Internal {
                    message: "a streamed query was planned without its physical plan".into(),
                },
            ));
        };
        let batches = match datafusion::physical_plan::execute_stream(physical, task) {
            Ok(s) => s,
            Err(e) => return Err(refused(&decisions, EngineError::execution(e))),
        };
        // Durable before the stream is handed out, so before any batch can leave.
        let record = query_record(
            &principal,
            purpose,
            &text,
            &decisions,
            None,
            Outcome::Started,
            None,
            started,
            (Vec::new(), false),
        );
        let start_seq = gov.audit().append(&record)?;
        let sensitive = reads_sensitive(&decisions);
        Ok(GovernedStream::new(StreamStart {
            schema,
            decisions,
            batches,
            pool,
            valid_until: plan.valid_until,
            clock: gov.clock(),
            log: gov.audit_log(),
            principal,
            purpose: purpose.map(str::to_string),
            text,
            started,
            start_seq,
            sensitive,
        }))
    }

    /// Plan `sql` as `principal_id` with `purpose` without running it: the schema the
    /// principal would get and the statement's parameters. A refusal is audited.
    pub async fn prepare_as(
        &self,
        principal_id: &str,
        purpose: Option<&str>,
        sql: &str,
    ) -> Result<PreparedPlan> {
        let principal = self.governance().principal(principal_id)?.clone();
        let started = Instant::now();
        let mut decisions = Vec::new();
        let planned = self
            .plan_as(&principal, purpose, sql, &mut decisions)
            .await
            .and_then(|df| {
                let parameters = df
                    .logical_plan()
                    .get_parameter_types()
                    .map_err(EngineError::plan)?;
                Ok((df, parameters))
            });
        let (df, parameters) = match planned {
            Ok(p) => p,
            Err(e) => {
                return Err(self.audit_refusal(&principal, purpose, sql, &decisions, started, e));
            }
        };
        let mut parameters: Vec<_> = parameters.into_iter().collect();
        // $1 < $2 < $10: by number where the names are numbers.
        parameters.sort_by_key(|(name, _)| {
            let n = name
                .trim_start_matches('$')
                .parse::<u64>()
                .unwrap_or(u64::MAX);
            (n, name.clone())
        });
        Ok(PreparedPlan {
            schema: Arc::new(df.schema().as_arrow().clone()),
            parameters,
        })
    }

    /// Audit a query refused or failed before it returned anything; returns the error (or
    /// the audit's, if the record cannot be written).
    fn audit_refusal(
        &self,
        principal: &Principal,
        purpose: Option<&str>,
        text: &str,
        decisions: &[Arc<TableDecision>],
        started: Instant,
        e: EngineError,
    ) -> EngineError {
        let record = query_record(
            principal,
            purpose,
            text,
            decisions,
            None,
            e.outcome(),
            Some(e.to_string()),
            started,
            (Vec::new(), false),
        );
        match self.governance().audit().append(&record) {
            Ok(_) => e,
            Err(audit) => audit.into(),
        }
    }
}

fn describe_params(p: &ParamValues) -> String {
    match p {
        ParamValues::List(values) => values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("${} = {}", i + 1, v.value))
            .collect::<Vec<_>>()
            .join(", "),
        ParamValues::Map(values) => values
            .iter()
            .map(|(k, v)| format!("${k} = {}", v.value))
            .collect::<Vec<_>>()
            .join(", "),
    }
}
