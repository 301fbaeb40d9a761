//! What a principal with a valid token could do to the hub, kept as regression tests: an
//! oracle on masked ID numbers through the keyed pseudonymiser, queries that overflow the
//! planner's stack, answers that outgrow the memory limit, data that leaves before it is
//! audited, a stream that outlives its emergency, and the small leaks (counts, table names,
//! special-tag rows, reporters' names, unmapped raw columns).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, TryStreamExt};
use gridhub_audit::{AuditFilter, Outcome, RecordKind};
use gridhub_engine::{EngineError, GovernedHub, QueryLimits};
use gridhub_proto::v1 as pb;
use gridhub_server::client::{Remote, RemoteOptions, to_status};
use gridhub_tests::{
    TestCity, any_message_contains, audit_records, flight_stream, rows, scalar_i64, serve, token,
};
use tonic::Code;

const SCALE: usize = 2_000;

async fn remote(addr: std::net::SocketAddr, who: &str, hub: &GovernedHub) -> Remote {
    Remote::connect(&RemoteOptions {
        url: format!("http://{addr}"),
        token: Some(token(hub, who)),
        ..Default::default()
    })
    .await
    .expect("connect")
}

/// The recovery query: guesses of a masked ID number tested against the clear pseudonym.
const ORACLE: &str = "SELECT count(*) FROM person \
                      WHERE gh_person_id(concat(substr(id_number, 1, 6), '19800101', substr(id_number, 15, 4))) = person_id";

#[tokio::test]
async fn the_keyed_pseudonymiser_is_no_oracle_for_any_principal() {
    let city = TestCity::generate(SCALE);
    let hub = Arc::new(city.hub().await);
    // The operator has it (the mappings need it): the refusals below are about principals.
    assert!(
        hub.hub()
            .query("SELECT gh_person_id('420106198001011234') AS p")
            .await
            .is_ok()
    );
    let server = serve(hub.clone(), |_| {}).await;
    for who in ["zhao.street", "wang.city", "chen.community", "sun.health"] {
        for (function, sql) in [
            ("gh_person_id", ORACLE.to_string()),
            (
                "gh_check",
                "SELECT gh_check('person_id', id_number) FROM person".to_string(),
            ),
            (
                "gh_json_object",
                "SELECT gh_json_object('a', name) FROM person".to_string(),
            ),
        ] {
            let local = hub
                .query_as(who, None, &sql)
                .await
                .expect_err("refused locally");
            assert!(
                local.to_string().contains(function),
                "{who}: {sql}: {local}"
            );
            let client = remote(server.addr, who, &hub).await;
            let status = client.query(&sql).await.expect_err("refused over Flight");
            assert_eq!(status.code(), Code::InvalidArgument, "{who}: {status:?}");
            let mut fc = client.flight_sql();
            let prepared = fc.prepare(sql.clone(), None).await.map_err(to_status);
            assert!(prepared.is_err(), "{who}: prepared {sql} was accepted");
        }
    }
    server.shutdown().await.unwrap();

    // The session a principal's queries are planned in holds only allowed functions.
    let names = hub.principal_function_names().unwrap();
    let operator = hub.operator_function_names();
    for n in &names {
        let (kind, name) = n.split_once(':').unwrap();
        let allowed = match kind {
            "scalar" => gridhub_engine::functions::scalar_allowed(name),
            "aggregate" => gridhub_engine::functions::AGGREGATE.contains(&name),
            "window" => gridhub_engine::functions::WINDOW.contains(&name),
            _ => false,
        };
        assert!(allowed, "{n} is in a principal's session but not allowed");
    }
    // Independently of the lists: what must never be there, and what must.
    for banned in [
        "scalar:gh_person_id",
        "scalar:gh_check",
        "scalar:gh_json_object",
        "scalar:version",
        "scalar:array_repeat",
        "scalar:range",
        "scalar:generate_series",
        "table:generate_series",
        "table:range",
    ] {
        assert!(!names.iter().any(|n| n == banned), "{banned} is callable");
    }
    assert!(!names.iter().any(|n| n.starts_with("table:")), "{names:?}");
    for needed in [
        "scalar:lower",
        "scalar:gh_mask_phone",
        "aggregate:count",
        "window:row_number",
    ] {
        assert!(names.iter().any(|n| n == needed), "{needed} missing");
    }
    // Every gridhub function the operator has states whether a principal may call it.
    for n in operator.iter().filter(|n| n.starts_with("scalar:gh_")) {
        let name = n.trim_start_matches("scalar:");
        assert!(
            gridhub_normalize::principal_use(name).is_some(),
            "{name} does not say whether principals may call it"
        );
    }
}

