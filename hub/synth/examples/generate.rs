//! Generates the synthetic city and reports the time taken.
//!
//! `cargo run -p gridhub-synth --release --example generate -- [DIR] [PERSONS] [SEED]`

use std::time::Instant;

use std::cell::{Cell, RefCell};

use gridhub_synth::{City, GenerateOptions, Progress};

/// Prints each table's rows and seconds.
struct Timer {
    what: RefCell<String>,
    rows: Cell<u64>,
    started: Cell<Option<Instant>>,
}

impl Progress for Timer {
    fn start(&self, what: &str, total: u64) {
        *self.what.borrow_mut() = what.to_string();
        self.rows.set(total);
        self.started.set(Some(Instant::now()));
    }
    fn advance(&self, _n: u64) {}
    fn finish(&self) {
        let secs = self
            .started
            .get()
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        println!(
            "{:>10} rows {:>7.2}s  {}",
            self.rows.get(),
            secs,
            self.what.borrow()
        );
    }
}

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
    let timer = Timer {
        what: RefCell::new(String::new()),
        rows: Cell::new(0),
        started: Cell::new(None),
    };
    let summary = city.write(std::path::Path::new(&dir), &timer)?;
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
