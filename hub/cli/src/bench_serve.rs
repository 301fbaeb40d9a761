//! `gridhub bench serve`: the hub server on loopback. (1) Stream a table of `--rows` rows to
//! a Flight SQL client and compare with collecting the same governed query in-process
//! (bytes/s, rows/s, the ratio). (2) `--clients` concurrent clients, each with its own token,
//! run a mix of governed queries for `--seconds`: throughput, p50/p99 latency, errors.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow_flight::decode::DecodedPayload;
use futures::StreamExt;
use gridhub_engine::{GovernedHub, NoProgress, QueryLimits};
use gridhub_server::client::{HubClient, RemoteOptions, to_status};
use gridhub_synth::{ELDERLY_WALKUP_SQL, GenerateOptions};

use crate::error::{CliError, Result};

/// The streaming query's principal: the city analyst reads every row of the city.
const STREAM_PRINCIPAL: &str = "wang.city";

/// The concurrent mix: (principal, purpose, SQL).
const MIX: [(&str, Option<&str>, &str); 5] = [
    ("zhao.street", None, ELDERLY_WALKUP_SQL),
    (
        "chen.community",
        None,
        "SELECT name, phone, area_code FROM person ORDER BY name LIMIT 200",
    ),
    (
        "li.district",
        None,
        "SELECT substr(area_code, 1, 12) AS community, count(*) AS persons FROM person GROUP BY 1",
    ),
    (
        "sun.health",
        Some("epidemic_response"),
        "SELECT health_code, count(*) AS n FROM health_record GROUP BY health_code",
    ),
    (
        "wang.city",
        None,
        "SELECT b.property_company, count(*) AS houses FROM house h \
         JOIN building b ON b.building_id = h.building_id GROUP BY 1",
    ),
];

/// A `--rows`-row query over person: the table repeated with UNION ALL as often as needed.
fn stream_sql(person_rows: u64, rows: u64) -> String {
    let copies = rows.div_ceil(person_rows.max(1)).max(1);
    let one = "SELECT person_id, gender, birth_date, area_code, house_id FROM person";
    let union = vec![one; copies as usize].join(" UNION ALL ");
    format!("SELECT * FROM ({union}) LIMIT {rows}")
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

/// The bytes of Arrow data a batch holds: its arrays' slices, not the capacity of the buffers
/// they point into (a decoded IPC batch's arrays all point into one message buffer, and a
/// scan's into larger pages, so `get_array_memory_size` counts the same bytes many times).
fn arrow_bytes(batch: &arrow::record_batch::RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64)
        .sum()
}

/// CPU time this process has used (user + system, all threads), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces):
    // utime and stime are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

