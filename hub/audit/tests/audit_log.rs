//! The audit log against its promises: records come back as appended, every kind of
//! tampering done with a raw SQLite connection is reported at the right record, and search
//! answers what an independent filter over the appended records says.

mod common;

use std::path::PathBuf;
use std::time::Instant;

use chrono::{DateTime, Duration, SecondsFormat, TimeZone, Utc};
use gridhub_audit::{
    AuditError, AuditFilter, AuditLog, AuditRecord, ColumnAccessRecord, Outcome, RecordKind,
    StoredRecord, TamperKind, VerifyReport,
};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use common::attacker;

const KEY: &[u8] = b"test audit key, kept outside the state dir";

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0).unwrap()
}

/// Record `i` of the test log: principals, outcomes and persons vary so that every search
/// filter selects a different subset.
fn record(i: usize) -> AuditRecord {
    let principals = ["alice", "bob", "carol"];
    AuditRecord {
        // Sub-second parts check that timestamps survive storage exactly.
        at: start() + Duration::minutes(7 * i as i64) + Duration::nanoseconds(1_000 * i as i64 + 1),
        kind: if i % 10 == 9 {
            RecordKind::PolicyChange
        } else {
            RecordKind::Query
        },
        principal: principals[i % 3].to_owned(),
        roles: vec!["grid_worker".to_owned()],
        area: "420106001".to_owned(),
        purpose: i.is_multiple_of(2).then(|| "epidemic follow-up".to_owned()),
        text: format!("SELECT person_id, diagnosis FROM health_record WHERE grid = {i}"),
        tables: vec!["health_record".to_owned()],
        columns: vec![ColumnAccessRecord {
            table: "health_record".to_owned(),
            column: "diagnosis".to_owned(),
            decision: if i.is_multiple_of(4) {
                "masked"
            } else {
                "clear"
            }
            .to_owned(),
        }],
        rows: Some(i as u64),
        outcome: match i % 5 {
            3 => Outcome::Denied,
            4 => Outcome::Error,
            _ => Outcome::Ok,
        },
        message: (i % 5 >= 3).then(|| "column diagnosis is denied".to_owned()),
        duration_ms: Some(3),
        person_ids: (0..i % 4).map(|k| format!("P{}", (i + k) % 6)).collect(),
        person_ids_truncated: i.is_multiple_of(7),
        started_seq: None,
    }
}

struct Fixture {
    _dir: TempDir,
    path: PathBuf,
    log: AuditLog,
    records: Vec<AuditRecord>,
}

/// A log of `n` records, checked to verify clean before any test tampers with it.
fn fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("audit.db");
    let log = AuditLog::open(&path, KEY).unwrap();
    let records: Vec<AuditRecord> = (0..n).map(record).collect();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(log.append(r).unwrap(), i as u64 + 1);
    }
    let report = log.verify().unwrap();
    assert!(report.ok(), "untouched log: {:?}", report.problems);
    Fixture {
        _dir: dir,
        path,
        log,
        records,
    }
}

fn found(report: &VerifyReport) -> Vec<(TamperKind, u64)> {
    report.problems.iter().map(|p| (p.kind, p.seq)).collect()
}

fn hash_of(conn: &Connection, seq: i64) -> String {
    conn.query_row("SELECT hash FROM audit_log WHERE seq = ?1", [seq], |r| {
        r.get(0)
    })
    .unwrap()
}

/// Inserts a row with consistent search columns, so only the chain can give it away.
fn insert_row(conn: &Connection, seq: i64, json: &str, prev: &str, hash: &str) {
    let r: AuditRecord = serde_json::from_str(json).unwrap();
    conn.execute(
        "INSERT INTO audit_log (seq, at, principal, outcome, record, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            seq,
            r.at.to_rfc3339_opts(SecondsFormat::Nanos, true),
            r.principal,
            r.outcome.as_str(),
            json,
            prev,
            hash
        ],
    )
    .unwrap();
}

/// A forged record at `seq` following `prev`; without the key its hash is a plain SHA-256.
fn forge(conn: &Connection, seq: i64, prev: &str) {
    let mut r = record(3);
    r.principal = "mallory".to_owned();
    r.text = "SELECT 1".to_owned();
    let json = serde_json::to_string(&r).unwrap();
    let hash = hex::encode(Sha256::digest(format!("{seq}{prev}{json}")));
    insert_row(conn, seq, &json, prev, &hash);
}

