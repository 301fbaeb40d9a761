//! Separation of duties end to end: a policy change that widens access waits for a second
//! officer, nobody widens his own role, auditors list every widening change; the policy can
//! never lock the administration out; emergencies have a maximum duration.

use chrono::{Duration, Utc};
use gridhub_audit::{AuditFilter, Outcome, RecordKind};
use gridhub_engine::GovernedHub;
use gridhub_policy::{DEFAULT_POLICY, ProposalState};
use gridhub_tests::{TestCity, query, rows};

const SCALE: usize = 2_000;
const QIAN: &str = "qian.security";
const SUN: &str = "sun.security";
const AUDITOR: &str = "wu.audit";
const STREET: &str = "zhao.street";
const STREET_AREA: &str = "420106009";

fn with(lines: &str) -> String {
    format!("{DEFAULT_POLICY}{lines}\n")
}

/// The street officer's phones, sorted (None when the query is refused).
async fn street_phones(hub: &GovernedHub) -> Option<Vec<String>> {
    let answer = hub
        .query_as(
            STREET,
            None,
            "SELECT phone FROM person WHERE phone IS NOT NULL",
        )
        .await
        .ok()?;
    let mut phones: Vec<String> = rows(&answer.batches)
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect();
    phones.sort();
    Some(phones)
}

/// The phones of the street as stored: the operator's answer.
async fn clear_street_phones(hub: &GovernedHub) -> Vec<String> {
    let mut phones: Vec<String> = query(
        hub,
        &format!(
            "SELECT phone FROM person WHERE phone IS NOT NULL AND area_code LIKE '{STREET_AREA}%'"
        ),
    )
    .await
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect();
    phones.sort();
    phones
}

fn active_version(hub: &GovernedHub) -> i64 {
    hub.governance().policy().unwrap().0
}

fn policy_records(hub: &GovernedHub, principal: &str) -> Vec<(Outcome, String, Option<String>)> {
    hub.audit_search(
        AUDITOR,
        &AuditFilter {
            principal: Some(principal.into()),
            ..Default::default()
        },
    )
    .unwrap()
    .into_iter()
    .filter(|r| r.record.kind == RecordKind::PolicyChange)
    .map(|r| (r.record.outcome, r.record.text, r.record.message))
    .collect()
}

#[tokio::test]
async fn an_officer_cannot_grant_himself_resident_data() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let before = active_version(&hub);
    // The attack: read every resident in clear, then roll back.
    let attack = with(
        "p, security_officer, *, *, read_all_rows, *, -, allow\n\
         p, security_officer, *, *, read_clear, *, -, allow",
    );
    for officer in [QIAN, SUN] {
        let e = hub
            .policy_apply(officer, &attack, "everything")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("refused") && e.contains(officer) && e.contains("security_officer"),
            "{e}"
        );
        // The reason names what would widen: a table (rows) of resident data.
        assert!(e.contains("rows of "), "{e}");
    }
    assert_eq!(active_version(&hub), before);
    assert!(
        hub.query_as(QIAN, None, "SELECT count(*) FROM person")
            .await
            .is_err(),
        "the old policy stays: no resident data for security officers"
    );
    // Nothing waits for approval, but the auditor sees both attempts, refused.
    assert!(hub.policy_proposals(QIAN, true).unwrap().is_empty());
    let changes = hub.policy_proposals(AUDITOR, false).unwrap();
    assert_eq!(changes.len(), 2, "{changes:#?}");
    assert!(changes.iter().all(|c| c.state == ProposalState::Refused));
    assert_eq!(changes[0].proposed_by, QIAN);
    assert!(changes[0].widening.contains("security_officer"));
    // And each attempt is an audit record, denied.
    let records = policy_records(&hub, QIAN);
    assert!(
        records
            .iter()
            .any(|(o, text, _)| *o == Outcome::Denied && text.contains("refused")),
        "{records:#?}"
    );
}

#[tokio::test]
async fn a_widening_of_another_role_waits_for_a_second_officer() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let clear = clear_street_phones(&hub).await;
    assert!(!clear.is_empty(), "the test street has phones");
    let masked = street_phones(&hub).await.unwrap();
    assert_eq!(masked.len(), clear.len());
    assert!(masked.iter().all(|p| !clear.contains(p)), "masked before");

    let text = with("p, street_officer, *, person.phone, read_clear, *, -, allow");
    let change = hub
        .policy_apply(QIAN, &text, "phones for the street")
        .await
        .unwrap();
    let proposal = change.pending().expect("a widening waits").clone();
    assert!(
        proposal.widening.contains("person.phone: masked → clear")
            && proposal.widening.contains(STREET),
        "{}",
        proposal.widening
    );
    // Not in effect: the street officer still gets the old answer.
    assert_eq!(street_phones(&hub).await.unwrap(), masked);
    // The proposer cannot approve it; an auditor cannot; nor a street officer.
    let e = hub
        .policy_approve(QIAN, proposal.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("another principal"), "{e}");
    for who in [AUDITOR, STREET] {
        let e = hub
            .policy_approve(who, proposal.id)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("manage_policy"), "{who}: {e}");
    }
    assert_eq!(street_phones(&hub).await.unwrap(), masked);
    assert_eq!(hub.policy_proposals(SUN, true).unwrap().len(), 1);

    // A second officer approves: in effect, the street's phones as stored.
    let (approved, version) = hub.policy_approve(SUN, proposal.id).await.unwrap();
    assert_eq!(approved.state, ProposalState::Approved);
    assert_eq!(approved.version, Some(version.version));
    assert_eq!(active_version(&hub), version.version);
    assert_eq!(street_phones(&hub).await.unwrap(), clear);
    // Approved once only.
    let e = hub
        .policy_approve(SUN, proposal.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("approved already"), "{e}");

    // The auditor's list: who proposed, who approved, when, what it widens.
    let changes = hub.policy_proposals(AUDITOR, false).unwrap();
    assert_eq!(changes.len(), 1);
    let c = &changes[0];
    assert_eq!(
        (c.proposed_by.as_str(), c.decided_by.as_deref()),
        (QIAN, Some(SUN))
    );
    assert!(c.decided_at.is_some() && c.widening.contains("person.phone"));
    // A street officer may not read that list.
    assert!(hub.policy_proposals(STREET, false).is_err());
    // Each step is an audit record.
    assert!(
        policy_records(&hub, QIAN)
            .iter()
            .any(|(o, text, m)| *o == Outcome::Ok
                && text.contains("proposed as policy proposal")
                && m.as_deref().is_some_and(|m| m.contains("person.phone")))
    );
    let sun = policy_records(&hub, SUN);
    assert!(
        sun.iter()
            .any(|(o, text, _)| *o == Outcome::Ok && text.contains("approve policy proposal")),
        "{sun:#?}"
    );
}

