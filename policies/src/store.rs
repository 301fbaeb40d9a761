//! The policy database (`<state_dir>/policy.db`): every applied policy version and every
//! declared emergency, in SQLite with `synchronous=FULL` so an acknowledged apply or
//! declaration survives a power cut.
//!
//! The active policy is the newest version. A rollback re-applies an older version's text as
//! a new version, so history only grows and always says who changed what, when.
//!
//! A change that widens access is not applied but kept as a [`Proposal`]: pending until a
//! second officer approves it (then it becomes a version, atomically) or it is rejected. A
//! widening refused outright (its proposer's own role would gain) is kept too, so the list of
//! proposals is every widening change ever attempted, for auditors.

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

/// Where a [`Proposal`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposalState {
    /// Waiting for a second officer.
    Pending,
    /// Approved: it became the policy version [`Proposal::version`].
    Approved,
    /// Rejected (or withdrawn by its proposer).
    Rejected,
    /// Refused when proposed: it would have widened its proposer's own access.
    Refused,
}

impl ProposalState {
    /// `pending`, `approved`, `rejected`, `refused`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalState::Pending => "pending",
            ProposalState::Approved => "approved",
            ProposalState::Rejected => "rejected",
            ProposalState::Refused => "refused",
        }
    }

    fn parse(s: &str) -> ProposalState {
        match s {
            "pending" => ProposalState::Pending,
            "approved" => ProposalState::Approved,
            "rejected" => ProposalState::Rejected,
            // Only this module writes states; anything else cannot take effect.
            _ => ProposalState::Refused,
        }
    }
}

impl std::fmt::Display for ProposalState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy change that widens access: what it is, who proposed it, what it widens, and
/// who decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub id: i64,
    /// The policy text; `None` in [`PolicyStore::proposals`], which lists them only.
    pub text: Option<String>,
    pub proposed_by: String,
    pub proposed_at: DateTime<Utc>,
    pub comment: String,
    /// SHA-256 of the text, hex.
    pub sha256: String,
    pub line_count: usize,
    /// The version a rollback proposal goes back to.
    pub rollback_of: Option<i64>,
    /// The active version when it was proposed.
    pub base_version: Option<i64>,
    /// The widenings, one a line ([`crate::summarize`]).
    pub widening: String,
    pub state: ProposalState,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The policy version it became, once approved.
    pub version: Option<i64>,
    /// Why it was refused or rejected.
    pub reason: Option<String>,
}

/// What a policy apply or rollback did: took effect at once (it only narrows or changes
/// nothing), or waits as a proposal for a second officer (it widens access).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyChange {
    Active(PolicyVersion),
    Pending(Proposal),
}

impl PolicyChange {
    /// The version that took effect, if it did.
    pub fn active(&self) -> Option<&PolicyVersion> {
        match self {
            PolicyChange::Active(v) => Some(v),
            PolicyChange::Pending(_) => None,
        }
    }

    /// The proposal that waits, if the change widens access.
    pub fn pending(&self) -> Option<&Proposal> {
        match self {
            PolicyChange::Active(_) => None,
            PolicyChange::Pending(p) => Some(p),
        }
    }
}

/// What [`PolicyStore::propose`] records.
#[derive(Debug, Clone)]
pub struct NewProposal<'a> {
    pub text: &'a str,
    pub by: &'a str,
    pub comment: &'a str,
    pub rollback_of: Option<i64>,
    pub base_version: Option<i64>,
    pub widening: &'a str,
    pub now: DateTime<Utc>,
}

const PROPOSAL_COLUMNS: &str = "id, proposed_by, proposed_at, comment, sha256, line_count, \
     rollback_of, base_version, widening, state, decided_by, decided_at, version, reason";