/// Generators of SQL that is small as text and deep as a tree.
fn deep_queries(n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("plus chain", format!("SELECT 1{}", "+1".repeat(n - 1))),
        (
            "and chain",
            format!(
                "SELECT count(*) FROM admin_unit WHERE {}true",
                "code <> 'x' AND ".repeat(n - 1)
            ),
        ),
        (
            "parentheses",
            format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)),
        ),
        ("not chain", format!("SELECT {}true", "NOT ".repeat(n))),
        (
            "case nesting",
            format!(
                "SELECT {}1{}",
                "CASE WHEN true THEN ".repeat(n),
                " END".repeat(n)
            ),
        ),
        (
            "union chain",
            format!("SELECT 1 AS x{}", " UNION ALL SELECT 1".repeat(n - 1)),
        ),
        (
            "join chain",
            format!(
                "SELECT count(*) FROM admin_unit a0{}",
                (1..n)
                    .map(|i| format!(" JOIN admin_unit a{i} ON a{i}.code = a0.code"))
                    .collect::<String>()
            ),
        ),
        (
            "subquery nesting",
            format!(
                "SELECT * FROM {}(SELECT 1 AS x){}",
                "(SELECT x FROM ".repeat(n),
                " t)".repeat(n)
            ),
        ),
        (
            "function nesting",
            format!("SELECT {}1{}", "abs(".repeat(n), ")".repeat(n)),
        ),
    ]
}

/// A deterministic generator of random expressions (no dependency on a crate's RNG).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }

    fn expr(&mut self, depth: usize) -> String {
        if depth == 0 {
            return ["1", "floors", "length(address)", "2.5", "NULL"][self.next(5) as usize].into();
        }
        let a = self.expr(depth - 1);
        match self.next(7) {
            0 => format!("({a} + {})", self.expr(depth / 3)),
            1 => format!("abs({a})"),
            2 => format!("coalesce({a}, 0)"),
            3 => format!("CASE WHEN {a} > 1 THEN {a} ELSE 0 END"),
            4 => format!("-({a})"),
            5 => format!("({a} * 2 - 1)"),
            _ => format!("greatest({a}, 1)"),
        }
    }
}

/// The server runs on workers with the stack `gridhub serve` gives them (16 MiB); the test's
/// own thread, where the client and the local queries run, keeps the harness's 2 MiB.
#[test]
fn deep_and_large_queries_get_a_clear_error_and_the_server_keeps_serving() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()
        .unwrap()
        .block_on(deep_and_large_queries());
}

