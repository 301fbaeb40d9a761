//! # gridhub-synth
//!
//! A deterministic synthetic city for `gridhub demo`: Wuhan (`4201`) with two districts
//! (武昌区 `420106`, 洪山区 `420111`), four street offices, twelve communities and 4–8 grids
//! each; walk-ups and high-rises, houses, and as many residents as asked for
//! ([`GenerateOptions::scale`], default 50,000), with their tags, health records, location
//! traces, grid events, party members, volunteer service and building sensors.
//!
//! The city is written as seven sources, each in the format and conventions of the
//! platform it imitates ("many platforms, no sharing"):
//!
//! | source | format | tables |
//! |---|---|---|
//! | `community_register` | SQLite, Chinese names, all TEXT | 居民, 特殊人群, 事件 |
//! | `property_a` | GBK CSV with CRLF (Excel on Chinese Windows) | 住户, 楼栋 |
//! | `property_b` | xlsx, date cells and serial numbers | 住户信息, 楼宇信息 |
//! | `district_health` | Parquet | health_record, location_trace |
//! | `city_population` | UTF-8 CSV, English snake_case | admin_unit, person, house, building |
//! | `party_service` | UTF-8 CSV, dates `2020/3/1` | party_member, service_record |
//! | `sensor_feed` | Parquet with a real timestamp column | sensor_reading |
//!
//! plus `gridhub.toml` (the hub config: sources, precedence, one mapping per source
//! table) and `.synth.json`, a manifest written last so [`is_generated`] can tell a
//! finished data directory from an interrupted one.
//!
//! The same person appears in several sources with the inconsistencies of real exports:
//! 15-digit legacy IDs in the register, names written `欧阳 明`, phones changed or written
//! `138-1234-5678` / `+86 138…`. About 0.5% of the rows of every source table (round(rows
//! / 200)) carry exactly one injected defect in a column the mapping checks — bad check
//! digit, impossible date, malformed admin code or unknown value — and those are the only
//! invalid values, so each is exactly one row of `_rejects`.
//!
//! [`City::truth`] computes, from the model and with the hub's merge rules, what the hub
//! should find: rows per mapping and the defects injected, rows per shared table after
//! merging, rejects per source, persons per area, and the answers to the
//! [`showcase_queries`].
//!
//! ```no_run
//! use gridhub_synth::{City, GenerateOptions, NoProgress};
//! let opts = GenerateOptions::default();
//! let dir = std::path::Path::new("demo");
//! if !gridhub_synth::is_generated(dir, &opts) {
//!     let city = City::generate(&opts);
//!     city.write(dir, &NoProgress)?;
//! }
//! let truth = gridhub_synth::read_truth(dir)?;
//! # Ok::<(), gridhub_synth::SynthError>(())
//! ```
//!
//! Same scale and seed give byte-identical files (all but `audit.key`, the demo hub's random
//! audit key, written once and kept).

#[cfg(test)]
mod check;
mod config;
mod data;
mod fmt;
mod model;
mod showcase;
mod tables;
mod truth;
mod write;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use config::{DEMO_PRINCIPALS, DEMO_PSEUDONYM_KEY, hub_config};
pub use model::City;
pub use showcase::{
    ELDERLY_WALKUP_SQL, HEALTH_LATEST_SQL, PHONE_MISMATCH_SQL, REJECTS_SQL, Showcase,
    showcase_queries,
};
pub use tables::DefectKind;
pub use truth::{ElderlyTruth, GroundTruth, HealthTruth, InjectedDefect, MappingTruth};

use tables::TableId;

/// Version of the generator's output; a data directory from another version is regenerated.
pub const GENERATOR_VERSION: u32 = 1;
/// The config file written into the data directory.
pub const CONFIG_FILE: &str = "gridhub.toml";
/// The demo hub's audit key, next to the config and outside its state dir (`.gridhub`):
/// random, written once and kept across regenerations so the audit log stays verifiable.
pub const AUDIT_KEY_FILE: &str = "audit.key";
/// The manifest, written last.
pub const MANIFEST_FILE: &str = ".synth.json";
/// The ground truth, written just before the manifest.
pub const TRUTH_FILE: &str = ".synth-truth.json";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GenerateOptions {
    /// Number of persons; everything else scales linearly with it.
    pub scale: usize,
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            scale: 50_000,
            seed: 20_260_101,
        }
    }
}

/// Progress of [`City::write`]: one `start … advance* … finish` per source table.
pub trait Progress {
    /// A table starts; `what` is `source/table`, `total` its rows.
    fn start(&self, what: &str, total: u64);
    /// `n` more rows written.
    fn advance(&self, n: u64);
    /// The table is done.
    fn finish(&self);
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _what: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
}

#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("xlsx: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("too large: {0}")]
    TooLarge(String),
}

/// One file written by [`City::write`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    /// Relative to the data directory, `/`-separated.
    pub path: String,
    /// (table, rows) for source files; empty for the config, truth and manifest.
    pub tables: Vec<(String, u64)>,
    pub bytes: u64,
}

/// What [`City::write`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteSummary {
    pub dir: PathBuf,
    pub files: Vec<WrittenFile>,
    /// Source rows written, all tables.
    pub rows: u64,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    generator: String,
    version: u32,
    scale: usize,
    seed: u64,
    files: Vec<WrittenFile>,
}

const GENERATOR: &str = "gridhub-synth";

