//! Writers for the source formats: SQLite (all TEXT), CSV (arrow's writer; UTF-8, or real
//! GBK with CRLF), xlsx (constant-memory worksheets) and Parquet (typed columns, Snappy).
//! Every writer streams rows through one reusable [`RowBuf`] and writes in batches.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook};

use crate::tables::{RowBuf, TableId, Ty, V};
use crate::{City, Progress, SynthError};

/// Rows between progress reports and Parquet batches.
const BATCH: usize = 16_384;
/// The largest number of data rows an xlsx sheet can hold (1,048,576 minus the header).
const XLSX_MAX_ROWS: usize = 1_048_575;

fn report(progress: &dyn Progress, done: usize) {
    if done.is_multiple_of(BATCH) {
        progress.advance(BATCH as u64);
    }
}

fn finish(progress: &dyn Progress, rows: usize) {
    progress.advance((rows % BATCH) as u64);
    progress.finish();
}

fn start(progress: &dyn Progress, city: &City, t: TableId) -> usize {
    let spec = t.spec();
    let rows = city.rows(t);
    progress.start(&format!("{}/{}", spec.source, spec.table), rows as u64);
    rows
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// One SQLite database, every column TEXT, missing values NULL.
pub(crate) fn sqlite(
    city: &City,
    path: &Path,
    tables: &[TableId],
    progress: &dyn Progress,
) -> Result<(), SynthError> {
    let mut conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA page_size = 4096;",
    )?;
    let tx = conn.transaction()?;
    for &t in tables {
        let spec = t.spec();
        let cols: Vec<String> = spec
            .columns
            .iter()
            .map(|(c, _)| format!("{} TEXT", quote_ident(c)))
            .collect();
        tx.execute_batch(&format!(
            "CREATE TABLE {} ({});",
            quote_ident(spec.table),
            cols.join(", ")
        ))?;
        let placeholders: Vec<String> = (1..=spec.columns.len()).map(|i| format!("?{i}")).collect();
        let mut stmt = tx.prepare(&format!(
            "INSERT INTO {} VALUES ({})",
            quote_ident(spec.table),
            placeholders.join(", ")
        ))?;
        let rows = start(progress, city, t);
        let mut row = RowBuf::new(spec.columns.len());
        for i in 0..rows {
            city.render(t, i, &mut row);
            stmt.execute(rusqlite::params_from_iter(
                row.val.iter().zip(&row.text).map(|(v, s)| match v {
                    V::Null => None,
                    _ => Some(s.as_str()),
                }),
            ))?;
            report(progress, i + 1);
        }
        finish(progress, rows);
    }
    tx.commit()?;
    Ok(())
}

/// Text encoding of a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsvEncoding {
    /// UTF-8, LF line ends.
    Utf8,
    /// GBK bytes, CRLF line ends (Excel on Chinese Windows).
    Gbk,
}

/// An `io::Write` adapter that re-encodes the UTF-8 it is given as GBK, in chunks.
struct GbkWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> GbkWriter<W> {
    fn encode(&mut self, all: bool) -> std::io::Result<()> {
        // Encode up to the last complete UTF-8 character; keep a split one for later.
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() && !all => e.valid_up_to(),
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        };
        let text = std::str::from_utf8(&self.pending[..valid]).expect("checked");
        let (bytes, _, had_errors) = encoding_rs::GBK.encode(text);
        if had_errors {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "text not representable in GBK",
            ));
        }
        self.inner.write_all(&bytes)?;
        self.pending.drain(..valid);
        Ok(())
    }
}

impl<W: Write> Write for GbkWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= 1 << 16 {
            self.encode(false)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.encode(true)?;
        self.inner.flush()
    }
}

