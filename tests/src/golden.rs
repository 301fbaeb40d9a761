//! Governed SQL as golden files (`tests/golden/*.gq`), in the manner of DataFusion's
//! sqllogictest files: each case is a principal, an optional purpose, an SQL text and the
//! answer the hub must give it — rows, or the refusal's message — run through the real
//! engine and regenerated with `GRIDHUB_BLESS=1`, so that a change of behaviour shows as a
//! diff of these files.
//!
//! ```text
//! # What the case shows (comments before a record are kept when the file is blessed).
//! query zhao.street purpose=routine
//! SELECT name, phone FROM person
//! ORDER BY name LIMIT 2
//! ----
//! name | phone
//! 王* | 138****5678
//! 李* | 139****0001
//!
//! refused zhou.volunteer
//! SELECT health_code FROM health_record
//! ----
//! access denied: …
//!
//! emergency declare 420106009001
//!
//! emergency end
//! ```
//!
//! A `query` block is the answer's column names, then one line per row, values separated by
//! ` | ` (`NULL` for null, `(empty)` for the empty string), sorted unless the SQL has an
//! `ORDER BY`; an answer without rows is an empty block. A `refused` block is the first line
//! of the error as the user reads it. `emergency declare AREA` declares an emergency for `AREA` (by the
//! demo's security officer, for a day) that lasts until `emergency end` or the end of the
//! file. Records are separated by blank lines.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use gridhub_engine::GovernedHub;

/// Set to `1` to rewrite the golden files from the engine's answers instead of comparing.
pub const BLESS_VAR: &str = "GRIDHUB_BLESS";

/// Separates values in a row of a `query` block.
pub const SEPARATOR: &str = " | ";

/// The directory of the golden files.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// The golden files, sorted by name.
pub fn golden_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("the golden directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "gq"))
        .collect();
    files.sort();
    files
}

/// Whether this run rewrites the golden files.
pub fn blessing() -> bool {
    std::env::var(BLESS_VAR).as_deref() == Ok("1")
}

/// One record of a golden file, with the comment lines before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line of the record's first line (not its comments).
    pub line: usize,
    pub comments: Vec<String>,
    pub step: Step,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Case(Case),
    DeclareEmergency { area: String },
    EndEmergency,
}

/// A row of an answer: its values as text, `None` for NULL.
pub type Row = Vec<Option<String>>;

/// A governed query and the answer it must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// `refused`: the block is the error; `query`: the block is the answer.
    pub refused: bool,
    pub principal: String,
    pub purpose: Option<String>,
    pub sql: String,
    pub block: Vec<String>,
}

impl Case {
    /// The answer of a `query` case as column names and rows of values (`None` for NULL).
    pub fn answer(&self) -> Option<(Vec<String>, Vec<Row>)> {
        if self.refused {
            return None;
        }
        let Some((header, rows)) = self.block.split_first() else {
            return Some((Vec::new(), Vec::new()));
        };
        let header = header.split(SEPARATOR).map(str::to_owned).collect();
        let rows = rows
            .iter()
            .map(|line| {
                line.split(SEPARATOR)
                    .map(|v| (v != "NULL").then(|| v.to_owned()))
                    .collect()
            })
            .collect();
        Some((header, rows))
    }
}

/// Parses a golden file's text; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut comments = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.is_empty() {
            i += 1;
            continue;
        }
        if line.starts_with('#') {
            comments.push(line.to_owned());
            i += 1;
            continue;
        }
        let at = i + 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        let step = match words.as_slice() {
            ["emergency", "declare", area] => {
                i += 1;
                Step::DeclareEmergency {
                    area: (*area).to_owned(),
                }
            }
            ["emergency", "end"] => {
                i += 1;
                Step::EndEmergency
            }
            [kind @ ("query" | "refused"), principal, rest @ ..] => {
                let purpose = match rest {
                    [] => None,
                    [p] => Some(
                        p.strip_prefix("purpose=")
                            .ok_or_else(|| format!("line {at}: expected purpose=P, got {p}"))?
                            .to_owned(),
                    ),
                    _ => return Err(format!("line {at}: too many words: {line}")),
                };
                i += 1;
                let mut sql = Vec::new();
                while i < lines.len() && lines[i].trim_end() != "----" {
                    if lines[i].trim().is_empty() {
                        return Err(format!("line {}: blank line before ----", i + 1));
                    }
                    sql.push(lines[i].trim_end());
                    i += 1;
                }
                if i == lines.len() {
                    return Err(format!("line {at}: no ---- after the SQL"));
                }
                if sql.is_empty() {
                    return Err(format!("line {at}: no SQL"));
                }
                i += 1;
                let mut block = Vec::new();
                while i < lines.len() && !lines[i].trim().is_empty() {
                    block.push(lines[i].trim_end().to_owned());
                    i += 1;
                }
                Step::Case(Case {
                    refused: *kind == "refused",
                    principal: (*principal).to_owned(),
                    purpose,
                    sql: sql.join("\n"),
                    block,
                })
            }
            _ => return Err(format!("line {at}: not a record: {line}")),
        };
        records.push(Record {
            line: at,
            comments: std::mem::take(&mut comments),
            step,
        });
    }
    if !comments.is_empty() {
        return Err("comments after the last record".into());
    }
    Ok(records)
}