/// Moves rows `from..=to` by `by`, going through a free range so the primary key never
/// collides half-way.
fn renumber(conn: &Connection, from: i64, to: i64, by: i64) {
    conn.execute(
        "UPDATE audit_log SET seq = seq + 1000000 WHERE seq BETWEEN ?1 AND ?2",
        [from, to],
    )
    .unwrap();
    conn.execute(
        "UPDATE audit_log SET seq = seq - 1000000 + ?1 WHERE seq >= 1000000",
        [by],
    )
    .unwrap();
}

fn swap_seqs(conn: &Connection, a: i64, b: i64) {
    conn.execute_batch(&format!(
        "UPDATE audit_log SET seq = -1 WHERE seq = {a};
         UPDATE audit_log SET seq = {a} WHERE seq = {b};
         UPDATE audit_log SET seq = {b} WHERE seq = -1;"
    ))
    .unwrap();
}

#[test]
fn appends_verify_and_continue_after_reopen() {
    let Fixture {
        _dir,
        path,
        log,
        mut records,
    } = fixture(25);
    let report = log.verify().unwrap();
    assert_eq!(report.records, 25);
    let stored = log.search(&AuditFilter::default()).unwrap();
    assert_eq!(
        stored.iter().map(|s| s.record.clone()).collect::<Vec<_>>(),
        records
    );
    assert_eq!(
        stored.iter().map(|s| s.seq).collect::<Vec<_>>(),
        (1..=25).collect::<Vec<_>>()
    );
    assert_eq!(report.head.as_deref(), Some(stored[24].hash.as_str()));
    assert_eq!(log.len().unwrap(), 25);
    drop(log);

    let log = AuditLog::open(&path, KEY).unwrap();
    assert!(log.verify().unwrap().ok());
    assert_eq!(log.len().unwrap(), 25);
    records.push(record(25));
    assert_eq!(log.append(&records[25]).unwrap(), 26);
    let report = log.verify().unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.records, 26);
    let stored = log.search(&AuditFilter::default()).unwrap();
    assert_eq!(
        stored.into_iter().map(|s| s.record).collect::<Vec<_>>(),
        records
    );
}

#[test]
fn appended_record_is_visible_to_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let log = AuditLog::open(&path, KEY).unwrap();
    assert!(log.is_empty().unwrap());
    for i in 0..3 {
        let seq = log.append(&record(i)).unwrap();
        // A separate connection, as another process or a restarted hub would open.
        let other = Connection::open(&path).unwrap();
        let json: String = other
            .query_row(
                "SELECT record FROM audit_log WHERE seq = ?1",
                [seq as i64],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            serde_json::from_str::<AuditRecord>(&json).unwrap(),
            record(i)
        );
        let mode: String = other
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let anchor: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(log.anchor_path()).unwrap()).unwrap();
        assert_eq!(anchor["seq"], seq);
    }
}

/// The record number the head anchor names.
fn anchored(log: &AuditLog) -> u64 {
    let anchor: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(log.anchor_path()).unwrap()).unwrap();
    anchor["seq"].as_u64().unwrap()
}

/// A deferred append is committed at once (another connection reads it, verification counts
/// it) while the anchor, never ahead of what is synced, names it only after the next sync:
/// the next append, a flush, or closing the log. At most one record waits.
#[test]
fn deferred_record_is_committed_at_once_and_anchored_at_the_next_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let log = AuditLog::open(&path, KEY).unwrap();
    assert_eq!(log.append(&record(0)).unwrap(), 1);
    assert_eq!(anchored(&log), 1);
    assert_eq!(log.append_deferred(&record(1)).unwrap(), 2);
    assert_eq!(anchored(&log), 1);
    let other = Connection::open(&path).unwrap();
    let count: i64 = other
        .query_row("SELECT count(*) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 2);
    let report = log.verify().unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.records, 2);

    // A second deferred append while one waits is synced, with the first.
    assert_eq!(log.append_deferred(&record(2)).unwrap(), 3);
    assert_eq!(anchored(&log), 3);
    // The next durable append anchors itself.
    assert_eq!(log.append_deferred(&record(3)).unwrap(), 4);
    assert_eq!(log.append(&record(4)).unwrap(), 5);
    assert_eq!(anchored(&log), 5);
    // A flush anchors the one waiting; a second flush has nothing to do.
    assert_eq!(log.append_deferred(&record(5)).unwrap(), 6);
    assert_eq!(anchored(&log), 5);
    log.flush().unwrap();
    assert_eq!(anchored(&log), 6);
    log.flush().unwrap();
    assert_eq!(anchored(&log), 6);
    // Closing the log anchors the one waiting.
    assert_eq!(log.append_deferred(&record(6)).unwrap(), 7);
    drop(log);
    let log = AuditLog::open(&path, KEY).unwrap();
    assert_eq!(anchored(&log), 7);
    let report = log.verify().unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.records, 7);
    assert_eq!(log.append(&record(7)).unwrap(), 8);
    let stored = log.search(&AuditFilter::default()).unwrap();
    assert_eq!(
        stored.into_iter().map(|s| s.record).collect::<Vec<_>>(),
        (0..8).map(record).collect::<Vec<_>>()
    );
}

