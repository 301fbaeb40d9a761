//! Verification: which stored records authenticate, where each one was written in the
//! chain, and what was done to the others. The rules are described in the crate docs
//! ("Verification"); the steps of [`analyse`] follow them in order.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::chain::{AnchorState, Key, ZERO_HASH};
use crate::record::{AuditRecord, at_text};

/// The result of [`AuditLog::verify`](crate::AuditLog::verify).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Records stored.
    pub records: u64,
    /// The hash of the record with the highest sequence number: publish it (with `records`)
    /// somewhere the hub cannot write to, and a later log that does not contain it was cut.
    pub head: Option<String>,
    /// Everything found, ordered by sequence number; empty for an untouched log.
    pub problems: Vec<Tampering>,
}

impl VerifyReport {
    /// No tampering found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One piece of tampering evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tampering {
    /// The record concerned: the number it is stored under, or for `Deleted` and
    /// `Truncated` the first missing number. Rows stored under a number below 1 report 0.
    pub seq: u64,
    pub kind: TamperKind,
    /// One sentence naming the record and what was found.
    pub detail: String,
}

impl fmt::Display for Tampering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// What was done to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TamperKind {
    /// A record's content, hash or chain link (or its search columns or person-index rows)
    /// no longer match what was written.
    Edited,
    /// Records are missing from the middle of the chain.
    Deleted,
    /// A record (or person-index row) that was never written by the hub.
    Inserted,
    /// Authentic records stored out of their written order, or renumbered.
    Reordered,
    /// The newest records are missing, or the head anchor cannot vouch that they are not.
    Truncated,
    /// The whole log is gone: no records and no head anchor, although the hub has history
    /// (crate docs, "A missing log").
    LogMissing,
    /// The witness file itself is damaged, forged or written with another key, so it cannot
    /// vouch for the log (crate docs, "The witness").
    Witness,
}

impl fmt::Display for TamperKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TamperKind::Edited => "edited",
            TamperKind::Deleted => "deleted",
            TamperKind::Inserted => "inserted",
            TamperKind::Reordered => "reordered",
            TamperKind::Truncated => "truncated",
            TamperKind::LogMissing => "log missing",
            TamperKind::Witness => "witness",
        })
    }
}

/// One stored row, reduced to what verification needs (the record text is kept only when
/// it does not authenticate where it is stored, so a large log verifies in bounded memory
/// per row).
pub(crate) struct RowFacts {
    seq: i64,
    prev: String,
    hash: String,
    /// The record text, kept when it does not authenticate at `seq`, to try other positions.
    unauthenticated: Option<String>,
    /// Why the record text does not parse or disagrees with its search columns.
    defect: Option<String>,
    person_ids: BTreeSet<String>,
}

/// The search columns of a row, stored next to its text.
pub(crate) struct SearchColumns {
    pub(crate) at: String,
    pub(crate) principal: String,
    pub(crate) outcome: String,
}

impl RowFacts {
    pub(crate) fn new(
        key: &Key,
        seq: i64,
        columns: &SearchColumns,
        json: String,
        prev: String,
        hash: String,
    ) -> RowFacts {
        let authentic =
            u64::try_from(seq).is_ok_and(|s| s >= 1 && key.authenticates(s, &prev, &json, &hash));
        let (defect, person_ids) = match serde_json::from_str::<AuditRecord>(&json) {
            Ok(record) => (
                column_mismatch(&record, columns),
                record.person_ids.into_iter().collect(),
            ),
            Err(e) => (
                Some(format!("its text does not parse as an audit record ({e})")),
                BTreeSet::new(),
            ),
        };
        RowFacts {
            seq,
            prev,
            hash,
            unauthenticated: (!authentic).then_some(json),
            defect,
            person_ids,
        }
    }

    /// The stored hash.
    pub(crate) fn hash(&self) -> &str {
        &self.hash
    }

    /// The stored sequence number.
    pub(crate) fn seq(&self) -> i64 {
        self.seq
    }
}