pub async fn serve(
    scale: usize,
    dir: &Path,
    rows: u64,
    clients: usize,
    seconds: u64,
    runs: usize,
) -> Result<()> {
    let opts = GenerateOptions {
        scale,
        ..Default::default()
    };
    let city = crate::demo::city(dir, &opts, &gridhub_synth::NoProgress, |_| {})?;
    let hub = GovernedHub::open_loaded(&city.config, &NoProgress).await?;
    let hub = Arc::new(hub);
    let mut server_config = hub.hub().config().server.clone();
    server_config.listen = "127.0.0.1:0".parse().expect("address");
    server_config.metrics_listen = None;
    server_config.max_queries_per_principal = clients.max(1);
    let server = gridhub_server::start(hub.clone(), server_config).await?;
    let url = format!("http://{}", server.addr);
    let store = gridhub_server::TokenStore::open(&hub.hub().config().state_dir)?;
    let token = |who: &str| -> Result<String> {
        Ok(store
            .issue(
                who,
                chrono::Duration::hours(6),
                "bench serve",
                chrono::Utc::now(),
            )
            .map(|(t, _)| t)?)
    };
    let mut report: Vec<(String, String)> = Vec::new();

    // 1. Streaming.
    let person_rows = hub
        .hub()
        .query("SELECT count(*) FROM person")
        .await?
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .map(|a| a.value(0) as u64)
        })
        .unwrap_or(0);
    let sql = stream_sql(person_rows, rows);
    let limits = QueryLimits {
        memory_bytes: Some(hub.hub().config().server.query_memory_bytes),
        ..QueryLimits::default()
    };
    let remote = HubClient::connect(&RemoteOptions {
        url: url.clone(),
        token: Some(token(STREAM_PRINCIPAL)?),
        ..Default::default()
    })
    .await
    .map_err(CliError::Connect)?;
    let mut local_times = Vec::new();
    let mut remote_times = Vec::new();
    let (mut local_cpu, mut remote_cpu) = (Vec::new(), Vec::new());
    let (mut local_rows, mut local_bytes, mut remote_rows, mut remote_bytes, mut wire_bytes) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for _ in 0..runs {
        // In-process: the same governed query, collected batch by batch.
        let started = Instant::now();
        let cpu = cpu_time();
        let mut stream = hub
            .stream_as(STREAM_PRINCIPAL, None, &sql, None, &limits)
            .await?;
        let (mut n, mut bytes) = (0u64, 0u64);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            n += batch.num_rows() as u64;
            bytes += arrow_bytes(&batch);
        }
        local_times.push(started.elapsed());
        local_cpu.push(cpu_time().saturating_sub(cpu));
        (local_rows, local_bytes) = (n, bytes);

        // Over Flight SQL on loopback: decoded into Arrow batches by the client.
        let started = Instant::now();
        let cpu = cpu_time();
        let mut client = remote.flight_sql();
        let info = client.execute(sql.clone(), None).await.map_err(to_status)?;
        let ticket = info.endpoint[0].ticket.clone().ok_or(CliError::Answer(
            "the hub returned an endpoint without a ticket",
        ))?;
        let mut flight = client.do_get(ticket).await.map_err(to_status)?.into_inner();
        let (mut n, mut bytes, mut wire) = (0u64, 0u64, 0u64);
        while let Some(data) = flight.next().await {
            let data = data.map_err(to_status)?;
            wire += (data.inner.data_body.len() + data.inner.data_header.len()) as u64;
            if let DecodedPayload::RecordBatch(batch) = &data.payload {
                n += batch.num_rows() as u64;
                bytes += arrow_bytes(batch);
            }
        }
        remote_times.push(started.elapsed());
        remote_cpu.push(cpu_time().saturating_sub(cpu));
        (remote_rows, remote_bytes, wire_bytes) = (n, bytes, wire);
    }
    if remote_rows != local_rows {
        return Err(CliError::Bench(format!(
            "the client received {remote_rows} rows, in-process {local_rows}"
        )));
    }
    let local = crate::bench::median(local_times);
    let remote_t = crate::bench::median(remote_times);
    let (local_cpu, remote_cpu) = (
        crate::bench::median(local_cpu),
        crate::bench::median(remote_cpu),
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    report.push((
        format!("in-process: governed query, {local_rows} rows (collect)"),
        format!(
            "{:.2} s = {:.2} GB/s Arrow, {:.1} M rows/s; CPU {:.1} s of {cores} cores",
            local.as_secs_f64(),
            gbps(local_bytes, local),
            local_rows as f64 / local.as_secs_f64() / 1e6,
            local_cpu.as_secs_f64(),
        ),
    ));
    report.push((
        format!("Flight SQL over loopback, {remote_rows} rows"),
        format!(
            "{:.2} s = {:.2} GB/s Arrow ({:.2} GB/s on the wire), {:.1} M rows/s; CPU {:.1} s (server, client and loopback share the cores)",
            remote_t.as_secs_f64(),
            gbps(remote_bytes, remote_t),
            gbps(wire_bytes, remote_t),
            remote_rows as f64 / remote_t.as_secs_f64() / 1e6,
            remote_cpu.as_secs_f64(),
        ),
    ));
    report.push((
        "Flight / in-process throughput".into(),
        format!("{:.2}", local.as_secs_f64() / remote_t.as_secs_f64()),
    ));

    // 2. Concurrent clients.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut connections = Vec::new();
    for i in 0..clients {
        let (who, purpose, _) = MIX[i % MIX.len()];
        connections.push(
            HubClient::connect(&RemoteOptions {
                url: url.clone(),
                token: Some(token(who)?),
                purpose: purpose.map(str::to_string),
                ..Default::default()
            })
            .await
            .map_err(CliError::Connect)?,
        );
    }
    let started = Instant::now();
    for (i, client) in connections.into_iter().enumerate() {
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            // Each client runs its principal's query of the mix, again and again.
            let (_, _, sql) = MIX[i % MIX.len()];
            while Instant::now() < deadline {
                let t = Instant::now();
                match client.query(sql).await {
                    Ok(_) => latencies.push(t.elapsed()),
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("client {i}: {e}");
                        }
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(
            t.await
                .map_err(|e| CliError::Bench(format!("a client task failed: {e}")))?,
        );
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| -> Duration {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let errors = errors.load(Ordering::Relaxed);
    report.push((
        format!("{clients} concurrent clients, {seconds} s, mixed governed queries"),
        format!(
            "{} queries = {:.1} queries/s; p50 {:.0} ms, p99 {:.0} ms; errors {errors}",
            latencies.len(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1000.0,
            pct(0.99).as_secs_f64() * 1000.0,
        ),
    ));
    server.shutdown().await?;
    crate::bench::print_report(
        &format!(
            "gridhub bench serve --scale {scale} --rows {rows} --clients {clients} --seconds {seconds}"
        ),
        report,
    );
    if errors > 0 {
        return Err(CliError::Bench(format!(
            "{errors} queries failed under load"
        )));
    }
    Ok(())
}