#[test]
fn edited_record_is_reported_at_its_seq() {
    for seq in [1, 7, 12] {
        let f = fixture(12);
        let conn = attacker(&f.path);
        let mut r = f.records[seq as usize - 1].clone();
        r.purpose = Some("curiosity".to_owned());
        conn.execute(
            "UPDATE audit_log SET record = ?1 WHERE seq = ?2",
            params![serde_json::to_string(&r).unwrap(), seq],
        )
        .unwrap();
        let report = f.log.verify().unwrap();
        assert_eq!(
            found(&report),
            [(TamperKind::Edited, seq as u64)],
            "seq {seq}"
        );
    }
}

#[test]
fn edited_hash_or_chain_link_is_reported() {
    for column in ["hash", "prev_hash"] {
        let f = fixture(10);
        let conn = attacker(&f.path);
        conn.execute(
            &format!("UPDATE audit_log SET {column} = ?1 WHERE seq = 5"),
            [hex::encode(Sha256::digest("forged"))],
        )
        .unwrap();
        let report = f.log.verify().unwrap();
        assert_eq!(found(&report), [(TamperKind::Edited, 5)], "{column}");
    }
}

#[test]
fn edited_search_column_is_reported() {
    let f = fixture(8);
    attacker(&f.path)
        .execute(
            "UPDATE audit_log SET principal = 'nobody' WHERE seq = 4",
            [],
        )
        .unwrap();
    let report = f.log.verify().unwrap();
    assert_eq!(found(&report), [(TamperKind::Edited, 4)]);
}

#[test]
fn deleted_records_are_reported_at_the_gap() {
    for (first, last) in [(6, 6), (1, 1), (4, 6)] {
        let f = fixture(12);
        attacker(&f.path)
            .execute(
                "DELETE FROM audit_log WHERE seq BETWEEN ?1 AND ?2",
                [first, last],
            )
            .unwrap();
        let report = f.log.verify().unwrap();
        assert_eq!(
            found(&report),
            [(TamperKind::Deleted, first as u64)],
            "{first}..={last}"
        );
    }
}

#[test]
fn deletion_closed_by_renumbering_is_reported_as_deleted() {
    let f = fixture(12);
    let conn = attacker(&f.path);
    conn.execute("DELETE FROM audit_log WHERE seq = 6", [])
        .unwrap();
    renumber(&conn, 7, 12, -1);
    let report = f.log.verify().unwrap();
    assert_eq!(found(&report), [(TamperKind::Deleted, 6)]);
}

#[test]
fn forged_record_with_a_new_seq_is_inserted() {
    for seq in [13, 0] {
        let f = fixture(12);
        let conn = attacker(&f.path);
        let prev = hash_of(&conn, 12);
        forge(&conn, seq, &prev);
        let report = f.log.verify().unwrap();
        assert_eq!(
            found(&report),
            [(TamperKind::Inserted, seq as u64)],
            "seq {seq}"
        );
    }
}

#[test]
fn forged_record_shifted_in_is_inserted() {
    let f = fixture(12);
    let conn = attacker(&f.path);
    renumber(&conn, 5, 12, 1);
    let prev = hash_of(&conn, 4);
    forge(&conn, 5, &prev);
    let report = f.log.verify().unwrap();
    assert_eq!(found(&report), [(TamperKind::Inserted, 5)]);
}

#[test]
fn copied_record_is_inserted() {
    let f = fixture(12);
    let conn = attacker(&f.path);
    conn.execute(
        "INSERT INTO audit_log SELECT 13, at, principal, outcome, record, prev_hash, hash
         FROM audit_log WHERE seq = 3",
        [],
    )
    .unwrap();
    let report = f.log.verify().unwrap();
    assert_eq!(found(&report), [(TamperKind::Inserted, 13)]);
}

#[test]
fn exchanged_seqs_are_reordered() {
    for (a, b) in [(4, 9), (5, 6)] {
        let f = fixture(12);
        swap_seqs(&attacker(&f.path), a, b);
        let report = f.log.verify().unwrap();
        assert_eq!(
            found(&report),
            [
                (TamperKind::Reordered, a as u64),
                (TamperKind::Reordered, b as u64)
            ],
            "{a} <-> {b}"
        );
    }
}

