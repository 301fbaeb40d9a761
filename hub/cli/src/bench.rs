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

use clap::Subcommand;
use comfy_table::{Table, presets};
use datafusion::datasource::MemTable;
use datafusion::prelude::{CsvReadOptions, SessionContext};
use gridhub_engine::{Hub, LIVE_SCHEMA, NoProgress, SHARED_SCHEMA, source_schema};
use gridhub_synth::{CONFIG_FILE, City, ELDERLY_WALKUP_SQL, GenerateOptions, is_generated};

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Generate, map and load a synthetic city; report rows/s, peak memory and query time
    Load {
        /// Number of persons
        #[arg(long, default_value_t = 1_000_000)]
        scale: usize,
        /// Where the city is written (reused when already generated at this scale)
        #[arg(long, default_value = "gridhub-bench")]
        dir: PathBuf,
        /// Runs of the query (the median is reported)
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

pub async fn run(what: BenchCommand) -> Result<(), String> {
    match what {
        BenchCommand::Load { scale, dir, runs } => load(scale, &dir, runs.max(1)).await,
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

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn time_query(
    ctx: &SessionContext,
    sql: &str,
    runs: usize,
) -> Result<(Duration, usize), String> {
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let batches = ctx
            .sql(sql)
            .await
            .map_err(|e| e.to_string())?
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        times.push(started.elapsed());
        rows = batches.iter().map(|b| b.num_rows()).sum();
    }
    Ok((median(times), rows))
}

async fn load(scale: usize, dir: &Path, runs: usize) -> Result<(), String> {
    let opts = GenerateOptions {
        scale,
        ..Default::default()
    };
    let mut report: Vec<(String, String)> = Vec::new();

    // 1. Generate (or reuse).
    if !is_generated(dir, &opts) {
        reset_peak_rss();
        let started = Instant::now();
        let city = City::generate(&opts);
        let summary = city
            .write(dir, &gridhub_synth::NoProgress)
            .map_err(|e| e.to_string())?;
        let elapsed = started.elapsed();
        drop(city);
        let _ = std::fs::remove_dir_all(dir.join(".gridhub"));
        report.push((
            "generate + write".into(),
            format!(
                "{} source rows in {:.1} s = {}; peak {}",
                summary.rows,
                elapsed.as_secs_f64(),
                rate(summary.rows, elapsed),
                peak_rss().map(mib).unwrap_or_default()
            ),
        ));
    } else {
        report.push((
            "generate + write".into(),
            "reused (delete the dir to measure)".into(),
        ));
    }
    let _ = std::fs::remove_dir_all(dir.join(".gridhub"));
    reset_peak_rss();

    // 2. Open: materialises the GBK CSV and xlsx sources into the Parquet cache.
    let config = dir.join(CONFIG_FILE);
    let started = Instant::now();
    let hub = Hub::open_path(&config).await.map_err(|e| e.to_string())?;
    report.push((
        "open (materialise GBK CSV + xlsx)".into(),
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    ));

    // 3. GBK CSV: rebuild the cache and map every row, against parsing UTF-8 CSV.
    {
        let started = Instant::now();
        let refreshed = hub
            .refresh(&["property_a".to_string()], &NoProgress)
            .await
            .map_err(|e| e.to_string())?;
        let decode = started.elapsed();
        let reopened = Hub::open_path(&config).await.map_err(|e| e.to_string())?;
        let started_map = Instant::now();
        for m in reopened
            .mappings()
            .iter()
            .filter(|m| m.source == "property_a")
        {
            m.counts()
                .map_err(|e| e.to_string())?
                .collect()
                .await
                .map_err(|e| e.to_string())?;
        }
        let map = started_map.elapsed();
        let rows: u64 = refreshed.iter().map(|(_, n)| n).sum();
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
    let peer = utf8_csv_peer(&hub, dir).await?;
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
    let hub = Hub::open_path(&config).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let summary = hub.load(&NoProgress).await.map_err(|e| e.to_string())?;
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
    let ctx = hub.context();
    let (snapshot, answer_rows) = time_query(ctx, ELDERLY_WALKUP_SQL, runs).await?;
    let set_schema = |schema: &str| format!("SET datafusion.catalog.default_schema = '{schema}'");
    time_query(ctx, &set_schema(LIVE_SCHEMA), 1).await?;
    let (federated, live_rows) = time_query(ctx, ELDERLY_WALKUP_SQL, runs).await?;
    time_query(ctx, &set_schema(SHARED_SCHEMA), 1).await?;
    if live_rows != answer_rows {
        return Err(format!(
            "the live views answer {live_rows} rows, the snapshots {answer_rows}"
        ));
    }
    let peak_query = peak_rss().unwrap_or(0);

    let materialised = SessionContext::new();
    let mut arrow_bytes = 0u64;
    for t in gridhub_catalog::shared_tables() {
        let batches = ctx
            .table(t.name)
            .await
            .map_err(|e| e.to_string())?
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| t.schema());
        // Batches may share sliced buffers; a compacted copy gives the true Arrow size.
        let compact =
            arrow::compute::concat_batches(&schema, &batches).map_err(|e| e.to_string())?;
        arrow_bytes += compact.get_array_memory_size() as u64;
        let batches = vec![compact];
        materialised
            .register_table(
                t.name,
                Arc::new(MemTable::try_new(schema, vec![batches]).map_err(|e| e.to_string())?),
            )
            .map_err(|e| e.to_string())?;
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

    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(vec![
        format!("gridhub bench load --scale {scale}"),
        "result".into(),
    ]);
    for (k, v) in report {
        table.add_row(vec![k, v]);
    }
    println!("{table}");
    Ok(())
}

/// The peer of the GBK mapping: the same property-company rows as UTF-8 CSV, parsed by
/// DataFusion with an all-text schema (what the GBK path does after decoding).
async fn utf8_csv_peer(hub: &Hub, dir: &Path) -> Result<Option<(u64, Duration)>, String> {
    let ctx = hub.context();
    let Ok(df) = ctx
        .table(format!("{}.\"住户\"", source_schema("property_a")))
        .await
    else {
        return Ok(None);
    };
    let path = dir.join(".gridhub").join("bench-utf8.csv");
    df.write_csv(
        path.to_str().unwrap_or_default(),
        datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true),
        None,
    )
    .await
    .map_err(|e| e.to_string())?;
    let peer = SessionContext::new();
    let started = Instant::now();
    let rows = peer
        .read_csv(
            path.to_str().unwrap_or_default(),
            CsvReadOptions::new().schema_infer_max_records(0),
        )
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|b| b.num_rows() as u64)
        .sum();
    let elapsed = started.elapsed();
    let _ = std::fs::remove_file(&path);
    Ok(Some((rows, elapsed)))
}
