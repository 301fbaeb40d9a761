//! The hub server end to end: an in-process server on port 0, queried with the Rust Flight
//! SQL client and the hub's gRPC clients. Answers equal local governed queries; policies and
//! the audit apply the same way; unauthenticated, wrong, expired and revoked credentials,
//! plaintext to a TLS hub and certificates of an unknown CA are refused with the right status
//! and audit nothing; limits fail cleanly while the hub keeps serving.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables};
use futures::TryStreamExt;
use gridhub_audit::{AuditFilter, Outcome};
use gridhub_engine::GovernedHub;
use gridhub_proto::v1 as pb;
use gridhub_server::client::{Remote, RemoteOptions, to_status};
use gridhub_synth::{ELDERLY_WALKUP_SQL, HEALTH_LATEST_SQL};
use gridhub_tests::{
    TestCity, any_message_contains, audit_records, flight_batches, flight_stream, rows, serve,
    sorted, token,
};
use tonic::Code;

const SCALE: usize = 2_000;

async fn remote(addr: std::net::SocketAddr, token: Option<&str>, purpose: Option<&str>) -> Remote {
    Remote::connect(&RemoteOptions {
        url: format!("http://{addr}"),
        token: token.map(str::to_string),
        purpose: purpose.map(str::to_string),
        ..Default::default()
    })
    .await
    .expect("connect")
}

/// A client over TLS to `url` that proves itself with `who`'s certificate from `certs`
/// (the dev CA's files).
async fn certificate_remote(url: &str, certs: &Path, who: &str) -> Result<Remote, String> {
    Remote::connect(&RemoteOptions {
        url: url.to_string(),
        ca_cert: Some(certs.join("ca.crt")),
        client_cert: Some(certs.join(format!("{who}.crt"))),
        client_key: Some(certs.join(format!("{who}.key"))),
        ..Default::default()
    })
    .await
}

fn audit_count(hub: &GovernedHub, principal: &str, outcome: Option<Outcome>) -> usize {
    audit_records(hub, principal, outcome).len()
}

async fn loaded_hub(city: &TestCity) -> Arc<GovernedHub> {
    Arc::new(city.hub().await)
}

/// Remote answers equal local ones for principals and purposes that see different things;
/// every remote query is audited like a local one.
#[tokio::test]
async fn flight_sql_answers_equal_local_governed_queries() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |_| {}).await;
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "zhao.street",
            None,
            "SELECT name, id_number, phone, area_code FROM person",
        ),
        (
            "chen.community",
            None,
            "SELECT name, id_number, phone FROM person",
        ),
        ("zhao.street", None, ELDERLY_WALKUP_SQL),
        ("sun.health", Some("epidemic_response"), HEALTH_LATEST_SQL),
        // Cross-source: health records joined with the register's persons.
        (
            "chen.community",
            Some("epidemic_response"),
            "SELECT p.name, h.health_code, h.record_date FROM health_record h \
             JOIN person p ON p.person_id = h.person_id",
        ),
        (
            "wang.city",
            None,
            "SELECT area_code, count(*) AS n FROM person GROUP BY area_code",
        ),
    ];
    let mut answered = 0;
    for (who, purpose, sql) in cases {
        let local = hub
            .query_as(who, *purpose, sql)
            .await
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        let before = audit_count(&hub, who, Some(Outcome::Ok));
        let client = remote(server.addr, Some(&token(&hub, who)), *purpose).await;
        let answer = client
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        if !rows(&local.batches).is_empty() {
            answered += 1;
        }
        assert_eq!(
            sorted(rows(&answer)),
            sorted(rows(&local.batches)),
            "{who} {purpose:?}: remote and local answers differ for {sql}"
        );
        assert_eq!(
            answer.first().map(|b| b.schema()),
            local.batches.first().map(|b| b.schema()),
            "{who}: schemas differ"
        );
        // Audited once, as ok, with the rows returned (streamed queries: when they end).
        let after = audit_count(&hub, who, Some(Outcome::Ok));
        assert_eq!(
            after,
            before + 1,
            "{who}: the remote query was not audited once"
        );
        let last = hub
            .governance()
            .audit()
            .search(&AuditFilter {
                principal: Some(who.to_string()),
                limit: Some(100_000),
                ..Default::default()
            })
            .unwrap()
            .pop()
            .unwrap();
        let n: usize = answer.iter().map(|b| b.num_rows()).sum();
        assert_eq!(last.record.rows, Some(n as u64));
        assert_eq!(last.record.purpose.as_deref(), *purpose);
    }

    // The small city leaves some answers empty (a street's elderly), not most.
    assert!(
        answered >= cases.len() - 1,
        "only {answered} answers had rows"
    );

    // A denial: the same message as locally, PERMISSION_DENIED, audited as denied.
    let sql = "SELECT health_code FROM health_record";
    let local = hub
        .query_as("zhou.volunteer", None, sql)
        .await
        .unwrap_err()
        .to_string();
    let denied_before = audit_count(&hub, "zhou.volunteer", Some(Outcome::Denied));
    let client = remote(server.addr, Some(&token(&hub, "zhou.volunteer")), None).await;
    let status = client.query(sql).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(
        status.message(),
        local,
        "the remote refusal says what the local one says"
    );
    assert_eq!(
        audit_count(&hub, "zhou.volunteer", Some(Outcome::Denied)),
        denied_before + 1
    );
    server.shutdown().await.expect("clean shutdown");
}

