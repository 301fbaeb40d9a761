//! What the key holder can do to the log, and what the witness and the missing-log check
//! still catch: a rewrite with the key and a recomputed chain, a cut tail with the old head
//! anchor put back, and a removed log. The attacks compute MACs from the formulas of the
//! crate docs, independently of the crate.

mod common;

use std::path::{Path, PathBuf};

use chrono::{Duration, TimeZone, Utc};
use gridhub_audit::{
    AuditError, AuditLog, AuditOptions, AuditRecord, Outcome, RecordKind, TamperKind, VerifyReport,
};
use hmac::{Hmac, Mac};
use rusqlite::params;
use sha2::Sha256;
use tempfile::TempDir;

use common::attacker;

const KEY: &[u8] = b"witness test key, outside the state dir";

fn record(i: usize) -> AuditRecord {
    AuditRecord {
        at: Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0).unwrap() + Duration::minutes(i as i64),
        kind: RecordKind::Query,
        principal: ["alice", "bob"][i % 2].to_owned(),
        roles: vec!["grid_worker".to_owned()],
        area: "420106001".to_owned(),
        purpose: Some("routine".to_owned()),
        text: format!("SELECT * FROM person WHERE grid = {i}"),
        tables: vec!["person".to_owned()],
        columns: Vec::new(),
        rows: Some(i as u64),
        outcome: Outcome::Ok,
        message: None,
        duration_ms: Some(1),
        person_ids: vec![format!("P{i}")],
        person_ids_truncated: false,
        started_seq: None,
    }
}

struct Hub {
    _dir: TempDir,
    db: PathBuf,
    witness: PathBuf,
}

impl Hub {
    fn new() -> Hub {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("other-mount")).unwrap();
        Hub {
            db: dir.path().join("state").join("audit.db"),
            witness: dir.path().join("other-mount").join("gridhub-audit.witness"),
            _dir: dir,
        }
    }

    fn options(&self, history: Option<&str>) -> AuditOptions {
        AuditOptions {
            witness: Some(self.witness.clone()),
            witness_every: 5,
            history: history.map(str::to_owned),
        }
    }

    /// The log as the hub opens it: witnessed every 5 records.
    fn open(&self) -> AuditLog {
        AuditLog::open_with(&self.db, KEY, &self.options(None)).unwrap()
    }

    fn witness_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.witness)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn found(report: &VerifyReport) -> Vec<(TamperKind, u64)> {
    report.problems.iter().map(|p| (p.kind, p.seq)).collect()
}

fn append_n(log: &AuditLog, from: usize, to: usize) {
    for i in from..to {
        assert_eq!(log.append(&record(i)).unwrap(), i as u64 + 1);
    }
}

