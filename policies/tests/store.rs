//! The policy store: versions (apply, history, rollback, active) and emergencies
//! (declare, end, list), persisted across reopening.

mod common;

use chrono::Duration;
use gridhub_policy::{DEFAULT_POLICY, PolicyError, PolicyStore};

use common::now;

#[test]
fn versions_apply_rollback_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/policy.db");
    let store = PolicyStore::open(&path).unwrap();
    assert_eq!(store.active().unwrap(), None);
    assert_eq!(store.active_version().unwrap(), None);
    assert!(store.history().unwrap().is_empty());

    let v1 = store
        .apply(DEFAULT_POLICY, "sec", "initial", now())
        .unwrap();
    assert_eq!(v1.version, 1);
    assert!(v1.active);
    assert_eq!(v1.line_count, 118);
    assert_eq!(v1.sha256.len(), 64);
    let extra = format!("{DEFAULT_POLICY}p, auditor, *, *, manage_policy, *, -, allow\n");
    let v2 = store
        .apply(
            &extra,
            "sec",
            "auditors manage too",
            now() + Duration::hours(1),
        )
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.line_count, 119);
    assert_eq!(store.active_version().unwrap(), Some(2));
    assert_ne!(v2.sha256, v1.sha256);
    assert_eq!(
        store.active().unwrap().unwrap().text.as_deref(),
        Some(extra.as_str())
    );

    let v3 = store
        .rollback(1, "sec2", now() + Duration::hours(2))
        .unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(v3.text.as_deref(), Some(DEFAULT_POLICY));
    assert_eq!(v3.sha256, v1.sha256);
    assert_eq!(v3.comment, "rollback to 1");
    assert_eq!(v3.rollback_of, Some(1));
    assert_eq!(v3.applied_by, "sec2");
    assert_eq!(v3.applied_at, now() + Duration::hours(2));

    match store.rollback(9, "sec", now()) {
        Err(PolicyError::UnknownVersion { version: 9, known }) => assert_eq!(known, "1, 2, 3"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get(9).unwrap(), None);
    assert_eq!(
        store.get(2).unwrap().unwrap().comment,
        "auditors manage too"
    );
    drop(store);

    let store = PolicyStore::open(&path).unwrap();
    let history = store.history().unwrap();
    let summary: Vec<_> = history
        .iter()
        .map(|v| (v.version, v.active, v.comment.as_str(), v.text.is_none()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, false, "initial", true),
            (2, false, "auditors manage too", true),
            (3, true, "rollback to 1", true),
        ]
    );
    assert_eq!(store.active().unwrap().unwrap().version, 3);
}

#[test]
fn emergencies_declare_end_list_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.db");
    let store = PolicyStore::open(&path).unwrap();
    let until = now() + Duration::days(3);
    let e1 = store
        .declare_emergency("420106001", until, "疫情封控", "sec", now())
        .unwrap();
    assert_eq!(
        (e1.area.as_str(), e1.until, e1.ended_at),
        ("420106001", until, None)
    );
    assert!(e1.is_active(now()));
    let e2 = store
        .declare_emergency("420106001003", until, "flood", "sec", now())
        .unwrap();
    assert!(e2.id > e1.id);

    for (area, until, reason, wants) in [
        ("4201061", until, "x", "not an admin code"),
        ("420106", now(), "x", "not after now"),
        ("420106", until, " ", "reason is required"),
    ] {
        let err = store
            .declare_emergency(area, until, reason, "sec", now())
            .unwrap_err();
        assert!(err.to_string().contains(wants), "{err}");
    }

    let ended = store
        .end_emergency(e1.id, "sec2", now() + Duration::hours(5))
        .unwrap();
    assert_eq!(ended.ended_at, Some(now() + Duration::hours(5)));
    assert_eq!(ended.ended_by.as_deref(), Some("sec2"));
    assert!(!ended.is_active(now() + Duration::hours(6)));
    let again = store
        .end_emergency(e1.id, "sec", now() + Duration::hours(6))
        .unwrap_err();
    assert!(again.to_string().contains("already ended"), "{again}");
    assert!(matches!(
        store.end_emergency(99, "sec", now()),
        Err(PolicyError::UnknownEmergency(99))
    ));
    let expired = store
        .end_emergency(e2.id, "sec", until + Duration::hours(1))
        .unwrap_err();
    assert!(expired.to_string().contains("already expired"), "{expired}");
    drop(store);

    let store = PolicyStore::open(&path).unwrap();
    let all = store.emergencies().unwrap();
    assert_eq!(
        all.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![e2.id, e1.id]
    );
    assert_eq!(all[1], ended);
    assert_eq!(all[0], e2);
    // In force: e2 until it expires; e1 ended.
    let in_force = |t| {
        store
            .emergencies_in_force(t)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(in_force(now()), vec![e2.id]);
    assert_eq!(in_force(until - Duration::seconds(1)), vec![e2.id]);
    assert_eq!(in_force(until), Vec::<i64>::new());
}
