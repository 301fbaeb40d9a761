//! The `csv` connector.
//!
//! Options (besides the common `name`, `type`, `label`):
//!
//! | key | meaning |
//! |---|---|
//! | `path` | one file; the table is named after the file stem |
//! | `tables` | `{ name = "relative/file.csv", … }` instead of `path` |
//! | `encoding` | `utf-8` (default), `gbk` or `gb18030` (GBK is read as GB18030, its superset) |
//! | `delimiter` | one ASCII character, default `,` |
//! | `header` | whether the first record holds the column names, default `true` |
//!
//! Every column is text (`Utf8`): no type inference, so IDs keep their leading zeros. Empty
//! fields are NULL. Header names are trimmed; blank names become `column_N`, repeated names get
//! `_2`, `_3` suffixes; without a header the columns are `column_1`, `column_2`, …. Records
//! with fewer fields than the header are padded with NULLs; records with more fields are an
//! error.
//!
//! UTF-8 files are queried in place through DataFusion's CSV listing table with an explicit
//! all-`Utf8` schema built from the header line (a UTF-8 byte order mark is skipped, so it
//! never ends up in the first column name; without a header a BOM stays in the first value).
//!
//! GBK/GB18030 files are materialised: decoded with `encoding_rs` (undecodable bytes are an
//! error naming the file and byte offset, never replaced; a UTF-8/UTF-16 byte order mark
//! overrides the configured encoding), parsed with arrow-csv, given the
//! [`ROW_NUMBER_COLUMN`] column and written to `<cache_dir>/<table>.parquet`, which is then
//! served by DataFusion's Parquet listing table. `_row` is the physical line a record starts
//! on (header = 1, first data row = 2); blank lines and line breaks inside quoted fields are
//! counted, so `_row` is what a text editor shows. A rebuilt table replaces its cache only
//! once the whole file has been read and the context's cache check accepts its columns; a
//! refresh stages every table of the source before renaming any. Decoding, parsing and Parquet encoding are
//! streamed in batches; the Parquet encoder runs on its own thread.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::SystemTime;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::csv::reader::{Decoder as CsvDecoder, Format, ReaderBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::listing::ListingOptions;
use encoding_rs::{DecoderResult, Encoding};
use gridhub_connector::{
    Connector, ConnectorContext, Health, ROW_NUMBER_COLUMN, RefreshReport, Result,
};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::cache::{self, BuildError, CacheWriter, StagedFile};
use crate::common::{
    FileTables, blocking, check_readable_file, column_names, connector_factory, file_tables,
    invalid_options, single_file_listing_table,
};

/// The connector kind name.
pub const KIND: &str = "csv";

/// Bytes read from the file per step while materialising.
const READ_CHUNK: usize = 1 << 20;
/// Rows per record batch while materialising.
const BATCH_ROWS: usize = 32 * 1024;

/// Text encoding of a CSV source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CsvEncoding {
    /// UTF-8 (a byte order mark is allowed): queried in place.
    #[default]
    Utf8,
    /// GBK, decoded as GB18030 (a superset): materialised.
    Gbk,
    /// GB18030: materialised.
    Gb18030,
}

impl CsvEncoding {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            CsvEncoding::Utf8 => "utf-8",
            CsvEncoding::Gbk => "gbk",
            CsvEncoding::Gb18030 => "gb18030",
        }
    }

    /// Whether files in this encoding are materialised into the Parquet cache.
    pub fn is_materialised(self) -> bool {
        self != CsvEncoding::Utf8
    }

    fn encoding_rs(self) -> &'static Encoding {
        match self {
            CsvEncoding::Utf8 => encoding_rs::UTF_8,
            CsvEncoding::Gbk | CsvEncoding::Gb18030 => encoding_rs::GB18030,
        }
    }
}