/// Whether `dir` holds a complete generation for `opts` by this generator version (its
/// manifest matches and every file it lists is there with its size).
pub fn is_generated(dir: &Path, opts: &GenerateOptions) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(MANIFEST_FILE)) else {
        return false;
    };
    let Ok(m) = serde_json::from_str::<Manifest>(&text) else {
        return false;
    };
    dir.join(AUDIT_KEY_FILE).is_file()
        && m.generator == GENERATOR
        && m.version == GENERATOR_VERSION
        && m.scale == opts.scale
        && m.seed == opts.seed
        && m.files
            .iter()
            .all(|f| std::fs::metadata(dir.join(&f.path)).is_ok_and(|md| md.len() == f.bytes))
}

/// A city directory ready to load: the config to open and whether it was written now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CityFiles {
    /// The hub config in the directory ([`CONFIG_FILE`]).
    pub config: PathBuf,
    /// What was written, when the directory did not hold this generation yet (`None`: the
    /// files were reused). After a write, whatever a hub derived from the earlier files
    /// (source caches, snapshots) is stale.
    pub written: Option<WriteSummary>,
}

/// The synthetic city for `opts` in `dir`: reused when `dir` already holds it
/// ([`is_generated`]), generated and written otherwise. Shared by the demo and the
/// benchmarks, so they reuse each other's cities.
pub fn generate_or_reuse(
    dir: &Path,
    opts: &GenerateOptions,
    progress: &dyn Progress,
) -> Result<CityFiles, SynthError> {
    let written = if is_generated(dir, opts) {
        None
    } else {
        Some(City::generate(opts).write(dir, progress)?)
    };
    Ok(CityFiles {
        config: dir.join(CONFIG_FILE),
        written,
    })
}

/// Reads the ground truth [`City::write`] stored in `dir`.
pub fn read_truth(dir: &Path) -> Result<GroundTruth, SynthError> {
    let text = std::fs::read_to_string(dir.join(TRUTH_FILE))?;
    Ok(serde_json::from_str(&text)?)
}

impl City {
    /// Writes every source, the config and the truth into `dir` (created if needed), then
    /// the manifest. Files of an earlier generation are replaced.
    pub fn write(&self, dir: &Path, progress: &dyn Progress) -> Result<WriteSummary, SynthError> {
        let started = Instant::now();
        std::fs::create_dir_all(dir)?;
        // An interrupted write must not look finished.
        remove_if_exists(&dir.join(MANIFEST_FILE))?;

        let mut files = Vec::new();
        let mut rows = 0u64;
        for src in &config::SOURCES {
            // Tables of this source, grouped by file.
            let tables: Vec<TableId> = TableId::ALL
                .into_iter()
                .filter(|t| t.spec().source == src.name)
                .collect();
            let mut by_file: Vec<(&'static str, Vec<TableId>)> = Vec::new();
            for &t in &tables {
                let f = config::file_of(t);
                match by_file.iter_mut().find(|(p, _)| *p == f) {
                    Some((_, v)) => v.push(t),
                    None => by_file.push((f, vec![t])),
                }
            }
            for (rel, ts) in by_file {
                let path = dir.join(rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                remove_if_exists(&path)?;
                match src.kind {
                    "sqlite" => write::sqlite(self, &path, &ts, progress)?,
                    "xlsx" => write::xlsx(self, &path, &ts, progress)?,
                    "parquet" => write::parquet(self, &path, ts[0], progress)?,
                    _ => {
                        let encoding = if src.encoding == Some("gbk") {
                            write::CsvEncoding::Gbk
                        } else {
                            write::CsvEncoding::Utf8
                        };
                        write::csv(self, &path, ts[0], encoding, progress)?
                    }
                }
                let table_rows: Vec<(String, u64)> = ts
                    .iter()
                    .map(|&t| (t.spec().table.to_string(), self.rows(t) as u64))
                    .collect();
                rows += table_rows.iter().map(|(_, n)| n).sum::<u64>();
                files.push(WrittenFile {
                    path: rel.to_string(),
                    tables: table_rows,
                    bytes: std::fs::metadata(&path)?.len(),
                });
            }
        }

        let mut write_plain = |rel: &str, bytes: &[u8]| -> Result<(), SynthError> {
            std::fs::write(dir.join(rel), bytes)?;
            files.push(WrittenFile {
                path: rel.to_string(),
                tables: Vec::new(),
                bytes: bytes.len() as u64,
            });
            Ok(())
        };
        write_plain(CONFIG_FILE, hub_config().as_bytes())?;
        write_audit_key(&dir.join(AUDIT_KEY_FILE))?;
        let truth = serde_json::to_vec_pretty(&self.truth())?;
        write_plain(TRUTH_FILE, &truth)?;

        let manifest = Manifest {
            generator: GENERATOR.to_string(),
            version: GENERATOR_VERSION,
            scale: self.opts.scale,
            seed: self.opts.seed,
            files: files.clone(),
        };
        std::fs::write(
            dir.join(MANIFEST_FILE),
            serde_json::to_vec_pretty(&manifest)?,
        )?;
        Ok(WriteSummary {
            dir: dir.to_path_buf(),
            files,
            rows,
            elapsed: started.elapsed(),
        })
    }
}

/// Writes a random audit key to `path` (readable by the owner only) unless a key is there
/// already: a new key would make the existing audit log unverifiable.
fn write_audit_key(path: &Path) -> Result<(), SynthError> {
    use rand::TryRngCore;
    use std::io::Write;
    if path.is_file() {
        return Ok(());
    }
    let mut secret = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut secret)
        .map_err(|e| std::io::Error::other(format!("no randomness from the OS: {e}")))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    writeln!(file, "{hex}")?;
    file.sync_all()?;
    Ok(())
}

fn remove_if_exists(path: &Path) -> Result<(), SynthError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}