/// One CSV file with a header row (arrow's CSV writer; empty cells for missing values).
pub(crate) fn csv(
    city: &City,
    path: &Path,
    t: TableId,
    encoding: CsvEncoding,
    progress: &dyn Progress,
) -> Result<(), SynthError> {
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let builder = arrow::csv::WriterBuilder::new().with_header(true);
    match encoding {
        CsvEncoding::Utf8 => {
            let mut w = builder.build(file);
            batches(city, t, progress, |b| Ok(w.write(b)?))?;
            w.into_inner().flush()?;
        }
        CsvEncoding::Gbk => {
            let gbk = GbkWriter {
                inner: file,
                pending: Vec::with_capacity(1 << 17),
            };
            let mut w = builder
                .with_line_terminator(arrow::csv::writer::Terminator::CRLF)
                .build(gbk);
            batches(city, t, progress, |b| Ok(w.write(b)?))?;
            w.into_inner().flush()?;
        }
    }
    Ok(())
}

/// One workbook, one constant-memory sheet per table. Dates of [`Ty::XlDate`] columns are
/// date-formatted numbers; [`Ty::XlNum`] columns are plain numbers.
pub(crate) fn xlsx(
    city: &City,
    path: &Path,
    tables: &[TableId],
    progress: &dyn Progress,
) -> Result<(), SynthError> {
    let mut workbook = Workbook::new();
    // A fixed creation time keeps the file byte-identical across runs.
    let created = ExcelDateTime::from_ymd(2025, 6, 30)?;
    workbook.set_properties(&DocProperties::new().set_creation_datetime(&created));
    let date_format = Format::new().set_num_format("yyyy-mm-dd");
    for &t in tables {
        let spec = t.spec();
        let rows = city.rows(t);
        if rows > XLSX_MAX_ROWS {
            return Err(SynthError::TooLarge(format!(
                "{}/{} has {rows} rows, more than an xlsx sheet holds ({XLSX_MAX_ROWS})",
                spec.source, spec.table
            )));
        }
        let sheet = workbook.add_worksheet_with_constant_memory()?;
        sheet.set_name(spec.table)?;
        for (c, (name, _)) in spec.columns.iter().enumerate() {
            sheet.write_string(0, c as u16, *name)?;
        }
        start(progress, city, t);
        let mut row = RowBuf::new(spec.columns.len());
        for i in 0..rows {
            city.render(t, i, &mut row);
            let r = (i + 1) as u32;
            for (c, &(_, ty)) in spec.columns.iter().enumerate() {
                let c16 = c as u16;
                match (row.val[c], ty) {
                    (V::Null, _) => {}
                    (V::Text, _) => {
                        sheet.write_string(r, c16, row.text[c].as_str())?;
                    }
                    (V::Int(n), Ty::XlDate) => {
                        sheet.write_number_with_format(r, c16, n as f64, &date_format)?;
                    }
                    (V::Float(f), Ty::XlDate) => {
                        sheet.write_number_with_format(r, c16, f, &date_format)?;
                    }
                    (V::Int(n), _) => {
                        sheet.write_number(r, c16, n as f64)?;
                    }
                    (V::Float(f), _) => {
                        sheet.write_number(r, c16, f)?;
                    }
                    (V::Bool(b), _) => {
                        sheet.write_boolean(r, c16, b)?;
                    }
                }
            }
            report(progress, i + 1);
        }
        finish(progress, rows);
    }
    workbook.save(path)?;
    Ok(())
}

enum Builder {
    Text(StringBuilder),
    I64(Int64Builder),
    I32(Int32Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    TsMs(TimestampMillisecondBuilder),
}

impl Builder {
    fn new(ty: Ty) -> Builder {
        match ty {
            Ty::Text => Builder::Text(StringBuilder::with_capacity(BATCH, BATCH * 16)),
            Ty::I64 => Builder::I64(Int64Builder::with_capacity(BATCH)),
            Ty::I32 => Builder::I32(Int32Builder::with_capacity(BATCH)),
            Ty::F64 | Ty::XlNum | Ty::XlDate => Builder::F64(Float64Builder::with_capacity(BATCH)),
            Ty::Bool => Builder::Bool(BooleanBuilder::with_capacity(BATCH)),
            Ty::TsMs => Builder::TsMs(
                TimestampMillisecondBuilder::with_capacity(BATCH).with_timezone("UTC"),
            ),
        }
    }

