//! The policy database (`<state_dir>/policy.db`): every applied policy version and every
//! declared emergency, in SQLite with `synchronous=FULL` so an acknowledged apply or
//! declaration survives a power cut.
//!
//! The active policy is the newest version. A rollback re-applies an older version's text as
//! a new version, so history only grows and always says who changed what, when.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};
use sha2::{Digest, Sha256};

use crate::emergency::Emergency;
use crate::error::{PolicyError, Result};
use crate::is_admin_code;
use crate::parse::count_lines;

/// One applied policy version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    pub version: i64,
    /// The policy text; `None` in [`PolicyStore::history`], which lists versions only.
    pub text: Option<String>,
    pub applied_by: String,
    pub applied_at: DateTime<Utc>,
    pub comment: String,
    /// SHA-256 of the text, hex.
    pub sha256: String,
    /// Whether this is the active (newest) version.
    pub active: bool,
    pub line_count: usize,
    /// The version this one rolled back to, if it is a rollback.
    pub rollback_of: Option<i64>,
}

/// The policy database.
#[derive(Debug)]
pub struct PolicyStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS policy_versions (
    version INTEGER PRIMARY KEY, text TEXT NOT NULL, applied_by TEXT NOT NULL,
    applied_at INTEGER NOT NULL, comment TEXT NOT NULL, sha256 TEXT NOT NULL,
    line_count INTEGER NOT NULL, rollback_of INTEGER);
CREATE TABLE IF NOT EXISTS emergencies (
    id INTEGER PRIMARY KEY AUTOINCREMENT, area TEXT NOT NULL, reason TEXT NOT NULL,
    declared_by TEXT NOT NULL, declared_at INTEGER NOT NULL, until INTEGER NOT NULL,
    ended_at INTEGER, ended_by TEXT);
";