fn column_mismatch(record: &AuditRecord, columns: &SearchColumns) -> Option<String> {
    let expected = [
        ("at", at_text(&record.at), &columns.at),
        ("principal", record.principal.clone(), &columns.principal),
        (
            "outcome",
            record.outcome.as_str().to_owned(),
            &columns.outcome,
        ),
    ];
    expected
        .into_iter()
        .find(|(_, want, got)| want != *got)
        .map(|(name, want, got)| {
            format!("its search column '{name}' says '{got}' but the record says '{want}'")
        })
}

/// At most this many MACs are spent looking for the written position of records whose
/// chain predecessor is gone (deleted, then the rest renumbered): about a second.
const SEARCH_BUDGET: u64 = 500_000;

/// Unauthentic records are matched pairwise against each other's positions (to recognise
/// exchanged contents) only when there are at most this many; more means a wrong key or a
/// rewrite, where pairing explains nothing.
const PAIRING_LIMIT: usize = 64;

/// Finds the tampering in a log. `rows` must be ordered by stored sequence number, `index`
/// holds the rows of `audit_person` as (seq, person_id).
pub(crate) fn analyse(
    key: &Key,
    rows: &[RowFacts],
    index: &[(i64, String)],
    anchor: &AnchorState,
    anchor_path: &str,
) -> Vec<Tampering> {
    debug_assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq));
    let mut a = Analysis::new(key, rows, anchor, anchor_path);
    a.resolve_positions();
    let moved_from = a.match_exchanged_contents();
    a.place_authentic();
    a.place_exchanged_contents(&moved_from);
    a.place_unauthentic();
    a.report_missing();
    a.report_anchor();
    a.report_out_of_order();
    a.report_renumbered();
    a.report_row_defects();
    a.check_index(index);
    let mut problems = a.problems;
    problems.sort_by_key(|p| (p.seq, p.kind));
    problems
}

struct Analysis<'a> {
    key: &'a Key,
    rows: &'a [RowFacts],
    anchor: &'a AnchorState,
    anchor_path: &'a str,
    /// The position each row was written at, for rows that authenticate somewhere.
    written: Vec<Option<u64>>,
    /// The written position each row stands for in the log (authentic or edited).
    slot: Vec<Option<u64>>,
    /// Row standing for each written position.
    holder: BTreeMap<u64, usize>,
    /// Rows already reported.
    verdict: Vec<Option<TamperKind>>,
    /// Written positions no row stands for (deleted or truncated).
    missing: BTreeSet<u64>,
    problems: Vec<Tampering>,
}