/// A golden file's text for `records` (what blessing writes).
pub fn render(records: &[Record]) -> String {
    let mut out = String::new();
    for (n, r) in records.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        for c in &r.comments {
            let _ = writeln!(out, "{c}");
        }
        match &r.step {
            Step::DeclareEmergency { area } => {
                let _ = writeln!(out, "emergency declare {area}");
            }
            Step::EndEmergency => out.push_str("emergency end\n"),
            Step::Case(c) => {
                let kind = if c.refused { "refused" } else { "query" };
                let _ = write!(out, "{kind} {}", c.principal);
                if let Some(p) = &c.purpose {
                    let _ = write!(out, " purpose={p}");
                }
                let _ = writeln!(out, "\n{}\n----", c.sql);
                for l in &c.block {
                    let _ = writeln!(out, "{l}");
                }
            }
        }
    }
    out
}

/// Whether the rows of `sql`'s answer come in an order the SQL fixes.
pub fn ordered(sql: &str) -> bool {
    sql.split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[0].eq_ignore_ascii_case("order") && w[1].eq_ignore_ascii_case("by"))
}

/// An answer as a `query` block: column names, then rows (sorted unless `keep_order`).
pub fn answer_block(batches: &[RecordBatch], keep_order: bool) -> Vec<String> {
    let mut rows: Vec<String> = crate::rows(batches)
        .into_iter()
        .map(|r| {
            r.iter()
                .map(|v| match v.as_deref() {
                    None => "NULL".to_owned(),
                    Some("") => "(empty)".to_owned(),
                    Some(v) => one_line(v),
                })
                .collect::<Vec<_>>()
                .join(SEPARATOR)
        })
        .collect();
    if rows.is_empty() {
        return rows;
    }
    if !keep_order {
        rows.sort();
    }
    let header = crate::column_names(batches).join(SEPARATOR);
    std::iter::once(header).chain(rows).collect()
}

/// An error's first line: what it says, without the hints that follow (DataFusion's "Did
/// you mean …?" picks among equally close names in no fixed order).
fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

fn one_line(text: &str) -> String {
    text.replace('\n', "\\n")
}

/// Runs every record of a file against `hub` and returns the records with the answers the
/// engine gave (comments and SQL unchanged): equal to the input when the file holds.
pub async fn run(hub: &GovernedHub, records: &[Record]) -> Vec<Record> {
    let mut emergency = None;
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let step = match &r.step {
            Step::DeclareEmergency { area } => {
                assert!(
                    emergency.is_none(),
                    "line {}: an emergency is already declared",
                    r.line
                );
                emergency = Some(crate::declare_emergency(hub, area, "golden file").await);
                r.step.clone()
            }
            Step::EndEmergency => {
                let id = emergency
                    .take()
                    .unwrap_or_else(|| panic!("line {}: no emergency to end", r.line));
                crate::end_emergency(hub, id).await;
                r.step.clone()
            }
            Step::Case(c) => {
                let answer =
                    crate::governed_query(hub, &c.principal, c.purpose.as_deref(), &c.sql).await;
                let (refused, block) = match answer {
                    Ok(batches) => (false, answer_block(&batches, ordered(&c.sql))),
                    Err(e) => (true, vec![first_line(&e.to_string())]),
                };
                Step::Case(Case {
                    refused,
                    block,
                    ..c.clone()
                })
            }
        };
        out.push(Record { step, ..r.clone() });
    }
    if let Some(id) = emergency {
        crate::end_emergency(hub, id).await;
    }
    out
}

/// The cases whose answers differ, each as the file's line, the expectation and the answer.
pub fn differences(file: &Path, expected: &[Record], got: &[Record]) -> Vec<String> {
    expected
        .iter()
        .zip(got)
        .filter(|(e, g)| e != g)
        .map(|(e, g)| {
            let show = |r: &Record| render(std::slice::from_ref(r));
            format!(
                "{}:{}\n--- expected\n{}--- got\n{}",
                file.display(),
                e.line,
                show(e),
                show(g)
            )
        })
        .collect()
}
