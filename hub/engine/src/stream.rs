//! Streamed governed queries, for the hub server: the same planning and policy views as
//! [`Hub::query_as`], but the answer is a stream of batches.
//!
//! Audit before data leaves: once the plan is built, a record with outcome `started`
//! (principal, purpose, SQL, tables, column decisions) is appended, durably, before the
//! stream is handed out; when the stream ends — complete, failed, stopped, or dropped by a
//! client that went away — a second record gives the outcome and row count and names the
//! first (`started_seq`). A hub that dies mid-stream leaves the start record alone: "started,
//! not finished". A read that opens a health or location column also writes, before each
//! batch leaves, a `query_rows` record with the batch's `person_id`s not yet recorded (at
//! most [`AUDIT_PERSON_ID_BOUND`] per query): whose data left is on disk before it does.
//!
//! Memory: every batch on its way out is counted in the query's memory pool until the next
//! one is asked for (the encoder has taken it by then), so an answer made of huge values
//! (`repeat('x', 300000000)`) fails with "Resources exhausted" like an operator would.
//!
//! Emergencies: a query whose decisions an emergency widened stops, with an error, at the
//! first batch asked for after that emergency's expiry.
//!
//! A query refused while planning is audited before the refusal is returned.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use futures::Stream;
use gridhub_audit::{AuditLog, Outcome, RecordKind};
use gridhub_policy::{Principal, TableDecision};

use crate::error::{EngineError, Result};
use crate::govern::{
    AUDIT_PERSON_ID_BOUND, Clock, PlanStage, QueryLimits, query_record, reads_sensitive,
};
use crate::hub::Hub;

/// A governed answer being streamed. Yields batches, then ends; its closing audit record is
/// written when it ends or is dropped.
pub struct GovernedStream {
    schema: SchemaRef,
    decisions: Vec<Arc<TableDecision>>,
    batches: SendableRecordBatchStream,
    audit: Audit,
    rows: u64,
    /// The batch on its way out, counted in the query's memory pool.
    outgoing: MemoryReservation,
    /// Stop before this instant passes (an emergency that widened the decisions ends).
    valid_until: Option<DateTime<Utc>>,
    clock: Clock,
}

/// What the stream writes to the audit log, and what it has written.
struct Audit {
    log: Arc<AuditLog>,
    principal: Principal,
    purpose: Option<String>,
    text: String,
    started: Instant,
    /// The start record.
    start_seq: u64,
    /// The stream has ended: its closing record was written, or its append failed (it is
    /// tried once; the start record stands either way).
    closed: bool,
    /// The closing record, once written.
    end_seq: Option<u64>,
    /// `person_id`s of a sensitive read, recorded before their rows leave.
    persons: Option<PersonIds>,
}

/// The distinct `person_id`s of an answer, at most [`AUDIT_PERSON_ID_BOUND`].
#[derive(Default)]
pub(crate) struct PersonIds {
    seen: BTreeSet<String>,
    pub(crate) truncated: bool,
}

impl PersonIds {
    /// Take note of a batch's `person_id`s; returns those not seen before (within the bound).
    pub(crate) fn add(&mut self, batch: &RecordBatch) -> Vec<String> {
        let mut new = Vec::new();
        for (i, f) in batch.schema().fields().iter().enumerate() {
            if f.name() != "person_id" {
                continue;
            }
            let Some(values) = batch.column(i).as_string_opt::<i32>() else {
                continue;
            };
            for v in values.iter().flatten() {
                if self.seen.contains(v) {
                    continue;
                }
                if self.seen.len() >= AUDIT_PERSON_ID_BOUND {
                    self.truncated = true;
                    continue;
                }
                self.seen.insert(v.to_string());
                new.push(v.to_string());
            }
        }
        new
    }

    pub(crate) fn into_sorted(self) -> (Vec<String>, bool) {
        (self.seen.into_iter().collect(), self.truncated)
    }
}

impl GovernedStream {
    /// The answer's schema (columns the principal may see, masked ones with their type).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The decision for every table the query reads.
    pub fn decisions(&self) -> &[Arc<TableDecision>] {
        &self.decisions
    }

    /// The sequence number of the record that says the query started (durable before the
    /// stream was handed out).
    pub fn audit_seq(&self) -> u64 {
        self.audit.start_seq
    }

    /// The closing record's sequence number, once written.
    pub fn end_seq(&self) -> Option<u64> {
        self.audit.end_seq
    }

    /// Rows yielded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// End the query early (a deadline, say): audited as an error with `message`; the plan
    /// stops when the stream is dropped.
    pub fn stop(&mut self, message: &str) {
        let message = format!("{message} after {} rows", self.rows);
        if let Err(e) = self.finish(Outcome::Error, Some(message)) {
            tracing::error!("cannot audit a stopped query: {e}");
        }
    }

    fn finish(&mut self, outcome: Outcome, message: Option<String>) -> Result<()> {
        if self.audit.closed {
            return Ok(());
        }
        self.outgoing.free();
        let a = &mut self.audit;
        let truncated = a.persons.as_ref().is_some_and(|p| p.truncated);
        let mut record = query_record(
            &a.principal,
            a.purpose.as_deref(),
            &a.text,
            &self.decisions,
            Some(self.rows),
            outcome,
            message,
            a.started,
            (Vec::new(), truncated),
        );
        record.started_seq = Some(a.start_seq);
        a.closed = true;
        a.end_seq = Some(a.log.append(&record)?);
        Ok(())
    }

