//! Streamed governed queries, for the hub server: the same planning and policy views as
//! [`Hub::query_as`], but the answer is a stream of batches.
//!
//! Audit before data leaves: once the plan is built, a record with outcome `started`
//! (principal, purpose, SQL, tables, column decisions) is appended, durably, before the
//! stream is handed out; when the stream ends — complete, failed, stopped, or dropped by a
//! client that went away — a second record gives the outcome and row count and names the
//! first (`started_seq`). A hub that dies mid-stream leaves the start record alone: "started,
//! not finished". The closing record is committed before the stream ends and synced with
//! the log's next record (`AuditLog::append_deferred`): one sync per query on the answer's
//! way instead of two, and a power loss before that sync (the kernel writes it within
//! seconds anyway) leaves the same "started, not finished". A read that opens a health or location column also writes, before each
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

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, MemoryReservation};
use futures::Stream;
use gridhub_audit::{AuditLog, Outcome, RecordKind};
use gridhub_policy::{Principal, TableDecision};

use super::record::{PersonIds, query_record};
use super::state::Clock;
use crate::error::{EngineError, Result};

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
    /// The query's memory pool.
    pool: Arc<dyn MemoryPool>,
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

/// What a started stream is made of (see [`super::query`]).
pub(super) struct StreamStart {
    pub(super) schema: SchemaRef,
    pub(super) decisions: Vec<Arc<TableDecision>>,
    pub(super) batches: SendableRecordBatchStream,
    pub(super) pool: Arc<dyn MemoryPool>,
    pub(super) valid_until: Option<DateTime<Utc>>,
    pub(super) clock: Clock,
    pub(super) log: Arc<AuditLog>,
    pub(super) principal: Principal,
    pub(super) purpose: Option<String>,
    pub(super) text: String,
    pub(super) started: Instant,
    pub(super) start_seq: u64,
    /// Whether the answer's `person_id`s are audited (a health or location read).
    pub(super) sensitive: bool,
}

impl GovernedStream {
    /// A stream whose start record (`start.start_seq`) is written.
    pub(super) fn new(start: StreamStart) -> GovernedStream {
        GovernedStream {
            schema: start.schema,
            decisions: start.decisions,
            batches: start.batches,
            audit: Audit {
                log: start.log,
                principal: start.principal,
                purpose: start.purpose,
                text: start.text,
                started: start.started,
                start_seq: start.start_seq,
                closed: false,
                end_seq: None,
                persons: start.sensitive.then(PersonIds::default),
            },
            rows: 0,
            outgoing: MemoryConsumer::new("gridhub answer batch").register(&start.pool),
            pool: start.pool,
            valid_until: start.valid_until,
            clock: start.clock,
        }
    }

    /// Read the whole answer. Every batch stays counted in the query's memory pool (a
    /// collected answer holds them all); the closing record is written when it ends.
    pub async fn collect(mut self) -> Result<(Vec<RecordBatch>, u64)> {
        use futures::StreamExt;
        let held = MemoryConsumer::new("gridhub collected answer").register(&self.pool);
        let mut batches = Vec::new();
        while let Some(batch) = self.next().await {
            let batch = batch?;
            if let Err(e) = held.try_grow(batch.get_array_memory_size()) {
                let error = EngineError::execution(e);
                self.finish(Outcome::Error, Some(error.to_string()))?;
                return Err(error);
            }
            batches.push(batch);
        }
        let seq = self.audit.end_seq.unwrap_or(self.audit.start_seq);
        Ok((batches, seq))
    }

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
        a.end_seq = Some(a.log.append_deferred(&record)?);
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
            .map_err(|e| {
                EngineError::resources_exhausted(format!(
                    "the answer's next batch does not fit the query's memory: {e}"
                ))
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
                    if let Err(audit) = this.finish(e.outcome(), Some(e.to_string())) {
                        return Poll::Ready(Some(Err(audit)));
                    }
                    Poll::Ready(Some(Err(e)))
                }
            },
            Poll::Ready(Some(Err(e))) => {
                let error = EngineError::execution(e);
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