const VERSION_COLUMNS: &str = "version, applied_by, applied_at, comment, sha256, line_count, rollback_of, \
     version = (SELECT MAX(version) FROM policy_versions)";

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(micros: i64) -> DateTime<Utc> {
    // Every stored time was written by `micros`, so it is in range.
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

fn version_row(row: &Row, text: Option<String>) -> rusqlite::Result<PolicyVersion> {
    Ok(PolicyVersion {
        version: row.get(0)?,
        text,
        applied_by: row.get(1)?,
        applied_at: time(row.get(2)?),
        comment: row.get(3)?,
        sha256: row.get(4)?,
        line_count: row.get::<_, i64>(5)? as usize,
        rollback_of: row.get(6)?,
        active: row.get(7)?,
    })
}

fn emergency_row(row: &Row) -> rusqlite::Result<Emergency> {
    Ok(Emergency {
        id: row.get(0)?,
        area: row.get(1)?,
        reason: row.get(2)?,
        declared_by: row.get(3)?,
        declared_at: time(row.get(4)?),
        until: time(row.get(5)?),
        ended_at: row.get::<_, Option<i64>>(6)?.map(time),
        ended_by: row.get(7)?,
    })
}

const EMERGENCY_COLUMNS: &str =
    "id, area, reason, declared_by, declared_at, until, ended_at, ended_by";

impl PolicyStore {
    /// Open (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| PolicyError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let store = PolicyStore {
            path: path.to_owned(),
            conn: Mutex::new(Connection::open(path).map_err(|source| PolicyError::Store {
                path: path.display().to_string(),
                source,
            })?),
        };
        store.with(|c| {
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.execute_batch(SCHEMA)
        })?;
        Ok(store)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut conn).map_err(|source| self.err(source))
    }

    fn err(&self, source: rusqlite::Error) -> PolicyError {
        PolicyError::Store {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// The active policy version, with its text; `None` before the first apply.
    pub fn active(&self) -> Result<Option<PolicyVersion>> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "SELECT {VERSION_COLUMNS}, text FROM policy_versions \
                     ORDER BY version DESC LIMIT 1"
                ),
                [],
                |row| version_row(row, Some(row.get(8)?)),
            )
            .optional()
        })
    }

    /// The number of the active policy version; `None` before the first apply. Cheap: what a
    /// running hub checks before each query to pick up a new version.
    pub fn active_version(&self) -> Result<Option<i64>> {
        self.with(|c| {
            c.query_row("SELECT max(version) FROM policy_versions", [], |row| {
                row.get(0)
            })
        })
    }

    /// One version, with its text.
    pub fn get(&self, version: i64) -> Result<Option<PolicyVersion>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {VERSION_COLUMNS}, text FROM policy_versions WHERE version = ?1"),
                [version],
                |row| version_row(row, Some(row.get(8)?)),
            )
            .optional()
        })
    }

    /// Every version, oldest first, without texts.
    pub fn history(&self) -> Result<Vec<PolicyVersion>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {VERSION_COLUMNS} FROM policy_versions ORDER BY version"
            ))?;
            stmt.query_map([], |row| version_row(row, None))?.collect()
        })
    }

    /// Add `text` as a new version and make it active, atomically. The caller has validated
    /// it ([`crate::Policy::compile`]).
    pub fn apply(
        &self,
        text: &str,
        by: &str,
        comment: &str,
        now: DateTime<Utc>,
    ) -> Result<PolicyVersion> {
        let version = self.insert(text, by, comment, now, None)?;
        self.get(version)?
            .ok_or_else(|| self.err(rusqlite::Error::QueryReturnedNoRows))
    }

    /// Re-apply an older version's text as a new active version ("rollback to 3").
    pub fn rollback(&self, version: i64, by: &str, now: DateTime<Utc>) -> Result<PolicyVersion> {
        let Some(old) = self.get(version)? else {
            let known: Vec<String> = self
                .history()?
                .iter()
                .map(|v| v.version.to_string())
                .collect();
            return Err(PolicyError::UnknownVersion {
                version,
                known: if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                },
            });
        };
        let text = old.text.unwrap_or_default();
        let new = self.insert(
            &text,
            by,
            &format!("rollback to {version}"),
            now,
            Some(version),
        )?;
        self.get(new)?
            .ok_or_else(|| self.err(rusqlite::Error::QueryReturnedNoRows))
    }

    fn insert(
        &self,
        text: &str,
        by: &str,
        comment: &str,
        now: DateTime<Utc>,
        rollback_of: Option<i64>,
    ) -> Result<i64> {
        let sha = hex::encode(Sha256::digest(text.as_bytes()));
        let lines = count_lines(text) as i64;
        self.with(|c| {
            c.execute(
                "INSERT INTO policy_versions \
                 (text, applied_by, applied_at, comment, sha256, line_count, rollback_of) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![text, by, micros(now), comment, sha, lines, rollback_of],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Declare an emergency for `area` (an admin code) until `until` (after `now`).
    pub fn declare_emergency(
        &self,
        area: &str,
        until: DateTime<Utc>,
        reason: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Emergency> {
        if !is_admin_code(area) {
            return Err(PolicyError::Emergency(format!(
                "area '{area}' is not an admin code (4, 6, 9, 12 or 15 digits)"
            )));
        }
        if until <= now {
            return Err(PolicyError::Emergency(format!(
                "expiry {until} is not after now ({now}): an emergency must end in the future"
            )));
        }
        if reason.trim().is_empty() {
            return Err(PolicyError::Emergency(
                "a reason is required: it is audited with every read under the emergency"
                    .to_owned(),
            ));
        }
        let id = self.with(|c| {
            c.execute(
                "INSERT INTO emergencies (area, reason, declared_by, declared_at, until) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![area, reason, by, micros(now), micros(until)],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.emergency(id)?.ok_or(PolicyError::UnknownEmergency(id))
    }

    /// End an active emergency now.
    pub fn end_emergency(&self, id: i64, by: &str, now: DateTime<Utc>) -> Result<Emergency> {
        let e = self
            .emergency(id)?
            .ok_or(PolicyError::UnknownEmergency(id))?;
        if let Some(at) = e.ended_at {
            return Err(PolicyError::Emergency(format!(
                "emergency {id} was already ended at {at} by {}",
                e.ended_by.as_deref().unwrap_or("?")
            )));
        }
        if !e.is_active(now) {
            return Err(PolicyError::Emergency(format!(
                "emergency {id} already expired at {}",
                e.until
            )));
        }
        self.with(|c| {
            c.execute(
                "UPDATE emergencies SET ended_at = ?1, ended_by = ?2 WHERE id = ?3",
                params![micros(now), by, id],
            )
        })?;
        self.emergency(id)?.ok_or(PolicyError::UnknownEmergency(id))
    }

    fn emergency(&self, id: i64) -> Result<Option<Emergency>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {EMERGENCY_COLUMNS} FROM emergencies WHERE id = ?1"),
                [id],
                emergency_row,
            )
            .optional()
        })
    }

    /// The emergencies not ended and not expired at `now`, newest first: what decisions need
    /// (the list of every emergency ever declared only grows).
    pub fn emergencies_in_force(&self, now: DateTime<Utc>) -> Result<Vec<Emergency>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {EMERGENCY_COLUMNS} FROM emergencies \
                 WHERE ended_at IS NULL AND until > ?1 ORDER BY id DESC"
            ))?;
            stmt.query_map([micros(now)], emergency_row)?.collect()
        })
    }

    /// Every emergency ever declared, newest first (callers filter with
    /// [`Emergency::is_active`]).
    pub fn emergencies(&self) -> Result<Vec<Emergency>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {EMERGENCY_COLUMNS} FROM emergencies ORDER BY id DESC"
            ))?;
            stmt.query_map([], emergency_row)?.collect()
        })
    }
}
