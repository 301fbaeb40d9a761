//! Printing query results: aligned tables (Chinese text included), CSV or JSON.

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table, presets};

use crate::error::{CliError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
}

/// Render batches in the chosen format. `max_rows` limits table output only.
pub fn render(batches: &[RecordBatch], format: Format, max_rows: Option<usize>) -> Result<String> {
    match format {
        Format::Table => Ok(table(batches, max_rows)),
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for b in batches {
                    w.write(b)?;
                }
            }
            String::from_utf8(out).map_err(|e| CliError::Output(e.to_string()))
        }
        Format::Json => {
            let mut out = Vec::new();
            {
                let mut w = arrow::json::ArrayWriter::new(&mut out);
                for b in batches {
                    w.write(b)?;
                }
                w.finish()?;
            }
            let mut s = String::from_utf8(out).map_err(|e| CliError::Output(e.to_string()))?;
            if s.is_empty() {
                s.push_str("[]");
            }
            s.push('\n');
            Ok(s)
        }
    }
}

fn table(batches: &[RecordBatch], max_rows: Option<usize>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled);
    let Some(first) = batches.first() else {
        return "(no rows)\n".to_string();
    };
    t.set_header(first.schema().fields().iter().map(|f| f.name().clone()));
    let options = FormatOptions::default().with_null("NULL");
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let limit = max_rows.unwrap_or(usize::MAX);
    let mut shown = 0;
    'outer: for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        for row in 0..b.num_rows() {
            if shown == limit {
                break 'outer;
            }
            t.add_row(formatters.iter().map(|f| f.value(row).to_string()));
            shown += 1;
        }
    }
    let footer = if shown < total {
        format!("({shown} of {total} rows shown)")
    } else if total == 1 {
        "(1 row)".to_string()
    } else {
        format!("({total} rows)")
    };
    format!("{t}\n{footer}\n")
}
