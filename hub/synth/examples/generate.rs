//! Generates the synthetic city and reports the time taken.
//!
//! `cargo run -p gridhub-synth --release --example generate -- [DIR] [PERSONS] [SEED]`

use std::time::Instant;

use gridhub_synth::{City, GenerateOptions, NoProgress};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "demo-data".to_string());
    let defaults = GenerateOptions::default();
    let scale = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(defaults.scale);
    let seed = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(defaults.seed);
    let t0 = Instant::now();
    let city = City::generate(&GenerateOptions { scale, seed });
    let generated = t0.elapsed();
    let summary = city.write(std::path::Path::new(&dir), &NoProgress)?;
    let t_truth = Instant::now();
    let truth = city.truth();
    let truth_time = t_truth.elapsed();
    let total = t0.elapsed();
    for f in &summary.files {
        println!("{:>12} bytes  {}  {:?}", f.bytes, f.path, f.tables);
    }
    println!(
        "{scale} persons: generate {:.2}s, write {:.2}s (incl. truth), truth alone {:.2}s; {} source rows in {:.2}s = {:.0} rows/s",
        generated.as_secs_f64(),
        summary.elapsed.as_secs_f64(),
        truth_time.as_secs_f64(),
        summary.rows,
        total.as_secs_f64(),
        summary.rows as f64 / total.as_secs_f64()
    );
    println!(
        "elderly on high walk-up floors: {}, phone mismatches: {:?}, rejects: {:?}",
        truth.elderly_walkup.len(),
        truth
            .phone_mismatch
            .iter()
            .map(|(k, v)| (k, v.len()))
            .collect::<Vec<_>>(),
        truth.rejects_per_source
    );
    Ok(())
}
