//! `gridhub bench`: measured runs whose figures go in docs/benchmarks.md.
//!
//! `bench load` generates a synthetic city, opens the hub over it (materialising the GBK CSV
//! and xlsx sources), loads it (maps every source row once), and times the
//! elderly-on-high-floors query over the snapshots and over the live views. Peers run in the
//! same process: the GBK mapping is compared with parsing the same rows as plain UTF-8 CSV,
//! and the query with the same SQL over the shared tables held in memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use comfy_table::{Table, presets};
use datafusion::datasource::MemTable;
use datafusion::prelude::{CsvReadOptions, SessionContext};
use gridhub_engine::{GovernedHub, LIVE_SCHEMA, NoProgress, SHARED_SCHEMA, source_schema};
use gridhub_synth::{ELDERLY_WALKUP_SQL, GenerateOptions};

use crate::error::{CliError, Result};

/// The synthetic city a benchmark runs over.
#[derive(Args, Debug)]
pub struct CityArgs {
    /// Number of persons (the city is generated, or reused when already written at this scale)
    #[arg(long, default_value_t = 1_000_000)]
    scale: usize,
    /// Where the city is written
    #[arg(long, default_value = "gridhub-bench")]
    dir: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Generate, map and load a synthetic city; report rows/s, peak memory and query time
    Load {
        #[command(flatten)]
        city: CityArgs,
        /// Runs of the query (the median is reported)
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Access policies: authorisation + plan rewrite per query with a 10,000-line policy over
    /// 1,000 communities, and the elderly query with policies on against off
    Policy {
        #[command(flatten)]
        city: CityArgs,
        /// Runs of each query (the median is reported)
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// The hub server on loopback: stream --rows rows over Flight SQL against collecting the
    /// same query in-process; then --clients concurrent clients for --seconds
    Serve {
        #[command(flatten)]
        city: CityArgs,
        /// Rows streamed (person repeated with UNION ALL)
        #[arg(long, default_value_t = 10_000_000)]
        rows: u64,
        /// Concurrent clients, each with its own token
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// How long the clients run
        #[arg(long, default_value_t = 180)]
        seconds: u64,
        /// Runs of the stream (the median is reported)
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Interactive latency: one small governed query in-process, from the Rust Flight SQL
    /// client and from the Python ADBC driver, on loopback
    Latency {
        #[command(flatten)]
        city: CityArgs,
        /// Measured runs of each client (the median is reported)
        #[arg(long, default_value_t = 200)]
        runs: usize,
        /// Where tests/python's setup.sh and adbc_latency.py are
        #[arg(long, default_value_os_t = crate::bench_latency::default_python_dir())]
        python_dir: PathBuf,
    },
}

pub async fn run(what: BenchCommand) -> Result<()> {
    match what {
        BenchCommand::Serve {
            city,
            rows,
            clients,
            seconds,
            runs,
        } => {
            crate::bench_serve::serve(city.scale, &city.dir, rows, clients, seconds, runs.max(1))
                .await
        }
        BenchCommand::Load { city, runs } => load(city.scale, &city.dir, runs.max(1)).await,
        BenchCommand::Policy { city, runs } => policy(city.scale, &city.dir, runs.max(1)).await,
        BenchCommand::Latency {
            city,
            runs,
            python_dir,
        } => crate::bench_latency::latency(city.scale, &city.dir, runs.max(1), &python_dir).await,
    }
}

/// Peak resident memory of this process since start or the last reset (VmHWM), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Reset the peak (Linux ≥ 4.0: writing 5 to clear_refs resets VmHWM).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn rate(rows: u64, d: Duration) -> String {
    format!("{:.0} k rows/s", rows as f64 / d.as_secs_f64() / 1000.0)
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time_query(ctx: &SessionContext, sql: &str, runs: usize) -> Result<(Duration, usize)> {
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let batches = ctx.sql(sql).await?.collect().await?;
        times.push(started.elapsed());
        rows = batches.iter().map(|b| b.num_rows()).sum();
    }
    Ok((median(times), rows))
}

async fn load(scale: usize, dir: &Path, runs: usize) -> Result<()> {
    let opts = GenerateOptions {
        scale,
        ..Default::default()
    };
    let mut report: Vec<(String, String)> = Vec::new();

    // 1. Generate (or reuse).
    reset_peak_rss();
    let started = Instant::now();
    let city = crate::demo::city(dir, &opts, &gridhub_synth::NoProgress, |_| {})?;
    let elapsed = started.elapsed();
    match &city.written {
        Some(summary) => report.push((
            "generate + write".into(),
            format!(
                "{} source rows in {:.1} s = {}; peak {}",
                summary.rows,
                elapsed.as_secs_f64(),
                rate(summary.rows, elapsed),
                peak_rss().map(mib).unwrap_or_default()
            ),
        )),
        None => report.push((
            "generate + write".into(),
            "reused (delete the dir to measure)".into(),
        )),
    }
    // Materialising is measured: start from no caches and no snapshots (derived state
    // only — the audit log and policy store of the bench dir are kept).
    gridhub_engine::discard_derived_state(&gridhub_engine::HubConfig::load(&city.config)?)?;
    reset_peak_rss();

    // 2. Open: materialises the GBK CSV and xlsx sources into the Parquet cache.
    let config = city.config;
    let started = Instant::now();
    let hub = GovernedHub::open_path(&config).await?;
    report.push((
        "open (materialise GBK CSV + xlsx)".into(),
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    ));

    // 3. GBK CSV: rebuild the cache and map every row, against parsing UTF-8 CSV.
    {
        let started = Instant::now();
        let refreshed = hub
            .hub()
            .refresh(&["property_a".to_string()], &NoProgress)
            .await?;
        let decode = started.elapsed();
        let reopened = GovernedHub::open_path(&config).await?;
        let started_map = Instant::now();
        for m in reopened
            .hub()
            .mappings()
            .iter()
            .filter(|m| m.source == "property_a")
        {
            m.counts()
                .map_err(gridhub_engine::EngineError::from)?
                .collect()
                .await?;
        }
        let map = started_map.elapsed();
        if let Some(failed) = refreshed.iter().find(|o| !o.is_ok()) {
            return Err(CliError::Bench(failed.to_string()));
        }
        let rows: u64 = refreshed.iter().filter_map(|o| o.rows()).sum();
        report.push((
            "GBK CSV: decode + parse + cache".into(),
            format!(
                "{rows} rows in {:.2} s = {}",
                decode.as_secs_f64(),
                rate(rows, decode)
            ),
        ));
        report.push((
            "GBK CSV: decode + cache + map (all rules)".into(),
            format!(
                "{:.2} s = {}",
                (decode + map).as_secs_f64(),
                rate(rows, decode + map)
            ),
        ));
    }
    let peer = utf8_csv_peer(&hub).await?;
    if let Some((rows, d)) = peer {
        report.push((
            "peer: parse UTF-8 CSV of the same size".into(),
            format!(
                "{rows} rows in {:.2} s = {}",
                d.as_secs_f64(),
                rate(rows, d)
            ),
        ));
    }

    // 4. Load: every mapping over every source row, every shared table merged and written
    //    to its snapshot.
    let hub = GovernedHub::open_path(&config).await?;
    let started = Instant::now();
    let summary = hub.hub().load(&NoProgress).await?;
    let elapsed = started.elapsed();
    let peak_load = peak_rss().unwrap_or(0);
    let source_rows: u64 = summary.stats.iter().map(|s| s.accepted + s.rejected).sum();
    report.push((
        "load (map all sources, merge, snapshot)".into(),
        format!(
            "{source_rows} source rows in {:.1} s = {}",
            elapsed.as_secs_f64(),
            rate(source_rows, elapsed)
        ),
    ));

    // 5. The elderly-on-high-floors query: over the snapshots (what `public.*` serves), over
    //    the live views (every mapping and merge re-run), and the peer over the same tables
    //    held in memory.
    reset_peak_rss();
    let ctx = hub.hub().context();
    let (snapshot, answer_rows) = time_query(ctx, ELDERLY_WALKUP_SQL, runs).await?;
    let set_schema = |schema: &str| format!("SET datafusion.catalog.default_schema = '{schema}'");
    time_query(ctx, &set_schema(LIVE_SCHEMA), 1).await?;
    let (federated, live_rows) = time_query(ctx, ELDERLY_WALKUP_SQL, runs).await?;
    time_query(ctx, &set_schema(SHARED_SCHEMA), 1).await?;
    if live_rows != answer_rows {
        return Err(CliError::Bench(format!(
            "the live views answer {live_rows} rows, the snapshots {answer_rows}"
        )));
    }
    let peak_query = peak_rss().unwrap_or(0);

    let materialised = SessionContext::new();
    let mut arrow_bytes = 0u64;
    for t in gridhub_catalog::shared_tables() {
        let batches = ctx.table(t.name).await?.collect().await?;
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| t.schema());
        // Batches may share sliced buffers; a compacted copy gives the true Arrow size.
        let compact = arrow::compute::concat_batches(&schema, &batches)?;
        arrow_bytes += compact.get_array_memory_size() as u64;
        let batches = vec![compact];
        materialised.register_table(t.name, Arc::new(MemTable::try_new(schema, vec![batches])?))?;
    }
    let (in_memory, _) = time_query(&materialised, ELDERLY_WALKUP_SQL, runs).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    report.push((
        "elderly-on-high-floors query, snapshots".into(),
        format!(
            "{:.0} ms median of {runs} ({answer_rows} rows)",
            ms(snapshot)
        ),
    ));
    report.push((
        "same query, live views (re-map + re-merge)".into(),
        format!(
            "{:.0} ms = {:.1}× the snapshots",
            ms(federated),
            federated.as_secs_f64() / snapshot.as_secs_f64()
        ),
    ));
    report.push((
        "peer: same SQL over the tables in memory".into(),
        format!(
            "{:.0} ms → snapshots / in memory = {:.2}×",
            ms(in_memory),
            snapshot.as_secs_f64() / in_memory.as_secs_f64()
        ),
    ));
    let ratio = |peak: u64| peak as f64 / arrow_bytes.max(1) as f64;
    report.push((
        "peak memory, open + load".into(),
        format!(
            "{} = {:.2}× the Arrow size of the shared tables ({})",
            mib(peak_load),
            ratio(peak_load),
            mib(arrow_bytes)
        ),
    ));
    report.push((
        "peak memory, queries (snapshots and live)".into(),
        format!("{} = {:.2}×", mib(peak_query), ratio(peak_query)),
    ));

    print_report(&format!("gridhub bench load --scale {scale}"), report);
    Ok(())
}

/// Print a bench's (measurement, result) rows as one table headed by the command.
pub(crate) fn print_report(command: &str, report: Vec<(String, String)>) {
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(vec![command.to_string(), "result".into()]);
    for (k, v) in report {
        table.add_row(vec![k, v]);
    }
    println!("{table}");
}

/// Policy lines and communities of the authorisation benchmark.
const POLICY_LINES: usize = 10_000;
const POLICY_COMMUNITIES: usize = 1_000;
/// Principals planned cold (each its first query: enforcer and decisions made).
const COLD_PRINCIPALS: usize = 50;
/// Warm plans of the same query by the same principal.
const WARM_PLANS: usize = 200;
/// A community worker with the whole city as jurisdiction: reads identity and special tags
/// clear, so the governed elderly query returns the operator's answer, row for row.
const BENCH_PRINCIPAL: &str = "bench.city_worker";
/// A second security officer, to approve the bench policy (separation of duties).
const BENCH_APPROVER: &str = "bench.approver";

async fn policy(scale: usize, dir: &Path, runs: usize) -> Result<()> {
    let opts = GenerateOptions {
        scale,
        ..Default::default()
    };
    let city = crate::demo::city(dir, &opts, &gridhub_synth::NoProgress, |_| {})?;
    let mut config = gridhub_engine::HubConfig::load(&city.config)?;
    config
        .principals
        .extend(gridhub_policy::synthetic::community_principals(
            POLICY_COMMUNITIES,
        ));
    config.principals.push(gridhub_engine::Principal {
        id: BENCH_PRINCIPAL.into(),
        name: None,
        roles: vec!["community_worker".into()],
        area: "4201".into(),
    });
    // The bench policy widens access: a second security officer approves it.
    config.principals.push(gridhub_engine::Principal {
        id: BENCH_APPROVER.into(),
        name: None,
        roles: vec!["security_officer".into()],
        area: "4201".into(),
    });
    let hub = GovernedHub::open_config(config).await?;
    hub.hub().ensure_loaded(&NoProgress).await?;
    let officer = "qian.security";
    let text = gridhub_policy::synthetic::large_policy(POLICY_LINES, POLICY_COMMUNITIES);
    let started = Instant::now();
    let applied = match hub
        .policy_apply(officer, &text, "bench: 10,000 lines")
        .await?
    {
        gridhub_policy::PolicyChange::Active(v) => v,
        gridhub_policy::PolicyChange::Pending(p) => {
            hub.policy_approve(BENCH_APPROVER, p.id).await?.1
        }
    };
    let apply = started.elapsed();
    let mut report: Vec<(String, String)> = Vec::new();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    report.push((
        "policy apply (validate, compare, compile, store; proposed and approved)".into(),
        format!(
            "{:.0} ms for {} lines, {} principals",
            apply.as_secs_f64() * 1000.0,
            gridhub_policy::count_lines(&text),
            hub.governance().principals().len()
        ),
    ));

    // 1. Authorisation + plan rewrite: the governed plan of the elderly query (4 tables)
    //    against planning the same SQL unrestricted.
    let sql = ELDERLY_WALKUP_SQL;
    let ctx = hub.hub().context();
    let mut plain = Vec::new();
    for _ in 0..WARM_PLANS {
        let started = Instant::now();
        std::hint::black_box(ctx.sql(sql).await?);
        plain.push(started.elapsed());
    }
    let plain = median(plain);
    let gov = hub.governance();
    let mut cold = Vec::new();
    for k in 0..COLD_PRINCIPALS {
        let who = gov
            .principal(&format!("cw{}", k * (POLICY_COMMUNITIES / COLD_PRINCIPALS)))?
            .clone();
        let started = Instant::now();
        std::hint::black_box(hub.plan_as(&who, None, sql, &mut Vec::new()).await?);
        cold.push(started.elapsed());
    }
    let cold = median(cold);
    let who = gov.principal("cw0")?.clone();
    let mut warm = Vec::new();
    for _ in 0..WARM_PLANS {
        let started = Instant::now();
        std::hint::black_box(hub.plan_as(&who, None, sql, &mut Vec::new()).await?);
        warm.push(started.elapsed());
    }
    let warm = median(warm);
    report.push((
        "plan the elderly query, unrestricted (peer)".into(),
        format!("{:.0} µs median of {WARM_PLANS}", us(plain)),
    ));
    report.push((
        "governed plan, cold (principal's first query)".into(),
        format!(
            "{:.0} µs median of {COLD_PRINCIPALS} principals → authorisation + rewrite {:.0} µs",
            us(cold),
            us(cold.saturating_sub(plain))
        ),
    ));
    report.push((
        "governed plan, warm (decisions cached)".into(),
        format!(
            "{:.0} µs median of {WARM_PLANS} → authorisation + rewrite {:.0} µs",
            us(warm),
            us(warm.saturating_sub(plain))
        ),
    ));

    // 2. The elderly query at this scale: policies off (the operator) against on (a city-wide
    //    community worker: row filters on four tables, identity and special clear), audited.
    let mut off = Vec::new();
    let mut on = Vec::new();
    let mut unaudited = Vec::new();
    let worker = gov.principal(BENCH_PRINCIPAL)?.clone();
    let mut answer = (0usize, 0usize);
    // Alternate, so that both see the same cache and machine state.
    for _ in 0..runs {
        let started = Instant::now();
        let batches = hub.hub().query(sql).await?;
        off.push(started.elapsed());
        answer.0 = batches.iter().map(|b| b.num_rows()).sum();
        let started = Instant::now();
        let governed = hub.query_as(BENCH_PRINCIPAL, None, sql).await?;
        on.push(started.elapsed());
        answer.1 = governed.batches.iter().map(|b| b.num_rows()).sum();
        // The same governed plan run without writing its audit record.
        let started = Instant::now();
        hub.plan_as(&worker, None, sql, &mut Vec::new())
            .await?
            .collect()
            .await?;
        unaudited.push(started.elapsed());
    }
    if answer.0 != answer.1 {
        return Err(CliError::Bench(format!(
            "the governed answer has {} rows, the operator's {}",
            answer.1, answer.0
        )));
    }
    let (off, on, unaudited) = (median(off), median(on), median(unaudited));
    let mut masked = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        hub.query_as("zhao.street", None, sql).await?;
        masked.push(started.elapsed());
    }
    let masked = median(masked);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    report.push((
        "elderly query, policies off (operator)".into(),
        format!("{:.1} ms median of {runs} ({} rows)", ms(off), answer.0),
    ));
    report.push((
        "elderly query, policies on (city-wide worker)".into(),
        format!(
            "{:.1} ms = {:.3}× off (same {} rows; plan, filters, audit record)",
            ms(on),
            on.as_secs_f64() / off.as_secs_f64(),
            answer.1
        ),
    ));
    report.push((
        "  of which the plan and row filters (no audit)".into(),
        format!(
            "{:.1} ms = {:.3}× off",
            ms(unaudited),
            unaudited.as_secs_f64() / off.as_secs_f64()
        ),
    ));
    report.push((
        "same query as a street officer (masked)".into(),
        format!(
            "{:.1} ms = {:.3}× off",
            ms(masked),
            masked.as_secs_f64() / off.as_secs_f64()
        ),
    ));

