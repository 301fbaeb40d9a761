//! The log: its SQLite database, appends, search and verification.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params, params_from_iter,
};

use crate::chain::{self, AnchorState, Key, ZERO_HASH};
use crate::error::{AuditError, Result};
use crate::record::{AuditFilter, AuditRecord, StoredRecord, at_text};
use crate::verify::{self, RowFacts, SearchColumns, TamperKind, Tampering, VerifyReport};
use crate::witness;

/// Bumped when the tables change; a newer database is refused rather than misread.
const SCHEMA_VERSION: i64 = 1;

/// `record` is the canonical JSON the MAC covers; `at`, `principal` and `outcome` repeat
/// fields of it for search (verification checks they agree). The triggers stop accidental
/// edits (a stray `UPDATE` in a SQLite shell); a deliberate attacker drops them, and the
/// chain is what catches that.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    principal TEXT NOT NULL,
    outcome TEXT NOT NULL,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
CREATE INDEX IF NOT EXISTS audit_log_principal ON audit_log (principal, at);
CREATE TABLE IF NOT EXISTS audit_person (
    person_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (person_id, seq)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_person_no_update BEFORE UPDATE ON audit_person
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_person_no_delete BEFORE DELETE ON audit_person
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// How [`AuditLog::open_with`] opens a log: its witness, and what the caller knows of the
/// hub's history. `AuditOptions::default()` is what [`AuditLog::open`] uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditOptions {
    /// The witness file (crate docs, "The witness"): the chain head is appended to it when
    /// the log opens and every [`witness_every`](Self::witness_every) records.
    pub witness: Option<PathBuf>,
    /// Witness the head every this many records; 0 means
    /// [`DEFAULT_WITNESS_EVERY`](Self::DEFAULT_WITNESS_EVERY).
    pub witness_every: u64,
    /// Why the hub must already have an audit log (for example "the policy store has 3
    /// versions"), or `None` for a hub that may be new. With a reason, a log without records
    /// and without head anchor is a missing log, not a new one (crate docs, "A missing log").
    pub history: Option<String>,
}

impl AuditOptions {
    /// Records between witness entries when [`witness_every`](Self::witness_every) is 0.
    pub const DEFAULT_WITNESS_EVERY: u64 = 100;
}

/// The tamper-evident audit log: an SQLite database plus its head anchor file
/// (`<path>.head`), and optionally a witness file elsewhere. See the crate docs for the
/// chain and what verification can prove.
///
/// `Send + Sync`: appends and searches share one connection behind a mutex; verification
/// reads through its own connection, so it does not hold up appends.
pub struct AuditLog {
    path: PathBuf,
    anchor_path: PathBuf,
    key: Key,
    conn: Mutex<Connection>,
    witness: Option<PathBuf>,
    witness_every: u64,
    /// Why the hub must have had a log before (from the options, or from the witness).
    history: Option<String>,
    /// Opened by [`AuditLog::without_key`]: every operation fails.
    keyless: bool,
    /// The record appended with [`AuditLog::append_deferred`] whose WAL frames are not yet
    /// fsynced and which the anchor does not name yet: (seq, hash). At most one; taken
    /// while holding `conn`.
    deferred: Mutex<Option<(u64, String)>>,
}

impl Drop for AuditLog {
    /// A record waiting for its sync is made durable when the log is closed.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!("cannot sync the audit log's last record: {e}");
        }
    }
}

impl fmt::Debug for AuditLog {
    /// Shows the files, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("anchor_path", &self.anchor_path)
            .field("witness", &self.witness)
            .finish_non_exhaustive()
    }
}

/// A row of `audit_person`: (seq, person_id).
type IndexRow = (i64, String);

/// The newest row, as `append` needs it.
struct Tail {
    seq: i64,
    prev: String,
    hash: String,
    json: String,
}

