//! The log: its SQLite database, appends, search and verification.

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
use crate::verify::{self, RowFacts, SearchColumns, VerifyReport};

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

/// The tamper-evident audit log: an SQLite database plus its head anchor file
/// (`<path>.head`). See the crate docs for the chain and what verification can prove.
///
/// `Send + Sync`: appends and searches share one connection behind a mutex; verification
/// reads through its own connection, so it does not hold up appends.
pub struct AuditLog {
    path: PathBuf,
    anchor_path: PathBuf,
    key: Key,
    conn: Mutex<Connection>,
}

impl fmt::Debug for AuditLog {
    /// Shows the files, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("anchor_path", &self.anchor_path)
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
    pub fn open(path: &Path, key: &[u8]) -> Result<Self> {
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
        Ok(AuditLog {
            path: path.to_owned(),
            anchor_path: PathBuf::from(anchor),
            key,
            conn: Mutex::new(conn),
        })
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
    /// Cost: one SQLite commit (an fsync of the WAL) plus the anchor's fsync, rename and
    /// directory fsync, so appends run at the disk's fsync rate, not the CPU's: about 7 ms
    /// each (136 records/s) on the development VM's ext4 disk, as printed by the ignored
    /// test `append_throughput`.
    pub fn append(&self, record: &AuditRecord) -> Result<u64> {
        let json = serde_json::to_string(record).map_err(|source| AuditError::Encode {
            path: self.shown(),
            source,
        })?;
        // The lock is held until the anchor is written, so this log's anchors only move
        // forward.
        let mut conn = self.lock();
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
        self.check_continuation(&tx, tail.as_ref())?;
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
        chain::write_anchor(&self.anchor_path, &self.key, seq_u, &hash).map_err(|source| {
            AuditError::AnchorWrite {
                path: self.anchor_path.display().to_string(),
                seq: seq_u,
                source,
            }
        })?;
        Ok(seq_u)
    }

    /// Whether a new record may follow `tail` (see [`append`](Self::append)).
    fn check_continuation(&self, conn: &Connection, tail: Option<&Tail>) -> Result<()> {
        let anchor = chain::read_anchor(&self.anchor_path, &self.key)?;
        let anchor_path = self.anchor_path.display();
        let evidence = "run the audit verification, keep the log and its anchor as evidence \
                        and start a new log at another path";
        let reason = match (tail, &anchor) {
            (None, AnchorState::Missing) => return Ok(()),
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

    /// Checks the whole log and reports every piece of tampering found (see the crate docs
    /// for what can be told apart). Errors only when the files cannot be read.
    pub fn verify(&self) -> Result<VerifyReport> {
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
        let problems = verify::analyse(
            &self.key,
            &rows,
            &index,
            &anchor,
            &self.anchor_path.display().to_string(),
        );
        Ok(VerifyReport {
            records: rows.len() as u64,
            head: rows.last().map(|r| r.hash().to_owned()),
            problems,
        })
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