impl fmt::Display for CsvEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for CsvEncoding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.trim().to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Ok(CsvEncoding::Utf8),
            "gbk" | "gb2312" | "cp936" => Ok(CsvEncoding::Gbk),
            "gb18030" => Ok(CsvEncoding::Gb18030),
            _ => Err(serde::de::Error::custom(format!(
                "unknown encoding `{s}`, expected `utf-8`, `gbk` or `gb18030`"
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvOptions {
    #[serde(default, rename = "name")]
    _name: Option<IgnoredAny>,
    #[serde(default, rename = "type")]
    _type: Option<IgnoredAny>,
    #[serde(default, rename = "label")]
    _label: Option<IgnoredAny>,
    path: Option<String>,
    tables: Option<BTreeMap<String, String>>,
    #[serde(default)]
    encoding: CsvEncoding,
    delimiter: Option<String>,
    #[serde(default = "default_true")]
    header: bool,
}

fn default_true() -> bool {
    true
}

connector_factory!(CsvFactory, CsvConnector);

/// A CSV source: one table per file.
#[derive(Debug)]
pub struct CsvConnector {
    ctx: ConnectorContext,
    tables: FileTables,
    settings: CsvSettings,
    /// Serialises cache builds of this source.
    build_lock: tokio::sync::Mutex<()>,
}

/// Parsing settings shared by the in-place and the materialised path.
#[derive(Debug, Clone, Copy)]
struct CsvSettings {
    encoding: CsvEncoding,
    delimiter: u8,
    header: bool,
}

impl CsvSettings {
    /// Identifies how a cache file was built; a cache with another fingerprint is rebuilt.
    fn fingerprint(&self, path: &Path) -> String {
        format!(
            "csv/v1 path={} encoding={} delimiter={} header={}",
            path.display(),
            self.encoding,
            self.delimiter,
            self.header
        )
    }
}

impl CsvConnector {
    /// Parses the options of `ctx`.
    pub fn new(ctx: ConnectorContext) -> Result<Self> {
        let options: CsvOptions = ctx.parse_options()?;
        let tables = file_tables(&ctx, options.path.as_deref(), options.tables.as_ref())?;
        let delimiter = match options.delimiter.as_deref() {
            None => b',',
            Some(d) => parse_delimiter(d).ok_or_else(|| {
                invalid_options(
                    &ctx,
                    format!(
                        "option `delimiter` must be one ASCII character other than a quote or \
                         line break, got {d:?}"
                    ),
                )
            })?,
        };
        Ok(Self {
            ctx,
            tables,
            settings: CsvSettings {
                encoding: options.encoding,
                delimiter,
                header: options.header,
            },
            build_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The configured encoding.
    pub fn encoding(&self) -> CsvEncoding {
        self.settings.encoding
    }

    /// The cache file of a table (meaningful for GBK/GB18030 sources).
    pub fn cache_path(&self, table: &str) -> PathBuf {
        cache::cache_path(&self.ctx.cache_dir, table)
    }

    async fn in_place_table(&self, path: &Path) -> Result<Arc<dyn TableProvider>> {
        let ctx = self.ctx.clone();
        let owned = path.to_path_buf();
        let settings = self.settings;
        let schema = blocking(&self.ctx, move || {
            check_readable_file(&ctx, &owned)?;
            utf8_schema(&owned, settings).map_err(|e| ctx.io_error(&owned, e))
        })
        .await?;
        let format = CsvFormat::default()
            .with_has_header(self.settings.header)
            .with_delimiter(self.settings.delimiter)
            .with_quote(b'"')
            .with_truncated_rows(true)
            // Quoted fields may hold line breaks (addresses, remarks): never split a file at
            // an arbitrary line.
            .with_newlines_in_values(true);
        single_file_listing_table(path, ListingOptions::new(Arc::new(format)), schema)
            .map_err(|e| self.ctx.io_error(path, e))
    }

    /// Builds one table's cache into a staged file (renamed into place by the caller).
    async fn build_cache(&self, table: &str, path: &Path) -> Result<StagedFile> {
        let ctx = self.ctx.clone();
        let job = MaterialiseJob {
            table: table.to_string(),
            source: path.to_path_buf(),
            target: self.cache_path(table),
            fingerprint: self.settings.fingerprint(path),
            settings: self.settings,
            ctx: self.ctx.clone(),
        };
        blocking(&self.ctx, move || {
            check_readable_file(&ctx, &job.source)?;
            let started = std::time::Instant::now();
            let staged = job
                .run()
                .map_err(|e| e.into_connector_error(&ctx, &job.source, &job.table))?;
            tracing::info!(
                source = %ctx.source_name,
                file = %job.source.display(),
                cache = %job.target.display(),
                rows = staged.rows,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "materialised CSV"
            );
            Ok(staged)
        })
        .await
    }

    async fn materialised_table(&self, table: &str, path: &Path) -> Result<Arc<dyn TableProvider>> {
        let target = self.cache_path(table);
        let fingerprint = self.settings.fingerprint(path);
        {
            let _guard = self.build_lock.lock().await;
            if !cache::is_current(&target, &fingerprint) {
                let staged = self.build_cache(table, path).await?;
                staged
                    .commit()
                    .map_err(|e| e.into_connector_error(&self.ctx, path, table))?;
            } else if newer_than(path, &target) {
                tracing::warn!(
                    source = %self.ctx.source_name,
                    file = %path.display(),
                    "source file changed since the cache was built; run a refresh to reload it"
                );
            }
        }
        cache::provider(&target).map_err(|e| self.ctx.io_error(&target, e))
    }
}

fn newer_than(source: &Path, cache_file: &Path) -> bool {
    match (cache::mtime(source), cache::mtime(cache_file)) {
        (Some(s), Some(c)) => s > c,
        _ => false,
    }
}

fn parse_delimiter(d: &str) -> Option<u8> {
    let mut chars = d.chars();
    let c = chars.next()?;
    if chars.next().is_some() || !c.is_ascii() || matches!(c, '"' | '\r' | '\n') {
        return None;
    }
    Some(c as u8)
}

#[async_trait]
impl Connector for CsvConnector {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn location(&self) -> String {
        self.tables.location()
    }

    async fn discover(&self) -> Result<Vec<String>> {
        Ok(self.tables.names())
    }

    async fn table(&self, name: &str) -> Result<Arc<dyn TableProvider>> {
        let path = self.tables.file_of(&self.ctx, name)?.to_path_buf();
        if self.settings.encoding.is_materialised() {
            self.materialised_table(name, &path).await
        } else {
            self.in_place_table(&path).await
        }
    }

    async fn health(&self) -> Health {
        self.tables.health(&self.ctx)
    }

    fn is_materialised(&self) -> bool {
        self.settings.encoding.is_materialised()
    }

    async fn refresh(&self) -> Result<RefreshReport> {
        let mut report = RefreshReport::default();
        if !self.settings.encoding.is_materialised() {
            return Ok(report);
        }
        let _guard = self.build_lock.lock().await;
        // Every table is staged first; only when all are complete and accepted does any
        // replace its cache.
        let mut staged = Vec::with_capacity(self.tables.len());
        for (table, path) in self.tables.iter() {
            staged.push((table.clone(), self.build_cache(table, path).await?));
        }
        report.tables = cache::commit_all(staged).map_err(|e| self.ctx.error(e))?;
        Ok(report)
    }

    fn last_refresh(&self) -> Option<SystemTime> {
        if !self.settings.encoding.is_materialised() {
            return None;
        }
        let paths: Vec<PathBuf> = self
            .tables
            .iter()
            .map(|(t, _)| self.cache_path(t))
            .collect();
        cache::oldest_mtime(paths.iter().map(PathBuf::as_path))
    }
}

/// The all-Utf8 schema of a UTF-8 file from its first record (BOM skipped).
fn utf8_schema(path: &Path, settings: CsvSettings) -> std::result::Result<SchemaRef, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(file);
    let head = reader.fill_buf().map_err(|e| e.to_string())?;
    if head.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    } else if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return Err("the file is UTF-16 (byte order mark found), not UTF-8".into());
    }
    let names = header_names(reader, settings)?;
    let fields: Vec<Field> = names
        .into_iter()
        .map(|n| Field::new(n, DataType::Utf8, true))
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// Column names from the first record of `text` (header cells, or `column_N` without header).
fn header_names(
    text: impl Read,
    settings: CsvSettings,
) -> std::result::Result<Vec<String>, String> {
    let format = Format::default()
        .with_header(settings.header)
        .with_delimiter(settings.delimiter)
        .with_truncated_rows(true);
    let (schema, _) = format
        .infer_schema(text, Some(0))
        .map_err(|e| format!("cannot read the first line: {e}"))?;
    if schema.fields().is_empty() {
        return Err("the file is empty (no header line)".into());
    }
    let reserved: &[&str] = if settings.encoding.is_materialised() {
        &[ROW_NUMBER_COLUMN]
    } else {
        &[]
    };
    if settings.header {
        Ok(column_names(
            schema.fields().iter().map(|f| Some(f.name().as_str())),
            reserved,
        ))
    } else {
        Ok(column_names(
            (0..schema.fields().len()).map(|_| None::<&str>),
            reserved,
        ))
    }
}

/// One cache build: decode → parse → Parquet.
struct MaterialiseJob {
    table: String,
    source: PathBuf,
    target: PathBuf,
    fingerprint: String,
    settings: CsvSettings,
    /// The source's context: its cache check decides whether the rebuilt table may be used.
    ctx: ConnectorContext,
}

impl MaterialiseJob {
    /// Decodes, parses and writes the whole file into a staged cache file (not yet in place).
    fn run(&self) -> std::result::Result<StagedFile, BuildError> {
        let mut file = File::open(&self.source).map_err(|e| e.to_string())?;
        // `new_decoder` sniffs a byte order mark: a UTF-8 or UTF-16 BOM overrides the
        // configured encoding (the file then certainly is not GBK) and is removed.
        let mut decoder = self.settings.encoding.encoding_rs().new_decoder();
        let mut raw = vec![0u8; READ_CHUNK];
        let mut text: Vec<u8> = Vec::with_capacity(READ_CHUNK * 2);
        let mut consumed: u64 = 0;
        let mut lines = LineTracker::new(self.settings.delimiter);
        let mut pipeline: Option<Pipeline> = None;
        loop {
            let n = read_full(&mut file, &mut raw).map_err(|e| e.to_string())?;
            let last = n == 0;
            let old_len = text.len();
            let needed = decoder
                .max_utf8_buffer_length_without_replacement(n)
                .ok_or("file too large")?;
            text.resize(old_len + needed, 0);
            let (result, read, written) =
                decoder.decode_to_utf8_without_replacement(&raw[..n], &mut text[old_len..], last);
            if let DecoderResult::OutputFull = result {
                return Err("internal error: decode buffer too small".into());
            }
            if let DecoderResult::Malformed(bad, extra) = result {
                let offset = consumed as i64 + read as i64 - extra as i64 - bad as i64;
                let bytes = &raw[..n];
                let at = (read - extra as usize).saturating_sub(bad as usize);
                let shown: Vec<String> = bytes[at..(at + bad as usize).min(n)]
                    .iter()
                    .map(|b| format!("{b:#04x}"))
                    .collect();
                return Err(BuildError::Source(format!(
                    "byte offset {}: bytes [{}] are not valid {}",
                    offset.max(0),
                    shown.join(" "),
                    decoder.encoding().name()
                )));
            }
            consumed += read as u64;
            text.truncate(old_len + written);
            lines.scan(&text[old_len..]);

            if pipeline.is_none() {
                if lines.completed == 0 && !last {
                    continue; // the first record is not complete yet
                }
                let names = header_names(&text[..], self.settings)?;
                pipeline = Some(Pipeline::start(self, names)?);
            }
            let p = pipeline.as_mut().expect("started above");
            let used = p.feed(&text, &mut lines)?;
            text.drain(..used);
            if last {
                return p
                    .finish(&mut lines)
                    .and_then(|()| pipeline.take().expect("started above").close());
            }
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Messages to the Parquet writer thread. Without `Finish` the cache is left untouched.
enum WriterMsg {
    Batch(RecordBatch),
    Finish,
}

/// arrow-csv decoding plus a Parquet writer on its own thread.
struct Pipeline {
    decoder: CsvDecoder,
    schema: SchemaRef,
    header: bool,
    sender: Option<SyncSender<WriterMsg>>,
    writer: Option<JoinHandle<std::result::Result<StagedFile, BuildError>>>,
}

impl Pipeline {
    fn start(job: &MaterialiseJob, names: Vec<String>) -> std::result::Result<Self, BuildError> {
        let text_fields: Vec<Field> = names
            .into_iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect();
        let csv_schema = Arc::new(Schema::new(text_fields.clone()));
        let mut all_fields = text_fields;
        all_fields.push(Field::new(ROW_NUMBER_COLUMN, DataType::Int64, false));
        let schema = Arc::new(Schema::new(all_fields));
        // Checked before a single row is parsed: a header that no longer fits the mapping
        // fails at once, and the previous cache stays.
        job.ctx
            .check_cache(&job.table, &schema)
            .map_err(BuildError::Rejected)?;
        let decoder = ReaderBuilder::new(csv_schema)
            .with_header(job.settings.header)
            .with_delimiter(job.settings.delimiter)
            .with_quote(b'"')
            .with_truncated_rows(true)
            .with_batch_size(BATCH_ROWS)
            .build_decoder();
        let mut writer = CacheWriter::create(&job.target, schema.clone(), &job.fingerprint)?;
        let (sender, receiver): (_, Receiver<WriterMsg>) = sync_channel(2);
        let handle = std::thread::Builder::new()
            .name("gridhub-csv-parquet".into())
            .spawn(move || {
                for msg in receiver {
                    match msg {
                        WriterMsg::Batch(batch) => writer.write(&batch)?,
                        WriterMsg::Finish => return writer.stage(),
                    }
                }
                // Aborted: dropping the writer removes its temporary file.
                Err(BuildError::Source("materialisation aborted".to_string()))
            })
            .map_err(|e| BuildError::Cache(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            decoder,
            schema,
            header: job.settings.header,
            sender: Some(sender),
            writer: Some(handle),
        })
    }

    /// Feeds decoded text; returns how many bytes of `text` were consumed.
    fn feed(
        &mut self,
        text: &[u8],
        lines: &mut LineTracker,
    ) -> std::result::Result<usize, BuildError> {
        let mut pos = 0;
        while pos < text.len() {
            if self.decoder.capacity() == 0 {
                self.flush(lines)?;
            }
            let n = self
                .decoder
                .decode(&text[pos..])
                .map_err(|e| lines.describe(&e.to_string()))?;
            pos += n;
            if n == 0 && self.decoder.capacity() != 0 {
                break;
            }
        }
        Ok(pos)
    }

    /// Signals the end of the input and flushes the last batch.
    fn finish(&mut self, lines: &mut LineTracker) -> std::result::Result<(), BuildError> {
        if self.decoder.capacity() == 0 {
            self.flush(lines)?;
        }
        self.decoder
            .decode(&[])
            .map_err(|e| lines.describe(&e.to_string()))?;
        self.flush(lines)?;
        if self.header && lines.delivered == 0 {
            lines.take(1); // a header-only file
        }
        if !lines.starts.is_empty() {
            return Err(BuildError::Source(format!(
                "internal error: {} records were scanned but not parsed",
                lines.starts.len()
            )));
        }
        Ok(())
    }

    fn flush(&mut self, lines: &mut LineTracker) -> std::result::Result<(), BuildError> {
        let Some(batch) = self
            .decoder
            .flush()
            .map_err(|e| lines.describe(&e.to_string()))?
        else {
            return Ok(());
        };
        if self.header && lines.delivered == 0 {
            lines.take(1); // the header record
        }
        let rows = lines
            .take(batch.num_rows())
            .ok_or_else(|| "internal error: more records parsed than scanned".to_string())?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns.push(Arc::new(Int64Array::from(rows)));
        let batch = RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| BuildError::Source(e.to_string()))?;
        let sent = self
            .sender
            .as_ref()
            .expect("open until close")
            .send(WriterMsg::Batch(batch));
        if sent.is_err() {
            // The writer thread stopped: report its error.
            return Err(self.join_writer().err().unwrap_or_else(|| {
                BuildError::Cache("the Parquet writer stopped unexpectedly".to_string())
            }));
        }
        Ok(())
    }

    fn join_writer(&mut self) -> std::result::Result<StagedFile, BuildError> {
        self.sender = None;
        match self.writer.take() {
            Some(handle) => handle
                .join()
                .map_err(|_| BuildError::Cache("the Parquet writer thread panicked".to_string()))?,
            None => Err(BuildError::Cache(
                "the Parquet writer already stopped".to_string(),
            )),
        }
    }

    /// Closes the writer; the cache file is staged, not yet in place.
    fn close(mut self) -> std::result::Result<StagedFile, BuildError> {
        if let Some(sender) = &self.sender {
            // A send error means the writer stopped early; joining reports why.
            let _ = sender.send(WriterMsg::Finish);
        }
        self.join_writer()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Unfinished (an error): stop the writer; its CacheWriter removes the temporary file.
        self.sender = None;
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
    }
}

/// Where records start, by line number, mirroring the record splitting of arrow-csv
/// (csv-core with `"` quotes, doubled quotes inside quoted fields, CR, LF or CRLF line ends
/// and blank lines skipped). A line break is LF, CRLF or a lone CR.
#[derive(Debug)]
struct LineTracker {
    delimiter: u8,
    state: ScanState,
    /// Current line (1-based).
    line: i64,
    after_cr: bool,
    /// Start lines of scanned records not yet handed out.
    starts: VecDeque<i64>,
    /// Records terminated by a line break so far.
    completed: u64,
    /// Records handed out by [`LineTracker::take`] so far.
    delivered: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScanState {
    StartRecord,
    StartField,
    InField,
    InQuoted,
    QuoteInQuoted,
}

impl LineTracker {
    fn new(delimiter: u8) -> Self {
        Self {
            delimiter,
            state: ScanState::StartRecord,
            line: 1,
            after_cr: false,
            starts: VecDeque::new(),
            completed: 0,
            delivered: 0,
        }
    }

    #[inline]
    fn field_start(&mut self, c: u8) -> ScanState {
        if c == b'"' {
            ScanState::InQuoted
        } else {
            self.unquoted(c)
        }
    }

    /// The state after a byte outside quotes that is not a quote: a delimiter starts the
    /// next field, a line break ends the record, anything else is field content.
    #[inline]
    fn unquoted(&mut self, c: u8) -> ScanState {
        if c == self.delimiter {
            ScanState::StartField
        } else if c == b'\n' || c == b'\r' {
            self.completed += 1;
            ScanState::StartRecord
        } else {
            ScanState::InField
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        let d = self.delimiter;
        // Bytes that can change the state or the line count; runs of other bytes inside a
        // field are skipped in a tight loop.
        let mut special = [false; 256];
        for b in [d, b'"', b'\n', b'\r'] {
            special[b as usize] = true;
        }
        let mut i = 0;
        while i < bytes.len() {
            if matches!(self.state, ScanState::InField | ScanState::InQuoted) {
                let run = bytes[i..]
                    .iter()
                    .position(|&b| special[b as usize])
                    .unwrap_or(bytes.len() - i);
                if run > 0 {
                    self.after_cr = false;
                    i += run;
                    if i == bytes.len() {
                        break;
                    }
                }
            }
            let c = bytes[i];
            i += 1;
            self.state = match self.state {
                ScanState::StartRecord => {
                    if c == b'\n' || c == b'\r' {
                        ScanState::StartRecord
                    } else {
                        self.starts.push_back(self.line);
                        self.field_start(c)
                    }
                }
                ScanState::StartField => self.field_start(c),
                ScanState::InField => self.unquoted(c),
                ScanState::InQuoted => {
                    if c == b'"' {
                        ScanState::QuoteInQuoted
                    } else {
                        ScanState::InQuoted
                    }
                }
                // A doubled quote is a quote inside the field; any other byte closes it.
                ScanState::QuoteInQuoted => {
                    if c == b'"' {
                        ScanState::InQuoted
                    } else {
                        self.unquoted(c)
                    }
                }
            };
            if c == b'\n' {
                if !self.after_cr {
                    self.line += 1;
                }
                self.after_cr = false;
            } else if c == b'\r' {
                self.line += 1;
                self.after_cr = true;
            } else {
                self.after_cr = false;
            }
        }
    }

    /// The start lines of the next `n` records.
    fn take(&mut self, n: usize) -> Option<Vec<i64>> {
        if self.starts.len() < n {
            return None;
        }
        self.delivered += n as u64;
        Some(self.starts.drain(..n).collect())
    }

    /// An arrow-csv error message with the line of the record it names ("line N" there counts
    /// records, the header included).
    fn describe(&self, message: &str) -> String {
        let record = message.split("line ").nth(1).and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        });
        let line = record.and_then(|r| {
            let index = r.checked_sub(1)?.checked_sub(self.delivered)?;
            self.starts.get(usize::try_from(index).ok()?).copied()
        });
        match (record, line) {
            (Some(record), Some(line)) => format!(
                "line {line}: {}",
                message.replacen(&format!("line {record}"), &format!("record {record}"), 1)
            ),
            _ => message.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(text: &str) -> Vec<i64> {
        let mut whole = LineTracker::new(b',');
        whole.scan(text.as_bytes());
        // Scanning in pieces (state kept across chunks) gives the same result.
        for size in 1..5 {
            let mut t = LineTracker::new(b',');
            for chunk in text.as_bytes().chunks(size) {
                t.scan(chunk);
            }
            assert_eq!(t.starts, whole.starts, "chunks of {size}");
            assert_eq!(t.line, whole.line, "chunks of {size}");
        }
        whole.starts.into_iter().collect()
    }

    #[test]
    fn line_tracking() {
        assert_eq!(starts("a,b\n1,2\n3,4\n"), [1, 2, 3]);
        assert_eq!(starts("a,b\r\n1,2\r\n3,4"), [1, 2, 3]);
        assert_eq!(starts("a,b\n\n1,2\n\r\n3,4\n"), [1, 3, 5]);
        assert_eq!(starts("a,b\n\"x\ny\",2\n3,4\n"), [1, 2, 4]);
        assert_eq!(starts("a,b\n\"x\"\"\n\"\"y\",2\n3,4\n"), [1, 2, 4]);
        assert_eq!(starts("a,b\rx\"y,2\r3,4\r"), [1, 2, 3]);
        assert_eq!(starts("a,b\n\"q\"z\n3,4"), [1, 2, 3]);
        assert_eq!(starts("甲,乙\r\r\n丙,\"丁\r\n\r戊\"\r\n己,庚"), [1, 3, 6]);
        assert_eq!(starts(""), [] as [i64; 0]);
        assert_eq!(starts("\n\n"), [] as [i64; 0]);
    }

    #[test]
    fn delimiters() {
        assert_eq!(parse_delimiter(","), Some(b','));
        assert_eq!(parse_delimiter("\t"), Some(b'\t'));
        assert_eq!(parse_delimiter("|"), Some(b'|'));
        assert_eq!(parse_delimiter(",,"), None);
        assert_eq!(parse_delimiter("，"), None);
        assert_eq!(parse_delimiter("\""), None);
        assert_eq!(parse_delimiter(""), None);
    }
}
