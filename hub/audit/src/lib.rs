//! # gridhub-audit
//!
//! The hub's tamper-evident audit log: append-only, hash-chained, durable. Every query a
//! principal runs and every policy or emergency change is one [`AuditRecord`]. An auditor
//! can prove the log was not edited ([`AuditLog::verify`]) and answer a resident's "who
//! read my health data, when, for what purpose" ([`AuditLog::search`] by `person_id`).
//!
//! ```no_run
//! use gridhub_audit::{AuditFilter, AuditLog};
//! # fn record() -> gridhub_audit::AuditRecord { unimplemented!() }
//! let log = AuditLog::open("state/audit.db".as_ref(), b"secret key from outside the state dir")?;
//! let seq = log.append(&record())?;
//! let reads = log.search(&AuditFilter {
//!     person_id: Some("420106199001011234".into()),
//!     ..AuditFilter::default()
//! })?;
//! // The chain and anchor, then also the witness kept on another file system.
//! let report = log.verify_against("/srv/gridhub-witness/gridhub-audit.witness".as_ref())?;
//! for problem in &report.problems {
//!     eprintln!("{problem}");
//! }
//! # Ok::<(), gridhub_audit::AuditError>(())
//! ```
//!
//! ## Storage
//!
//! An SQLite database in WAL mode with `synchronous=FULL`: [`AuditLog::append`] returns
//! after its transaction is committed and fsynced. [`AuditLog::append_deferred`], for a
//! query's closing record (its start record is durable already), returns once committed:
//! its sync, and the anchor's move to it, come with the next append, [`AuditLog::flush`] or
//! the log's close, and at most one record waits so. Table `audit_log` has one row per
//! record: `seq` (1, 2, …), `record` (the record's canonical JSON), `prev_hash`, `hash`, and
//! the search columns `at` (RFC 3339 UTC with nanoseconds, fixed width, so text order is
//! time order), `principal` and `outcome`, which repeat fields of the JSON. Table
//! `audit_person (person_id, seq)` indexes the record's `person_ids` for search by person.
//! The API has no update or delete, and triggers abort `UPDATE`/`DELETE` on both tables
//! (against accidents; an attacker drops them, which the chain catches).
//!
//! ## The chain
//!
//! The canonical JSON of a record is `serde_json`'s compact encoding of [`AuditRecord`]
//! (fields in declaration order). Verification MACs the stored text byte for byte and never
//! re-encodes, so the encoding need not be reproducible across versions. For record `seq`:
//!
//! ```text
//! hash = hex(HMAC-SHA256(key, seq as 8 bytes big-endian || prev_hash as 64 ASCII hex digits || json))
//! ```
//!
//! where `prev_hash` is the previous record's `hash`, and 64 zeros for record 1. The
//! sequence number is inside the MAC, so renumbering is detected, and `prev_hash` is, so
//! each record names its predecessor; a `prev_hash` that is not 64 lowercase hex digits
//! never authenticates (otherwise characters could move between it and the JSON).
//!
//! The chain alone cannot show that the newest records were removed, so each append also
//! writes the **head anchor** `<path>.head`: `{"seq": …, "hash": …, "mac": …}`, the last
//! record's number and hash, MACed as `HMAC-SHA256(key, "gridhub-audit-anchor\0" || seq as 8
//! bytes big-endian || hash)`, padded to 256 bytes. The first is written to a temporary
//! file, fsynced, renamed into place and the directory fsynced; each later one overwrites it
//! in place (the same 256 bytes, within one disk sector) and is fdatasynced. The anchor is
//! written after the commit, so it may lag the database by the records whose append was
//! interrupted; it is never ahead.
//!
//! [`AuditLog::append`] fails closed: it refuses to extend a log whose newest record does
//! not authenticate with the key (a changed key, or a forged tail), or whose anchor is
//! missing, not authentic, ahead of the database or names a record the database no longer
//! has.
//!
//! ## Verification
//!
//! [`AuditLog::verify`] reads the anchor, then one snapshot of both tables, and reports
//! each [`Tampering`] with the record it concerns and a [`TamperKind`]:
//!
//! 1. **Where each record was written.** A row authenticates at its stored number, or at
//!    one past the written position of the row its `prev_hash` names (following the chain
//!    from record 1 and from every row authentic in place), or — when its predecessor is
//!    gone — at the nearest number to its stored one where its MAC verifies (a bounded
//!    search). Rows that authenticate nowhere are *unauthentic*.
//! 2. **Exchanged contents.** An unauthentic row whose JSON authenticates with another
//!    unauthentic row's number, `prev_hash` and `hash` holds that row's content: both ways
//!    → `Reordered` (contents exchanged), one way → `Edited` (content copied).
//! 3. **Authentic rows** stand for the position they were written at. A second row written
//!    at the same position is a copy → `Inserted`. One that does not follow the authentic
//!    record before it came from another log with the same key → `Edited`.
//! 4. **Unauthentic rows** are `Edited` when the chain vouches for their place (an authentic
//!    record's `prev_hash`, or the anchor, names their hash), or when they stand at a
//!    number no record holds within the anchored log (with no usable anchor: linked to the
//!    row stored before them). Otherwise they were never part of the chain → `Inserted`
//!    (after the anchored end even when linked to the real tail; with a new number,
//!    or with the records after them shifted up: the shift is explained by the insertion
//!    and not reported separately).
//! 5. **Missing positions** below the newest record → `Deleted`, one problem per gap, at
//!    the first missing number (a deletion whose gap was closed by renumbering is found
//!    through step 1's search).
//! 6. **The anchor.** Positions after the newest record up to the anchored one → `Truncated`
//!    at the first missing number. An anchored record whose hash differs from the anchor
//!    (cut back and rewritten), or an anchor that is missing, unreadable or not authentic
//!    (so truncation cannot be ruled out) → `Truncated`.
//! 7. **Order.** An authentic record out of written order with another one and not stored
//!    at its own number → `Reordered` (two records whose numbers were exchanged are both
//!    reported). A run of records shifted by more or less than the insertions and
//!    deletions before it explain → `Reordered` ("renumbered"), once per run.
//! 8. **Search columns and person index.** A row whose `at`/`principal`/`outcome` disagree
//!    with its JSON → `Edited`. An index row that no record backs → `Edited` if the record
//!    exists, `Inserted` if it does not; a person a record lists but the index lacks →
//!    `Edited`. Index rows of records already reported, deleted or truncated are not
//!    reported again.
//!
//! With the wrong key nothing authenticates: every record is reported `Edited` (the detail
//! says the key is probably wrong) and the anchor `Truncated`.
//!
//! A new log (no records, no anchor) is anchored as `{"seq": 0, "hash": 64 zeros}` when it
//! is opened, so that an empty log without anchor is never mistaken for a new one later (see
//! "A missing log"); appends accept that anchor as the start of the chain.
//!
//! ## The witness
//!
//! The chain and the anchor live next to each other, and whoever holds the key can rewrite
//! both. The **witness** ([`AuditOptions::witness`]) is a file somewhere else — another file
//! system, ideally one the hub can only append to — that records the chain head over time.
//! One JSON object per line:
//!
//! ```text
//! {"seq": N, "hash": "<64 hex>", "at": "<RFC 3339 UTC>", "mac": "<64 hex>"}
//! mac = hex(HMAC-SHA256(key, "gridhub-audit-witness\0" || seq as 8 bytes big-endian || hash || at))
//! ```
//!
//! `seq`/`hash` are the newest stored record's (0 and 64 zeros for an empty log). A line is
//! appended when the log is opened (unless the witness's last line is that head already)
//! and after every record whose number is a multiple of [`AuditOptions::witness_every`],
//! after its commit and anchor. The file is opened with `O_APPEND`, each line is one write,
//! then fsynced; a witness that cannot be written fails the open
//! ([`AuditError::Witness`]) or the append ([`AuditError::WitnessWrite`], after the record
//! was committed).
//!
//! [`AuditLog::verify_against`] runs [`AuditLog::verify`], then compares each authentic
//! witness line with the log, reporting:
//!
//! - the furthest witnessed record past the log's last stored number → `Truncated` (a cut
//!   tail, even when the old head anchor was put back);
//! - the first witnessed record (lowest number) whose stored hash differs → `Edited`, or
//!   `Deleted` when no record has that number: the log was rewritten with the key from a
//!   record after the last witnessed record that still matches; once, with a count of the
//!   later witnessed heads that differ too. A witnessed hash vouches for every record before
//!   it through the chain;
//! - a line whose number is below an earlier line's → `Truncated` (the hub reopened a log
//!   shorter than it had witnessed);
//! - a line that does not parse, does not authenticate (forged, or another key), or an
//!   empty witness → [`TamperKind::Witness`].
//!
//! The witness is read before the log's snapshot: the hub writes a line only after the
//! record's commit, so every line read names a record the snapshot holds.
//!
//! ## A missing log
//!
//! Removing `audit.db` and its anchor leaves nothing the chain could speak for. So the
//! caller says whether the hub has history ([`AuditOptions::history`]: the hub passes its
//! policy versions, emergencies and catalog loads), and a witness line past record 0 counts
//! as history too. With history, a log that has no records and no anchor is *missing*:
//! it is not anchored as new, [`AuditLog::verify`] reports [`TamperKind::LogMissing`], and
//! [`AuditLog::append`] refuses ([`AuditError::Refused`]), so nothing audited runs until an
//! operator records the loss with [`AuditLog::acknowledge_missing`], which appends the
//! acknowledgement as record 1 of the new log. Without history (a fresh install) the log is
//! new. A log that was replaced by an empty database without anchor is missing alike.
//!
//! ## What it cannot prove
//!
//! - Whoever holds the key and can write both the database and the anchor can rewrite
//!   everything consistently — everything after the last head the witness recorded, if
//!   there is a witness the attacker cannot rewrite. Keep the key outside the state
//!   directory (the hub refuses a key file inside it).
//! - Without the key, removing the newest records goes unnoticed by [`AuditLog::verify`]
//!   if an older anchor file is put back with them (for example restored from a backup);
//!   [`AuditLog::verify_against`] notices if the witness recorded one of them.
//! - Root on the hub can read the key from memory, stop the hub writing to the witness and
//!   forge witness lines (they carry the same key): the witness holds only against
//!   rewrites of what it recorded before, and only if its earlier lines cannot be removed.
//! - The classification is evidence, not a proof of intent: combined tampering of the same
//!   records may be reported under a neighbouring kind. Every change to the rows or the
//!   index is reported as some problem.
//! - One process should append to a log. Several work (numbers are assigned inside a
//!   write transaction) but their anchors can then lag each other.

mod chain;
mod error;
mod log;
mod record;
mod verify;
mod witness;

pub use error::{AuditError, Result};
pub use log::{AuditLog, AuditOptions};
pub use record::{AuditFilter, AuditRecord, ColumnAccessRecord, Outcome, RecordKind, StoredRecord};
pub use verify::{TamperKind, Tampering, VerifyReport};