/// A stored sequence number as a [`Tampering::seq`].
fn pos(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// "record 5" or "records 5–7".
fn records(first: u64, last: u64) -> String {
    if first == last {
        format!("record {first}")
    } else {
        format!("records {first}–{last}")
    }
}

impl<'a> Analysis<'a> {
    fn new(
        key: &'a Key,
        rows: &'a [RowFacts],
        anchor: &'a AnchorState,
        anchor_path: &'a str,
    ) -> Analysis<'a> {
        let written = rows
            .iter()
            .map(|r| r.unauthenticated.is_none().then(|| pos(r.seq)))
            .collect();
        Analysis {
            key,
            rows,
            anchor,
            anchor_path,
            written,
            slot: vec![None; rows.len()],
            holder: BTreeMap::new(),
            verdict: vec![None; rows.len()],
            missing: BTreeSet::new(),
            problems: Vec::new(),
        }
    }

    fn authenticates_at(&self, i: usize, seq: u64) -> bool {
        let r = &self.rows[i];
        r.unauthenticated
            .as_deref()
            .is_some_and(|json| self.key.authenticates(seq, &r.prev, json, &r.hash))
    }

    fn flag(&mut self, i: usize, kind: TamperKind, detail: String) {
        self.verdict[i] = Some(kind);
        self.problems.push(Tampering {
            seq: pos(self.rows[i].seq),
            kind,
            detail,
        });
    }

    fn take(&mut self, i: usize, slot: u64) {
        self.slot[i] = Some(slot);
        self.holder.insert(slot, i);
    }

    fn any_authentic(&self) -> bool {
        self.written.iter().any(Option::is_some)
    }

    /// Step 1: the written position of every record that authenticates somewhere. A record
    /// authenticates at its stored number, or its MAC verifies one past the written
    /// position of the record its `prev_hash` names (following the chain from the first
    /// record and from every record authentic in place), or, when its predecessor is gone,
    /// at the nearest number to its stored one that makes its MAC verify.
    fn resolve_positions(&mut self) {
        let rows = self.rows;
        let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            children.entry(r.prev.as_str()).or_default().push(i);
        }
        let mut queue: Vec<usize> = (0..rows.len())
            .filter(|&i| self.written[i].is_some())
            .collect();
        for &i in children.get(ZERO_HASH).into_iter().flatten() {
            if self.written[i].is_none() && self.authenticates_at(i, 1) {
                self.written[i] = Some(1);
                queue.push(i);
            }
        }
        self.propagate(&children, &mut queue);
        if !self.any_authentic() {
            // Nothing authenticates (wrong key or a rewrite): searching explains nothing.
            return;
        }
        let by_hash: HashMap<&str, usize> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.hash.as_str(), i))
            .collect();
        let top = rows.last().map_or(0, |r| pos(r.seq));
        let upper = top.max(self.anchor.hint().map_or(0, |a| a.seq)) + rows.len() as u64;
        let mut budget = SEARCH_BUDGET;
        for (i, row) in rows.iter().enumerate() {
            let predecessor_placed = by_hash
                .get(row.prev.as_str())
                .is_some_and(|&p| self.written[p].is_some());
            if self.written[i].is_some() || row.prev == ZERO_HASH || predecessor_placed {
                continue;
            }
            if let Some(seq) = self.search_position(i, upper, &mut budget) {
                self.written[i] = Some(seq);
                queue.push(i);
                self.propagate(&children, &mut queue);
            }
        }
    }

    /// Places the chain successors of the queued rows.
    fn propagate(&mut self, children: &HashMap<&str, Vec<usize>>, queue: &mut Vec<usize>) {
        while let Some(i) = queue.pop() {
            let Some(seq) = self.written[i] else { continue };
            let Some(kids) = children.get(self.rows[i].hash.as_str()) else {
                continue;
            };
            for &c in kids {
                if self.written[c].is_none() && self.authenticates_at(c, seq + 1) {
                    self.written[c] = Some(seq + 1);
                    queue.push(c);
                }
            }
        }
    }

    /// The number in `1..=upper` nearest to row `i`'s stored one at which it authenticates.
    fn search_position(&self, i: usize, upper: u64, budget: &mut u64) -> Option<u64> {
        let start = pos(self.rows[i].seq).clamp(1, upper.max(1));
        for distance in 0..upper {
            let above = start.checked_add(distance).filter(|&s| s <= upper);
            let below = start
                .checked_sub(distance)
                .filter(|&s| s >= 1 && distance > 0);
            if above.is_none() && below.is_none() {
                break;
            }
            for seq in above.into_iter().chain(below) {
                if *budget == 0 {
                    return None;
                }
                *budget -= 1;
                if self.authenticates_at(i, seq) {
                    return Some(seq);
                }
            }
        }
        None
    }

    /// Step 2: for unauthentic rows, whether their text authenticates at another
    /// unauthentic row's position (with that row's number, prev_hash and hash): the
    /// contents of rows were exchanged or copied.
    fn match_exchanged_contents(&self) -> Vec<Option<usize>> {
        let unauthentic: Vec<usize> = (0..self.rows.len())
            .filter(|&i| self.written[i].is_none())
            .collect();
        let mut moved_from = vec![None; self.rows.len()];
        if unauthentic.len() > PAIRING_LIMIT {
            return moved_from;
        }
        for &i in &unauthentic {
            let Some(json) = self.rows[i].unauthenticated.as_deref() else {
                continue;
            };
            moved_from[i] = unauthentic.iter().copied().find(|&j| {
                let other = &self.rows[j];
                j != i
                    && u64::try_from(other.seq).is_ok_and(|s| {
                        s >= 1 && self.key.authenticates(s, &other.prev, json, &other.hash)
                    })
            });
        }
        moved_from
    }

    /// Step 3: authentic rows stand for the position they were written at; a second row
    /// written at the same position is a copy (the one stored at its own number wins), and
    /// one that does not follow its authentic predecessor came from another log.
    fn place_authentic(&mut self) {
        let rows = self.rows;
        let mut authentic: Vec<(u64, usize)> = self
            .written
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.map(|w| (w, i)))
            .collect();
        authentic.sort_by_key(|&(w, i)| (w, pos(rows[i].seq) != w, rows[i].seq));
        for (w, i) in authentic {
            match self.holder.get(&w) {
                Some(&k) => self.flag(
                    i,
                    TamperKind::Inserted,
                    format!(
                        "record {} was inserted: it is a copy of record {w} (stored as {})",
                        rows[i].seq, rows[k].seq
                    ),
                ),
                None => self.take(i, w),
            }
        }
        let unlinked: Vec<(u64, usize)> = self
            .holder
            .iter()
            .filter(|&(&w, &i)| {
                w > 1
                    && self
                        .holder
                        .get(&(w - 1))
                        .is_some_and(|&p| rows[p].hash != rows[i].prev)
            })
            .map(|(&w, &i)| (w, i))
            .collect();
        for (w, i) in unlinked {
            self.flag(
                i,
                TamperKind::Edited,
                format!(
                    "record {} was replaced: it authenticates but does not follow record {} \
                     in the chain, so it was copied from another log written with the same key",
                    rows[i].seq,
                    w - 1
                ),
            );
        }
    }

    /// Step 4: rows holding the text written for another unauthentic row's position.
    fn place_exchanged_contents(&mut self, moved_from: &[Option<usize>]) {
        let rows = self.rows;
        for (i, from) in moved_from.iter().enumerate() {
            let Some(j) = *from else { continue };
            let (s, t) = (rows[i].seq, rows[j].seq);
            if moved_from[j] == Some(i) {
                self.flag(
                    i,
                    TamperKind::Reordered,
                    format!(
                        "record {s} is out of order: it holds the content written as record {t} \
                         (the contents of records {s} and {t} were exchanged)"
                    ),
                );
            } else {
                self.flag(
                    i,
                    TamperKind::Edited,
                    format!("record {s} was edited: it holds a copy of the content of record {t}"),
                );
            }
            let slot = pos(s);
            if slot >= 1 && !self.holder.contains_key(&slot) {
                self.take(i, slot);
            }
        }
    }

    /// Step 5: an unauthentic row is an edited record when the chain vouches for its place
    /// (an authentic record's prev_hash, or the head anchor, names its hash), or when it
    /// stands at a number no record holds, inside the log (or, with no anchor, linked to
    /// its stored predecessor). Otherwise it was inserted.
    fn place_unauthentic(&mut self) {
        let rows = self.rows;
        let authentic_hashes: HashSet<&str> = self
            .holder
            .values()
            .filter(|&&i| self.written[i].is_some())
            .map(|&i| rows[i].hash.as_str())
            .collect();
        let successor: HashMap<&str, u64> = self
            .holder
            .iter()
            .filter(|&(_, &i)| self.written[i].is_some())
            .map(|(&w, &i)| (rows[i].prev.as_str(), w))
            .collect();
        let pending = |a: &Self, i: usize| a.written[i].is_none() && a.verdict[i].is_none();
        for (i, row) in rows.iter().enumerate() {
            let hash = row.hash.as_str();
            if !pending(self, i) || authentic_hashes.contains(hash) {
                continue;
            }
            let vouched = successor
                .get(hash)
                .map(|&w| w - 1)
                .or_else(|| self.anchor.hint().filter(|a| a.hash == hash).map(|a| a.seq))
                .filter(|&w| w >= 1 && !self.holder.contains_key(&w));
            if let Some(w) = vouched {
                self.take(i, w);
                let detail = self.edited_detail(i, w);
                self.flag(i, TamperKind::Edited, detail);
            }
        }
        let end = self
            .holder
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(self.anchor.hint().map_or(0, |a| a.seq));
        let by_seq: HashMap<i64, usize> =
            rows.iter().enumerate().map(|(i, r)| (r.seq, i)).collect();
        for i in 0..rows.len() {
            if !pending(self, i) {
                continue;
            }
            let s = rows[i].seq;
            let linked_in_place = (s == 1 && rows[i].prev == ZERO_HASH)
                || by_seq
                    .get(&(s - 1))
                    .is_some_and(|&p| rows[p].hash == rows[i].prev);
            let free = s >= 1 && !self.holder.contains_key(&pos(s));
            // Past an anchored end nothing was written, so a row there was inserted even if
            // it names the real tail; without an anchor the link is the only hint.
            let unanchored_link = self.anchor.hint().is_none() && linked_in_place;
            if free && (pos(s) <= end || unanchored_link) {
                self.take(i, pos(s));
                let detail = self.edited_detail(i, pos(s));
                self.flag(i, TamperKind::Edited, detail);
            } else {
                let mut detail = format!(
                    "record {s} was inserted: it does not authenticate and has no place in the chain"
                );
                if let Some(&k) = self.holder.get(&pos(s)).filter(|_| s >= 1) {
                    detail.push_str(&format!(
                        " (the original record {s} is now stored as {})",
                        rows[k].seq
                    ));
                }
                self.flag(i, TamperKind::Inserted, detail);
            }
        }
    }

    fn edited_detail(&self, i: usize, slot: u64) -> String {
        let s = self.rows[i].seq;
        let mut detail = format!(
            "record {s} was edited: it does not match its MAC (its content, hash or chain link \
             changed after it was written)"
        );
        if pos(s) != slot {
            detail.push_str(&format!(" and it stands where record {slot} was written"));
        }
        if !self.any_authentic() {
            detail.push_str(
                "; no record authenticates with this key, so unless the whole log was rewritten \
                 the key is wrong",
            );
        }
        detail
    }

    /// Step 6: written positions below the highest one that no row stands for.
    fn report_missing(&mut self) {
        let last = self.holder.keys().next_back().copied().unwrap_or(0);
        let mut w = 1;
        while w < last {
            if self.holder.contains_key(&w) {
                w += 1;
                continue;
            }
            let first = w;
            while !self.holder.contains_key(&w) {
                w += 1;
            }
            let gap = records(first, w - 1);
            let verb = if first == w - 1 { "is" } else { "are" };
            let detail = if first == 1 {
                format!("{gap} {verb} missing: the chain starts at record {w}")
            } else {
                format!(
                    "{gap} {verb} missing: the chain has no record between {} and {w}",
                    first - 1
                )
            };
            self.missing.extend(first..w);
            self.problems.push(Tampering {
                seq: first,
                kind: TamperKind::Deleted,
                detail,
            });
        }
    }

    /// Step 7: the head anchor against the newest record.
    fn report_anchor(&mut self) {
        let last = self.holder.keys().next_back().copied().unwrap_or(0);
        let path = self.anchor_path;
        let unknown = format!("records after {last} may have been removed without a trace");
        let problem = match self.anchor {
            AnchorState::Missing if self.rows.is_empty() => None,
            AnchorState::Missing => Some((
                last + 1,
                format!("{unknown}: the head anchor {path} is missing"),
            )),
            AnchorState::Unreadable(reason) => Some((
                last + 1,
                format!("{unknown}: the head anchor {path} is unreadable ({reason})"),
            )),
            AnchorState::NotAuthentic(_) => Some((
                last + 1,
                format!(
                    "{unknown}: the head anchor {path} does not authenticate with this key (it \
                     was rewritten, or the key is wrong)"
                ),
            )),
            AnchorState::Valid(a) if a.seq > last => {
                self.missing.extend(last + 1..=a.seq);
                let gap = records(last + 1, a.seq);
                let verb = if last + 1 == a.seq { "is" } else { "are" };
                Some((
                    last + 1,
                    format!(
                        "{gap} {verb} missing from the end: the head anchor {path} says the log \
                         ended at record {}",
                        a.seq
                    ),
                ))
            }
            AnchorState::Valid(a) => self
                .holder
                .get(&a.seq)
                .filter(|&&i| self.written[i].is_some() && self.rows[i].hash != a.hash)
                .map(|_| {
                    (
                        a.seq,
                        format!(
                            "record {} is not the record the head anchor {path} recorded: the log \
                             was cut back and rewritten from there",
                            a.seq
                        ),
                    )
                }),
        };
        if let Some((seq, detail)) = problem {
            self.problems.push(Tampering {
                seq,
                kind: TamperKind::Truncated,
                detail,
            });
        }
    }

    /// Authentic rows not yet reported, in stored order, with their written position.
    fn unreported_authentic(&self) -> Vec<(usize, u64)> {
        (0..self.rows.len())
            .filter(|&i| self.verdict[i].is_none())
            .filter_map(|i| self.written[i].map(|w| (i, w)))
            .collect()
    }

    /// Step 8: an authentic record out of written order with respect to another one, and
    /// not stored at its own number, was moved.
    fn report_out_of_order(&mut self) {
        let placed = self.unreported_authentic();
        let mut max_before = Vec::with_capacity(placed.len());
        let mut max = 0;
        for &(_, w) in &placed {
            max_before.push(max);
            max = max.max(w);
        }
        let mut min_after = vec![u64::MAX; placed.len()];
        let mut min = u64::MAX;
        for (k, &(_, w)) in placed.iter().enumerate().rev() {
            min_after[k] = min;
            min = min.min(w);
        }
        for (k, &(i, w)) in placed.iter().enumerate() {
            let s = self.rows[i].seq;
            if (max_before[k] > w || min_after[k] < w) && pos(s) != w {
                self.flag(
                    i,
                    TamperKind::Reordered,
                    format!(
                        "record {s} is out of order: it was written as record {w} (records were \
                         exchanged or moved)"
                    ),
                );
            }
        }
    }

    /// Step 9: runs of authentic records stored under numbers other than their own, by a
    /// shift that the insertions and deletions before them do not explain, were renumbered.
    fn report_renumbered(&mut self) {
        let shifted: Vec<(usize, u64)> = self
            .unreported_authentic()
            .into_iter()
            .filter(|&(i, w)| pos(self.rows[i].seq) != w)
            .collect();
        let offset = |(i, w): (usize, u64)| self.rows[i].seq - w as i64;
        let mut runs: Vec<Vec<(usize, u64)>> = Vec::new();
        for &(i, w) in &shifted {
            match runs.last_mut() {
                Some(run)
                    if run
                        .last()
                        .is_some_and(|&p| p.1 + 1 == w && offset(p) == offset((i, w))) =>
                {
                    run.push((i, w));
                }
                _ => runs.push(vec![(i, w)]),
            }
        }
        for run in runs {
            let (Some(&(i1, w1)), Some(&(i2, w2))) = (run.first(), run.last()) else {
                continue;
            };
            let (s1, s2) = (self.rows[i1].seq, self.rows[i2].seq);
            let inserted = (0..self.rows.len())
                .filter(|&k| self.verdict[k] == Some(TamperKind::Inserted) && self.rows[k].seq < s1)
                .count() as i64;
            let deleted = self.missing.range(..w1).count() as i64;
            if offset((i1, w1)) == inserted - deleted {
                continue;
            }
            for &(i, _) in &run {
                self.verdict[i] = Some(TamperKind::Reordered);
            }
            let stored = if s1 == s2 {
                format!("stored as {s1}")
            } else {
                format!("stored as {s1}–{s2}")
            };
            let verb = if w1 == w2 { "was" } else { "were" };
            self.problems.push(Tampering {
                seq: pos(s1),
                kind: TamperKind::Reordered,
                detail: format!("{} {verb} renumbered: {stored}", records(w1, w2)),
            });
        }
    }

    /// Step 10: a row whose text disagrees with its search columns (or does not parse).
    fn report_row_defects(&mut self) {
        for i in 0..self.rows.len() {
            if self.verdict[i].is_some() {
                continue;
            }
            if let Some(defect) = &self.rows[i].defect {
                let detail = format!("record {} was edited: {defect}", self.rows[i].seq);
                self.flag(i, TamperKind::Edited, detail);
            }
        }
    }

    /// Step 11: the person index against the records. An index row is backed when the
    /// record stored under its number, or the record written at that number, names the
    /// person; index rows of reported or missing records are not checked again.
    fn check_index(&mut self, index: &[(i64, String)]) {
        let rows = self.rows;
        let by_seq: HashMap<i64, usize> =
            rows.iter().enumerate().map(|(i, r)| (r.seq, i)).collect();
        let mut reported: HashSet<i64> = HashSet::new();
        for (i, r) in rows.iter().enumerate() {
            if self.verdict[i].is_some() {
                reported.insert(r.seq);
                if let Some(w) = self.slot[i] {
                    reported.insert(w as i64);
                }
            }
        }
        let names = |i: Option<&usize>, person: &str| {
            i.is_some_and(|&i| rows[i].person_ids.contains(person))
        };
        let entries: HashSet<(i64, &str)> = index.iter().map(|(s, p)| (*s, p.as_str())).collect();
        let mut unbacked: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for (s, person) in index {
            if reported.contains(s) || (*s >= 1 && self.missing.contains(&pos(*s))) {
                continue;
            }
            let written = u64::try_from(*s).ok().and_then(|w| self.holder.get(&w));
            if !names(by_seq.get(s), person) && !names(written, person) {
                unbacked.entry(*s).or_default().push(person);
            }
        }
        let mut unindexed: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
        for (i, r) in rows.iter().enumerate() {
            if self.verdict[i].is_some() {
                continue;
            }
            for person in &r.person_ids {
                let at_written =
                    self.slot[i].is_some_and(|w| entries.contains(&(w as i64, person)));
                if !entries.contains(&(r.seq, person.as_str())) && !at_written {
                    unindexed.entry(r.seq).or_default().push(person);
                }
            }
        }
        let persons = |p: &[&str]| match p {
            [one] => format!("person {one}"),
            [first, rest @ ..] => format!("person {first} (and {} more)", rest.len()),
            [] => String::new(),
        };
        for (s, people) in unbacked {
            let exists = by_seq.contains_key(&s) || self.holder.contains_key(&pos(s));
            let (kind, detail) = if exists {
                (
                    TamperKind::Edited,
                    format!(
                        "record {s}'s person index was edited: it names {}, whom the record does \
                         not list",
                        persons(&people)
                    ),
                )
            } else {
                (
                    TamperKind::Inserted,
                    format!(
                        "record {s} does not exist, but the person index was given entries for it \
                         ({})",
                        persons(&people)
                    ),
                )
            };
            self.problems.push(Tampering {
                seq: pos(s),
                kind,
                detail,
            });
        }
        for (s, people) in unindexed {
            self.problems.push(Tampering {
                seq: pos(s),
                kind: TamperKind::Edited,
                detail: format!(
                    "record {s}'s person index was edited: it lacks {}, so a search for them \
                     would miss the record",
                    persons(&people)
                ),
            });
        }
    }
}