/// The street officer's local answer to the prepared statement's SQL for `community`, the
/// value inlined.
async fn people_of(hub: &GovernedHub, community: &str) -> gridhub_engine::GovernedAnswer {
    hub.query_as(
        "zhao.street",
        None,
        &format!("SELECT name, phone FROM person WHERE area_code LIKE '{community}%'"),
    )
    .await
    .unwrap()
}

/// Bind `$1` to `<community>%` and execute (DoPut, then GetFlightInfo): the ticket.
async fn bind_and_execute(
    prepared: &mut arrow_flight::sql::client::PreparedStatement<tonic::transport::Channel>,
    community: &str,
) -> arrow_flight::Ticket {
    let params = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("$1", DataType::Utf8, true)])),
        vec![Arc::new(StringArray::from(vec![format!("{community}%")]))],
    )
    .unwrap();
    prepared.set_parameters(params).unwrap();
    let info = prepared
        .execute()
        .await
        .map_err(to_status)
        .expect("execute");
    info.endpoint[0].ticket.clone().unwrap()
}

/// Prepared statements with parameters, and the metadata calls drivers make.
#[tokio::test]
async fn prepared_statements_and_metadata() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |_| {}).await;
    let client = remote(server.addr, Some(&token(&hub, "zhao.street")), None).await;
    let mut sql_client = client.flight_sql();

    // A community of the street, and the local answer with the value inlined.
    let community = "420106009001";
    let local = people_of(&hub, community).await;
    let mut prepared = sql_client
        .prepare(
            "SELECT name, phone FROM person WHERE area_code LIKE $1".into(),
            None,
        )
        .await
        .map_err(to_status)
        .expect("prepare");
    assert_eq!(
        prepared.parameter_schema().unwrap().fields().len(),
        1,
        "one parameter"
    );
    let ticket = bind_and_execute(&mut prepared, community).await;
    let batches = flight_batches(&mut sql_client, ticket).await;
    assert!(!rows(&local.batches).is_empty());
    assert_eq!(sorted(rows(&batches)), sorted(rows(&local.batches)));
    // GetFlightInfo planned the statement with its parameters; the DoGet ran that plan.
    assert_eq!(statement_plans(&server, "kept").await, 1.0);

    // Bound again: planned with the new value, and that plan runs.
    let other = "420106009002";
    let other_local = people_of(&hub, other).await;
    assert_ne!(
        sorted(rows(&other_local.batches)),
        sorted(rows(&local.batches))
    );
    let ticket = bind_and_execute(&mut prepared, other).await;
    let batches = flight_batches(&mut sql_client, ticket.clone()).await;
    assert_eq!(sorted(rows(&batches)), sorted(rows(&other_local.batches)));
    assert_eq!(statement_plans(&server, "kept").await, 2.0);
    // A plan runs once: the same ticket again is planned from the statement as bound.
    let batches = flight_batches(&mut sql_client, ticket).await;
    assert_eq!(sorted(rows(&batches)), sorted(rows(&other_local.batches)));
    assert_eq!(statement_plans(&server, "not_kept").await, 1.0);
    prepared.close().await.map_err(to_status).expect("close");

    // Catalogs, schemas, tables with the schema this principal sees.
    let info = sql_client.get_catalogs().await;
    let catalogs = collect(&mut sql_client, info).await;
    assert_eq!(column(&catalogs, "catalog_name"), vec!["gridhub"]);
    let info = sql_client
        .get_db_schemas(CommandGetDbSchemas::default())
        .await;
    let schemas = collect(&mut sql_client, info).await;
    let schemas = column(&schemas, "db_schema_name");
    assert!(schemas.contains(&"public".to_string()), "{schemas:?}");
    assert!(
        !schemas.iter().any(|s| s == "system" || s == "live"),
        "{schemas:?}"
    );

    // Each principal's GetTables lists the tables it may read with the columns it sees.
    let mut views = Vec::new();
    for who in ["zhou.volunteer", "zhao.street"] {
        let c = remote(server.addr, Some(&token(&hub, who)), None).await;
        let mut fc = c.flight_sql();
        let info = fc
            .get_tables(CommandGetTables {
                include_schema: true,
                ..Default::default()
            })
            .await;
        let tables = collect(&mut fc, info).await;
        let names = column(&tables, "table_name");
        assert!(names.contains(&"person".to_string()), "{who}: {names:?}");
        let local = hub
            .plan_as(
                hub.governance().principal(who).unwrap(),
                None,
                "SELECT * FROM person",
                &mut Vec::new(),
            )
            .await
            .unwrap();
        let local_columns: Vec<String> = local
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let i = names.iter().position(|n| n == "person").unwrap();
        let schema_bytes = tables[0]
            .column_by_name("table_schema")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::BinaryArray>()
            .unwrap()
            .value(i)
            .to_vec();
        let schema = arrow::ipc::convert::try_schema_from_ipc_buffer(&schema_bytes).unwrap();
        let remote_columns: Vec<String> =
            schema.fields().iter().map(|f| f.name().clone()).collect();
        assert_eq!(remote_columns, local_columns, "{who}: GetTables schema");
        views.push((names, remote_columns));
    }
    assert_ne!(
        views[0], views[1],
        "a volunteer and a street officer see the same catalog"
    );
    let info = sql_client
        .get_sql_info(vec![arrow_flight::sql::SqlInfo::FlightSqlServerName])
        .await
        .map_err(to_status)
        .unwrap();
    assert!(!info.endpoint.is_empty());
    server.shutdown().await.unwrap();
}

