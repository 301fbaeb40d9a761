//! `gridhub demo`: a synthetic city over seven sources, loaded and queried across sources.

use std::path::Path;
use std::time::Instant;

use gridhub_engine::{GovernedHub, Hub};
use gridhub_synth::{CONFIG_FILE, City, GenerateOptions, is_generated, showcase_queries};

use crate::output::{Format, render};
use crate::progress::Bar;

pub const DEFAULT_DIR: &str = "gridhub-demo";
/// Rows of each showcase answer printed.
const SHOWN_ROWS: usize = 12;

/// The first showcase again, as principals under the default policy, and one refusal: what
/// each role sees of the same question.
async fn governed(hub: &GovernedHub) -> Result<(), String> {
    let elderly = gridhub_synth::ELDERLY_WALKUP_SQL;
    let runs = [
        (
            "chen.community",
            None,
            elderly,
            "community worker: her own community, names and ID numbers clear",
        ),
        (
            "zhao.street",
            None,
            elderly,
            "street officer: the whole street; special-care tags masked, so no elderly_alone rows",
        ),
        (
            "zhou.volunteer",
            None,
            "SELECT health_code, count(*) FROM health_record GROUP BY health_code",
            "volunteer: health codes are not hers to read",
        ),
    ];
    for (who, purpose, sql, note) in runs {
        println!("\n== As {who} — {note}\n");
        let started = Instant::now();
        match hub.query_as(who, purpose, sql).await {
            Ok(answer) => {
                crate::print(&render(&answer.batches, Format::Table, Some(SHOWN_ROWS))?)?;
                println!(
                    "({:.0} ms; audit record {})",
                    started.elapsed().as_secs_f64() * 1000.0,
                    answer.audit_seq
                );
            }
            Err(e) => println!("refused: {e}"),
        }
    }
    Ok(())
}

pub async fn run(dir: &Path, scale: usize, seed: u64) -> Result<(), String> {
    let opts = GenerateOptions { scale, seed };
    let bar = Bar::new(crate::quiet());
    if is_generated(dir, &opts) {
        println!(
            "Reusing the synthetic city in {} ({scale} persons, seed {seed}).",
            dir.display()
        );
    } else {
        println!(
            "Generating a synthetic city of {scale} persons in {} …",
            dir.display()
        );
        let city = City::generate(&opts);
        let summary = city.write(dir, &bar).map_err(|e| e.to_string())?;
        // Caches of an earlier generation are stale now.
        let _ = std::fs::remove_dir_all(dir.join(".gridhub"));
        println!(
            "Wrote {} source rows in {} files ({:.1} s).",
            summary.rows,
            summary.files.len(),
            summary.elapsed.as_secs_f64()
        );
    }

    let config = dir.join(CONFIG_FILE);
    println!("Opening the sources (GBK CSV and xlsx are cached as Parquet on first use) …");
    let started = Instant::now();
    let hub = Hub::open_path(&config).await.map_err(|e| e.to_string())?;
    hub.load(&bar).await.map_err(|e| e.to_string())?;
    println!(
        "Loaded {} sources through {} mappings into the shared tables ({:.1} s).\n",
        hub.sources().len(),
        hub.mappings().len(),
        started.elapsed().as_secs_f64()
    );
    let hub = std::sync::Arc::new(
        GovernedHub::open(std::sync::Arc::new(hub))
            .await
            .map_err(|e| e.to_string())?,
    );
    crate::catalog::show(
        &crate::backend::Backend::Local(hub.clone()),
        Format::Table,
        false,
        false,
        None,
    )
    .await?;

    for showcase in showcase_queries() {
        println!("\n== {}\n", showcase.title);
        let started = Instant::now();
        let batches = hub
            .hub()
            .query(showcase.sql)
            .await
            .map_err(|e| e.to_string())?;
        crate::print(&render(&batches, Format::Table, Some(SHOWN_ROWS))?)?;
        println!("({:.0} ms)", started.elapsed().as_secs_f64() * 1000.0);
    }
    governed(&hub).await?;
    println!(
        "\nAsk your own question, as one of the principals (`gridhub principals --config {0}`):\n  \
         gridhub query --config {0} --as zhao.street \"SELECT name, phone, area_code FROM person LIMIT 5\"",
        config.display()
    );
    println!(
        "Or serve it to Flight SQL clients (Python ADBC, JDBC, the gridhub CLI):\n  \
         gridhub serve --config {0}\n  \
         gridhub token issue --config {0} --principal zhao.street\n  \
         gridhub query --server http://127.0.0.1:50051 --token <token> \"SELECT count(*) FROM person\"",
        config.display()
    );
    Ok(())
}