/// HMAC-SHA256(KEY, parts…), lowercase hex.
fn mac(parts: &[&[u8]]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
    for p in parts {
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

/// Writes the head anchor for (`seq`, `hash`) as the crate docs define it.
fn forge_anchor(db: &Path, seq: u64, hash: &str) {
    let tag = mac(&[
        b"gridhub-audit-anchor\0",
        &seq.to_be_bytes(),
        hash.as_bytes(),
    ]);
    let text = format!("{{\"seq\":{seq},\"hash\":\"{hash}\",\"mac\":\"{tag}\"}}\n");
    std::fs::write(format!("{}.head", db.display()), text).unwrap();
}

/// With the key: changes record `target`'s text, recomputes the MAC of it and of every
/// record after it, and writes a matching head anchor. Returns the new head hash.
fn rewrite_with_the_key(db: &Path, target: i64, new_text: &str) -> String {
    let conn = attacker(db);
    let rows: Vec<(i64, String, String)> = conn
        .prepare("SELECT seq, record, prev_hash FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut prev = String::new();
    for (seq, json, stored_prev) in rows {
        if seq < target {
            prev = conn
                .query_row("SELECT hash FROM audit_log WHERE seq = ?1", [seq], |r| {
                    r.get(0)
                })
                .unwrap();
            continue;
        }
        let json = if seq == target {
            let mut r: serde_json::Value = serde_json::from_str(&json).unwrap();
            r["text"] = new_text.into();
            serde_json::to_string(&r).unwrap()
        } else {
            json
        };
        let prev_hash = if seq == 1 { stored_prev } else { prev.clone() };
        let hash = mac(&[
            &(seq as u64).to_be_bytes(),
            prev_hash.as_bytes(),
            json.as_bytes(),
        ]);
        conn.execute(
            "UPDATE audit_log SET record = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            params![json, prev_hash, hash, seq],
        )
        .unwrap();
        prev = hash;
    }
    let last: i64 = conn
        .query_row("SELECT MAX(seq) FROM audit_log", [], |r| r.get(0))
        .unwrap();
    forge_anchor(db, last as u64, &prev);
    prev
}

#[test]
fn the_head_is_witnessed_at_open_and_every_n_records() {
    let hub = Hub::new();
    let log = hub.open();
    append_n(&log, 0, 12);
    let seqs: Vec<u64> = hub
        .witness_lines()
        .iter()
        .map(|l| l["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 5, 10]);
    // Reopening witnesses the head once; opening again at the same head adds nothing.
    drop(log);
    let log = hub.open();
    drop(hub.open());
    let lines = hub.witness_lines();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3]["seq"], 12);
    let report = log.verify_against(&hub.witness).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.head.as_deref(), lines[3]["hash"].as_str());
}

/// A deferred record that falls due for the witness is witnessed when it is synced: by the
/// next append (at that append's number) or by a flush (at its own).
#[test]
fn deferred_records_due_for_the_witness_are_witnessed_when_synced() {
    let hub = Hub::new();
    let log = hub.open();
    append_n(&log, 0, 4);
    assert_eq!(log.append_deferred(&record(4)).unwrap(), 5);
    let seqs = |hub: &Hub| -> Vec<u64> {
        hub.witness_lines()
            .iter()
            .map(|l| l["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(seqs(&hub), [0], "not synced yet, not witnessed");
    assert_eq!(log.append(&record(5)).unwrap(), 6);
    assert_eq!(seqs(&hub), [0, 6]);
    append_n(&log, 6, 9);
    assert_eq!(log.append_deferred(&record(9)).unwrap(), 10);
    log.flush().unwrap();
    assert_eq!(seqs(&hub), [0, 6, 10]);
    let report = log.verify_against(&hub.witness).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

#[test]
fn rewrite_with_the_key_is_caught_only_by_the_witness() {
    let hub = Hub::new();
    let log = hub.open();
    append_n(&log, 0, 22);
    let new_head = rewrite_with_the_key(&hub.db, 7, "SELECT 1");
    // The rewrite took: record 7 says what the attacker wants, and the head changed.
    assert_eq!(
        log.verify().unwrap().head.as_deref(),
        Some(new_head.as_str())
    );
    let found7 = log
        .search(&gridhub_audit::AuditFilter {
            person_id: Some("P6".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(found7[0].record.text, "SELECT 1");

    // The known limit: with the key and a recomputed chain and anchor, the log verifies.
    let plain = log.verify().unwrap();
    assert!(plain.ok(), "{:?}", plain.problems);

    // The witness holds the heads 5, 10, 15, 20 as written: 10 is the first that differs.
    let report = log.verify_against(&hub.witness).unwrap();
    assert_eq!(found(&report), [(TamperKind::Edited, 10)]);
    let detail = &report.problems[0].detail;
    assert!(detail.contains("after record 5"), "{detail}");
    assert!(detail.contains("2 later witnessed head(s)"), "{detail}");
}

#[test]
fn cut_tail_with_the_old_anchor_restored_is_caught_by_the_witness() {
    let hub = Hub::new();
    let log = hub.open();
    append_n(&log, 0, 8);
    let old_anchor = std::fs::read(log.anchor_path()).unwrap();
    append_n(&log, 8, 12);
    attacker(&hub.db)
        .execute_batch(
            "DELETE FROM audit_log WHERE seq > 8; DELETE FROM audit_person WHERE seq > 8",
        )
        .unwrap();
    std::fs::write(log.anchor_path(), old_anchor).unwrap();

    // Without the key this is the documented limit of the anchor: the cut is invisible.
    let plain = log.verify().unwrap();
    assert!(plain.ok(), "{:?}", plain.problems);
    assert_eq!(plain.records, 8);

    // The witness recorded record 10.
    let report = log.verify_against(&hub.witness).unwrap();
    assert_eq!(found(&report), [(TamperKind::Truncated, 9)]);
    assert!(
        report.problems[0].detail.contains("records 9–10"),
        "{report:?}"
    );

    // The hub restarts on the cut log: its witness entry steps back from 10 to 8.
    drop(log);
    let log = hub.open();
    let report = log.verify_against(&hub.witness).unwrap();
    assert_eq!(
        found(&report),
        [(TamperKind::Truncated, 9), (TamperKind::Truncated, 9)]
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.detail.contains("goes back from record 10")),
        "{report:?}"
    );
}

#[test]
fn damaged_or_foreign_witness_lines_are_reported() {
    let hub = Hub::new();
    let log = hub.open();
    append_n(&log, 0, 5);
    let mut text = std::fs::read_to_string(&hub.witness).unwrap();
    // A line claiming record 3 with a plain SHA-256 instead of the keyed MAC, and junk.
    let hash = log.verify().unwrap().head.unwrap();
    text.push_str(&format!(
        "{{\"seq\":3,\"hash\":\"{hash}\",\"at\":\"x\",\"mac\":\"{}\"}}\nnot json\n",
        "0".repeat(64)
    ));
    let report = log.verify_against_text(&text, "copy").unwrap();
    assert_eq!(
        found(&report),
        [(TamperKind::Witness, 0), (TamperKind::Witness, 3)]
    );
    let empty = log.verify_against_text("", "empty").unwrap();
    assert_eq!(found(&empty), [(TamperKind::Witness, 0)]);
    // The wrong key: no line authenticates.
    let wrong = AuditLog::open(&hub.db, b"another key entirely").unwrap();
    let report = wrong.verify_against(&hub.witness).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == TamperKind::Witness)
    );
}

fn remove_log(db: &Path) {
    for suffix in ["", "-wal", "-shm", ".head"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() {
            std::fs::remove_file(p).unwrap();
        }
    }
}

#[test]
fn removed_log_on_a_hub_with_history_is_missing_until_acknowledged() {
    let hub = Hub::new();
    let history = "the policy store has 2 versions";
    let plain = AuditOptions {
        history: Some(history.to_owned()),
        ..AuditOptions::default()
    };
    // The first open of a new hub knows no history; later opens do (the policy store
    // has versions by then).
    let log = AuditLog::open(&hub.db, KEY).unwrap();
    append_n(&log, 0, 3);
    drop(log);
    assert!(
        AuditLog::open_with(&hub.db, KEY, &plain)
            .unwrap()
            .verify()
            .unwrap()
            .ok()
    );
    remove_log(&hub.db);

    let log = AuditLog::open_with(&hub.db, KEY, &plain).unwrap();
    let report = log.verify().unwrap();
    assert_eq!(found(&report), [(TamperKind::LogMissing, 1)]);
    assert!(report.problems[0].detail.contains(history), "{report:?}");
    assert_eq!(log.missing().unwrap().as_deref(), Some(history));
    // Fail closed: nothing is appended to a log that silently restarted.
    let refused = log.append(&record(0)).unwrap_err();
    assert!(matches!(refused, AuditError::Refused { .. }), "{refused}");
    assert!(refused.to_string().contains("acknowledge"), "{refused}");
    assert!(log.is_empty().unwrap());
    // Reopening does not turn it into a new log either.
    drop(log);
    let log = AuditLog::open_with(&hub.db, KEY, &plain).unwrap();
    assert!(!log.verify().unwrap().ok());

    // The operator's acknowledgement is record 1 of the new log; then appends resume.
    let mut ack = record(0);
    ack.text = "acknowledge the loss of the audit log".to_owned();
    assert_eq!(log.acknowledge_missing(&ack).unwrap(), 1);
    assert!(log.verify().unwrap().ok());
    assert_eq!(log.append(&record(1)).unwrap(), 2);
    assert!(matches!(
        log.acknowledge_missing(&ack),
        Err(AuditError::Refused { .. })
    ));
}

#[test]
fn removed_log_is_missing_when_the_witness_has_entries() {
    let hub = Hub::new();
    let log = hub.open();
    append_n(&log, 0, 6);
    drop(log);
    remove_log(&hub.db);
    // No other history is known, but the witness recorded record 5.
    let log = hub.open();
    let report = log.verify().unwrap();
    assert_eq!(found(&report), [(TamperKind::LogMissing, 1)]);
    assert!(
        report.problems[0].detail.contains("recorded record 5"),
        "{report:?}"
    );
    assert!(log.append(&record(0)).is_err());
    let against = log.verify_against(&hub.witness).unwrap();
    assert!(
        against
            .problems
            .iter()
            .any(|p| p.kind == TamperKind::Truncated && p.seq == 1),
        "{against:?}"
    );
}

#[test]
fn a_new_log_is_not_missing() {
    let hub = Hub::new();
    // A fresh install: no history, no witness entries yet.
    let log = hub.open();
    assert!(log.verify().unwrap().ok());
    assert_eq!(log.missing().unwrap(), None);
    // It is anchored as "no records yet", so removing it from now on is detectable by the
    // hub's own history (the caller's reason) even before the first record.
    assert!(log.anchor_path().exists());
    assert_eq!(log.append(&record(0)).unwrap(), 1);
    assert!(log.verify_against(&hub.witness).unwrap().ok());
}

#[test]
fn an_unwritable_witness_fails_the_open() {
    let hub = Hub::new();
    let options = AuditOptions {
        witness: Some(hub.witness.with_file_name("no-such-dir").join("w")),
        ..AuditOptions::default()
    };
    let e = AuditLog::open_with(&hub.db, KEY, &options).unwrap_err();
    assert!(matches!(e, AuditError::Witness { .. }), "{e}");
    assert!(e.to_string().contains("no-such-dir"), "{e}");
}
