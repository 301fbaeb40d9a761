//! Streamed governed queries, for the hub server: the same planning and policy views as
//! [`Hub::query_as`], but the answer is a stream of batches.
//!
//! Audit: a query that opens a health or location column is collected first, its
//! `person_id`s recorded, and its record made durable before the first batch leaves (as
//! locally). Any other query streams, and its record is appended when the stream ends —
//! complete, failed, or dropped by a client that cancelled or went away ("cancelled after N
//! rows"). A query refused while planning is audited before the refusal is returned.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use futures::Stream;
use gridhub_audit::{AuditLog, Outcome};
use gridhub_policy::{Principal, TableDecision};

use crate::error::{EngineError, Result};
use crate::govern::{QueryLimits, person_ids, query_record, reads_sensitive};
use crate::hub::Hub;

/// A governed answer being streamed. Yields batches, then ends; its audit record is written
/// when it ends or is dropped.
pub struct GovernedStream {
    schema: SchemaRef,
    decisions: Vec<Arc<TableDecision>>,
    batches: Batches,
    /// The record still to write (None once written, or when written before streaming).
    pending: Option<Pending>,
    rows: u64,
    audit_seq: Option<u64>,
}

enum Batches {
    Live(SendableRecordBatchStream),
    Collected(VecDeque<RecordBatch>),
}

struct Pending {
    audit: Arc<AuditLog>,
    principal: Principal,
    purpose: Option<String>,
    text: String,
    started: Instant,
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

    /// The audit record's sequence number, once written.
    pub fn audit_seq(&self) -> Option<u64> {
        self.audit_seq
    }

    /// Rows yielded so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// End the query early (a deadline, say): audited as an error with `message`; the plan
    /// stops when the stream is dropped.
    pub fn stop(&mut self, message: &str) {
        if let Err(e) = self.finish(
            Outcome::Error,
            Some(format!("{message} after {} rows", self.rows)),
        ) {
            tracing::error!("cannot audit a stopped query: {e}");
        }
    }

    fn finish(&mut self, outcome: Outcome, message: Option<String>) -> Result<()> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let record = query_record(
            &p.principal,
            p.purpose.as_deref(),
            &p.text,
            &self.decisions,
            Some(self.rows),
            outcome,
            message,
            p.started,
            (Vec::new(), false),
        );
        self.audit_seq = Some(p.audit.append(&record)?);
        Ok(())
    }
}

impl Stream for GovernedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.as_mut().get_mut();
        let next = match &mut this.batches {
            Batches::Collected(queue) => Poll::Ready(queue.pop_front().map(Ok)),
            Batches::Live(stream) => stream.as_mut().poll_next(cx),
        };
        match next {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(batch))) => {
                this.rows += batch.num_rows() as u64;
                Poll::Ready(Some(Ok(batch)))
            }
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
        if self.pending.is_some() {
            let message = format!("cancelled after {} rows", self.rows);
            if let Err(e) = self.finish(Outcome::Error, Some(message)) {
                tracing::error!("cannot audit a cancelled query: {e}");
            }
        }
    }
}

/// An error while the plan runs: memory exhaustion keeps its kind.
fn execution_error(e: DataFusionError) -> EngineError {
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
        let planned = async {
            let df = self
                .plan_as_within(&principal, purpose, sql, &mut decisions, limits)
                .await?;
            match params {
                Some(p) => df.with_param_values(p).map_err(|e| self.describe(e)),
                None => Ok(df),
            }
        }
        .await;
        let df = match planned {
            Ok(df) => df,
            Err(e) => return Err(audit_failure(&decisions, e)),
        };
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        if reads_sensitive(&decisions) {
            // Whose health or location data left the hub is durable before any of it does.
            let batches = match df.collect().await {
                Ok(b) => b,
                Err(e) => return Err(audit_failure(&decisions, execution_error(e))),
            };
            let record = query_record(
                &principal,
                purpose,
                &text,
                &decisions,
                Some(batches.iter().map(|b| b.num_rows() as u64).sum()),
                Outcome::Ok,
                None,
                started,
                person_ids(&batches),
            );
            let seq = gov.audit().append(&record)?;
            return Ok(GovernedStream {
                schema,
                decisions,
                rows: 0,
                batches: Batches::Collected(batches.into()),
                pending: None,
                audit_seq: Some(seq),
            });
        }
        let stream = match df.execute_stream().await {
            Ok(s) => s,
            Err(e) => return Err(audit_failure(&decisions, execution_error(e))),
        };
        Ok(GovernedStream {
            schema,
            decisions,
            rows: 0,
            batches: Batches::Live(stream),
            pending: Some(Pending {
                audit: gov.audit_log(),
                principal,
                purpose: purpose.map(str::to_string),
                text,
                started,
            }),
            audit_seq: None,
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