fn proposal_row(row: &Row, text: Option<String>) -> rusqlite::Result<Proposal> {
    Ok(Proposal {
        id: row.get(0)?,
        text,
        proposed_by: row.get(1)?,
        proposed_at: time(row.get(2)?),
        comment: row.get(3)?,
        sha256: row.get(4)?,
        line_count: row.get::<_, i64>(5)? as usize,
        rollback_of: row.get(6)?,
        base_version: row.get(7)?,
        widening: row.get(8)?,
        state: ProposalState::parse(&row.get::<_, String>(9)?),
        decided_by: row.get(10)?,
        decided_at: row.get::<_, Option<i64>>(11)?.map(time),
        version: row.get(12)?,
        reason: row.get(13)?,
    })
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
CREATE TABLE IF NOT EXISTS policy_proposals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL, proposed_by TEXT NOT NULL,
    proposed_at INTEGER NOT NULL, comment TEXT NOT NULL, sha256 TEXT NOT NULL,
    line_count INTEGER NOT NULL, rollback_of INTEGER, base_version INTEGER,
    widening TEXT NOT NULL, state TEXT NOT NULL, decided_by TEXT, decided_at INTEGER,
    version INTEGER, reason TEXT);
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

    /// Version `version`, or an error listing the versions there are.
    pub fn existing(&self, version: i64) -> Result<PolicyVersion> {
        if let Some(v) = self.get(version)? {
            return Ok(v);
        }
        let known: Vec<String> = self
            .history()?
            .iter()
            .map(|v| v.version.to_string())
            .collect();
        Err(PolicyError::UnknownVersion {
            version,
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        })
    }

    /// Re-apply an older version's text as a new active version ("rollback to 3").
    pub fn rollback(&self, version: i64, by: &str, now: DateTime<Utc>) -> Result<PolicyVersion> {
        let old = self.existing(version)?;
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

    /// Keep a widening change as a pending proposal; it takes effect only through
    /// [`PolicyStore::approve`].
    pub fn propose(&self, p: &NewProposal) -> Result<Proposal> {
        self.add_proposal(p, ProposalState::Pending, None)
    }

    /// Keep a widening change refused outright, with why: auditors list every widening
    /// attempt, refused ones included.
    pub fn record_refused(&self, p: &NewProposal, reason: &str) -> Result<Proposal> {
        self.add_proposal(p, ProposalState::Refused, Some(reason))
    }

    fn add_proposal(
        &self,
        p: &NewProposal,
        state: ProposalState,
        reason: Option<&str>,
    ) -> Result<Proposal> {
        let sha = hex::encode(Sha256::digest(p.text.as_bytes()));
        let lines = count_lines(p.text) as i64;
        let decided = (state != ProposalState::Pending).then(|| (p.by, micros(p.now)));
        let id = self.with(|c| {
            c.execute(
                "INSERT INTO policy_proposals (text, proposed_by, proposed_at, comment, sha256, \
                 line_count, rollback_of, base_version, widening, state, decided_by, decided_at, \
                 reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    p.text,
                    p.by,
                    micros(p.now),
                    p.comment,
                    sha,
                    lines,
                    p.rollback_of,
                    p.base_version,
                    p.widening,
                    state.as_str(),
                    decided.map(|d| d.0),
                    decided.map(|d| d.1),
                    reason,
                ],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        self.proposal(id)?.ok_or(PolicyError::UnknownProposal(id))
    }

    /// One proposal, with its text.
    pub fn proposal(&self, id: i64) -> Result<Option<Proposal>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {PROPOSAL_COLUMNS}, text FROM policy_proposals WHERE id = ?1"),
                [id],
                |row| proposal_row(row, Some(row.get(14)?)),
            )
            .optional()
        })
    }

    /// Proposals, oldest first, without texts: only the pending ones, or every one (the
    /// widening changes ever attempted, whatever became of them).
    pub fn proposals(&self, pending_only: bool) -> Result<Vec<Proposal>> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {PROPOSAL_COLUMNS} FROM policy_proposals {} ORDER BY id",
                if pending_only {
                    "WHERE state = 'pending'"
                } else {
                    ""
                }
            ))?;
            stmt.query_map([], |row| proposal_row(row, None))?.collect()
        })
    }

    /// Proposal `id` while it is still pending; otherwise an error saying who decided it.
    pub fn pending_proposal(&self, id: i64) -> Result<Proposal> {
        let p = self.proposal(id)?.ok_or(PolicyError::UnknownProposal(id))?;
        if p.state != ProposalState::Pending {
            return Err(PolicyError::Proposal(format!(
                "proposal {id} is {} already{}",
                p.state,
                p.decided_by
                    .as_ref()
                    .map(|b| format!(" (by {b})"))
                    .unwrap_or_default()
            )));
        }
        Ok(p)
    }

    /// Activate a pending proposal as a new policy version, atomically: the version is added
    /// and the proposal marked approved in one transaction, or neither. `widening` is the diff
    /// as the approver saw it (against the version active at approval). The caller has
    /// checked who approves.
    pub fn approve(
        &self,
        id: i64,
        by: &str,
        widening: &str,
        now: DateTime<Utc>,
    ) -> Result<(Proposal, PolicyVersion)> {
        let p = self.pending_proposal(id)?;
        let text = p.text.clone().unwrap_or_default();
        let comment = format!(
            "{}{}proposal {id} by {}, approved by {by}",
            p.comment,
            if p.comment.is_empty() { "" } else { " — " },
            p.proposed_by
        );
        let sha = hex::encode(Sha256::digest(text.as_bytes()));
        let lines = count_lines(&text) as i64;
        let version = self.with(|c| {
            let tx = c.transaction()?;
            let changed = tx.execute(
                "UPDATE policy_proposals SET state = 'approved', decided_by = ?1, \
                 decided_at = ?2, widening = ?3 WHERE id = ?4 AND state = 'pending'",
                params![by, micros(now), widening, id],
            )?;
            if changed != 1 {
                // Decided meanwhile by another process: nothing is applied.
                return Ok(None);
            }
            tx.execute(
                "INSERT INTO policy_versions \
                 (text, applied_by, applied_at, comment, sha256, line_count, rollback_of) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![text, by, micros(now), comment, sha, lines, p.rollback_of],
            )?;
            let version = tx.last_insert_rowid();
            tx.execute(
                "UPDATE policy_proposals SET version = ?1 WHERE id = ?2",
                params![version, id],
            )?;
            tx.commit()?;
            Ok(Some(version))
        })?;
        let Some(version) = version else {
            return Err(self.pending_proposal(id).err().unwrap_or_else(|| {
                PolicyError::Proposal(format!("proposal {id} changed while being approved"))
            }));
        };
        let v = self
            .get(version)?
            .ok_or_else(|| self.err(rusqlite::Error::QueryReturnedNoRows))?;
        let p = self.proposal(id)?.ok_or(PolicyError::UnknownProposal(id))?;
        Ok((p, v))
    }

    /// Reject a pending proposal (nothing takes effect).
    pub fn reject(&self, id: i64, by: &str, reason: &str, now: DateTime<Utc>) -> Result<Proposal> {
        self.pending_proposal(id)?;
        let changed = self.with(|c| {
            c.execute(
                "UPDATE policy_proposals SET state = 'rejected', decided_by = ?1, \
                 decided_at = ?2, reason = ?3 WHERE id = ?4 AND state = 'pending'",
                params![by, micros(now), reason, id],
            )
        })?;
        if changed != 1 {
            self.pending_proposal(id)?;
        }
        self.proposal(id)?.ok_or(PolicyError::UnknownProposal(id))
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
