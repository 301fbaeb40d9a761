//! Prometheus metrics of the hub server, served as text at `http://[server] metrics_listen/metrics`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The hub server's counters.
pub struct Metrics {
    registry: Mutex<Registry>,
    queries: Family<Labels, Counter>,
    rows: Counter,
    bytes: Counter,
    latency: Histogram,
    denials: Counter,
    auth_failures: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    statement_plans: Family<Labels, Counter>,
    active: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gridhub");
        let queries = Family::<Labels, Counter>::default();
        let rows = Counter::default();
        let bytes = Counter::default();
        // 1 ms … ~33 s
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let denials = Counter::default();
        let auth_failures = Family::<Labels, Counter>::default();
        let requests = Family::<Labels, Counter>::default();
        let statement_plans = Family::<Labels, Counter>::default();
        let active = Gauge::default();
        registry.register(
            "queries",
            "Queries run, by outcome (ok, denied, error, cancelled, timeout)",
            queries.clone(),
        );
        registry.register("rows", "Rows returned to clients", rows.clone());
        registry.register(
            "bytes",
            "Arrow IPC bytes of query results sent to clients",
            bytes.clone(),
        );
        registry.register(
            "query_duration_seconds",
            "Query latency, from the call to the last batch",
            latency.clone(),
        );
        registry.register(
            "denials",
            "Queries and calls refused by the access policy",
            denials.clone(),
        );
        registry.register(
            "auth_failures",
            "Calls refused for missing or invalid credentials, by reason",
            auth_failures.clone(),
        );
        registry.register("requests", "gRPC calls, by method", requests.clone());
        registry.register(
            "statement_plans",
            "Statements a DoGet ran, by plan: kept (GetFlightInfo's), made_again (what it was \
             decided under changed), not_kept (none kept for the ticket)",
            statement_plans.clone(),
        );
        registry.register("active_queries", "Queries running now", active.clone());
        Self {
            registry: Mutex::new(registry),
            queries,
            rows,
            bytes,
            latency,
            denials,
            auth_failures,
            requests,
            statement_plans,
            active,
        }
    }

    pub fn request(&self, method: &str) {
        self.requests
            .get_or_create(&vec![("method".into(), method.into())])
            .inc();
    }

    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures
            .get_or_create(&vec![("reason".into(), reason.into())])
            .inc();
    }

    /// A DoGet ran a statement with a plan that was `kept`, `made_again` or `not_kept`.
    pub fn statement_plan(&self, plan: &str) {
        self.statement_plans
            .get_or_create(&vec![("plan".into(), plan.into())])
            .inc();
    }

    pub fn denied(&self) {
        self.denials.inc();
    }

    pub fn query_started(&self) {
        self.active.inc();
    }

    /// Result bytes sent (Arrow IPC, as encoded for Flight).
    pub fn sent(&self, bytes: u64) {
        self.bytes.inc_by(bytes);
    }

    /// A query ended: its outcome, rows sent, and how long it took.
    pub fn query_ended(&self, outcome: &str, rows: u64, seconds: f64) {
        self.active.dec();
        self.queries
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
        if outcome == "denied" {
            self.denials.inc();
        }
        self.rows.inc_by(rows);
        self.latency.observe(seconds);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().expect("metrics lock"))
            .expect("writing to a String");
        out
    }
}

/// Serve `/metrics` on `addr` until `shutdown` resolves; returns the bound address.
pub async fn serve(
    metrics: Arc<Metrics>,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("metrics endpoint: {e}");
        }
    });
    Ok((bound, task))
}