async fn collect(
    client: &mut arrow_flight::sql::client::FlightSqlServiceClient<tonic::transport::Channel>,
    info: Result<arrow_flight::FlightInfo, arrow_flight::error::FlightError>,
) -> Vec<RecordBatch> {
    let info = info.map_err(to_status).expect("flight info");
    let mut out = Vec::new();
    for e in info.endpoint {
        let stream = client
            .do_get(e.ticket.unwrap())
            .await
            .map_err(to_status)
            .unwrap();
        out.extend(stream.try_collect::<Vec<_>>().await.unwrap());
    }
    out
}

fn column(batches: &[RecordBatch], name: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(name).unwrap();
            let a = arrow::compute::cast(a, &DataType::Utf8).unwrap();
            let a = a.as_any().downcast_ref::<StringArray>().unwrap().clone();
            (0..a.len()).map(move |i| a.value(i).to_string())
        })
        .collect()
}

/// No token, a wrong one, another principal's in basic auth, an expired and a revoked one:
/// UNAUTHENTICATED everywhere, and nothing audited. The handshake trades basic auth for a
/// bearer token. The hub's own services require the policy's roles.
#[tokio::test]
async fn authentication_refusals() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |_| {}).await;
    let audited = hub.governance().audit().len().unwrap();
    let store = gridhub_server::TokenStore::open(&hub.hub().config().state_dir).unwrap();
    let now = chrono::Utc::now();
    let (expired, _) = store
        .issue("zhao.street", chrono::Duration::seconds(-1), "expired", now)
        .unwrap();
    let (revoked, info) = store
        .issue("zhao.street", chrono::Duration::days(1), "revoked", now)
        .unwrap();
    store.revoke(&info.id, now).unwrap();
    let good = token(&hub, "zhao.street");
    let mut wrong = good.clone();
    wrong.replace_range(good.len() - 4.., "0000");
    let sql = "SELECT count(*) FROM person";
    for (why, t, expect) in [
        ("no token", None, "no credentials"),
        ("wrong token", Some(wrong.as_str()), "unknown token"),
        ("expired token", Some(expired.as_str()), "expired"),
        ("revoked token", Some(revoked.as_str()), "revoked"),
        ("garbage", Some("hello"), "not a gridhub token"),
    ] {
        let client = remote(server.addr, t, None).await;
        let status = client.query(sql).await.expect_err(why);
        assert_eq!(status.code(), Code::Unauthenticated, "{why}: {status:?}");
        assert!(
            status.message().contains(expect),
            "{why}: {}",
            status.message()
        );
        let status = client
            .health()
            .check(pb::HealthRequest {})
            .await
            .expect_err(why);
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{why}: health {status:?}"
        );
        let status = client
            .catalog()
            .get_catalog(pb::GetCatalogRequest {})
            .await
            .expect_err(why);
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{why}: catalog {status:?}"
        );
    }
    assert_eq!(
        hub.governance().audit().len().unwrap(),
        audited,
        "refused calls must not be audited"
    );

    // Basic auth: the handshake returns the bearer token; another principal's token fails.
    let bare = remote(server.addr, None, None).await;
    let mut fc = bare.flight_sql();
    let payload = fc
        .handshake("zhao.street", &good)
        .await
        .map_err(to_status)
        .expect("handshake");
    assert_eq!(payload, good.as_bytes());
    let n = fc
        .execute(sql.into(), None)
        .await
        .map_err(to_status)
        .expect("bearer from the handshake works");
    assert!(!n.endpoint.is_empty());
    let mut fc = bare.flight_sql();
    let status = fc
        .handshake("chen.community", &good)
        .await
        .map_err(to_status)
        .expect_err("zhao's token as chen");
    // The Rust client reports a failed handshake as its own error, quoting the server's.
    assert!(
        status.message().contains("not chen.community's"),
        "{status:?}"
    );

    // Roles: a street officer may not read the policy history; the security officer may,
    // and gets what the local command gets.
    let street = remote(server.addr, Some(&good), None).await;
    let status = street
        .policy()
        .history(pb::HistoryRequest {})
        .await
        .expect_err("street officer reads policy history");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let security = remote(server.addr, Some(&token(&hub, "qian.security")), None).await;
    let history = security
        .policy()
        .history(pb::HistoryRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        history,
        gridhub_server::api::policy_history(&hub, "qian.security").unwrap()
    );
    let health = street
        .health()
        .check(pb::HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.principal, "zhao.street");
    assert_eq!(health.area, "420106009");
    server.shutdown().await.unwrap();
}

