//! Authorisation benchmark: a 10,000-line policy over 1,000 communities.
//!
//! `cargo run -p gridhub-policy --release --example authz_bench`
//!
//! Generates the default policy plus per-community grants for community workers, grid
//! workers and volunteers (area patterns like `420106001003*`) up to 10,000 lines, one
//! community worker and one grid worker per community, compiles it, then times the first
//! decisions of a role with nothing made yet, [`Policy::prepare`] on a fresh compile, cold
//! decisions after it (fresh decision keys: each principal's first decisions, from the
//! verdicts prepared and Casbin where its own community's lines are involved) and warm ones
//! (served from the decision cache).

use std::time::{Duration, Instant};

use chrono::Utc;
use gridhub_catalog::{shared_table, shared_tables};
use gridhub_policy::synthetic::{community_principals, large_policy};
use gridhub_policy::{DEFAULT_MODEL, Known, Policy, Principal, TableInfo};

const TOTAL_LINES: usize = 10_000;
const COMMUNITIES: usize = 1_000;
/// Cold decisions are averaged over this many principals (each a fresh cache key).
const COLD_SAMPLES: usize = 20;
/// Warm queries timed.
const WARM_QUERIES: u32 = 10_000;

fn principals() -> Vec<Principal> {
    let mut all = vec![
        Principal {
            id: "city".into(),
            name: None,
            roles: vec!["city_analyst".into()],
            area: "4201".into(),
        },
        Principal {
            id: "district".into(),
            name: None,
            roles: vec!["district_analyst".into()],
            area: "420106".into(),
        },
    ];
    all.extend(community_principals(COMMUNITIES));
    all
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() {
    let text = large_policy(TOTAL_LINES, COMMUNITIES);
    let people = principals();
    let known = Known::shared();
    let started = Instant::now();
    let policy = Policy::compile(DEFAULT_MODEL, &text, &people, &known)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let compile = started.elapsed();

    let person = TableInfo::shared(shared_table("person").unwrap());
    let all: Vec<TableInfo> = shared_tables().iter().map(TableInfo::shared).collect();
    let now = Utc::now();
    // Community workers spread over the district: each sample is a fresh cache key.
    let sample = |k: usize| &people[2 + 2 * (k * (COMMUNITIES / COLD_SAMPLES))];

    // The very first decisions of a role: no verdict made yet (cw1: not a sample).
    let first = &people[4];
    let calls = policy.enforce_calls();
    let started = Instant::now();
    for table in &all {
        policy.decide(first, Some("routine"), &[], now, table);
    }
    let first_all = started.elapsed();
    let first_calls = policy.enforce_calls() - calls;

    // A fresh compile, prepared as the hub prepares an applied policy.
    let policy = Policy::compile(DEFAULT_MODEL, &text, &people, &known)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let prepare_calls = policy.prepare(&all, now);
    let prepare = started.elapsed();

    let calls = policy.enforce_calls();
    let started = Instant::now();
    for k in 0..COLD_SAMPLES {
        policy.decide(sample(k), None, &[], now, &person);
    }
    let cold_person = started.elapsed() / COLD_SAMPLES as u32;
    let person_calls = (policy.enforce_calls() - calls) as f64 / COLD_SAMPLES as f64;

    let calls = policy.enforce_calls();
    let started = Instant::now();
    for k in 0..COLD_SAMPLES {
        for table in &all {
            policy.decide(sample(k), Some("routine"), &[], now, table);
        }
    }
    let cold_all = started.elapsed() / COLD_SAMPLES as u32;
    let all_calls = (policy.enforce_calls() - calls) as f64 / COLD_SAMPLES as f64;

    let district = &people[1];
    let calls = policy.enforce_calls();
    let started = Instant::now();
    policy.decide(district, None, &[], now, &person);
    let cold_district = started.elapsed();
    let district_calls = policy.enforce_calls() - calls;

    let query =
        ["person", "house", "building"].map(|t| TableInfo::shared(shared_table(t).unwrap()));
    let worker = sample(0);
    for table in &query {
        policy.decide(worker, None, &[], now, table);
    }
    let calls = policy.enforce_calls();
    let started = Instant::now();
    for _ in 0..WARM_QUERIES {
        for table in &query {
            std::hint::black_box(policy.decide(worker, None, &[], now, table));
        }
    }
    let warm = started.elapsed() / WARM_QUERIES;
    assert_eq!(
        policy.enforce_calls(),
        calls,
        "warm decisions must not enforce"
    );

    let per_enforce = first_all.as_secs_f64() * 1e6 / first_calls as f64;
    println!(
        "policy: {} lines, {} principals, {} communities",
        policy.line_count(),
        people.len(),
        COMMUNITIES
    );
    println!("{:<52} {:>12} {:>14}", "measurement", "µs", "enforce calls");
    let row = |name: &str, us: f64, calls: String| println!("{name:<52} {us:>12.0} {calls:>14}");
    row(
        "compile (parse, validate, build enforcer, probe)",
        micros(compile),
        "1".into(),
    );
    row(
        &format!(
            "first decisions of a role: all {} tables, none made",
            all.len()
        ),
        micros(first_all),
        first_calls.to_string(),
    );
    row(
        "  per enforce call (enforcer builds included)",
        per_enforce,
        "-".into(),
    );
    row(
        "prepare (every role set's verdicts, all tables)",
        micros(prepare),
        prepare_calls.to_string(),
    );
    row(
        "cold decision: person (community worker)",
        micros(cold_person),
        format!("{person_calls:.1}"),
    );
    row(
        "cold decision: person (district analyst)",
        micros(cold_district),
        district_calls.to_string(),
    );
    row(
        &format!(
            "cold decision: all {} shared tables (community worker)",
            all.len()
        ),
        micros(cold_all),
        format!("{all_calls:.1}"),
    );
    println!(
        "{:<52} {:>12.2} {:>14}",
        "warm query: person + house + building (cached)",
        micros(warm),
        0
    );
}