#[tokio::test]
async fn a_rejected_proposal_never_takes_effect_and_a_narrowing_applies_at_once() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let masked = street_phones(&hub).await.unwrap();
    let text = with("p, street_officer, *, person.phone, read_clear, *, -, allow");
    let proposal = hub
        .policy_apply(QIAN, &text, "phones")
        .await
        .unwrap()
        .pending()
        .cloned()
        .unwrap();
    let rejected = hub.policy_reject(SUN, proposal.id, "not needed").unwrap();
    assert_eq!(rejected.state, ProposalState::Rejected);
    let e = hub
        .policy_approve(SUN, proposal.id)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("rejected already"), "{e}");
    assert_eq!(street_phones(&hub).await.unwrap(), masked);

    // A narrowing change: at once, no proposal.
    let before = active_version(&hub);
    let narrower = with("p, street_officer, *, person.phone, read_masked, *, -, deny");
    let v = hub
        .policy_apply(QIAN, &narrower, "no phones")
        .await
        .unwrap()
        .active()
        .cloned()
        .expect("a narrowing applies at once");
    assert_eq!(v.version, before + 1);
    assert_eq!(street_phones(&hub).await, None, "phones are closed at once");
    assert!(hub.policy_proposals(QIAN, true).unwrap().is_empty());
    // Emergency-only and hub-action widenings of other roles wait too.
    for line in [
        "p, grid_worker, *, tag:health, read_clear, *, emergency, allow",
        "p, auditor, *, *, declare_emergency, *, -, allow",
    ] {
        let change = hub
            .policy_apply(QIAN, &format!("{narrower}{line}\n"), "more")
            .await
            .unwrap();
        assert!(change.pending().is_some(), "{line}: {change:?}");
    }
    assert_eq!(active_version(&hub), v.version);
}

#[tokio::test]
async fn a_policy_that_locks_the_administration_out_is_refused() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let before = active_version(&hub);
    let without = |action: &str| {
        DEFAULT_POLICY
            .lines()
            .filter(|l| !l.contains(action))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let cases = [
        ("", "no lines"),
        ("# nothing but a comment\n", "no lines"),
        (&without("manage_policy") as &str, "manage_policy"),
        (&without("read_audit") as &str, "read_audit"),
    ];
    for (text, reason) in cases {
        let e = hub.policy_check(text).await.unwrap_err().to_string();
        assert!(e.contains(reason), "check: {e}");
        let e = hub
            .policy_apply(QIAN, text, "lock out")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(reason), "apply: {e}");
        assert_eq!(active_version(&hub), before);
    }
    // Still administrable.
    assert_eq!(hub.policy_history(QIAN).unwrap().len(), before as usize);
    assert!(hub.audit_verify(AUDITOR).unwrap().ok());

    // A version that locks out, put into the store behind the hub's back, cannot be rolled
    // back to.
    let store = hub.governance().store();
    let bad = store
        .apply(&without("manage_policy"), "someone", "bad", Utc::now())
        .unwrap();
    store
        .apply(DEFAULT_POLICY, "someone", "good again", Utc::now())
        .unwrap();
    hub.governance().reload().await.unwrap();
    let good = active_version(&hub);
    let e = hub
        .policy_rollback(QIAN, bad.version)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("manage_policy"), "{e}");
    assert_eq!(active_version(&hub), good);
    hub.policy_history(QIAN).unwrap();
}

#[tokio::test]
async fn an_emergency_beyond_the_maximum_duration_is_refused() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let max = hub.hub().config().policy.emergency_max;
    assert_eq!(max, Duration::hours(72), "the default");
    let e = hub
        .emergency_declare(
            QIAN,
            "420106",
            Utc::now() + max + Duration::hours(1),
            "long",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("emergency_max_hours") && e.contains("72"), "{e}");
    assert!(hub.emergency_list(QIAN).unwrap().is_empty());
    hub.emergency_declare(QIAN, "420106", Utc::now() + max - Duration::hours(1), "ok")
        .await
        .unwrap();
    assert_eq!(hub.emergency_list(QIAN).unwrap().len(), 1);
}