/// A query over the memory limit fails with RESOURCE_EXHAUSTED and the hub serves the next
/// one; a query over the time limit fails with DEADLINE_EXCEEDED; a principal over its
/// concurrency limit gets RESOURCE_EXHAUSTED while another principal is served; an
/// oversized request is refused.
#[tokio::test]
async fn limits_fail_cleanly_and_the_hub_keeps_serving() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |c| c.query_memory_bytes = 64 << 10).await;
    let wang = remote(server.addr, Some(&token(&hub, "wang.city")), None).await;
    // A join's hash table cannot spill: far over 64 KiB.
    let heavy = "SELECT a.name, b.name FROM person a JOIN person b ON a.area_code = b.area_code";
    let status = wang.query(heavy).await.expect_err("over the memory limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("Resources exhausted"),
        "{}",
        status.message()
    );
    let errors = audit_records(&hub, "wang.city", Some(Outcome::Error));
    assert!(
        errors.iter().any(|r| r.record.text == heavy),
        "the failure is audited"
    );
    // The hub keeps serving, this principal and others.
    let small = "SELECT count(*) AS n FROM person";
    let n = wang.query(small).await.expect("served after the failure");
    assert_eq!(n.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    let zhao = remote(server.addr, Some(&token(&hub, "zhao.street")), None).await;
    zhao.query(small)
        .await
        .expect("another principal is served");
    server.shutdown().await.unwrap();

    let server = serve(hub.clone(), |c| {
        c.max_queries_per_principal = 1;
        c.max_request_kb = 4;
    })
    .await;
    let wang = remote(server.addr, Some(&token(&hub, "wang.city")), None).await;
    let zhao = remote(server.addr, Some(&token(&hub, "zhao.street")), None).await;

    // An oversized statement.
    let long = format!(
        "SELECT count(*) FROM person WHERE name <> '{}'",
        "x".repeat(8 << 10)
    );
    let status = zhao.query(&long).await.expect_err("oversized request");
    assert!(
        matches!(
            status.code(),
            Code::InvalidArgument | Code::OutOfRange | Code::ResourceExhausted
        ),
        "{status:?}"
    );

    // Concurrency: hold one streaming query of wang.city open, the next is refused.
    let mut held = flight_stream(
        &wang,
        "SELECT a.person_id FROM person a CROSS JOIN person b",
    )
    .await;
    let first = held.try_next().await;
    assert!(first.is_ok(), "{first:?}");
    let status = wang
        .query(small)
        .await
        .expect_err("second concurrent query");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("max_queries_per_principal"),
        "{}",
        status.message()
    );
    zhao.query(small)
        .await
        .expect("another principal is not limited by wang's queries");
    drop(held);
    // Freed once the server sees the stream dropped.
    let mut served = false;
    for _ in 0..50 {
        if wang.query(small).await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the slot was not freed after the client went away");
    let cancelled = audit_records(&hub, "wang.city", Some(Outcome::Error));
    assert!(
        any_message_contains(&cancelled, "cancelled"),
        "a dropped stream is audited as cancelled"
    );
    server.shutdown().await.unwrap();

    // Time limit.
    let server = serve(hub.clone(), |c| c.query_timeout = Duration::from_millis(1)).await;
    let wang = remote(server.addr, Some(&token(&hub, "wang.city")), None).await;
    let status = wang.query(heavy).await.expect_err("over the time limit");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("query_timeout_secs"),
        "{}",
        status.message()
    );
    server.shutdown().await.unwrap();
}

