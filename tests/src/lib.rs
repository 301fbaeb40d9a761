//! Shared fixtures of gridhub's end-to-end tests: a synthetic city written to a temporary
//! directory with its ground truth, an open hub over it, and helpers to read query results;
//! the golden-file runner for governed SQL ([`golden`]) and docs/domain.md's masks written out
//! independently of the hub's ([`masks`]).

pub mod golden;
pub mod masks;

use std::path::Path;

use arrow::array::{Array, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use gridhub_engine::{GovernedHub, Hub, NoProgress};
use gridhub_synth::{City, GenerateOptions, GroundTruth};

/// Persons in the test city: small enough to be quick, large enough that every source has
/// injected defects and every showcase query has answers.
pub const TEST_SCALE: usize = 4_000;

/// A synthetic city on disk and what is true about it.
pub struct TestCity {
    pub dir: tempfile::TempDir,
    pub truth: GroundTruth,
}

impl TestCity {
    pub fn generate(scale: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let city = City::generate(&GenerateOptions {
            scale,
            ..Default::default()
        });
        city.write(dir.path(), &gridhub_synth::NoProgress)
            .expect("write the city");
        Self {
            truth: city.truth(),
            dir,
        }
    }

    pub fn config(&self) -> std::path::PathBuf {
        self.dir.path().join(gridhub_synth::CONFIG_FILE)
    }

    /// Open the hub over this city, load it and govern it.
    pub async fn hub(&self) -> GovernedHub {
        open_loaded(&self.config()).await
    }
}

/// Open the hub at `config`, load it and govern it.
pub async fn open_loaded(config: &Path) -> GovernedHub {
    let governed = GovernedHub::open_path(config).await.expect("open the hub");
    governed.hub().load(&NoProgress).await.expect("load");
    governed
}

/// What the helpers below read through: a hub, or the governed hub around it.
pub trait AsHub {
    fn as_hub(&self) -> &Hub;
}

impl AsHub for Hub {
    fn as_hub(&self) -> &Hub {
        self
    }
}

impl AsHub for GovernedHub {
    fn as_hub(&self) -> &Hub {
        self.hub()
    }
}

impl<T: AsHub> AsHub for std::sync::Arc<T> {
    fn as_hub(&self) -> &Hub {
        self.as_ref().as_hub()
    }
}

/// Every value of a result as text, row by row (NULL as `None`).
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                b.columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(r)).then(|| f.value(r).to_string()))
                    .collect(),
            );
        }
    }
    out
}

/// Run a query and return its rows as text.
pub async fn query(hub: &impl AsHub, sql: &str) -> Vec<Vec<Option<String>>> {
    let batches = hub
        .as_hub()
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}\nfailed: {e}"));
    rows(&batches)
}

/// Community code (12 digits) → name, from `admin_unit` as the operator reads it: what a
/// masked place must read as.
pub async fn community_names(hub: &impl AsHub) -> std::collections::BTreeMap<String, String> {
    query(
        hub,
        "SELECT code, name FROM admin_unit WHERE length(code) = 12",
    )
    .await
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
    .collect()
}

/// The error a query fails with, as the user reads it.
pub async fn query_error(hub: &impl AsHub, sql: &str) -> String {
    match hub.as_hub().query(sql).await {
        Ok(_) => panic!("{sql}\nsucceeded, expected an error"),
        Err(e) => e.to_string(),
    }
}

/// A single integer answer.
pub async fn scalar_i64(hub: &impl AsHub, sql: &str) -> i64 {
    let r = query(hub, sql).await;
    r[0][0]
        .as_deref()
        .expect("a value")
        .parse()
        .expect("an integer")
}

/// A hub server over a loaded city on a free loopback port, for the server tests: the
/// config's `[server]` with `tweak` applied (TLS files, limits).
pub async fn serve(
    hub: std::sync::Arc<GovernedHub>,
    tweak: impl FnOnce(&mut gridhub_engine::ServerConfig),
) -> gridhub_server::RunningServer {
    let mut config = hub.hub().config().server.clone();
    config.listen = "127.0.0.1:0".parse().expect("address");
    config.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    tweak(&mut config);
    gridhub_server::start(hub, config)
        .await
        .expect("start the hub server")
}

