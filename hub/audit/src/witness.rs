//! The witness: a second, append-only record of the chain head, kept away from the state
//! directory, that verification compares the log with (crate docs, "The witness").

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::chain::{self, Key, ZERO_HASH};
use crate::verify::{TamperKind, Tampering};

/// One line of the witness file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessLine {
    /// The newest record when the line was written (0: the log was empty).
    seq: u64,
    /// Its hash (64 zeros for an empty log).
    hash: String,
    /// When the line was written, RFC 3339 UTC.
    at: String,
    /// HMAC-SHA256(key, "gridhub-audit-witness\0" || seq as 8 bytes big-endian || hash || at).
    mac: String,
}

/// An authentic witness entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Line number in the witness file, from 1.
    pub(crate) line: usize,
    pub(crate) seq: u64,
    pub(crate) hash: String,
    pub(crate) at: String,
}

/// A line of the witness as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    Valid(Entry),
    /// Well formed, but its MAC does not verify with this key: (line, claimed seq).
    NotAuthentic(usize, u64),
    /// Not a witness entry: (line, why).
    Unreadable(usize, String),
}

/// Appends one entry and fsyncs it. The file is opened with `O_APPEND` for each entry (so
/// every write lands at its end whoever else appends, and a rotated witness is picked up)
/// and created if missing. Its directory is not created, so a mistyped path fails; an
/// unmounted mount point is still a directory, though: keep it unwritable for the hub.
pub(crate) fn append(path: &Path, key: &Key, seq: u64, hash: &str, at: &str) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "its directory {} does not exist (is the witness file system mounted?)",
                dir.display()
            ),
        ));
    }
    let line = WitnessLine {
        seq,
        hash: hash.to_owned(),
        at: at.to_owned(),
        mac: key.witness_tag(seq, hash, at),
    };
    let mut text = serde_json::to_string(&line)?;
    text.push('\n');
    let existed = path.exists();
    let mut file = OpenOptions::new().append(true).create(true).open(path)?;
    // One write of one short line: appends of concurrent writers do not interleave.
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    if !existed {
        chain::sync_dir(path)?;
    }
    Ok(())
}

/// Parses witness text line by line.
pub(crate) fn parse(text: &str, key: &Key) -> Vec<Line> {
    text.lines()
        .enumerate()
        .map(|(i, l)| parse_line(i + 1, l, key))
        .collect()
}

fn parse_line(line: usize, text: &str, key: &Key) -> Line {
    match serde_json::from_str::<WitnessLine>(text) {
        Err(e) => Line::Unreadable(line, e.to_string()),
        Ok(w) if key.witness_authentic(w.seq, &w.hash, &w.at, &w.mac) => Line::Valid(Entry {
            line,
            seq: w.seq,
            hash: w.hash,
            at: w.at,
        }),
        Ok(w) => Line::NotAuthentic(line, w.seq),
    }
}

/// The last entry of the witness file if it is authentic (reads only its tail). `None` when
/// the file is missing, empty or ends in anything else: then the caller writes a new entry.
pub(crate) fn last(path: &Path, key: &Key) -> Option<(u64, String)> {
    const TAIL: u64 = 4096;
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut tail = String::new();
    file.read_to_string(&mut tail).ok()?;
    let last = tail.lines().next_back()?;
    match parse_line(0, last, key) {
        Line::Valid(e) => Some((e.seq, e.hash)),
        _ => None,
    }
}

/// The authentic entry with the highest sequence number in the witness file, if any.
pub(crate) fn highest(path: &Path, key: &Key) -> io::Result<Option<Entry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(parse(&text, key)
        .into_iter()
        .filter_map(|l| match l {
            Line::Valid(e) => Some(e),
            _ => None,
        })
        .max_by_key(|e| e.seq))
}