/// TLS with client certificates made by deploy/dev-ca.sh (the documented commands): a token
/// over TLS and a certificate alone both work; plaintext to the TLS port and a certificate
/// from another CA are refused, and nothing is audited for them.
#[tokio::test]
async fn tls_and_client_certificates() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let certs = tempfile::tempdir().unwrap();
    let rogue = tempfile::tempdir().unwrap();
    dev_ca(certs.path(), &["zhao.street", "nobody.here"]);
    dev_ca(rogue.path(), &["zhao.street"]);
    let server = serve(hub.clone(), |c| {
        c.tls = Some(gridhub_engine::TlsFiles {
            cert: certs.path().join("hub.crt"),
            key: certs.path().join("hub.key"),
            client_ca: Some(certs.path().join("ca.crt")),
        });
    })
    .await;
    let url = format!("https://localhost:{}", server.addr.port());
    let sql = "SELECT count(*) AS n FROM person";
    let local = rows(
        &hub.query_as("zhao.street", None, sql)
            .await
            .unwrap()
            .batches,
    );

    let with_token = Remote::connect(&RemoteOptions {
        url: url.clone(),
        token: Some(token(&hub, "zhao.street")),
        ca_cert: Some(certs.path().join("ca.crt")),
        ..Default::default()
    })
    .await
    .expect("TLS connect");
    assert_eq!(
        rows(&with_token.query(sql).await.expect("token over TLS")),
        local
    );

    let with_cert = certificate_remote(&url, certs.path(), "zhao.street")
        .await
        .expect("mTLS connect");
    assert_eq!(
        rows(&with_cert.query(sql).await.expect("certificate alone")),
        local
    );
    let health = with_cert
        .health()
        .check(pb::HealthRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.principal, "zhao.street");

    let audited = hub.governance().audit().len().unwrap();
    // A certificate for someone the hub does not know.
    let stranger = certificate_remote(&url, certs.path(), "nobody.here")
        .await
        .expect("a valid certificate connects");
    let status = stranger.query(sql).await.expect_err("unknown principal");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // Plaintext to the TLS port.
    let plain = Remote::connect(&RemoteOptions {
        url: format!("http://127.0.0.1:{}", server.addr.port()),
        token: Some(token(&hub, "zhao.street")),
        ..Default::default()
    })
    .await;
    match plain {
        Err(_) => {}
        Ok(c) => {
            let status = c.query(sql).await.expect_err("plaintext to a TLS hub");
            assert!(
                matches!(
                    status.code(),
                    Code::Unavailable | Code::Unknown | Code::Internal
                ),
                "{status:?}"
            );
        }
    }

    // A certificate from another CA: the TLS handshake fails.
    let rogue_client = Remote::connect(&RemoteOptions {
        url: url.clone(),
        ca_cert: Some(certs.path().join("ca.crt")),
        client_cert: Some(rogue.path().join("zhao.street.crt")),
        client_key: Some(rogue.path().join("zhao.street.key")),
        ..Default::default()
    })
    .await;
    if let Ok(c) = rogue_client {
        let status = c
            .query(sql)
            .await
            .expect_err("certificate of an unknown CA");
        assert!(
            matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Unauthenticated
            ),
            "{status:?}"
        );
    }
    assert_eq!(
        hub.governance().audit().len().unwrap(),
        audited,
        "refused connections must not be audited"
    );
    server.shutdown().await.unwrap();
}