    // Leave the bench dir's policy as it was.
    hub.policy_rollback(officer, applied.version - 1).await?;
    print_report(&format!("gridhub bench policy --scale {scale}"), report);
    Ok(())
}

/// The peer of the GBK mapping: the same property-company rows as UTF-8 CSV, parsed by
/// DataFusion with an all-text schema (what the GBK path does after decoding).
async fn utf8_csv_peer(hub: &GovernedHub) -> Result<Option<(u64, Duration)>> {
    let ctx = hub.hub().context();
    let Ok(df) = ctx
        .table(format!("{}.\"住户\"", source_schema("property_a")))
        .await
    else {
        return Ok(None);
    };
    let path = hub.hub().config().state_dir.join("bench-utf8.csv");
    df.write_csv(
        path.to_str().unwrap_or_default(),
        datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true),
        None,
    )
    .await?;
    let peer = SessionContext::new();
    let started = Instant::now();
    let rows = peer
        .read_csv(
            path.to_str().unwrap_or_default(),
            CsvReadOptions::new().schema_infer_max_records(0),
        )
        .await?
        .collect()
        .await?
        .iter()
        .map(|b| b.num_rows() as u64)
        .sum();
    let elapsed = started.elapsed();
    let _ = std::fs::remove_file(&path);
    Ok(Some((rows, elapsed)))
}