#[test]
fn exchanged_contents_are_reordered() {
    let f = fixture(12);
    let conn = attacker(&f.path);
    conn.execute_batch(
        "CREATE TEMP TABLE c AS SELECT seq, at, principal, outcome, record FROM audit_log
             WHERE seq IN (4, 9);
         UPDATE audit_log SET
             at = (SELECT at FROM c WHERE c.seq = 13 - audit_log.seq),
             principal = (SELECT principal FROM c WHERE c.seq = 13 - audit_log.seq),
             outcome = (SELECT outcome FROM c WHERE c.seq = 13 - audit_log.seq),
             record = (SELECT record FROM c WHERE c.seq = 13 - audit_log.seq)
         WHERE seq IN (4, 9);",
    )
    .unwrap();
    let report = f.log.verify().unwrap();
    assert_eq!(
        found(&report),
        [(TamperKind::Reordered, 4), (TamperKind::Reordered, 9)]
    );
}

#[test]
fn renumbered_log_is_reordered() {
    let f = fixture(10);
    renumber(&attacker(&f.path), 1, 10, 100);
    let report = f.log.verify().unwrap();
    assert_eq!(found(&report), [(TamperKind::Reordered, 101)]);
}

#[test]
fn removed_newest_records_are_truncated() {
    let f = fixture(12);
    attacker(&f.path)
        .execute("DELETE FROM audit_log WHERE seq >= 10", [])
        .unwrap();
    let report = f.log.verify().unwrap();
    assert_eq!(found(&report), [(TamperKind::Truncated, 10)]);
    // Fail closed: the cut log is not extended.
    assert!(matches!(
        f.log.append(&record(0)),
        Err(AuditError::Refused { .. })
    ));
    assert_eq!(f.log.len().unwrap(), 9);
}

#[test]
fn missing_anchor_cannot_rule_out_truncation() {
    let f = fixture(6);
    std::fs::remove_file(f.log.anchor_path()).unwrap();
    let report = f.log.verify().unwrap();
    assert_eq!(found(&report), [(TamperKind::Truncated, 7)]);
    assert!(matches!(
        f.log.append(&record(0)),
        Err(AuditError::Refused { .. })
    ));
}

#[test]
fn anchor_may_lag_after_an_interrupted_append() {
    let f = fixture(5);
    let old = std::fs::read(f.log.anchor_path()).unwrap();
    f.log.append(&record(5)).unwrap();
    // As if the process stopped between the commit of record 6 and its anchor write.
    std::fs::write(f.log.anchor_path(), old).unwrap();
    let report = f.log.verify().unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(f.log.append(&record(6)).unwrap(), 7);
    assert!(f.log.verify().unwrap().ok());
}

#[test]
fn wrong_key_reports_every_record_and_refuses_to_append() {
    let f = fixture(6);
    let wrong = AuditLog::open(&f.path, b"another key").unwrap();
    let report = wrong.verify().unwrap();
    assert!(!report.ok());
    let edited: Vec<u64> = report
        .problems
        .iter()
        .filter(|p| p.kind == TamperKind::Edited)
        .map(|p| p.seq)
        .collect();
    assert_eq!(edited, (1..=6).collect::<Vec<_>>());
    assert!(report.problems[0].detail.contains("key is wrong"));
    assert!(matches!(
        wrong.append(&record(0)),
        Err(AuditError::Refused { .. })
    ));
    // Nothing was written: the right key still verifies the log.
    assert!(f.log.verify().unwrap().ok());
    assert_eq!(f.log.len().unwrap(), 6);
}

#[test]
fn person_index_tampering_is_reported() {
    // Record 3 (i = 2) names P2 and P3; record 4 (i = 3) names P3, P4 and P5.
    let f = fixture(8);
    assert_eq!(f.records[2].person_ids, ["P2", "P3"]);
    let conn = attacker(&f.path);
    conn.execute(
        "INSERT INTO audit_person (person_id, seq) VALUES ('P-victim', 3)",
        [],
    )
    .unwrap();
    conn.execute(
        "DELETE FROM audit_person WHERE person_id = 'P4' AND seq = 4",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO audit_person (person_id, seq) VALUES ('P1', 99)",
        [],
    )
    .unwrap();
    let report = f.log.verify().unwrap();
    assert_eq!(
        found(&report),
        [
            (TamperKind::Edited, 3),
            (TamperKind::Edited, 4),
            (TamperKind::Inserted, 99)
        ]
    );
}