/// The log against the witness. `stored` maps each stored sequence number (≥ 1) to its
/// hash; `name` names the witness in the details.
pub(crate) fn compare(
    lines: &[Line],
    stored: &BTreeMap<u64, String>,
    name: &str,
) -> Vec<Tampering> {
    let mut problems = Vec::new();
    let problem = |seq, kind, detail| Tampering { seq, kind, detail };
    if lines.is_empty() {
        problems.push(problem(
            0,
            TamperKind::Witness,
            format!("the witness {name} has no entries, so it vouches for nothing"),
        ));
        return problems;
    }
    let end = stored.keys().next_back().copied().unwrap_or(0);
    let mut entries = Vec::new();
    for l in lines {
        match l {
            Line::Valid(e) => entries.push(e),
            Line::NotAuthentic(line, seq) => problems.push(problem(
                *seq,
                TamperKind::Witness,
                format!(
                    "line {line} of the witness {name} does not authenticate with the audit key: \
                     it was forged or edited, or the key is wrong"
                ),
            )),
            Line::Unreadable(line, why) => problems.push(problem(
                0,
                TamperKind::Witness,
                format!("line {line} of the witness {name} is not a witness entry ({why})"),
            )),
        }
    }

    // The witness only moves forward: a step back means the hub reopened a shorter log.
    let mut furthest: Option<&Entry> = None;
    for &e in &entries {
        match furthest {
            Some(f) if e.seq < f.seq => problems.push(problem(
                e.seq + 1,
                TamperKind::Truncated,
                format!(
                    "the witness {name} goes back from record {} ({}, line {}) to record {} \
                     ({}, line {}): the log was cut back to {} records and opened again",
                    f.seq, f.at, f.line, e.seq, e.at, e.line, e.seq
                ),
            )),
            Some(f) if e.seq == f.seq => {}
            _ => furthest = Some(e),
        }
    }

    // Witnessed records past the end of the log were cut, whatever the head anchor says.
    if let Some(f) = furthest.filter(|f| f.seq > end) {
        let gap = if end + 1 == f.seq {
            format!("record {} is", f.seq)
        } else {
            format!("records {}–{} are", end + 1, f.seq)
        };
        problems.push(problem(
            end + 1,
            TamperKind::Truncated,
            format!(
                "{gap} missing from the end: the witness {name} recorded record {} at {} (line \
                 {}), but the log ends at record {end}",
                f.seq, f.at, f.line
            ),
        ));
    }

    // A witnessed hash vouches for its record and, through the chain, for every one before
    // it: the first witnessed record that differs bounds where a rewrite began.
    let mut differing = entries
        .iter()
        .filter(|e| e.seq <= end)
        .filter(|e| match e.seq {
            0 => e.hash != ZERO_HASH,
            s => stored.get(&s) != Some(&e.hash),
        })
        .copied()
        .collect::<Vec<_>>();
    differing.sort_by_key(|e| (e.seq, e.line));
    if let Some(first) = differing.first() {
        let matched_before = entries
            .iter()
            .filter(|e| e.seq < first.seq && e.seq >= 1 && stored.get(&e.seq) == Some(&e.hash))
            .map(|e| e.seq)
            .max();
        let since = match matched_before {
            Some(m) => format!("after record {m}, which still matches the witness"),
            None => "at or before it".to_owned(),
        };
        let others = differing.iter().filter(|e| e.seq != first.seq).count();
        let more = match others {
            0 => String::new(),
            n => format!("; {n} later witnessed head(s) differ too"),
        };
        let (kind, what) = match stored.get(&first.seq) {
            Some(_) => (
                TamperKind::Edited,
                format!(
                    "record {} is not the record the witness {name} recorded at {} (line {}): \
                     the log was rewritten with the audit key, from a record {since}{more}",
                    first.seq, first.at, first.line
                ),
            ),
            None => (
                TamperKind::Deleted,
                format!(
                    "record {} is missing: the witness {name} recorded it at {} (line {}){more}",
                    first.seq, first.at, first.line
                ),
            ),
        };
        problems.push(problem(first.seq, kind, what));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_need_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        let key = Key::new(b"k").unwrap();
        append(&path, &key, 0, ZERO_HASH, "t0").unwrap();
        let h = "a".repeat(64);
        append(&path, &key, 100, &h, "t1").unwrap();
        assert_eq!(last(&path, &key), Some((100, h.clone())));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        let lines = parse(&text, &key);
        assert!(matches!(&lines[1], Line::Valid(e) if e.seq == 100 && e.line == 2));
        let other = Key::new(b"other").unwrap();
        assert_eq!(parse(&text, &other)[1], Line::NotAuthentic(2, 100));
        assert_eq!(last(&path, &other), None);
        assert_eq!(highest(&path, &key).unwrap().map(|e| e.seq), Some(100));
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-mounted").join("w");
        let key = Key::new(b"k").unwrap();
        let e = append(&path, &key, 0, ZERO_HASH, "t").unwrap_err();
        assert!(e.to_string().contains("not-mounted"), "{e}");
    }
}
