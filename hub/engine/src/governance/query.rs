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
//! [`GovernedHub::prepare_as`] stops after step 3.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use gridhub_audit::Outcome;
use gridhub_policy::{Principal, TableDecision};

use super::GovernedHub;
use super::plan::{PlanStage, QueryLimits};
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
                params,
                PlanStage::Physical,
                &mut decisions,
                limits,
            )
            .await;
        let refused = |decisions: &[Arc<TableDecision>], e: EngineError| {
            self.audit_refusal(&principal, purpose, &text, decisions, started, e)
        };
        let plan = match planned {
            Ok(p) => p,
            Err(e) => return Err(refused(&decisions, e)),
        };
        let schema: SchemaRef = Arc::new(plan.frame.schema().as_arrow().clone());
        let task = Arc::new(plan.frame.task_ctx());
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
