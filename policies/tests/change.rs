//! What a policy change widens (compared decision by decision over principals, tables,
//! purposes and emergency states), and the policies that would lock the administration out.

mod common;

use gridhub_policy::{DEFAULT_POLICY, Known, Location, Principal, widenings};

use common::{compile, now, principal, principals};

async fn diff(old: &str, new: &str, people: &[Principal]) -> Vec<gridhub_policy::Widening> {
    let (old, new) = (compile(old).await, compile(new).await);
    widenings(&old, &new, people, &Known::shared(), now())
}

fn with(lines: &str) -> String {
    format!("{DEFAULT_POLICY}{lines}\n")
}

#[tokio::test]
async fn the_same_policy_and_a_narrowing_widen_nothing() {
    let people = principals();
    assert!(
        diff(DEFAULT_POLICY, DEFAULT_POLICY, &people)
            .await
            .is_empty()
    );
    // Comments and blank lines change no decision.
    let commented = format!("# a comment\n\n{DEFAULT_POLICY}");
    assert!(diff(DEFAULT_POLICY, &commented, &people).await.is_empty());
    let narrower = with("p, street_officer, *, person.phone, read_masked, *, -, deny");
    assert!(diff(DEFAULT_POLICY, &narrower, &people).await.is_empty());
    // Going back from the narrower one widens exactly that column for the street officer.
    let back = diff(&narrower, DEFAULT_POLICY, &people).await;
    assert_eq!(back.len(), 1, "{back:#?}");
    let w = &back[0];
    assert_eq!(w.what, "person.phone");
    assert_eq!((w.from.as_str(), w.to.as_str()), ("denied", "masked"));
    assert_eq!(w.principals, vec!["p_street_officer".to_string()]);
    assert_eq!(w.roles, vec!["street_officer".to_string()]);
}

#[tokio::test]
async fn each_kind_of_widening_is_found() {
    let people = principals();
    let cases = [
        // masked → clear, one column
        (
            "p, street_officer, *, person.phone, read_clear, *, -, allow",
            "person.phone",
            "masked",
            "clear",
            "street_officer",
        ),
        // denied rows → jurisdiction
        (
            "p, street_officer, *, location_trace, read_rows, *, -, allow",
            "rows of location_trace",
            "denied",
            "jurisdiction",
            "street_officer",
        ),
        // denied rows → all (read_all_rows where read_rows is allowed changes nothing: the
        // jurisdiction decides first; see below)
        (
            "p, volunteer, *, location_trace, read_all_rows, *, -, allow",
            "rows of location_trace",
            "denied",
            "all",
            "volunteer",
        ),
        // a hub action
        (
            "p, auditor, *, *, declare_emergency, *, -, allow",
            "hub action declare_emergency",
            "denied",
            "allowed",
            "auditor",
        ),
        // pull
        (
            "p, street_officer, *, person, pull, *, -, allow",
            "pull person",
            "denied",
            "allowed",
            "street_officer",
        ),
    ];
    for (line, what, from, to, role) in cases {
        let found = diff(DEFAULT_POLICY, &with(line), &people).await;
        assert!(
            found
                .iter()
                .any(|w| w.what == what && w.from == from && w.to == to && w.roles == [role]),
            "{line}: {found:#?}"
        );
        assert!(
            found.iter().all(|w| w.roles == [role]),
            "{line}: {found:#?}"
        );
    }
}

#[tokio::test]
async fn jurisdiction_to_all_rows_is_a_widening() {
    let people = principals();
    let line = "p, street_officer, *, person, read_rows, *, -, allow";
    assert!(DEFAULT_POLICY.contains(line));
    let whole = DEFAULT_POLICY.replace(
        line,
        "p, street_officer, *, person, read_all_rows, *, -, allow",
    );
    let found = diff(DEFAULT_POLICY, &whole, &people).await;
    assert!(
        found.iter().any(|w| w.what == "rows of person"
            && (w.from.as_str(), w.to.as_str()) == ("jurisdiction", "all")),
        "{found:#?}"
    );
    // Adding read_all_rows beside read_rows: the jurisdiction still decides, nothing widens.
    let beside = with("p, grid_worker, *, person, read_all_rows, *, -, allow");
    assert!(diff(DEFAULT_POLICY, &beside, &people).await.is_empty());
}

#[tokio::test]
async fn a_widening_only_under_a_purpose_or_an_emergency_is_found() {
    let people = principals();
    // Only in an emergency: health clear for grid workers.
    let found = diff(
        DEFAULT_POLICY,
        &with("p, grid_worker, *, tag:health, read_clear, *, emergency, allow"),
        &people,
    )
    .await;
    let w = found
        .iter()
        .find(|w| w.what == "health_record.health_code")
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!((w.from.as_str(), w.to.as_str()), ("masked", "clear"));
    assert!(w.when.contains("emergency"), "{}", w.when);
    // Only for one purpose nobody used before.
    let found = diff(
        DEFAULT_POLICY,
        &with("p, volunteer, *, tag:contact, read_clear, service_delivery, -, allow"),
        &people,
    )
    .await;
    let w = found
        .iter()
        .find(|w| w.what == "person.phone")
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert!(w.when.contains("service_delivery"), "{}", w.when);
}

#[tokio::test]
async fn principals_that_decide_alike_are_one_group_and_others_are_left_out() {
    let mut people = principals();
    let mut second = principal("street_officer");
    second.id = "p_street_officer_2".into();
    second.area = "420106002".into();
    people.push(second);
    // An area-bound line: only the first street officer's street.
    let found = diff(
        DEFAULT_POLICY,
        &with("p, street_officer, 420106001*, person.phone, read_clear, *, -, allow"),
        &people,
    )
    .await;
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|w| w.principals == ["p_street_officer".to_string()]),
        "{found:#?}"
    );
    // A line for every street: both, in one group.
    let found = diff(
        DEFAULT_POLICY,
        &with("p, street_officer, *, person.phone, read_clear, *, -, allow"),
        &people,
    )
    .await;
    assert_eq!(found[0].principals.len(), 2, "{found:#?}");
}

#[tokio::test]
async fn a_policy_that_locks_the_administration_out_is_named() {
    let people = principals();
    assert!(
        compile(DEFAULT_POLICY)
            .await
            .administration_problems(&people)
            .is_empty()
    );
    let empty = compile("# nothing\n")
        .await
        .administration_problems(&people);
    assert_eq!(empty.len(), 1);
    assert_eq!(empty[0].location, Location::Policy);
    assert!(
        empty[0].message.contains("no lines"),
        "{}",
        empty[0].message
    );

    let without = |action: &str| {
        DEFAULT_POLICY
            .lines()
            .filter(|l| !l.contains(action))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for action in ["manage_policy", "read_audit"] {
        let problems = compile(&without(action))
            .await
            .administration_problems(&people);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains(action),
            "{}",
            problems[0].message
        );
    }
    // Only a deny line can close it too.
    let denied = with("p, security_officer, *, *, manage_policy, *, -, deny");
    let problems = compile(&denied).await.administration_problems(&people);
    assert!(
        problems[0].message.contains("manage_policy"),
        "{problems:?}"
    );
}
