//! The `xlsx` connector.
//!
//! Options (besides the common `name`, `type`, `label`):
//!
//! | key | meaning |
//! |---|---|
//! | `path` | the workbook (`.xlsx`; `.xlsm`, `.xlsb`, `.xls` and `.ods` also work) |
//! | `tables` | `{ name = "sheet name", … }`; default: every sheet, table = sheet name |
//! | `header_row` | 1-based row holding the column names, default 1; rows above it are ignored |
//!
//! Workbooks are materialised: each sheet is read with calamine and written to
//! `<cache_dir>/<table>.parquet`, served by DataFusion's Parquet listing table. Every column is
//! text (`Utf8`):
//!
//! * strings as they are (an empty string is NULL);
//! * numbers in their shortest form, integral ones without a fraction (`43891.0` → `43891`);
//! * booleans `true` / `false`;
//! * date-formatted cells as `YYYY-MM-DD`, or `YYYY-MM-DD HH:MM:SS` when there is a time of day
//!   (`.mmm` is appended when there are milliseconds); a time-only cell (serial below 1) as
//!   `HH:MM:SS`, a duration as `H:MM:SS` with total hours;
//! * empty cells and error cells (`#N/A`, `#DIV/0!`, …) NULL.
//!
//! Blank header cells are named `column_N` (N = position of the column in the table, 1-based);
//! repeated names get `_2`, `_3` suffixes. Columns span the used range of the sheet. Rows that
//! are entirely empty are skipped. The extra column [`ROW_NUMBER_COLUMN`] holds the row number
//! as Excel shows it.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use calamine::{Data, ExcelDateTime, Reader, Sheets, open_workbook_auto};
use datafusion::arrow::array::{ArrayRef, Int64Builder, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use gridhub_connector::{
    Connector, ConnectorContext, Health, ROW_NUMBER_COLUMN, RefreshReport, Result,
};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::cache::{self, BuildError, CacheWriter, StagedFile};
use crate::common::{
    blocking, check_readable_file, column_names, connector_factory, invalid_options, unknown_table,
};

/// The connector kind name.
pub const KIND: &str = "xlsx";

/// Rows per record batch written to the cache.
const BATCH_ROWS: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct XlsxOptions {
    #[serde(default, rename = "name")]
    _name: Option<IgnoredAny>,
    #[serde(default, rename = "type")]
    _type: Option<IgnoredAny>,
    #[serde(default, rename = "label")]
    _label: Option<IgnoredAny>,
    path: String,
    tables: Option<BTreeMap<String, String>>,
    #[serde(default = "default_header_row")]
    header_row: u32,
}

fn default_header_row() -> u32 {
    1
}

connector_factory!(XlsxFactory, XlsxConnector);

/// A workbook source: one table per sheet, materialised into the Parquet cache.
#[derive(Debug)]
pub struct XlsxConnector {
    ctx: ConnectorContext,
    path: PathBuf,
    /// (table, sheet) from `tables`, sorted by table name; `None` = every sheet.
    configured: Option<Vec<(String, String)>>,
    header_row: u32,
    /// The sheets seen when the workbook was last opened (for `last_refresh`).
    seen: Mutex<Option<Vec<(String, String)>>>,
    /// Serialises cache builds of this source.
    build_lock: tokio::sync::Mutex<()>,
}

impl XlsxConnector {
    /// Parses the options of `ctx`.
    pub fn new(ctx: ConnectorContext) -> Result<Self> {
        let options: XlsxOptions = ctx.parse_options()?;
        if options.path.trim().is_empty() {
            return Err(invalid_options(&ctx, "option `path` is empty"));
        }
        if options.header_row == 0 {
            return Err(invalid_options(
                &ctx,
                "option `header_row` is 1-based and must be at least 1",
            ));
        }
        let configured = match options.tables {
            None => None,
            Some(tables) if tables.is_empty() => {
                return Err(invalid_options(&ctx, "option `tables` is empty"));
            }
            Some(tables) => Some(tables.into_iter().collect()),
        };
        Ok(Self {
            path: ctx.resolve(&options.path),
            ctx,
            configured,
            header_row: options.header_row,
            seen: Mutex::new(None),
            build_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The cache file of a table.
    pub fn cache_path(&self, table: &str) -> PathBuf {
        cache::cache_path(&self.ctx.cache_dir, table)
    }

    fn fingerprint(&self, sheet: &str) -> String {
        format!(
            "xlsx/v1 path={} sheet={sheet} header_row={}",
            self.path.display(),
            self.header_row
        )
    }

    /// (table, sheet) pairs, opening the workbook when every sheet is a table.
    async fn table_map(&self) -> Result<Vec<(String, String)>> {
        if let Some(configured) = &self.configured {
            return Ok(configured.clone());
        }
        let ctx = self.ctx.clone();
        let path = self.path.clone();
        let sheets = blocking(&self.ctx, move || {
            let workbook = open(&ctx, &path)?;
            Ok(workbook.sheet_names())
        })
        .await?;
        let map: Vec<(String, String)> = sheets.into_iter().map(|s| (s.clone(), s)).collect();
        *self.seen.lock().expect("not poisoned") = Some(map.clone());
        Ok(map)
    }

    /// Builds the cache of the given (table, sheet) pairs from one opening of the workbook,
    /// each into a staged file (renamed into place by the caller).
    async fn build(&self, jobs: Vec<(String, String)>) -> Result<Vec<(String, StagedFile)>> {
        let ctx = self.ctx.clone();
        let path = self.path.clone();
        let header_row = self.header_row;
        let jobs: Vec<SheetJob> = jobs
            .into_iter()
            .map(|(table, sheet)| SheetJob {
                target: self.cache_path(&table),
                fingerprint: self.fingerprint(&sheet),
                table,
                sheet,
            })
            .collect();
        blocking(&self.ctx, move || {
            let mut workbook = open(&ctx, &path)?;
            let sheets = workbook.sheet_names();
            let mut done = Vec::with_capacity(jobs.len());
            for job in jobs {
                if !sheets.contains(&job.sheet) {
                    return Err(ctx.io_error(
                        &path,
                        format!(
                            "sheet '{}' (table '{}') not found; sheets: {}",
                            job.sheet,
                            job.table,
                            sheets.join(", ")
                        ),
                    ));
                }
                let started = std::time::Instant::now();
                let staged = build_sheet(&ctx, &mut workbook, &job, header_row).map_err(|e| {
                    let e = match e {
                        BuildError::Source(m) => {
                            BuildError::Source(format!("sheet '{}': {m}", job.sheet))
                        }
                        cache => cache,
                    };
                    e.into_connector_error(&ctx, &path, &job.table)
                })?;
                tracing::info!(
                    source = %ctx.source_name,
                    sheet = %job.sheet,
                    cache = %job.target.display(),
                    rows = staged.rows,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "materialised sheet"
                );
                done.push((job.table, staged));
            }
            Ok(done)
        })
        .await
    }
}

struct SheetJob {
    table: String,
    sheet: String,
    target: PathBuf,
    fingerprint: String,
}

fn open(ctx: &ConnectorContext, path: &Path) -> Result<Sheets<BufReader<File>>> {
    check_readable_file(ctx, path)?;
    open_workbook_auto(path).map_err(|e| ctx.io_error(path, format!("cannot open workbook: {e}")))
}

/// Reads one sheet into a staged cache file; the context's cache check sees its columns
/// before any row is written.
fn build_sheet(
    ctx: &ConnectorContext,
    workbook: &mut Sheets<BufReader<File>>,
    job: &SheetJob,
    header_row: u32,
) -> std::result::Result<StagedFile, BuildError> {
    let range = workbook
        .worksheet_range(&job.sheet)
        .map_err(|e| BuildError::Source(e.to_string()))?;
    let header_idx = header_row - 1; // 0-based absolute row
    let (columns, first_col) = match (range.start(), range.end()) {
        (Some((_, c0)), Some((_, c1))) => ((c1 - c0 + 1) as usize, c0),
        _ => (0, 0),
    };
    let headers: Vec<Option<String>> = (0..columns)
        .map(|i| {
            range
                .get_value((header_idx, first_col + i as u32))
                .and_then(cell_text)
        })
        .collect();
    let names = column_names(headers, &[ROW_NUMBER_COLUMN]);
    let mut fields: Vec<Field> = names
        .into_iter()
        .map(|n| Field::new(n, DataType::Utf8, true))
        .collect();
    fields.push(Field::new(ROW_NUMBER_COLUMN, DataType::Int64, false));
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    ctx.check_cache(&job.table, &schema)
        .map_err(BuildError::Rejected)?;

    let mut writer = CacheWriter::create(&job.target, schema.clone(), &job.fingerprint)?;
    let mut batch = SheetBatch::new(columns);
    if let Some((first_row, _)) = range.start() {
        for (i, row) in range.rows().enumerate() {
            let abs = first_row + i as u32;
            if abs <= header_idx || row.iter().all(|c| cell_text(c).is_none()) {
                continue;
            }
            batch.push(row, abs);
            if batch.len == BATCH_ROWS {
                writer.write(&batch.finish(&schema)?)?;
            }
        }
    }
    if batch.len > 0 {
        writer.write(&batch.finish(&schema)?)?;
    }
    writer.stage()
}

/// Column builders for one batch of sheet rows.
struct SheetBatch {
    columns: Vec<StringBuilder>,
    rows: Int64Builder,
    len: usize,
}

impl SheetBatch {
    fn new(columns: usize) -> Self {
        Self {
            columns: (0..columns).map(|_| StringBuilder::new()).collect(),
            rows: Int64Builder::new(),
            len: 0,
        }
    }

    fn push(&mut self, row: &[Data], abs_row: u32) {
        for (builder, cell) in self.columns.iter_mut().zip(row) {
            builder.append_option(cell_text(cell));
        }
        // A short row (never produced by calamine ranges, but cheap to guard).
        for builder in self.columns.iter_mut().skip(row.len()) {
            builder.append_null();
        }
        self.rows.append_value(i64::from(abs_row) + 1);
        self.len += 1;
    }

    fn finish(&mut self, schema: &SchemaRef) -> std::result::Result<RecordBatch, BuildError> {
        let mut arrays: Vec<ArrayRef> = self
            .columns
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        arrays.push(Arc::new(self.rows.finish()));
        self.len = 0;
        RecordBatch::try_new(schema.clone(), arrays).map_err(|e| BuildError::Source(e.to_string()))
    }
}

/// The text of a cell, `None` for empty and error cells.
pub(crate) fn cell_text(cell: &Data) -> Option<String> {
    match cell {
        Data::Empty | Data::Error(_) => None,
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => {
            (!s.is_empty()).then(|| s.clone())
        }
        Data::Int(i) => Some(i.to_string()),
        Data::Float(f) => Some(float_text(*f)),
        Data::Bool(b) => Some(if *b { "true" } else { "false" }.to_string()),
        Data::DateTime(dt) => Some(datetime_text(dt)),
    }
}

/// Shortest representation that reads back as the same `f64`; integral values without a
/// fraction (`43891.0` → `43891`).
fn float_text(f: f64) -> String {
    if f == 0.0 {
        "0".to_string() // also for -0.0
    } else {
        format!("{f}")
    }
}

fn datetime_text(dt: &ExcelDateTime) -> String {
    let value = dt.as_f64();
    if dt.is_duration() {
        let total_ms = (value * 86_400_000.0).round() as i64;
        let sign = if total_ms < 0 { "-" } else { "" };
        let ms = total_ms.unsigned_abs();
        let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        return if milli == 0 {
            format!("{sign}{h}:{m:02}:{s:02}")
        } else {
            format!("{sign}{h}:{m:02}:{s:02}.{milli:03}")
        };
    }
    let (y, mo, d, h, mi, s, milli) = dt.to_ymd_hms_milli();
    let time = if milli == 0 {
        format!("{h:02}:{mi:02}:{s:02}")
    } else {
        format!("{h:02}:{mi:02}:{s:02}.{milli:03}")
    };
    if (0.0..1.0).contains(&value) && value != 0.0 {
        time // a time of day without a date
    } else if h == 0 && mi == 0 && s == 0 && milli == 0 {
        format!("{y:04}-{mo:02}-{d:02}")
    } else {
        format!("{y:04}-{mo:02}-{d:02} {time}")
    }
}

#[async_trait]
impl Connector for XlsxConnector {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn discover(&self) -> Result<Vec<String>> {
        Ok(self
            .table_map()
            .await?
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }

    async fn table(&self, name: &str) -> Result<Arc<dyn TableProvider>> {
        let target = self.cache_path(name);
        let guard = self.build_lock.lock().await;
        // While its cache is current, a table needs no access to the workbook.
        let sheet = match &self.configured {
            Some(map) => map.iter().find(|(t, _)| t == name).map(|(_, s)| s.clone()),
            None if cache::is_current(&target, &self.fingerprint(name)) => Some(name.to_string()),
            None => None,
        };
        let sheet = match sheet {
            Some(sheet) => sheet,
            None => {
                let map = self.table_map().await?;
                match map.iter().find(|(t, _)| t == name) {
                    Some((_, sheet)) => sheet.clone(),
                    None => {
                        let known: Vec<String> = map.into_iter().map(|(t, _)| t).collect();
                        return Err(unknown_table(&self.ctx, name, &known));
                    }
                }
            }
        };
        if !cache::is_current(&target, &self.fingerprint(&sheet)) {
            let staged = self.build(vec![(name.to_string(), sheet)]).await?;
            cache::commit_all(staged).map_err(|e| self.ctx.error(e))?;
        }
        drop(guard);
        cache::provider(&target).map_err(|e| self.ctx.io_error(&target, e))
    }

    async fn health(&self) -> Health {
        let ctx = self.ctx.clone();
        let path = self.path.clone();
        let opened = blocking(&self.ctx, move || open(&ctx, &path).map(|_| ())).await;
        match opened {
            Ok(()) => Health::Ok,
            Err(e) => Health::Unavailable(e.to_string()),
        }
    }

    fn is_materialised(&self) -> bool {
        true
    }

    async fn refresh(&self) -> Result<RefreshReport> {
        let _guard = self.build_lock.lock().await;
        let map = self.table_map().await?;
        // Every sheet is staged first; only when all are complete and accepted does any
        // replace its cache.
        let staged = self.build(map).await?;
        let tables = cache::commit_all(staged).map_err(|e| self.ctx.error(e))?;
        Ok(RefreshReport { tables })
    }

    fn last_refresh(&self) -> Option<SystemTime> {
        let map = match &self.configured {
            Some(map) => map.clone(),
            None => {
                let seen = self.seen.lock().expect("not poisoned").clone();
                match seen {
                    Some(map) => map,
                    None => {
                        let workbook = open_workbook_auto(&self.path).ok()?;
                        workbook
                            .sheet_names()
                            .into_iter()
                            .map(|s| (s.clone(), s))
                            .collect()
                    }
                }
            }
        };
        let paths: Vec<PathBuf> = map.iter().map(|(t, _)| self.cache_path(t)).collect();
        cache::oldest_mtime(paths.iter().map(PathBuf::as_path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::ExcelDateTimeType;

    fn date(v: f64) -> String {
        datetime_text(&ExcelDateTime::new(v, ExcelDateTimeType::DateTime, false))
    }

    #[test]
    fn cell_texts() {
        assert_eq!(float_text(43891.0), "43891");
        assert_eq!(float_text(0.1), "0.1");
        assert_eq!(float_text(-0.0), "0");
        assert_eq!(float_text(1.5e-7), "0.00000015");
        assert_eq!(float_text(110101199001011230.0), "110101199001011230");
        assert_eq!(cell_text(&Data::Int(7)).as_deref(), Some("7"));
        assert_eq!(cell_text(&Data::Bool(true)).as_deref(), Some("true"));
        assert_eq!(cell_text(&Data::String(String::new())), None);
        assert_eq!(cell_text(&Data::Empty), None);
        assert_eq!(cell_text(&Data::Error(calamine::CellErrorType::NA)), None);
    }

    #[test]
    fn dates() {
        assert_eq!(date(43891.0), "2020-03-01");
        assert_eq!(date(43891.5), "2020-03-01 12:00:00");
        assert_eq!(date(0.75), "18:00:00");
        let d = ExcelDateTime::new(1.5, ExcelDateTimeType::TimeDelta, false);
        assert_eq!(datetime_text(&d), "36:00:00");
    }
}