/// Issue a bearer token for `principal` in the hub's token store (as `gridhub token issue`).
pub fn token(hub: &impl AsHub, principal: &str) -> String {
    let store = gridhub_server::TokenStore::open(&hub.as_hub().config().state_dir)
        .expect("open the token store");
    store
        .issue(
            principal,
            chrono::Duration::days(1),
            "test",
            chrono::Utc::now(),
        )
        .expect("issue a token")
        .0
}

/// The audit records of `principal` (with `outcome`, when given), oldest first.
pub fn audit_records(
    hub: &GovernedHub,
    principal: &str,
    outcome: Option<gridhub_audit::Outcome>,
) -> Vec<gridhub_audit::StoredRecord> {
    hub.governance()
        .audit()
        .search(&gridhub_audit::AuditFilter {
            principal: Some(principal.into()),
            outcome,
            limit: Some(100_000),
            ..Default::default()
        })
        .expect("audit search")
}

/// Runs `sql` over Flight SQL as `remote`'s principal and opens the stream of its answer
/// (the first endpoint), without reading any of it.
pub async fn flight_stream(
    remote: &gridhub_server::client::Remote,
    sql: &str,
) -> arrow_flight::decode::FlightRecordBatchStream {
    use gridhub_server::client::to_status;
    let mut fc = remote.flight_sql();
    let info = fc
        .execute(sql.to_string(), None)
        .await
        .map_err(to_status)
        .unwrap();
    fc.do_get(info.endpoint[0].ticket.clone().unwrap())
        .await
        .map_err(to_status)
        .unwrap()
}

/// Every batch of the Flight stream `ticket` names, read with `client`.
pub async fn flight_batches(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    ticket: arrow_flight::Ticket,
) -> Vec<RecordBatch> {
    use futures::TryStreamExt;
    use gridhub_server::client::to_status;
    client
        .do_get(ticket)
        .await
        .map_err(to_status)
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

/// Whether any of `records` carries a message containing `needle`.
pub fn any_message_contains(records: &[gridhub_audit::StoredRecord], needle: &str) -> bool {
    records.iter().any(|r| {
        r.record
            .message
            .as_deref()
            .is_some_and(|m| m.contains(needle))
    })
}

/// The column names of an answer (of its first batch; none without a batch).
pub fn column_names(batches: &[RecordBatch]) -> Vec<String> {
    batches
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default()
}

/// A governed query as `who` for `purpose` (the principal's session, policy views, plan
/// checks and audit record): the engine call the golden files run through.
pub async fn governed_query(
    hub: &GovernedHub,
    who: &str,
    purpose: Option<&str>,
    sql: &str,
) -> Result<Vec<RecordBatch>, gridhub_engine::EngineError> {
    hub.query_as(who, purpose, sql).await.map(|a| a.batches)
}

/// The demo's security officer, who declares and ends the tests' emergencies.
pub const SECURITY_OFFICER: &str = "qian.security";

/// Declares an emergency for `area` lasting a day; returns its id.
pub async fn declare_emergency(hub: &GovernedHub, area: &str, reason: &str) -> i64 {
    hub.emergency_declare(
        SECURITY_OFFICER,
        area,
        chrono::Utc::now() + chrono::Duration::days(1),
        reason,
    )
    .await
    .unwrap_or_else(|e| panic!("declare an emergency for {area}: {e}"))
    .id
}

/// Ends the emergency `id`.
pub async fn end_emergency(hub: &GovernedHub, id: i64) {
    hub.emergency_end(SECURITY_OFFICER, id)
        .await
        .unwrap_or_else(|e| panic!("end emergency {id}: {e}"));
}

/// Rows sorted, for comparing answers whose order the SQL does not fix.
pub fn sorted(mut rows: Vec<Vec<Option<String>>>) -> Vec<Vec<Option<String>>> {
    rows.sort();
    rows
}
