//! `gridhub demo`: a synthetic city over seven sources, loaded and queried across sources.

use std::path::Path;
use std::time::Instant;

use gridhub_engine::GovernedHub;
use gridhub_synth::{GenerateOptions, showcase_queries};

use crate::backend::{Acting, Backend};
use crate::error::Result;
use crate::output::{Format, render};
use crate::progress::Bar;

pub const DEFAULT_DIR: &str = "gridhub-demo";
/// Rows of each showcase answer printed.
const SHOWN_ROWS: usize = 12;

/// The first showcase again, as principals under the default policy, and one refusal: what
/// each role sees of the same question.
async fn governed(hub: &GovernedHub) -> Result<()> {
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

pub async fn run(dir: &Path, scale: usize, seed: u64) -> Result<()> {
    let opts = GenerateOptions { scale, seed };
    let bar = Bar::new(crate::quiet());
    let city = city(dir, &opts, &bar, |reused| {
        if reused {
            println!(
                "Reusing the synthetic city in {} ({scale} persons, seed {seed}).",
                dir.display()
            );
        } else {
            println!(
                "Generating a synthetic city of {scale} persons in {} …",
                dir.display()
            );
        }
    })?;
    if let Some(summary) = &city.written {
        println!(
            "Wrote {} source rows in {} files ({:.1} s).",
            summary.rows,
            summary.files.len(),
            summary.elapsed.as_secs_f64()
        );
    }

    let config = city.config;
    println!("Opening the sources (GBK CSV and xlsx are cached as Parquet on first use) …");
    let started = Instant::now();
    let hub = GovernedHub::open_path(&config).await?;
    hub.hub().load(&bar).await?;
    println!(
        "Loaded {} sources through {} mappings into the shared tables ({:.1} s).\n",
        hub.hub().sources().len(),
        hub.hub().mappings().len(),
        started.elapsed().as_secs_f64()
    );
    let hub = std::sync::Arc::new(hub);
    let operator = Backend::in_process(
        hub.clone(),
        Acting::Asks {
            principal: None,
            what: "asks",
        },
        None,
    )
    .await?;
    crate::catalog::show(&operator, Format::Table, false, false).await?;

    // The showcase questions read across every source, ungoverned: they run as the
    // operator, and each is audited like any query.
    let os_user = gridhub_engine::os_user();
    for showcase in showcase_queries() {
        println!("\n== {}\n", showcase.title);
        let started = Instant::now();
        let answer = hub.operator_query(&os_user, showcase.sql).await?;
        crate::print(&render(&answer.batches, Format::Table, Some(SHOWN_ROWS))?)?;
        println!(
            "({:.0} ms; audit record {})",
            started.elapsed().as_secs_f64() * 1000.0,
            answer.audit_seq
        );
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

/// The synthetic city for `opts` in `dir`, generated or reused ([`gridhub_synth::
/// generate_or_reuse`]; `announce` is told first whether it is reused). After a new
/// generation, what a hub derived from the earlier files — source caches and snapshots — is
/// discarded; the audit log, policy store and tokens of the directory's hub are kept.
pub fn city(
    dir: &Path,
    opts: &GenerateOptions,
    progress: &dyn gridhub_synth::Progress,
    announce: impl FnOnce(bool),
) -> Result<gridhub_synth::CityFiles> {
    announce(gridhub_synth::is_generated(dir, opts));
    let city = gridhub_synth::generate_or_reuse(dir, opts, progress)?;
    if city.written.is_some() {
        gridhub_engine::discard_derived_state(&gridhub_engine::HubConfig::load(&city.config)?)?;
    }
    Ok(city)
}
