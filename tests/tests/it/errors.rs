//! Errors as a Flight SQL client reads them: the real `FlightSqlServiceClient` against an
//! in-process hub server on port 0. Each case checks the status code a client acts on and a
//! message that says what to change: an unknown table names the tables the caller may read,
//! a syntax error its line and column, a denied table what would allow it; a timeout and the
//! memory limit name their setting; an internal error gives an id only, and the hub's log
//! has that id with the details.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use gridhub_engine::GovernedHub;
use gridhub_server::client::to_status;
use gridhub_tests::{TestCity, serve, token};
use tonic::transport::Channel;
use tonic::{Code, Status};

const SCALE: usize = 1_000;

/// Everything the server logs in this test process (tracing, as `gridhub serve` prints it).
fn server_log() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    let log = LOG.get_or_init(|| Mutex::new(Vec::new()));
    INSTALLED.get_or_init(|| {
        struct Capture;
        impl Write for Capture {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                server_log().lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        tracing_subscriber::fmt()
            .with_writer(|| Capture)
            .with_ansi(false)
            .init();
    });
    log
}

async fn loaded_hub(city: &TestCity) -> Arc<GovernedHub> {
    Arc::new(city.hub().await)
}

/// A Flight SQL client of `principal` (bearer token) to the server at `addr`.
async fn client(
    hub: &GovernedHub,
    addr: std::net::SocketAddr,
    principal: &str,
) -> FlightSqlServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connect");
    let mut client = FlightSqlServiceClient::new(channel);
    client.set_token(token(hub, principal));
    client
}

/// Run `sql` (GetFlightInfo, then DoGet of every endpoint) and return the status it fails
/// with, wherever it fails.
async fn failure(client: &mut FlightSqlServiceClient<Channel>, sql: &str) -> Status {
    let info = match client.execute(sql.to_string(), None).await {
        Ok(info) => info,
        Err(e) => return to_status(e),
    };
    for endpoint in info.endpoint {
        let stream = match client.do_get(endpoint.ticket.expect("a ticket")).await {
            Ok(s) => s,
            Err(e) => return to_status(e),
        };
        if let Err(e) = stream.try_collect::<Vec<_>>().await {
            return to_status(e);
        }
    }
    panic!("{sql}\nsucceeded, expected an error");
}

#[tokio::test]
async fn an_unknown_table_is_not_found_and_names_the_tables_the_caller_may_read() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |_| {}).await;
    let mut zhou = client(&hub, server.addr, "zhou.volunteer").await;
    let status = failure(&mut zhou, "SELECT name FROM persons").await;
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let message = status.message();
    assert!(message.contains("unknown table 'persons'"), "{message}");
    let readable: Vec<String> = hub
        .visible_tables("zhou.volunteer", None)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.schema == "public")
        .map(|t| t.table)
        .collect();
    assert!(readable.contains(&"person".to_string()), "{readable:?}");
    for table in &readable {
        assert!(message.contains(table.as_str()), "{table}: {message}");
    }
    // A table the volunteer may not read is not advertised.
    assert!(!readable.contains(&"health_record".to_string()));
    assert!(!message.contains("health_record"), "{message}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_syntax_error_is_invalid_argument_with_its_line_and_column() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |_| {}).await;
    let mut zhao = client(&hub, server.addr, "zhao.street").await;
    // `FORM` reads as an alias of `name`; the parser stops at `person`.
    let status = failure(&mut zhao, "SELECT name\nFORM person").await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let message = status.message();
    assert!(
        message.starts_with("SQL error at line 2, column 6:"),
        "{message}"
    );
    assert!(message.contains("found: person"), "{message}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_denied_table_is_permission_denied_and_says_what_would_allow_it() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |_| {}).await;
    let mut zhou = client(&hub, server.addr, "zhou.volunteer").await;
    let status = failure(&mut zhou, "SELECT * FROM health_record").await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let message = status.message();
    assert!(message.starts_with("access denied: "), "{message}");
    assert!(message.contains("health_record"), "{message}");
    assert!(message.contains(DENIED_HINT), "{message}");
    server.shutdown().await.unwrap();
}

/// What the volunteer's refusal of `health_record` must say would allow the read.
const DENIED_HINT: &str = "needs role";

#[tokio::test]
async fn a_query_over_the_time_limit_is_deadline_exceeded_naming_the_setting() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |c| c.query_timeout = Duration::from_millis(1)).await;
    let mut wang = client(&hub, server.addr, "wang.city").await;
    let status = failure(
        &mut wang,
        "SELECT count(*) FROM person a CROSS JOIN person b CROSS JOIN person c \
         WHERE a.name <> c.name",
    )
    .await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let message = status.message();
    assert!(message.contains("[server] query_timeout_secs"), "{message}");
    assert!(message.contains("was stopped"), "{message}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_query_over_the_memory_limit_is_resource_exhausted() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |c| c.query_memory_bytes = 64 << 10).await;
    let mut wang = client(&hub, server.addr, "wang.city").await;
    // A join's hash table cannot spill: far over 64 KiB.
    let status = failure(
        &mut wang,
        "SELECT a.name, b.name FROM person a JOIN person b ON a.area_code = b.area_code",
    )
    .await;
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let message = status.message();
    assert!(message.contains("Resources exhausted"), "{message}");
    assert!(!message.starts_with("internal error"), "{message}");
    server.shutdown().await.unwrap();
}

/// The audit log's head anchor becomes unreadable while the hub serves (replaced by a
/// directory): no query may run unaudited, so the next one fails — INTERNAL, with only an
/// id; the log has the id and the cause.
#[tokio::test]
async fn an_internal_error_gives_the_client_an_id_and_the_log_the_details() {
    let log = server_log();
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |_| {}).await;
    let mut zhao = client(&hub, server.addr, "zhao.street").await;
    let anchor = hub.governance().audit().anchor_path().to_path_buf();
    std::fs::remove_file(&anchor).unwrap();
    std::fs::create_dir(&anchor).unwrap();

    let status = failure(&mut zhao, "SELECT count(*) FROM person").await;
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    let message = status.message();
    let id = message
        .strip_prefix("internal error ")
        .and_then(|rest| rest.strip_suffix(" (the hub's log has the details)"))
        .unwrap_or_else(|| panic!("not an id only: {message}"));
    assert_eq!(id.len(), 16, "{message}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{message}");

    let logged = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let line = logged
        .lines()
        .find(|l| l.contains(&format!("error_id={id}")))
        .unwrap_or_else(|| panic!("id {id} not in the server log:\n{logged}"));
    assert!(line.contains("ERROR"), "{line}");
    let anchor_name = anchor.file_name().unwrap().to_string_lossy().into_owned();
    assert!(line.contains(&anchor_name), "the cause is logged: {line}");
    server.shutdown().await.unwrap();
}