fn dev_ca(dir: &Path, principals: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/dev-ca.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(dir)
        .args(principals)
        .output()
        .expect("run deploy/dev-ca.sh");
    assert!(
        out.status.success(),
        "dev-ca.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Prometheus endpoint counts queries, rows, denials and auth failures.
#[tokio::test]
async fn metrics_endpoint_counts_queries() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |_| {}).await;
    let client = remote(server.addr, Some(&token(&hub, "zhao.street")), None).await;
    let answer = client.query("SELECT name FROM person").await.unwrap();
    let n: usize = answer.iter().map(|b| b.num_rows()).sum();
    remote(server.addr, Some(&token(&hub, "zhou.volunteer")), None)
        .await
        .query("SELECT health_code FROM health_record")
        .await
        .expect_err("denied");
    remote(server.addr, None, None)
        .await
        .query("SELECT 1")
        .await
        .expect_err("no token");
    let text = http_get(server.metrics_addr.unwrap(), "/metrics").await;
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(value("gridhub_queries_total{outcome=\"ok\"}"), 1.0);
    assert_eq!(value("gridhub_rows_total"), n as f64);
    assert!(value("gridhub_bytes_total") > 0.0);
    assert_eq!(value("gridhub_denials_total"), 1.0);
    assert_eq!(
        value("gridhub_auth_failures_total{reason=\"missing\"}"),
        1.0
    );
    assert!(
        text.contains("gridhub_query_duration_seconds_bucket"),
        "{text}"
    );
    server.shutdown().await.unwrap();
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        out
    })
    .await
    .unwrap()
}

