//! Validation: every kind of bad line is reported with its line number, all at once; bad
//! models and principals are refused at compile time, never by a panic at enforce time.

mod common;

use gridhub_policy::{
    DEFAULT_MODEL, DEFAULT_POLICY, Known, Location, Policy, PolicyError, Principal, Problem,
};

use common::principals;

async fn problems(model: &str, policy: &str, principals: &[Principal]) -> Vec<Problem> {
    match Policy::compile(model, policy, principals, &Known::shared()).await {
        Ok(_) => panic!("compiled, expected problems"),
        Err(e @ PolicyError::Invalid(_)) => {
            // The message lists every problem, one per line.
            let message = e.to_string();
            for p in e.problems() {
                assert!(message.contains(&p.to_string()), "{message}");
            }
            e.problems().to_vec()
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

/// The problem reported for `location`, which must be the only one there.
fn at<'a>(problems: &'a [Problem], location: &Location) -> &'a str {
    let here: Vec<_> = problems
        .iter()
        .filter(|p| &p.location == location)
        .collect();
    assert_eq!(here.len(), 1, "{location}: {here:?}");
    &here[0].message
}

#[tokio::test]
async fn every_bad_line_is_reported_with_its_number() {
    // (line, what must appear in its message)
    let cases: &[(&str, &[&str])] = &[
        (
            "p, city_analist, *, person, read_rows, *, -, allow",
            &["unknown role 'city_analist'", "city_analyst"],
        ),
        (
            "p, city_analyst, *, persons, read_rows, *, -, allow",
            &["unknown object 'persons'", "person"],
        ),
        (
            "p, city_analyst, *, persons.phone, read_clear, *, -, allow",
            &["unknown table 'persons'"],
        ),
        (
            "p, city_analyst, *, person.mobile, read_clear, *, -, allow",
            &["unknown column 'mobile'", "phone"],
        ),
        (
            "p, city_analyst, *, tag:secret, read_clear, *, -, allow",
            &["unknown tag 'secret'", "health"],
        ),
        (
            "p, city_analyst, *, source:src_x, read_all_rows, *, -, allow",
            &["unknown source 'src_x'"],
        ),
        (
            "p, city_analyst, *, person, read, *, -, allow",
            &["unknown action 'read'", "read_rows"],
        ),
        (
            "p, city_analyst, *, person, read_rows, gossip, -, allow",
            &["unknown purpose 'gossip'", "epidemic_response"],
        ),
        (
            "p, city_analyst, *, person, read_rows, *, outbreak, allow",
            &["emergency field 'outbreak'"],
        ),
        (
            "p, city_analyst, *, person, read_rows, *, -, permit",
            &["effect 'permit'", "allow"],
        ),
        (
            "p, city_analyst, 4201, person, read_rows, *, -, allow",
            &["area '4201' is not a pattern"],
        ),
        (
            "p, city_analyst, 42a*, person, read_rows, *, -, allow",
            &["area '42a*'"],
        ),
        (
            "p, city_analyst, *, person, read_rows, *, -",
            &["6 fields after `p`, expected 7"],
        ),
        ("g, alice, city_analyst", &["[[principals]]"]),
        ("x, city_analyst", &["unknown line type 'x'"]),
        (
            "p, city_analyst, *, admin_unit, read_rows, *, -, allow",
            &["no area_code", "read_all_rows"],
        ),
        (
            "p, city_analyst, *, tag:health, read_rows, *, -, allow",
            &["about a table's rows"],
        ),
        (
            "p, security_officer, *, person, manage_policy, *, -, allow",
            &["use object `*`"],
        ),
        (
            "p, security_officer, *, *, declare_emergency, routine, -, allow",
            &["not bound to purposes"],
        ),
        (
            "p, community_worker, *, *, pull, *, emergency, allow",
            &["not bound to emergencies"],
        ),
        (
            "p, auditor, *, *, read_audit, *, -, allow",
            &["repeats line"],
        ),
    ];
    let mut text = String::from("# header comment\n\np, auditor, *, *, read_audit, *, -, allow\n");
    for (line, _) in cases {
        text.push_str(line);
        text.push('\n');
    }
    let found = problems(DEFAULT_MODEL, &text, &principals()).await;
    assert_eq!(found.len(), cases.len(), "{found:#?}");
    for (i, (line, needles)) in cases.iter().enumerate() {
        let message = at(&found, &Location::Line(i + 4));
        for needle in *needles {
            assert!(
                message.contains(needle),
                "{line}\n  → {message}\n  missing {needle:?}"
            );
        }
    }
    // One line with several problems reports them all.
    let found = problems(
        DEFAULT_MODEL,
        "p, nobody, 9, nothing, fly, *, x, maybe",
        &principals(),
    )
    .await;
    assert_eq!(found.len(), 6, "{found:#?}");
    assert!(found.iter().all(|p| p.location == Location::Line(1)));
}

#[tokio::test]
async fn unsupported_effect_is_refused_at_compile() {
    let model = DEFAULT_MODEL.replace(
        "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
        "e = some(where (p.eft == allow)) || !some(where (p.eft == deny))",
    );
    assert_ne!(model, DEFAULT_MODEL);
    let found = problems(&model, DEFAULT_POLICY, &principals()).await;
    let message = at(&found, &Location::Model);
    assert!(message.contains("not supported by casbin-rs"), "{message}");
    assert!(
        message.contains("!some(where (p.eft == deny))"),
        "{message}"
    );
}

#[tokio::test]
async fn model_failing_at_enforce_time_is_refused_by_the_probe() {
    // Parses and compiles, but the matcher calls a function casbin does not have.
    let model = DEFAULT_MODEL.replace(
        "m = r.act == p.act",
        "m = noSuchFunction(r.act) && r.act == p.act",
    );
    assert_ne!(model, DEFAULT_MODEL);
    let found = problems(&model, DEFAULT_POLICY, &principals()).await;
    let message = at(&found, &Location::Model);
    assert!(message.contains("casbin fails to enforce"), "{message}");
}

#[tokio::test]
async fn malformed_models_are_refused() {
    let found = problems("this is not a model", DEFAULT_POLICY, &principals()).await;
    assert!(
        found.iter().any(|p| p.location == Location::Model),
        "{found:?}"
    );

    let model = DEFAULT_MODEL.replace(
        "r = sub, area, tbl, col, tag, act, purpose, emg",
        "r = sub, obj, act",
    );
    let found = problems(&model, DEFAULT_POLICY, &principals()).await;
    assert!(at(&found, &Location::Model).contains("request_definition has 3 fields"));

    let model = DEFAULT_MODEL.replace("g = _, _", "");
    let found = problems(&model, DEFAULT_POLICY, &principals()).await;
    assert!(at(&found, &Location::Model).contains("role_definition"));
}

#[tokio::test]
async fn bad_principals_are_reported() {
    let mut people = principals();
    people.push(Principal {
        id: "lin".into(),
        name: None,
        roles: vec!["mayor".into()],
        area: "42010".into(),
    });
    people.push(people[0].clone());
    let found = problems(DEFAULT_MODEL, DEFAULT_POLICY, &people).await;
    let lin: Vec<_> = found
        .iter()
        .filter(|p| p.location == Location::Principal("lin".into()))
        .map(|p| p.message.as_str())
        .collect();
    assert_eq!(lin.len(), 2, "{found:?}");
    assert!(lin.iter().any(|m| m.contains("unknown role 'mayor'")));
    assert!(
        lin.iter()
            .any(|m| m.contains("area '42010' is not an admin code"))
    );
    let twice = at(&found, &Location::Principal(people[0].id.clone()));
    assert!(twice.contains("listed twice"));
}

#[tokio::test]
async fn principal_config_rejects_unknown_fields() {
    let ok: Principal =
        serde_json::from_str(r#"{"id":"wang","roles":["grid_worker"],"area":"420106001003007"}"#)
            .unwrap();
    assert_eq!(ok.name, None);
    let bad = serde_json::from_str::<Principal>(
        r#"{"id":"wang","roles":["grid_worker"],"area":"420106001003007","role":"x"}"#,
    );
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("unknown field `role`")
    );
}

#[tokio::test]
async fn default_policy_compiles_with_every_line() {
    let policy = common::default_policy().await;
    assert_eq!(
        policy.line_count(),
        gridhub_policy::count_lines(DEFAULT_POLICY)
    );
    assert_eq!(policy.line_count(), 118);
    assert_eq!(policy.text(), DEFAULT_POLICY);
}