    fn data_type(ty: Ty) -> DataType {
        match ty {
            Ty::Text => DataType::Utf8,
            Ty::I64 => DataType::Int64,
            Ty::I32 => DataType::Int32,
            Ty::F64 | Ty::XlNum | Ty::XlDate => DataType::Float64,
            Ty::Bool => DataType::Boolean,
            Ty::TsMs => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        }
    }

    fn push(&mut self, v: V, text: &str) {
        match (self, v) {
            (Builder::Text(b), V::Text) => b.append_value(text),
            (Builder::Text(b), _) => b.append_null(),
            (Builder::I64(b), V::Int(n)) => b.append_value(n),
            (Builder::I64(b), _) => b.append_null(),
            (Builder::I32(b), V::Int(n)) => b.append_value(n as i32),
            (Builder::I32(b), _) => b.append_null(),
            (Builder::F64(b), V::Float(f)) => b.append_value(f),
            (Builder::F64(b), V::Int(n)) => b.append_value(n as f64),
            (Builder::F64(b), _) => b.append_null(),
            (Builder::Bool(b), V::Bool(x)) => b.append_value(x),
            (Builder::Bool(b), _) => b.append_null(),
            (Builder::TsMs(b), V::Int(n)) => b.append_value(n),
            (Builder::TsMs(b), _) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::F64(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::TsMs(b) => Arc::new(b.finish()),
        }
    }
}

/// The table's Arrow schema (every column nullable).
fn schema(t: TableId) -> Arc<Schema> {
    Arc::new(Schema::new(
        t.spec()
            .columns
            .iter()
            .map(|&(name, ty)| Field::new(name, Builder::data_type(ty), true))
            .collect::<Vec<_>>(),
    ))
}

/// Renders table `t` into record batches of [`BATCH`] rows and hands each to `write`
/// (at least one batch, so an empty table still gets its header / schema).
fn batches(
    city: &City,
    t: TableId,
    progress: &dyn Progress,
    mut write: impl FnMut(&RecordBatch) -> Result<(), SynthError>,
) -> Result<(), SynthError> {
    let spec = t.spec();
    let schema = schema(t);
    let mut builders: Vec<Builder> = spec
        .columns
        .iter()
        .map(|&(_, ty)| Builder::new(ty))
        .collect();
    let rows = start(progress, city, t);
    let mut row = RowBuf::new(spec.columns.len());
    let mut pending = 0usize;
    let mut flush = |builders: &mut Vec<Builder>| -> Result<(), SynthError> {
        let columns: Vec<ArrayRef> = builders.iter_mut().map(Builder::finish).collect();
        write(&RecordBatch::try_new(schema.clone(), columns)?)
    };
    for i in 0..rows {
        city.render(t, i, &mut row);
        for (c, b) in builders.iter_mut().enumerate() {
            b.push(row.val[c], &row.text[c]);
        }
        pending += 1;
        if pending == BATCH {
            flush(&mut builders)?;
            pending = 0;
        }
        report(progress, i + 1);
    }
    if pending > 0 || rows == 0 {
        flush(&mut builders)?;
    }
    finish(progress, rows);
    Ok(())
}

/// One Parquet file with the table's typed schema, Snappy-compressed.
pub(crate) fn parquet(
    city: &City,
    path: &Path,
    t: TableId,
    progress: &dyn Progress,
) -> Result<(), SynthError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut writer = ArrowWriter::try_new(file, schema(t), Some(props))?;
    batches(city, t, progress, |b| Ok(writer.write(b)?))?;
    writer.close()?;
    Ok(())
}