    /// What must hold before `batch` may leave: the emergency still lasts, its memory fits
    /// the pool, its persons are recorded.
    fn release(&mut self, batch: &RecordBatch) -> Result<()> {
        if let Some(until) = self.valid_until
            && (self.clock)() >= until
        {
            return Err(EngineError::Denied {
                message: format!(
                    "the emergency that opened this query's columns ended at {}; the rest of \
                     the answer is withheld (run the query again)",
                    until.to_rfc3339()
                ),
            });
        }
        self.outgoing
            .try_resize(batch.get_array_memory_size())
            .map_err(|e| EngineError::ResourcesExhausted {
                message: format!("the answer's next batch does not fit the query's memory: {e}"),
            })?;
        let a = &mut self.audit;
        if let Some(persons) = a.persons.as_mut() {
            let new = persons.add(batch);
            if !new.is_empty() {
                let mut record = query_record(
                    &a.principal,
                    a.purpose.as_deref(),
                    &a.text,
                    &self.decisions,
                    Some(self.rows + batch.num_rows() as u64),
                    Outcome::Started,
                    None,
                    a.started,
                    (new, persons.truncated),
                );
                record.kind = RecordKind::QueryRows;
                record.started_seq = Some(a.start_seq);
                a.log.append(&record)?;
            }
        }
        Ok(())
    }
}

impl Stream for GovernedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.as_mut().get_mut();
        if this.audit.closed {
            return Poll::Ready(None);
        }
        // The previous batch has been taken by the consumer.
        this.outgoing.free();
        match this.batches.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(batch))) => match this.release(&batch) {
                Ok(()) => {
                    this.rows += batch.num_rows() as u64;
                    Poll::Ready(Some(Ok(batch)))
                }
                Err(e) => {
                    let outcome = match e {
                        EngineError::Denied { .. } => Outcome::Denied,
                        _ => Outcome::Error,
                    };
                    if let Err(audit) = this.finish(outcome, Some(e.to_string())) {
                        return Poll::Ready(Some(Err(audit)));
                    }
                    Poll::Ready(Some(Err(e)))
                }
            },
            Poll::Ready(Some(Err(e))) => {
                let error = execution_error(e);
                if let Err(audit) = this.finish(Outcome::Error, Some(error.to_string())) {
                    return Poll::Ready(Some(Err(audit)));
                }
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => match this.finish(Outcome::Ok, None) {
                Ok(()) => Poll::Ready(None),
                // The client must not take an unaudited answer for a complete one.
                Err(audit) => Poll::Ready(Some(Err(audit))),
            },
        }
    }
}

impl Drop for GovernedStream {
    fn drop(&mut self) {
        if !self.audit.closed {
            let message = format!("cancelled after {} rows", self.rows);
            if let Err(e) = self.finish(Outcome::Error, Some(message)) {
                tracing::error!("cannot audit a cancelled query: {e}");
            }
        }
    }
}

/// An error while the plan runs: memory exhaustion keeps its kind.
pub(crate) fn execution_error(e: DataFusionError) -> EngineError {
    match e.find_root() {
        root @ DataFusionError::ResourcesExhausted(_) => EngineError::ResourcesExhausted {
            message: root.to_string(),
        },
        _ => EngineError::Query {
            message: e.to_string(),
        },
    }
}

impl Hub {
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
        let audit_failure = |decisions: &[Arc<TableDecision>], e: EngineError| {
            self.audit_refusal(&principal, purpose, &text, decisions, started, e)
        };
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
        let plan = match planned {
            Ok(p) => p,
            Err(e) => return Err(audit_failure(&decisions, e)),
        };
        let schema: SchemaRef = Arc::new(plan.frame.schema().as_arrow().clone());
        let task = Arc::new(plan.frame.task_ctx());
        let outgoing = MemoryConsumer::new("gridhub answer batch").register(task.memory_pool());
        let physical = plan.physical.expect("planned to the physical stage");
        let valid_until = plan.valid_until;
        let batches = match datafusion::physical_plan::execute_stream(physical, task) {
            Ok(s) => s,
            Err(e) => return Err(audit_failure(&decisions, execution_error(e))),
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
        Ok(GovernedStream {
            schema,
            decisions,
            batches,
            audit: Audit {
                log: gov.audit_log(),
                principal,
                purpose: purpose.map(str::to_string),
                text,
                started,
                start_seq,
                closed: false,
                end_seq: None,
                persons: sensitive.then(PersonIds::default),
            },
            rows: 0,
            outgoing,
            valid_until,
            clock: gov.clock(),
        })
    }
}

/// What a client needs to prepare a statement: the answer's schema and the parameters.
#[derive(Debug, Clone)]
pub struct PreparedPlan {
    pub schema: SchemaRef,
    /// `$1`, `$2`, … (or `$name`) in order, with the type the plan infers (None: unknown).
    pub parameters: Vec<(String, Option<DataType>)>,
}

impl Hub {
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
                    .map_err(|e| self.describe(e))?;
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
        let outcome = match e {
            EngineError::Denied { .. } => Outcome::Denied,
            _ => Outcome::Error,
        };
        let record = query_record(
            principal,
            purpose,
            text,
            decisions,
            None,
            outcome,
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