async fn deep_and_large_queries() {
    let city = TestCity::generate(SCALE);
    let hub = Arc::new(city.hub().await);
    let server = serve(hub.clone(), |c| c.max_request_kb = 4096).await;
    let client = remote(server.addr, "zhao.street", &hub).await;
    let alive = "SELECT count(*) AS n FROM admin_unit";
    let expected_alive = scalar_i64(&hub, alive).await;
    for n in [1_000, 10_000, 100_000] {
        for (what, sql) in deep_queries(n) {
            let status = client
                .query(&sql)
                .await
                .expect_err(&format!("{what} × {n} answered"));
            // Past the transport's message limit gRPC itself refuses (OUT_OF_RANGE).
            let message = status.message();
            match status.code() {
                Code::InvalidArgument => assert!(
                    message.starts_with("query too large") || message.starts_with("SQL error"),
                    "{what} × {n}: {message}"
                ),
                Code::OutOfRange => assert!(message.contains("too large"), "{message}"),
                other => panic!("{what} × {n}: {other:?} {message}"),
            }
            let local = hub.query_as("zhao.street", None, &sql).await;
            assert!(local.is_err(), "{what} × {n} answered locally");
            // The server is still up and answers correctly.
            let batches = client.query(alive).await.expect("the server still answers");
            assert_eq!(
                rows(&batches)[0][0].as_deref(),
                Some(expected_alive.to_string().as_str())
            );
        }
    }
    // The operator's local SQL is bounded too (the CLI died at 10,000 terms).
    for (what, sql) in deep_queries(10_000) {
        assert!(
            hub.hub().query(&sql).await.is_err(),
            "operator: {what} answered"
        );
    }
    // Below the bounds, the same shapes answer, with the right value.
    let plus = format!("SELECT 1{} AS n", "+1".repeat(99));
    let batches = client.query(&plus).await.expect("100 terms answer");
    assert_eq!(rows(&batches)[0][0].as_deref(), Some("100"));
    for (what, sql) in deep_queries(12) {
        client
            .query(&sql)
            .await
            .unwrap_or_else(|e| panic!("{what} × 12 refused: {e:?}"));
    }
    // Random nesting up to past the depth bound: an answer or a clear refusal, never a crash.
    let mut rng = Lcg(20_261_202);
    for case in 0..120 {
        let depth = 1 + rng.next(60) as usize;
        let sql = format!("SELECT {} AS v FROM building", rng.expr(depth));
        match client.query(&sql).await {
            Ok(_) => {}
            Err(s) => assert!(
                matches!(s.code(), Code::InvalidArgument | Code::ResourceExhausted),
                "case {case} (depth {depth}): {s:?}\n{sql}"
            ),
        }
    }
    client.query(alive).await.expect("still serving");
    // Refusals are audited, not lost with a crashed process.
    let refused = audit_records(&hub, "zhao.street", Some(Outcome::Error));
    assert!(
        any_message_contains(&refused, "query too large"),
        "refusals of deep queries are audited"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn answers_are_counted_in_the_query_memory_limit() {
    let city = TestCity::generate(SCALE);
    let hub = Arc::new(city.hub().await);
    let server = serve(hub.clone(), |c| c.query_memory_bytes = 16 << 20).await;
    let zhao = remote(server.addr, "zhao.street", &hub).await;
    for sql in [
        // One huge value.
        "SELECT repeat('x', 300000000) AS v".to_string(),
        // A huge value per row: would ask the allocator for terabytes.
        "SELECT lpad(name, 2000000000) AS v FROM person".to_string(),
        "SELECT repeat(name, 100000000) AS v FROM person".to_string(),
        "SELECT replace(name, '', repeat('y', 60000)) AS v FROM person".to_string(),
        // Many moderate values: the answer outgrows the pool batch by batch.
        "SELECT repeat(name, 20000) AS v FROM person".to_string(),
    ] {
        let status = zhao.query(&sql).await.expect_err(&sql);
        assert_eq!(status.code(), Code::ResourceExhausted, "{sql}: {status:?}");
        zhao.query("SELECT count(*) FROM person")
            .await
            .expect("served after the failure");
    }
    // A health read (masked for a street officer) streams within the pool instead of being
    // collected whole: an answer many times the pool's size arrives complete.
    let sql = "SELECT h.person_id, h.health_code, p.name FROM health_record h CROSS JOIN person p";
    let count = |sql: &'static str| {
        let hub = hub.clone();
        async move {
            let a = hub.query_as("zhao.street", None, sql).await.unwrap();
            rows(&a.batches)[0][0]
                .clone()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        }
    };
    let expected = count("SELECT count(*) FROM health_record").await
        * count("SELECT count(*) FROM person").await;
    let mut stream = flight_stream(&zhao, sql).await;
    let (mut streamed, mut bytes) = (0u64, 0usize);
    while let Some(b) = stream.try_next().await.map_err(to_status).unwrap() {
        streamed += b.num_rows() as u64;
        bytes += b.get_array_memory_size();
    }
    assert_eq!(streamed, expected);
    assert!(
        bytes > 4 * (16 << 20),
        "the answer ({bytes} bytes) should dwarf the 16 MiB pool for this to show streaming"
    );
    // A modest answer of the same shapes fits.
    let ok = zhao
        .query("SELECT repeat(name, 3) AS v FROM person")
        .await
        .expect("fits");
    assert_eq!(
        ok.iter().map(|b| b.num_rows()).sum::<usize>(),
        hub.query_as("zhao.street", None, "SELECT name FROM person")
            .await
            .unwrap()
            .batches
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_audit_record_is_durable_before_the_first_batch_leaves() {
    let city = TestCity::generate(SCALE);
    let hub = Arc::new(city.hub().await);
    let audit = hub.governance().audit();
    let sql = "SELECT h.person_id, h.health_code FROM health_record h";
    let mut stream = hub
        .stream_as("chen.community", None, sql, None, &QueryLimits::default())
        .await
        .expect("planned");
    // Before anything is read: the start record is there, and nothing closes it.
    let start = audit_records(&hub, "chen.community", Some(Outcome::Started));
    let start = start.last().expect("a started record");
    assert_eq!(start.seq, stream.audit_seq());
    assert_eq!(start.record.text, sql);
    assert!(start.record.tables.contains(&"health_record".to_string()));
    // The records that close the query started at `seq`.
    let closing = |seq: u64| {
        audit_records(&hub, "chen.community", None)
            .into_iter()
            .filter(|r| r.record.kind == RecordKind::Query && r.record.started_seq == Some(seq))
            .collect::<Vec<_>>()
    };
    assert!(closing(start.seq).is_empty(), "started, not finished");
    // The first batch: its persons are recorded before it is handed over.
    let first = stream.next().await.expect("a batch").expect("no error");
    let ids: Vec<String> = first
        .column_by_name("person_id")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .map(|a| a.iter().flatten().map(String::from).collect())
        .unwrap_or_else(|| {
            rows(std::slice::from_ref(&first))
                .into_iter()
                .filter_map(|r| r[0].clone())
                .collect()
        });
    assert!(!ids.is_empty());
    let who_read = audit
        .search(&AuditFilter {
            person_id: Some(ids[0].clone()),
            ..Default::default()
        })
        .unwrap();
    assert!(
        who_read
            .iter()
            .any(|r| r.record.kind == RecordKind::QueryRows
                && r.record.started_seq == Some(start.seq)),
        "the person of the first batch is audited before the batch leaves"
    );
    // The rest, then the closing record names the start and counts every row.
    let mut total = first.num_rows() as u64;
    while let Some(b) = stream.next().await {
        total += b.unwrap().num_rows() as u64;
    }
    drop(stream);
    let end = closing(start.seq);
    assert_eq!(end.len(), 1);
    assert_eq!(end[0].record.outcome, Outcome::Ok);
    assert_eq!(end[0].record.rows, Some(total));
    let truth = scalar_i64(
        &hub,
        "SELECT count(*) FROM health_record WHERE area_code LIKE '420106009001%'",
    )
    .await;
    assert_eq!(total, truth as u64);
    assert!(audit.verify().unwrap().ok());
}

#[tokio::test]
async fn a_stream_stops_returning_emergency_columns_at_expiry() {
    let city = TestCity::generate(SCALE);
    // Small batches, so the stream has many.
    let config = std::fs::read_to_string(city.config()).unwrap();
    std::fs::write(
        city.config(),
        config.replacen("[hub]\n", "[hub]\nbatch_size = 16\n", 1),
    )
    .unwrap();
    let hub = Arc::new(gridhub_tests::open_loaded(&city.config()).await);
    let gov = hub.governance();
    // A clock the test moves.
    let now = Arc::new(AtomicI64::new(Utc::now().timestamp()));
    let clock = now.clone();
    gov.set_clock(Arc::new(move || {
        DateTime::from_timestamp(clock.load(Ordering::SeqCst), 0).unwrap()
    }));
    let until = Utc::now() + Duration::hours(2);
    hub.emergency_declare(
        "qian.security",
        "420106009001",
        until,
        "flood: door-to-door check",
    )
    .await
    .expect("declared");
    // Location traces are clear to the community worker only in an emergency.
    let sql = "SELECT person_id, place, lat, lon FROM location_trace";
    let limits = QueryLimits::default();
    let mut stream = hub
        .stream_as("chen.community", None, sql, None, &limits)
        .await
        .expect("planned inside the emergency");
    let first = stream.next().await.expect("a batch");
    assert!(first.is_ok(), "{first:?}");
    // The emergency expires while the stream is open.
    now.store((until + Duration::seconds(1)).timestamp(), Ordering::SeqCst);
    let mut stopped = None;
    while let Some(b) = stream.next().await {
        if let Err(e) = b {
            stopped = Some(e);
            break;
        }
    }
    let e = stopped.expect("the stream went on past the emergency's end");
    assert!(matches!(e, EngineError::Denied { .. }), "{e}");
    assert!(e.to_string().contains("emergency"), "{e}");
    assert!(
        (1..=16).contains(&stream.rows()),
        "one batch of at most 16 rows before the expiry, not {}",
        stream.rows()
    );
    drop(stream);
    // A query planned after expiry gets no clear location at all.
    let after = hub
        .query_as("chen.community", None, "SELECT place FROM location_trace")
        .await;
    assert!(after.is_err(), "location is denied outside the emergency");
}

#[tokio::test]
async fn small_leaks_are_closed() {
    let city = TestCity::generate(SCALE);
    let hub = Arc::new(city.hub().await);

    // Unknown tables name only what the principal may read (compared with the tables
    // GetTables lists to the volunteer, below).
    let unknown = hub
        .query_as("zhou.volunteer", None, "SELECT * FROM persons")
        .await
        .expect_err("unknown table")
        .to_string();
    assert!(unknown.starts_with("unknown table 'persons'"), "{unknown}");
    for hidden in ["src_", "health_record", "location_trace", "_rejects"] {
        assert!(
            !unknown.contains(hidden),
            "{hidden} named to a volunteer: {unknown}"
        );
    }

    // Special-tag rows are shown only to whoever reads the tag in clear.
    let tags = |who: &'static str| {
        let hub = hub.clone();
        async move {
            hub.query_as(who, None, "SELECT count(*) AS n FROM person_tag")
                .await
                .map(|a| rows(&a.batches)[0][0].clone().unwrap())
        }
    };
    assert_eq!(tags("zhao.street").await.unwrap(), "0");
    let community_truth = scalar_i64(
        &hub,
        "SELECT count(*) FROM person_tag WHERE area_code LIKE '420106009001%'",
    )
    .await;
    assert!(community_truth > 0);
    assert_eq!(
        tags("chen.community").await.unwrap(),
        community_truth.to_string()
    );

    // Reporters' names are identity: masked for the street officer.
    let clear = hub
        .hub()
        .query(
            "SELECT event_id, reported_by FROM event WHERE area_code LIKE '420106009%' \
             AND reported_by IS NOT NULL ORDER BY event_id",
        )
        .await
        .unwrap();
    let masked = hub
        .query_as(
            "zhao.street",
            None,
            "SELECT event_id, reported_by FROM event WHERE reported_by IS NOT NULL ORDER BY event_id",
        )
        .await
        .unwrap();
    let (clear, masked) = (rows(&clear), rows(&masked.batches));
    assert_eq!(clear.len(), masked.len());
    assert!(!clear.is_empty());
    for (c, m) in clear.iter().zip(&masked) {
        let (c, m) = (c[1].clone().unwrap(), m[1].clone().unwrap());
        assert_ne!(c, m, "a reporter's name in clear");
        // The surname (first character, or two for compound surnames) and stars.
        let first: String = c.chars().take(1).collect();
        assert!(m.starts_with(&first) && m.ends_with('*'), "{c} → {m}");
    }

    // A raw column no mapping reads takes the most sensitive tag.
    let gov = hub.governance();
    let lineage = hub.hub().lineage();
    let mut checked = 0;
    for t in gov
        .known()
        .tables
        .iter()
        .filter(|t| t.name.starts_with("src_"))
    {
        for c in &t.columns {
            let mapped = lineage.iter().any(|l| {
                format!("src_{}.{}", l.source, l.source_table) == t.name
                    && l.source_expr.contains(c.name.as_str())
            });
            if !mapped && c.name != "_row" {
                assert_eq!(
                    c.tag,
                    gridhub_catalog::Tag::Location,
                    "{}.{} is unmapped",
                    t.name,
                    c.name
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "the demo has unmapped raw columns to check");

    // The catalog gives counts only of tables the caller may read, and says so in the audit.
    let server = serve(hub.clone(), |_| {}).await;
    let volunteer = remote(server.addr, "zhou.volunteer", &hub).await;
    let catalog: pb::Catalog = volunteer
        .catalog()
        .get_catalog(pb::GetCatalogRequest {})
        .await
        .unwrap()
        .into_inner();
    let count_of = |name: &str| {
        catalog
            .tables
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.rows)
            .unwrap()
    };
    assert_eq!(
        count_of("health_record"),
        None,
        "hub-wide health count leaked"
    );
    assert_eq!(count_of("location_trace"), None);
    assert!(
        catalog.sources.iter().all(|s| s.accepted.is_none()),
        "source counts leaked to a volunteer"
    );
    let audited = audit_records(&hub, "zhou.volunteer", None);
    let counted: Vec<_> = catalog
        .tables
        .iter()
        .filter(|t| t.rows.is_some())
        .map(|t| t.name.clone())
        .collect();
    assert!(
        counted.contains(&"admin_unit".to_string()),
        "counts of readable tables are given: {counted:?}"
    );
    let record = audited
        .iter()
        .find(|r| r.record.text.starts_with("catalog"))
        .expect("counts given are audited");
    for t in &counted {
        assert!(
            record.record.text.contains(t.as_str()),
            "{t} counted unaudited"
        );
    }
    // GetTables answers from decisions, the same tables a volunteer can query.
    let mut fc = volunteer.flight_sql();
    let info = fc
        .get_tables(arrow_flight::sql::CommandGetTables::default())
        .await
        .map_err(to_status)
        .unwrap();
    let listed =
        gridhub_tests::flight_batches(&mut fc, info.endpoint[0].ticket.clone().unwrap()).await;
    let names: Vec<String> = rows(&listed)
        .into_iter()
        .map(|r| r[2].clone().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n == "health_record"), "{names:?}");
    // The tables the unknown-table error names are exactly those listed.
    let named: std::collections::BTreeSet<&str> = unknown
        .split_once("known tables: ")
        .map(|(_, list)| list.trim_end_matches(')').split(", ").collect())
        .unwrap_or_default();
    let listed: std::collections::BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(named, listed, "{unknown}");
    for n in names.iter().filter(|n| !n.contains('.')) {
        hub.query_as(
            "zhou.volunteer",
            None,
            &format!("SELECT * FROM \"{n}\" LIMIT 1"),
        )
        .await
        .unwrap_or_else(|e| panic!("{n} listed but not readable: {e}"));
    }
    server.shutdown().await.unwrap();
}
