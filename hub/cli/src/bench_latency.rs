//! `gridhub bench latency`: how long one small governed query takes, end to end, from the
//! clients people use — in-process (the peer: no transport at all), the hub's own Rust
//! Flight SQL client, and the Python ADBC Flight SQL driver — on loopback, over one
//! connection each, after a warm-up. (A principal's first query after a policy change is
//! `bench policy`'s cold figure.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridhub_engine::{GovernedHub, NoProgress};
use gridhub_server::client::{HubClient, RemoteOptions};
use gridhub_synth::GenerateOptions;

use crate::bench::{median, print_report};
use crate::error::{CliError, Result};

/// The query: trivial to plan and run, so what is measured is the path around it.
pub const LATENCY_SQL: &str = "SELECT count(*) FROM admin_unit";
/// The principal: a street officer (a row filter by jurisdiction applies).
const PRINCIPAL: &str = "zhao.street";
/// Unmeasured runs before each series.
const WARMUP: usize = 20;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Where `setup.sh` and `adbc_latency.py` are: the repository's tests/python.
pub fn default_python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python")
}

/// Medians of the ADBC client's runs, in ms.
struct AdbcLatency {
    /// `cursor.execute` + `fetch_arrow_table`.
    total: f64,
    /// `cursor.execute`: the GetFlightInfo (the driver then starts the DoGet in the
    /// background).
    execute: f64,
    /// `fetch_arrow_table`: waiting for the DoGet's batches.
    fetch: f64,
}

/// Run the ADBC latency script; `None` (with the reason printed) when Python's side cannot
/// be set up here.
fn adbc_latency(
    python_dir: &Path,
    uri: &str,
    token: &str,
    runs: usize,
) -> Result<Option<AdbcLatency>> {
    let setup = Command::new("bash")
        .arg(python_dir.join("setup.sh"))
        .output()
        .map_err(|e| CliError::Bench(format!("cannot run tests/python/setup.sh: {e}")))?;
    if !setup.status.success() {
        eprintln!(
            "ADBC skipped: tests/python/setup.sh failed: {}",
            String::from_utf8_lossy(&setup.stderr).trim()
        );
        return Ok(None);
    }
    let python = String::from_utf8_lossy(&setup.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    let out = Command::new(&python)
        .arg(python_dir.join("adbc_latency.py"))
        .args(["--uri", uri, "--token", token, "--sql", LATENCY_SQL])
        .args(["--runs", &runs.to_string(), "--warmup", &WARMUP.to_string()])
        .output()
        .map_err(|e| CliError::Bench(format!("cannot run {python}: {e}")))?;
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        CliError::Bench(format!(
            "adbc_latency.py printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })?;
    if answer["ok"] != serde_json::Value::Bool(true) {
        return Err(CliError::Bench(format!("the ADBC client failed: {answer}")));
    }
    let median = |field: &str| {
        answer[field]
            .as_f64()
            .ok_or_else(|| CliError::Bench(format!("adbc_latency.py gave no {field}: {answer}")))
    };
    Ok(Some(AdbcLatency {
        total: median("median_ms")?,
        execute: median("execute_median_ms")?,
        fetch: median("fetch_median_ms")?,
    }))
}

pub async fn latency(scale: usize, dir: &Path, runs: usize, python_dir: &Path) -> Result<()> {
    let opts = GenerateOptions {
        scale,
        ..Default::default()
    };
    let city = crate::demo::city(dir, &opts, &gridhub_synth::NoProgress, |_| {})?;
    let hub = Arc::new(GovernedHub::open_loaded(&city.config, &NoProgress).await?);
    let mut server_config = hub.hub().config().server.clone();
    server_config.listen = "127.0.0.1:0".parse().expect("address");
    server_config.metrics_listen = None;
    let server = gridhub_server::start(hub.clone(), server_config).await?;
    let url = format!("http://{}", server.addr);
    let store = gridhub_server::TokenStore::open(&hub.hub().config().state_dir)?;
    let (token, _) = store.issue(
        PRINCIPAL,
        chrono::Duration::hours(1),
        "bench latency",
        chrono::Utc::now(),
    )?;
    let mut report: Vec<(String, String)> = Vec::new();

    // In-process: the governed pipeline with no transport (decide, plan, verify, run, audit).
    let mut local = Vec::new();
    for i in 0..WARMUP + runs {
        let started = Instant::now();
        std::hint::black_box(hub.query_as(PRINCIPAL, None, LATENCY_SQL).await?);
        if i >= WARMUP {
            local.push(started.elapsed());
        }
    }
    let local = median(local);
    report.push((
        format!("in-process, governed and audited ({PRINCIPAL})"),
        format!("{:.2} ms median of {runs}", ms(local)),
    ));

    // The Rust Flight SQL client: GetFlightInfo + DoGet over one HTTP/2 connection.
    let client = HubClient::connect(&RemoteOptions {
        url: url.clone(),
        token: Some(token.clone()),
        ..Default::default()
    })
    .await
    .map_err(CliError::Connect)?;
    let mut rust = Vec::new();
    for i in 0..WARMUP + runs {
        let started = Instant::now();
        std::hint::black_box(
            client
                .query(LATENCY_SQL)
                .await
                .map_err(|s| CliError::Bench(s.to_string()))?,
        );
        if i >= WARMUP {
            rust.push(started.elapsed());
        }
    }
    let rust = median(rust);
    report.push((
        "Rust Flight SQL client, loopback".into(),
        format!(
            "{:.2} ms median of {runs} = in-process + {:.2} ms",
            ms(rust),
            ms(rust.saturating_sub(local))
        ),
    ));

    match adbc_latency(python_dir, &url.replace("http://", "grpc://"), &token, runs)? {
        Some(adbc) => report.push((
            "Python ADBC Flight SQL driver, loopback".into(),
            format!(
                "{:.2} ms median of {runs} = in-process + {:.2} ms (execute {:.2} + fetch {:.2})",
                adbc.total,
                adbc.total - ms(local),
                adbc.execute,
                adbc.fetch
            ),
        )),
        None => report.push((
            "Python ADBC Flight SQL driver".into(),
            "not run (tests/python/setup.sh failed)".into(),
        )),
    }

    server.shutdown().await?;
    print_report(&format!("gridhub bench latency --scale {scale}"), report);
    Ok(())
}
