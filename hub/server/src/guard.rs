//! Guards on queries: at most `max_queries_per_principal` at once per principal, and a
//! deadline after which the stream ends with DEADLINE_EXCEEDED (the plan is dropped, which
//! stops its work). The memory limit is the query's own DataFusion pool (engine).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use futures::Stream;
use gridhub_engine::GovernedStream;

use crate::error::ServerError;
use crate::metrics::Metrics;

/// Running queries per principal.
#[derive(Default)]
pub struct Concurrency {
    running: Mutex<HashMap<String, usize>>,
}

/// One running query's slot; freed when dropped.
pub struct Permit {
    owner: Arc<Concurrency>,
    principal: String,
}

impl Concurrency {
    /// Take a slot for `principal`, or refuse beyond `limit`.
    pub fn acquire(self: &Arc<Self>, principal: &str, limit: usize) -> Result<Permit, ServerError> {
        let mut running = self.running.lock().expect("concurrency lock");
        let n = running.entry(principal.to_string()).or_default();
        if *n >= limit {
            return Err(ServerError::TooManyQueries {
                principal: principal.to_string(),
                limit,
            });
        }
        *n += 1;
        Ok(Permit {
            owner: self.clone(),
            principal: principal.to_string(),
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut running = self.owner.running.lock().expect("concurrency lock");
        if let Some(n) = running.get_mut(&self.principal) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.principal);
            }
        }
    }
}

/// A governed answer on its way to a client: the deadline, the slot, and the metrics.
pub struct Guarded {
    inner: Option<GovernedStream>,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    _permit: Permit,
    metrics: Arc<Metrics>,
    started: Instant,
    span: tracing::Span,
    /// Set when the query ended (its outcome counted).
    done: bool,
}

impl Guarded {
    /// `timeout` is the configured limit; `remaining` what is left of it after planning.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        inner: GovernedStream,
        timeout: Duration,
        remaining: Duration,
        permit: Permit,
        metrics: Arc<Metrics>,
        started: Instant,
        span: tracing::Span,
    ) -> Self {
        Self {
            inner: Some(inner),
            deadline: Box::pin(tokio::time::sleep(remaining)),
            timeout,
            _permit: permit,
            metrics,
            started,
            span,
            done: false,
        }
    }

    fn end(&mut self, outcome: &str) {
        if !self.done {
            self.done = true;
            let rows = self.inner.as_ref().map(|s| s.rows()).unwrap_or_default();
            let seconds = self.started.elapsed().as_secs_f64();
            self.metrics.query_ended(outcome, rows, seconds);
            self.span
                .in_scope(|| tracing::info!(outcome, rows, seconds, "query ended"));
        }
    }
}

impl Stream for Guarded {
    type Item = Result<RecordBatch, ServerError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.as_mut().get_mut();
        if this.inner.is_none() {
            return Poll::Ready(None);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            let error = ServerError::Timeout {
                seconds: this.timeout.as_secs(),
            };
            if let Some(inner) = this.inner.as_mut() {
                inner.stop(&error.to_string());
            }
            this.end("timeout");
            // Dropping the plan stops its work.
            this.inner = None;
            return Poll::Ready(Some(Err(error)));
        }
        let polled = match this.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_next(cx),
            None => Poll::Ready(None),
        };
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(batch))) => Poll::Ready(Some(Ok(batch))),
            Poll::Ready(Some(Err(e))) => {
                this.end("error");
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.end("ok");
                Poll::Ready(None)
            }
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // A client that cancelled or went away: the engine audits it when `inner` drops.
        self.end("cancelled");
    }
}