/// The counter `gridhub_statement_plans_total{plan="<plan>"}` (0 before the first).
async fn statement_plans(server: &gridhub_server::RunningServer, plan: &str) -> f64 {
    let text = http_get(server.metrics_addr.unwrap(), "/metrics").await;
    let name = format!("gridhub_statement_plans_total{{plan=\"{plan}\"}}");
    text.lines()
        .find(|l| l.starts_with(&name))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .unwrap_or(0.0)
}

/// GetFlightInfo plans a statement once and its DoGet runs that plan; when what the plan was
/// decided under changes in between (an emergency declared or ended), the DoGet plans again
/// and the answer is what holds when it runs. A ticket presented by another principal runs
/// as that principal and leaves the planner's kept plan alone.
#[tokio::test]
async fn a_kept_plan_runs_only_while_its_decisions_hold() {
    let city = TestCity::generate(SCALE);
    let hub = loaded_hub(&city).await;
    let server = serve(hub.clone(), |_| {}).await;
    let (who, area, purpose) = ("chen.community", "420106009001", "epidemic_response");
    let chen = remote(server.addr, Some(&token(&hub, who)), Some(purpose)).await;
    let sql = "SELECT person_id, health_code FROM health_record";
    let local = || async {
        let answer = hub.query_as(who, Some(purpose), sql).await.unwrap();
        sorted(rows(&answer.batches))
    };
    let fetch = |remote: &Remote, ticket: arrow_flight::Ticket| {
        let mut fc = remote.flight_sql();
        async move { sorted(rows(&flight_batches(&mut fc, ticket).await)) }
    };
    let plan = |remote: &Remote| {
        let mut fc = remote.flight_sql();
        async move {
            let info = fc.execute(sql.to_string(), None).await.unwrap();
            info.endpoint[0].ticket.clone().unwrap()
        }
    };

    // Planned once: the DoGet runs GetFlightInfo's plan.
    let masked = local().await;
    assert!(!masked.is_empty(), "the community has health records");
    let ticket = plan(&chen).await;
    assert_eq!(fetch(&chen, ticket).await, masked);
    assert_eq!(statement_plans(&server, "kept").await, 1.0);

    // An emergency declared between the two opens health codes: planned again.
    let ticket = plan(&chen).await;
    let emergency = gridhub_tests::declare_emergency(&hub, area, "test: outbreak").await;
    let clear = local().await;
    assert_ne!(clear, masked, "the emergency opens the health codes");
    assert_eq!(fetch(&chen, ticket).await, clear);
    assert_eq!(statement_plans(&server, "made_again").await, 1.0);

    // Ended between the two: masked again.
    let ticket = plan(&chen).await;
    gridhub_tests::end_emergency(&hub, emergency).await;
    assert_eq!(fetch(&chen, ticket).await, masked);
    assert_eq!(statement_plans(&server, "made_again").await, 2.0);

    // Another principal's ticket runs as the one presenting it (the street officer's view of
    // the same SQL), and the kept plan is still there for its own principal.
    let zhao = remote(
        server.addr,
        Some(&token(&hub, "zhao.street")),
        Some(purpose),
    )
    .await;
    let ticket = plan(&chen).await;
    let zhao_local = sorted(rows(
        &hub.query_as("zhao.street", Some(purpose), sql)
            .await
            .unwrap()
            .batches,
    ));
    assert_ne!(zhao_local, masked);
    assert_eq!(fetch(&zhao, ticket.clone()).await, zhao_local);
    assert_eq!(statement_plans(&server, "not_kept").await, 1.0);
    assert_eq!(fetch(&chen, ticket.clone()).await, masked);
    assert_eq!(statement_plans(&server, "kept").await, 2.0);
    // Used once: the same ticket again is planned from its SQL.
    assert_eq!(fetch(&chen, ticket).await, masked);
    assert_eq!(statement_plans(&server, "not_kept").await, 2.0);
    server.shutdown().await.unwrap();
}