impl AuditLog {
    /// Opens the log at `path` (an SQLite file), creating it and its directory if needed.
    /// `key` is the secret of the keyed chain (HMAC-SHA256); it must not be empty.
    ///
    /// Opening does not check the chain: a log opened with the wrong key still opens, so
    /// that [`verify`](Self::verify) can say so, but [`append`](Self::append) refuses.
    ///
    /// A new log (no records, no head anchor) gets a head anchor for "no records yet", so
    /// that from then on an empty log without anchor can only be a removed one. Use
    /// [`open_with`](Self::open_with) for a witness, or when the hub is known to have
    /// history.
    pub fn open(path: &Path, key: &[u8]) -> Result<Self> {
        Self::open_with(path, key, &AuditOptions::default())
    }

    /// [`open`](Self::open) with a witness and what is known of the hub's history.
    ///
    /// - With a witness, the current head is appended to it (unless its last entry is that
    ///   head already); a witness that cannot be written fails the open
    ///   ([`AuditError::Witness`]).
    /// - A log without records and without head anchor is *missing* when
    ///   [`AuditOptions::history`] gives a reason or the witness holds an entry past record
    ///   0: it is not anchored as new, [`verify`](Self::verify) reports
    ///   [`TamperKind::LogMissing`](crate::TamperKind::LogMissing) and
    ///   [`append`](Self::append) refuses until
    ///   [`acknowledge_missing`](Self::acknowledge_missing) records the loss.
    pub fn open_with(path: &Path, key: &[u8], options: &AuditOptions) -> Result<Self> {
        let shown = path.display().to_string();
        let key = Key::new(key).ok_or_else(|| AuditError::EmptyKey {
            path: shown.clone(),
        })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| AuditError::Dir {
                path: shown.clone(),
                source,
            })?;
        }
        let store = |source| AuditError::Store {
            path: shown.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(store)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(store)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(store)?;
        if version > SCHEMA_VERSION {
            return Err(AuditError::Version {
                path: shown,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        // WAL: readers (search, verify) do not block the writer. FULL: in WAL mode this
        // fsyncs the WAL at every commit, so a returned append survives a power loss.
        let _mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(store)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(store)?;
        conn.execute_batch(SCHEMA).map_err(store)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(store)?;
        let mut anchor = path.as_os_str().to_owned();
        anchor.push(".head");
        let mut log = AuditLog {
            path: path.to_owned(),
            anchor_path: PathBuf::from(anchor),
            key,
            conn: Mutex::new(conn),
            witness: options.witness.clone(),
            witness_every: match options.witness_every {
                0 => AuditOptions::DEFAULT_WITNESS_EVERY,
                n => n,
            },
            history: options.history.clone(),
            keyless: false,
            deferred: Mutex::new(None),
        };
        log.start()?;
        Ok(log)
    }

    /// A log for a hub without audit key (allowed only for a hub without principals, which
    /// runs no audited action): it touches no file, and appending, searching and verifying
    /// fail with [`AuditError::NoKey`] — nothing is ever recorded and silently lost.
    pub fn without_key(path: &Path) -> Result<Self> {
        let mut anchor = path.as_os_str().to_owned();
        anchor.push(".head");
        let conn = Connection::open_in_memory().map_err(|source| AuditError::Store {
            path: path.display().to_string(),
            source,
        })?;
        Ok(AuditLog {
            path: path.to_owned(),
            anchor_path: PathBuf::from(anchor),
            key: Key::new(b"unused: every operation is refused").expect("the key is not empty"),
            conn: Mutex::new(conn),
            witness: None,
            witness_every: AuditOptions::DEFAULT_WITNESS_EVERY,
            history: None,
            keyless: true,
            deferred: Mutex::new(None),
        })
    }

    /// Fails for a log opened [`without_key`](Self::without_key).
    fn keyed(&self) -> Result<()> {
        if self.keyless {
            return Err(AuditError::NoKey { path: self.shown() });
        }
        Ok(())
    }

    /// At open: tell a new log from a missing one, anchor a new one, witness the head.
    fn start(&mut self) -> Result<()> {
        let head = self.head()?;
        let anchor = chain::read_anchor(&self.anchor_path, &self.key)?;
        if head.is_none() && anchor == AnchorState::Missing {
            if self.history.is_none()
                && let Some(w) = &self.witness
            {
                let highest =
                    witness::highest(w, &self.key).map_err(|source| AuditError::Witness {
                        path: w.display().to_string(),
                        source,
                    })?;
                self.history = highest.filter(|e| e.seq > 0).map(|e| {
                    format!(
                        "the witness {} recorded record {} at {}",
                        w.display(),
                        e.seq,
                        e.at
                    )
                });
            }
            if self.history.is_none() {
                chain::write_anchor(&self.anchor_path, &self.key, 0, ZERO_HASH).map_err(
                    |source| AuditError::AnchorWrite {
                        path: self.anchor_path.display().to_string(),
                        seq: 0,
                        source,
                    },
                )?;
            }
        }
        if let Some(w) = &self.witness {
            let (seq, hash) = head.unwrap_or((0, ZERO_HASH.to_owned()));
            if witness::last(w, &self.key).as_ref() != Some(&(seq, hash.clone())) {
                self.witness_head(seq, &hash)
                    .map_err(|source| AuditError::Witness {
                        path: w.display().to_string(),
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// The stored number and hash of the newest row, if any.
    fn head(&self) -> Result<Option<(u64, String)>> {
        self.lock()
            .query_row(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((pos(r.get(0)?), text(r, 1)?)),
            )
            .optional()
            .map_err(|e| self.store(e))
    }

    /// Appends (`seq`, `hash`) to the witness, if there is one.
    fn witness_head(&self, seq: u64, hash: &str) -> std::io::Result<()> {
        match &self.witness {
            Some(w) => witness::append(w, &self.key, seq, hash, &at_text(&chrono::Utc::now())),
            None => Ok(()),
        }
    }

    /// The witness file, if the log has one.
    pub fn witness_path(&self) -> Option<&Path> {
        self.witness.as_deref()
    }

    /// Why the log should hold records although it has none and no head anchor: `Some`
    /// while the log is missing (see [`open_with`](Self::open_with)).
    pub fn missing(&self) -> Result<Option<String>> {
        self.keyed()?;
        let Some(history) = &self.history else {
            return Ok(None);
        };
        let anchor = chain::read_anchor(&self.anchor_path, &self.key)?;
        Ok((anchor == AnchorState::Missing && self.head()?.is_none()).then(|| history.clone()))
    }

    /// The log database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The head anchor file, `<path>.head`.
    pub fn anchor_path(&self) -> &Path {
        &self.anchor_path
    }

    /// Appends one record and returns its sequence number (1, 2, …). When this returns, the
    /// record is committed and fsynced, and the head anchor names it.
    ///
    /// Fails closed: if the newest record does not authenticate with the key, or the head
    /// anchor shows records were removed or rewritten, nothing is appended
    /// ([`AuditError::Refused`]) — a chain must not be continued from a forged or cut tail.
    ///
    /// Cost: one SQLite commit (an fsync of the WAL) plus the anchor overwritten in place and
    /// fdatasynced, so appends run at the disk's sync rate, not the CPU's; the ignored test
    /// `append_throughput` prints the rate.
    pub fn append(&self, record: &AuditRecord) -> Result<u64> {
        self.append_inner(record, false, true)
    }

    /// Appends one record that may wait for its sync: committed (every reader sees it, and
    /// it survives the process), but its WAL frames are fsynced, and the head anchor moved
    /// to it, by the next [`append`](Self::append), [`flush`](Self::flush) or the log's
    /// drop. For the closing record of a query, whose start record is durable already: a
    /// power loss before the next sync leaves "started, not finished", as a hub dying
    /// mid-answer does. At most one record waits: a second deferred append while one waits
    /// is made durable, with the first.
    pub fn append_deferred(&self, record: &AuditRecord) -> Result<u64> {
        self.append_inner(record, false, false)
    }

    /// Makes a record appended with [`append_deferred`](Self::append_deferred) durable:
    /// fsyncs the WAL and moves the head anchor to it. Nothing when none waits.
    pub fn flush(&self) -> Result<()> {
        let _conn = self.lock();
        let waiting = self.take_deferred();
        let Some((seq, hash)) = waiting else {
            return Ok(());
        };
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        // The WAL holds the record's frames unless a checkpoint has moved them into the
        // database, which that checkpoint synced; fsyncing what is there covers both.
        if let Ok(file) = std::fs::File::open(&wal) {
            file.sync_data().map_err(|source| AuditError::Sync {
                path: PathBuf::from(wal).display().to_string(),
                seq,
                source,
            })?;
        }
        self.anchor(seq, &hash, self.witness_due(seq))
    }

    fn take_deferred(&self) -> Option<(u64, String)> {
        self.deferred
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Appends `record` as record 1 of a log that is *missing* (see
    /// [`open_with`](Self::open_with)): the operator's acknowledgement that the earlier log
    /// is lost, which lets appends resume. The record should say who acknowledged it and
    /// why. Refused when the log is not missing. The head is witnessed at once, so the
    /// witness shows where the log restarted.
    pub fn acknowledge_missing(&self, record: &AuditRecord) -> Result<u64> {
        if self.missing()?.is_none() {
            return Err(AuditError::Refused {
                path: self.shown(),
                reason: "the log is not missing, so there is no loss to acknowledge".into(),
            });
        }
        self.append_inner(record, true, true)
    }

    fn append_inner(
        &self,
        record: &AuditRecord,
        acknowledging: bool,
        durable: bool,
    ) -> Result<u64> {
        self.keyed()?;
        let json = serde_json::to_string(record).map_err(|source| AuditError::Encode {
            path: self.shown(),
            source,
        })?;
        // The lock is held until the anchor is written, so this log's anchors only move
        // forward.
        let mut conn = self.lock();
        let waiting = self.take_deferred();
        // One record waits for its sync at most: with one waiting, this append syncs both.
        let durable = durable || waiting.is_some();
        // NORMAL: in WAL mode the commit writes its frames without fsyncing them.
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })
            .map_err(|e| self.store(e))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.store(e))?;
        let tail = tx
            .query_row(
                "SELECT seq, prev_hash, hash, record FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| {
                    Ok(Tail {
                        seq: r.get(0)?,
                        prev: text(r, 1)?,
                        hash: text(r, 2)?,
                        json: text(r, 3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.store(e))?;
        self.check_continuation(&tx, tail.as_ref(), acknowledging)?;
        let (seq, prev) = match tail {
            Some(t) => (t.seq + 1, t.hash),
            None => (1, ZERO_HASH.to_owned()),
        };
        // `check_continuation` refused tails numbered below 1.
        let seq_u = seq as u64;
        let hash = self.key.record_hash(seq_u, &prev, &json);
        tx.execute(
            "INSERT INTO audit_log (seq, at, principal, outcome, record, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                seq,
                at_text(&record.at),
                record.principal,
                record.outcome.as_str(),
                json,
                prev,
                hash
            ],
        )
        .map_err(|e| self.store(e))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO audit_person (person_id, seq) VALUES (?1, ?2)",
                )
                .map_err(|e| self.store(e))?;
            for person in &record.person_ids {
                insert
                    .execute(params![person, seq])
                    .map_err(|e| self.store(e))?;
            }
        }
        tx.commit().map_err(|e| self.store(e))?;
        if !durable {
            // The anchor must never be ahead of what is on disk: it moves at the next sync.
            *self.deferred.lock().unwrap_or_else(PoisonError::into_inner) = Some((seq_u, hash));
            return Ok(seq_u);
        }
        // A witness entry falls due at every `witness_every`-th record, or at the one that
        // waited for this sync.
        let witness_due = acknowledging
            || self.witness_due(seq_u)
            || waiting.as_ref().is_some_and(|(s, _)| self.witness_due(*s));
        self.anchor(seq_u, &hash, witness_due)?;
        Ok(seq_u)
    }

    /// Whether record `seq` is one the witness records (every `witness_every`-th).
    fn witness_due(&self, seq: u64) -> bool {
        seq.is_multiple_of(self.witness_every)
    }

    /// Moves the head anchor to record `seq` (whose commit is synced) and, when
    /// `witness_due`, appends it to the witness.
    fn anchor(&self, seq: u64, hash: &str, witness_due: bool) -> Result<()> {
        chain::write_anchor(&self.anchor_path, &self.key, seq, hash).map_err(|source| {
            AuditError::AnchorWrite {
                path: self.anchor_path.display().to_string(),
                seq,
                source,
            }
        })?;
        if self.witness.is_some() && witness_due {
            self.witness_head(seq, hash)
                .map_err(|source| AuditError::WitnessWrite {
                    path: self
                        .witness
                        .as_ref()
                        .map(|w| w.display().to_string())
                        .unwrap_or_default(),
                    seq,
                    source,
                })?;
        }
        Ok(())
    }

    /// Whether a new record may follow `tail` (see [`append`](Self::append)).
    fn check_continuation(
        &self,
        conn: &Connection,
        tail: Option<&Tail>,
        acknowledging: bool,
    ) -> Result<()> {
        let anchor = chain::read_anchor(&self.anchor_path, &self.key)?;
        let anchor_path = self.anchor_path.display();
        let evidence = "run the audit verification, keep the log and its anchor as evidence \
                        and start a new log at another path";
        let empty_anchor = |a: &chain::Anchor| a.seq == 0 && a.hash == ZERO_HASH;
        let reason = match (tail, &anchor) {
            (None, AnchorState::Missing) => match &self.history {
                None => return Ok(()),
                Some(_) if acknowledging => return Ok(()),
                Some(history) => format!(
                    "the audit log is missing: it has no records and no head anchor, but \
                     {history}, so it was removed or replaced; keep the state directory as \
                     evidence, and acknowledge the loss (`gridhub audit acknowledge-missing`) \
                     to start a new log"
                ),
            },
            _ if acknowledging => "the log is not missing".to_owned(),
            // New, or the first append was interrupted before its anchor write.
            (None, AnchorState::Valid(a)) if empty_anchor(a) => return Ok(()),
            (Some(t), AnchorState::Valid(a))
                if empty_anchor(a)
                    && t.seq == 1
                    && self.key.authenticates(1, &t.prev, &t.json, &t.hash) =>
            {
                return Ok(());
            }
            (None, _) => format!(
                "the log is empty but its head anchor {anchor_path} exists: the log was \
                 truncated or replaced; {evidence}"
            ),
            (Some(t), _)
                if !u64::try_from(t.seq).is_ok_and(|s| {
                    s >= 1 && self.key.authenticates(s, &t.prev, &t.json, &t.hash)
                }) =>
            {
                format!(
                    "the newest record ({}) does not authenticate with the configured audit key: \
                     the key changed (configure the previous one) or the record was tampered \
                     with ({evidence})",
                    t.seq
                )
            }
            // The process stopped between the first commit and the first anchor write.
            (Some(t), AnchorState::Missing) if t.seq == 1 => return Ok(()),
            (Some(_), AnchorState::Missing) => format!(
                "the head anchor {anchor_path} is missing, so removed records could not be \
                 detected; {evidence}"
            ),
            (Some(_), AnchorState::Unreadable(e)) => {
                format!("the head anchor {anchor_path} is unreadable ({e}); {evidence}")
            }
            (Some(_), AnchorState::NotAuthentic(_)) => format!(
                "the head anchor {anchor_path} does not authenticate with the configured audit \
                 key: the key changed (configure the previous one) or the anchor was rewritten \
                 ({evidence})"
            ),
            (Some(t), AnchorState::Valid(a)) if a.seq as i64 > t.seq => format!(
                "the head anchor {anchor_path} says the log ended at record {}, but the newest \
                 record is {}: records were removed; {evidence}",
                a.seq, t.seq
            ),
            (Some(_), AnchorState::Valid(a)) => {
                // The anchor may lag the database (a crash between commit and anchor write,
                // or another writer): then the anchored record must still be there.
                let anchored: Option<String> = conn
                    .query_row(
                        "SELECT hash FROM audit_log WHERE seq = ?1",
                        [a.seq as i64],
                        |r| text(r, 0),
                    )
                    .optional()
                    .map_err(|e| self.store(e))?;
                if anchored.as_deref() == Some(a.hash.as_str()) {
                    return Ok(());
                }
                format!(
                    "record {} is not the record the head anchor {anchor_path} recorded: the log \
                     was rewritten; {evidence}",
                    a.seq
                )
            }
        };
        Err(AuditError::Refused {
            path: self.shown(),
            reason,
        })
    }

    /// The report of [`verify`](Self::verify) and the hash stored under each number.
    fn verify_snapshot(&self) -> Result<(VerifyReport, BTreeMap<u64, String>)> {
        self.keyed()?;
        // The anchor first: an append commits before it writes the anchor, so a snapshot
        // taken after reading the anchor holds every anchored record, even with a writer
        // running (no false "truncated").
        let anchor = chain::read_anchor(&self.anchor_path, &self.key)?;
        // Its own read-only connection: a WAL snapshot, without holding up appends.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| self.store(e))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(|e| self.store(e))?;
        let (rows, index) = self.read_all(&conn).map_err(|e| self.store(e))?;
        let mut problems = verify::analyse(
            &self.key,
            &rows,
            &index,
            &anchor,
            &self.anchor_path.display().to_string(),
        );
        if let Some(history) = &self.history
            && rows.is_empty()
            && anchor == AnchorState::Missing
        {
            problems.insert(
                0,
                Tampering {
                    seq: 1,
                    kind: TamperKind::LogMissing,
                    detail: format!(
                        "the audit log {} is missing: it has no records and no head anchor, \
                         but {history}; it was removed or replaced",
                        self.shown()
                    ),
                },
            );
        }
        let stored = rows
            .iter()
            .filter(|r| r.seq() >= 1)
            .map(|r| (pos(r.seq()), r.hash().to_owned()))
            .collect();
        Ok((
            VerifyReport {
                records: rows.len() as u64,
                head: rows.last().map(|r| r.hash().to_owned()),
                problems,
            },
            stored,
        ))
    }

    /// Checks the whole log and reports every piece of tampering found (see the crate docs
    /// for what can be told apart). Errors only when the files cannot be read.
    pub fn verify(&self) -> Result<VerifyReport> {
        Ok(self.verify_snapshot()?.0)
    }

    /// [`verify`](Self::verify), then the log against the witness file at `witness`
    /// (crate docs, "The witness"): records witnessed past the log's end (a cut tail, even
    /// with the old head anchor put back), a witnessed head the log no longer has (a
    /// rewrite with the key), and a witness that goes backwards (the log was cut and
    /// opened again) are reported too.
    pub fn verify_against(&self, witness: &Path) -> Result<VerifyReport> {
        // Read before the log's snapshot, like the anchor: the hub witnesses a record only
        // after committing it, so every entry read names a record the snapshot holds.
        let text = std::fs::read_to_string(witness).map_err(|source| AuditError::Witness {
            path: witness.display().to_string(),
            source,
        })?;
        self.verify_against_text(&text, &witness.display().to_string())
    }

    /// [`verify_against`](Self::verify_against) with the witness file's contents (for
    /// example sent by a remote auditor); `name` names it in the details.
    pub fn verify_against_text(&self, witness: &str, name: &str) -> Result<VerifyReport> {
        let lines = witness::parse(witness, &self.key);
        let (mut report, stored) = self.verify_snapshot()?;
        report
            .problems
            .extend(witness::compare(&lines, &stored, name));
        report.problems.sort_by_key(|p| (p.seq, p.kind));
        Ok(report)
    }

    /// Every row and index entry, from one snapshot.
    fn read_all(&self, conn: &Connection) -> rusqlite::Result<(Vec<RowFacts>, Vec<IndexRow>)> {
        conn.execute_batch("BEGIN")?;
        let mut rows = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT seq, at, principal, outcome, record, prev_hash, hash
                 FROM audit_log ORDER BY seq",
            )?;
            let mut query = stmt.query([])?;
            while let Some(r) = query.next()? {
                let columns = SearchColumns {
                    at: text(r, 1)?,
                    principal: text(r, 2)?,
                    outcome: text(r, 3)?,
                };
                rows.push(RowFacts::new(
                    &self.key,
                    r.get(0)?,
                    &columns,
                    text(r, 4)?,
                    text(r, 5)?,
                    text(r, 6)?,
                ));
            }
        }
        let index = conn
            .prepare("SELECT seq, person_id FROM audit_person")?
            .query_map([], |r| Ok((r.get(0)?, text(r, 1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        conn.execute_batch("COMMIT")?;
        Ok((rows, index))
    }

    /// The records matching `filter`, ordered by sequence number. Uses the search columns
    /// and the person index; run [`verify`](Self::verify) to know they were not altered.
    pub fn search(&self, filter: &AuditFilter) -> Result<Vec<StoredRecord>> {
        self.keyed()?;
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        if let Some(person) = &filter.person_id {
            conditions.push("seq IN (SELECT seq FROM audit_person WHERE person_id = ?)");
            values.push(Value::Text(person.clone()));
        }
        if let Some(principal) = &filter.principal {
            conditions.push("principal = ?");
            values.push(Value::Text(principal.clone()));
        }
        if let Some(since) = &filter.since {
            conditions.push("at >= ?");
            values.push(Value::Text(at_text(since)));
        }
        if let Some(until) = &filter.until {
            conditions.push("at < ?");
            values.push(Value::Text(at_text(until)));
        }
        if let Some(outcome) = filter.outcome {
            conditions.push("outcome = ?");
            values.push(Value::Text(outcome.as_str().to_owned()));
        }
        let limit = filter.limit.unwrap_or(AuditFilter::DEFAULT_LIMIT);
        values.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let condition = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql =
            format!("SELECT seq, record, hash FROM audit_log {condition} ORDER BY seq LIMIT ?");
        let conn = self.lock();
        let found: Vec<(i64, String, String)> = conn
            .prepare(&sql)
            .and_then(|mut stmt| {
                stmt.query_map(params_from_iter(values), |r| {
                    Ok((r.get(0)?, text(r, 1)?, text(r, 2)?))
                })?
                .collect()
            })
            .map_err(|e| self.store(e))?;
        drop(conn);
        found
            .into_iter()
            .map(|(seq, json, hash)| {
                let record = serde_json::from_str(&json).map_err(|source| AuditError::Corrupt {
                    path: self.shown(),
                    seq,
                    source,
                })?;
                Ok(StoredRecord {
                    // A row numbered below 1 was inserted by hand; show it as 0.
                    seq: u64::try_from(seq).unwrap_or(0),
                    record,
                    hash,
                })
            })
            .collect()
    }

    /// The number of records stored.
    pub fn len(&self) -> Result<u64> {
        self.keyed()?;
        let n: i64 = self
            .lock()
            .query_row("SELECT COUNT(*) FROM audit_log", [], |r| r.get(0))
            .map_err(|e| self.store(e))?;
        Ok(n as u64)
    }

    /// Whether no record is stored.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves at most an open transaction, which rusqlite
        // rolls back when it is dropped: the connection is still usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }

    fn store(&self, source: rusqlite::Error) -> AuditError {
        AuditError::Store {
            path: self.shown(),
            source,
        }
    }
}

/// A stored sequence number as a position (rows numbered below 1 were inserted by hand).
fn pos(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

/// A column as text whatever SQLite holds in it: rows written by hand may carry any type,
/// and verification must report them rather than fail on them.
fn text(row: &Row<'_>, idx: usize) -> rusqlite::Result<String> {
    Ok(match row.get::<_, Value>(idx)? {
        Value::Text(s) => s,
        Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Null => String::new(),
    })
}