#[test]
fn append_only_triggers_stop_plain_edits() {
    let f = fixture(3);
    let conn = Connection::open(&f.path).unwrap();
    let update = conn.execute("UPDATE audit_log SET principal = 'x' WHERE seq = 1", []);
    assert!(update.unwrap_err().to_string().contains("append-only"));
    assert!(conn.execute("DELETE FROM audit_log", []).is_err());
    assert!(conn.execute("DELETE FROM audit_person", []).is_err());
    assert!(f.log.verify().unwrap().ok());
}

#[test]
fn audit_log_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<AuditLog>();
}

#[test]
fn empty_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = AuditLog::open(&dir.path().join("audit.db"), b"").unwrap_err();
    assert!(matches!(err, AuditError::EmptyKey { .. }), "{err}");
    assert!(err.to_string().contains("audit.db"));
}

fn seqs(found: &[StoredRecord]) -> Vec<u64> {
    found.iter().map(|s| s.seq).collect()
}

/// What a filter should return, computed over the appended records.
fn expected(records: &[AuditRecord], f: &AuditFilter) -> Vec<u64> {
    records
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            f.person_id
                .as_ref()
                .is_none_or(|p| r.person_ids.contains(p))
                && f.principal.as_ref().is_none_or(|p| &r.principal == p)
                && f.since.is_none_or(|t| r.at >= t)
                && f.until.is_none_or(|t| r.at < t)
                && f.outcome.is_none_or(|o| r.outcome == o)
        })
        .map(|(i, _)| i as u64 + 1)
        .take(f.limit.unwrap_or(AuditFilter::DEFAULT_LIMIT))
        .collect()
}

#[test]
fn search_agrees_with_the_appended_records() {
    let f = fixture(40);
    let filters = [
        AuditFilter {
            person_id: Some("P3".to_owned()),
            ..AuditFilter::default()
        },
        AuditFilter {
            person_id: Some("nobody".to_owned()),
            ..AuditFilter::default()
        },
        AuditFilter {
            principal: Some("bob".to_owned()),
            ..AuditFilter::default()
        },
        // The bounds are record timestamps: `since` is inclusive, `until` exclusive.
        AuditFilter {
            since: Some(f.records[10].at),
            until: Some(f.records[20].at),
            ..AuditFilter::default()
        },
        AuditFilter {
            outcome: Some(Outcome::Denied),
            ..AuditFilter::default()
        },
        AuditFilter {
            limit: Some(5),
            ..AuditFilter::default()
        },
        AuditFilter {
            person_id: Some("P2".to_owned()),
            principal: Some("carol".to_owned()),
            since: Some(f.records[5].at),
            outcome: Some(Outcome::Ok),
            limit: Some(3),
            ..AuditFilter::default()
        },
    ];
    for filter in &filters {
        let want = expected(&f.records, filter);
        let got = f.log.search(filter).unwrap();
        assert_eq!(seqs(&got), want, "{filter:?}");
        for s in &got {
            assert_eq!(s.record, f.records[s.seq as usize - 1]);
        }
    }
    // The filters select different, non-trivial subsets.
    assert_eq!(
        expected(&f.records, &filters[3]),
        (11..=20).collect::<Vec<_>>()
    );
    assert!(!expected(&f.records, &filters[0]).is_empty());
    assert!(!expected(&f.records, &filters[6]).is_empty());
}

/// Each append commits and fsyncs the WAL, then writes, fsyncs and renames the anchor and
/// fsyncs its directory: throughput is bounded by the disk's fsync rate, not the CPU.
/// On the development VM (ext4 virtual disk, debug build): 10,000 appends in 73.6 s
/// (136 records/s), verify of the 10,000 in 1.3 s, with
/// `cargo test -p gridhub-audit --test audit_log -- --ignored --nocapture append_throughput`.
#[test]
#[ignore = "measures the disk; run by hand"]
fn append_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.db"), KEY).unwrap();
    let n = 10_000;
    let records: Vec<AuditRecord> = (0..n).map(record).collect();
    let t = Instant::now();
    for r in &records {
        log.append(r).unwrap();
    }
    let appended = t.elapsed();
    let t = Instant::now();
    let report = log.verify().unwrap();
    let verified = t.elapsed();
    assert!(report.ok());
    println!(
        "{n} appends in {:.2} s ({:.0} records/s); verify in {:.2} s",
        appended.as_secs_f64(),
        n as f64 / appended.as_secs_f64(),
        verified.as_secs_f64()
    );
}
