//! Decisions beyond the golden table: emergencies (inside, covering, unrelated, expiry),
//! deny overriding allow, column lines against tag lines, the cache, hints, raw sources.

mod common;

use chrono::Duration;
use gridhub_catalog::{Tag, shared_table};
use gridhub_policy::{
    Access, ColumnInfo, DEFAULT_MODEL, DEFAULT_POLICY, Known, Policy, Principal, RowAccess,
    TableInfo, TableKind,
};

use common::{compile, default_policy, emergency, now, principal, principals};

fn table(name: &str) -> TableInfo {
    TableInfo::shared(shared_table(name).unwrap())
}

/// `policy`'s decision now for a principal of `role` reading shared table `name`, with no
/// purpose and no emergency.
fn decide_now(
    policy: &Policy,
    role: &str,
    name: &str,
) -> std::sync::Arc<gridhub_policy::TableDecision> {
    policy.decide(&principal(role), None, &[], now(), &table(name))
}

/// The default policy with extra lines appended; returns it and the first extra line's number.
fn with_lines(extra: &[&str]) -> (String, usize) {
    let first = DEFAULT_POLICY.lines().count() + 1;
    let mut text = DEFAULT_POLICY.to_owned();
    for line in extra {
        text.push_str(line);
        text.push('\n');
    }
    (text, first)
}

#[tokio::test]
async fn emergency_inside_covering_and_unrelated() {
    let policy = default_policy().await;
    let worker = principal("community_worker"); // 420106001003
    let trace = table("location_trace");
    let health = table("health_record");

    let normal = policy.decide(&worker, None, &[], now(), &trace);
    let lat = normal.column("lat").unwrap();
    assert_eq!(lat.access, Access::Denied);
    assert!(lat.emergency_clear_areas.is_empty());

    // Two grids of the community in an emergency: clear there, denied elsewhere.
    let inside = [
        emergency(7, "420106001003007", 24),
        emergency(8, "420106001003002", 24),
    ];
    let d = policy.decide(&worker, None, &inside, now(), &trace);
    let lat = d.column("lat").unwrap();
    assert_eq!(lat.access, Access::Denied);
    assert_eq!(
        lat.emergency_clear_areas,
        vec!["420106001003002".to_owned(), "420106001003007".to_owned()]
    );
    assert!(lat.emergency_masked_areas.is_empty());
    assert!(d.column("via").unwrap().emergency_clear_areas.is_empty()); // already clear
    assert_eq!(d.rows, RowAccess::Jurisdiction("420106001003".into()));

    // Health opens only for epidemic_response in an emergency.
    let d = policy.decide(&worker, None, &inside, now(), &health);
    assert_eq!(d.column("health_code").unwrap().access, Access::Masked);
    assert!(
        d.column("health_code")
            .unwrap()
            .emergency_clear_areas
            .is_empty()
    );
    let d = policy.decide(&worker, Some("epidemic_response"), &inside, now(), &health);
    assert_eq!(d.column("health_code").unwrap().access, Access::Masked);
    assert_eq!(
        d.column("health_code").unwrap().emergency_clear_areas.len(),
        2
    );

    // Covering the whole community (declared for the street): clear everywhere.
    let covering = [emergency(9, "420106001", 24)];
    let d = policy.decide(&worker, None, &covering, now(), &trace);
    let lat = d.column("lat").unwrap();
    assert_eq!(lat.access, Access::Clear);
    assert!(lat.emergency_clear_areas.is_empty());
    assert!(
        lat.lines
            .iter()
            .any(|l| l.contains("tag:location, read_clear, *, emergency"))
    );

    // Another community's emergency changes nothing and shares the no-emergency decision.
    let calls = policy.enforce_calls();
    let unrelated = [emergency(10, "420106001004", 24)];
    let d = policy.decide(&worker, None, &unrelated, now(), &trace);
    assert_eq!(*d, *normal);
    assert_eq!(
        policy.enforce_calls(),
        calls,
        "unrelated emergencies are not in the key"
    );

    // Roles the emergency lines do not name stay denied inside an emergency.
    let analyst = principal("district_analyst");
    let d = policy.decide(&analyst, None, &inside, now(), &table("person"));
    assert!(d.columns.iter().all(|c| c.emergency_clear_areas.is_empty()));
}

#[tokio::test]
async fn emergency_expires_with_the_clock_and_ended_ones_are_ignored() {
    let policy = default_policy().await;
    let officer = principal("health_officer"); // 420106
    let trace = table("location_trace");
    let e = emergency(3, "420106", 2);

    let before = policy.decide(&officer, None, std::slice::from_ref(&e), now(), &trace);
    assert_eq!(before.column("place").unwrap().access, Access::Clear);
    let at_expiry = e.until;
    let after = policy.decide(&officer, None, std::slice::from_ref(&e), at_expiry, &trace);
    assert_eq!(after.column("place").unwrap().access, Access::Denied);
    let later = policy.decide(
        &officer,
        None,
        std::slice::from_ref(&e),
        now() + Duration::hours(3),
        &trace,
    );
    assert_eq!(later.column("place").unwrap().access, Access::Denied);

    let mut ended = e.clone();
    ended.ended_at = Some(now() + Duration::minutes(30));
    ended.ended_by = Some("p_security_officer".into());
    let d = policy.decide(&officer, None, &[ended], now() + Duration::hours(1), &trace);
    assert_eq!(d.column("place").unwrap().access, Access::Denied);
}

#[tokio::test]
async fn deny_line_overrides_allow() {
    let (text, first) =
        with_lines(&["p, community_worker, *, person.phone, read_clear, *, -, deny"]);
    let policy = compile(&text).await;
    let d = decide_now(&policy, "community_worker", "person");
    let phone = d.column("phone").unwrap();
    // No read_masked line for contact: the column is closed, not masked.
    assert_eq!(phone.access, Access::Denied);
    assert!(
        phone
            .lines
            .iter()
            .any(|l| l.starts_with(&format!("line {first}:")))
    );
    let hint = phone.hint.as_deref().unwrap();
    assert!(
        hint.contains(&format!("deny line (line {first})")),
        "{hint}"
    );
    assert_eq!(d.column("id_number").unwrap().access, Access::Clear);
    // Grid workers keep it: the line names community workers only.
    let d = decide_now(&policy, "grid_worker", "person");
    assert_eq!(d.column("phone").unwrap().access, Access::Clear);

    // A row deny closes the table and every column.
    let (text, _) = with_lines(&["p, grid_worker, 420106001003*, person, read_rows, *, -, deny"]);
    let policy = compile(&text).await;
    let d = decide_now(&policy, "grid_worker", "person");
    assert_eq!(d.rows, RowAccess::Denied);
    assert!(d.columns.iter().all(|c| c.access == Access::Denied));
    assert!(d.reason.as_deref().unwrap().contains("deny line"));
}

#[tokio::test]
async fn column_line_beats_tag_default_only_as_the_model_says() {
    let volunteer = principal("volunteer");
    // A column allow adds clear where the tag gives masked: more lines allow, none deny.
    let (text, _) = with_lines(&["p, volunteer, *, person.phone, read_clear, *, -, allow"]);
    let policy = compile(&text).await;
    let d = policy.decide(&volunteer, None, &[], now(), &table("person"));
    assert_eq!(d.column("phone").unwrap().access, Access::Clear);
    assert_eq!(d.column("name").unwrap().access, Access::Masked);

    // But it cannot beat a tag-level deny: deny overrides allow, whatever the level.
    let (text, _) = with_lines(&[
        "p, volunteer, *, person.phone, read_clear, *, -, allow",
        "p, volunteer, *, tag:contact, read_clear, *, -, deny",
    ]);
    let policy = compile(&text).await;
    let d = policy.decide(&volunteer, None, &[], now(), &table("person"));
    assert_eq!(d.column("phone").unwrap().access, Access::Masked);

    // And a column deny beats a tag allow.
    let (text, _) = with_lines(&["p, volunteer, *, person.name, read_masked, *, -, deny"]);
    let policy = compile(&text).await;
    let d = policy.decide(&volunteer, None, &[], now(), &table("person"));
    assert_eq!(d.column("name").unwrap().access, Access::Denied);
    assert_eq!(d.column("id_number").unwrap().access, Access::Masked);
}

#[tokio::test]
async fn second_decision_comes_from_the_cache() {
    let policy = default_policy().await;
    let worker = principal("community_worker");
    let person = table("person");
    assert_eq!(policy.enforce_calls(), 0);
    let first = policy.decide(&worker, Some("routine"), &[], now(), &person);
    // Rows, then one call per distinct tag (public, identity, contact) for 11 columns.
    assert_eq!(policy.enforce_calls(), 4);
    let second = policy.decide(&worker, Some("routine"), &[], now(), &person);
    assert_eq!(policy.enforce_calls(), 4);
    assert!(std::sync::Arc::ptr_eq(&first, &second));

    // Another purpose, table or emergency set is another key.
    policy.decide(&worker, Some("statistics"), &[], now(), &person);
    assert_eq!(policy.enforce_calls(), 8);
    // An emergency inside the jurisdiction is another key, but the worker reads every
    // column of person clear already: no request differs, the verdicts are the ones made.
    let inside = policy.decide(
        &worker,
        Some("routine"),
        &[emergency(1, "420106001003001", 1)],
        now(),
        &person,
    );
    assert!(!std::sync::Arc::ptr_eq(&first, &inside));
    assert_eq!(policy.enforce_calls(), 8);
    // One covering it asks in the emergency state: new requests, new calls.
    policy.decide(
        &worker,
        Some("routine"),
        &[emergency(2, "420106001", 1)],
        now(),
        &person,
    );
    assert!(policy.enforce_calls() > 8);
}

#[tokio::test]
async fn hints_say_what_would_allow_a_read() {
    let policy = default_policy().await;
    let d = decide_now(&policy, "community_worker", "health_record");
    let hint = d.column("test_result").unwrap().hint.clone().unwrap();
    assert!(
        hint.contains("purpose epidemic_response and a declared emergency (role community_worker)"),
        "{hint}"
    );
    assert!(
        hint.contains("purpose epidemic_response (role health_officer)"),
        "{hint}"
    );
    assert!(hint.starts_with("clear read needs"), "{hint}");
    // The column-specific elderly-care line shows only for its column.
    let chronic = d
        .column("chronic_conditions")
        .unwrap()
        .hint
        .clone()
        .unwrap();
    assert!(
        chronic.contains("purpose elderly_care (role community_worker)"),
        "{chronic}"
    );
    assert!(!hint.contains("elderly_care"), "{hint}");
    assert!(d.column("person_id").unwrap().hint.is_none());

    let d = decide_now(&policy, "grid_worker", "location_trace");
    assert_eq!(d.rows, RowAccess::Denied);
    let reason = d.reason.clone().unwrap();
    assert_eq!(
        reason,
        "reading rows of location_trace needs role community_worker or role health_officer"
    );

    let d = policy.decide(&principal("volunteer"), None, &[], now(), &table("person"));
    let id = d.column("id_number").unwrap();
    assert_eq!(id.access, Access::Masked);
    assert!(
        id.hint
            .as_deref()
            .unwrap()
            .contains("role community_worker")
    );
}

#[tokio::test]
async fn unknown_or_changed_principals_are_denied_without_enforcing() {
    let policy = default_policy().await;
    let mut moved = principal("community_worker");
    moved.area = "420106001004".into();
    let stranger = Principal {
        id: "stranger".into(),
        name: None,
        roles: vec!["city_analyst".into()],
        area: "4201".into(),
    };
    for who in [&moved, &stranger] {
        let d = policy.decide(who, None, &[], now(), &table("building"));
        assert_eq!(d.rows, RowAccess::Denied);
        assert!(
            d.reason
                .as_deref()
                .unwrap()
                .contains("reload the configuration")
        );
        assert!(!policy.allows(who, "manage_policy"));
    }
    assert_eq!(policy.enforce_calls(), 0);
}

#[tokio::test]
async fn hub_actions_pull_and_multiple_roles() {
    let mut people = principals();
    people.push(Principal {
        id: "both".into(),
        name: Some("网格员兼防疫专员".into()),
        roles: vec!["volunteer".into(), "health_officer".into()],
        area: "420106001003007".into(),
    });
    let policy = Policy::compile(DEFAULT_MODEL, DEFAULT_POLICY, &people, &Known::shared())
        .await
        .unwrap();
    let security = principal("security_officer");
    assert!(policy.allows(&security, "manage_policy"));
    assert!(policy.allows(&security, "declare_emergency"));
    assert!(policy.allows(&principal("auditor"), "read_audit"));
    assert!(!policy.allows(&principal("auditor"), "declare_emergency"));
    assert!(!policy.allows(&principal("community_worker"), "manage_policy"));
    let d = policy.decide(&security, None, &[], now(), &table("person"));
    assert_eq!(d.rows, RowAccess::Denied);

    assert!(policy.may_pull(&principal("community_worker"), None, &table("person")));
    assert!(!policy.may_pull(&principal("city_analyst"), None, &table("person")));

    // Allow lines of all the principal's roles count: health officer's rows and clear reads.
    let both = &people[people.len() - 1];
    let d = policy.decide(
        both,
        Some("epidemic_response"),
        &[],
        now(),
        &table("health_record"),
    );
    assert_eq!(d.rows, RowAccess::Jurisdiction("420106001003007".into()));
    assert_eq!(d.column("health_code").unwrap().access, Access::Clear);
}

#[tokio::test]
async fn raw_source_tables_need_a_source_line_and_matching_area() {
    let raw = TableInfo {
        name: "src_property_a.住户".into(),
        kind: TableKind::Raw {
            source: "src_property_a".into(),
        },
        has_area_code: false,
        columns: vec![
            ColumnInfo {
                name: "姓名".into(),
                tag: Tag::Identity,
            },
            ColumnInfo {
                name: "电话".into(),
                tag: Tag::Contact,
            },
            ColumnInfo {
                name: "房号".into(),
                tag: Tag::Public,
            },
        ],
    };
    let mut known = Known::shared();
    known.sources.push("src_property_a".into());
    known.tables.push(raw.clone());
    let mut people = principals();
    let mut other_company = principal("property_company");
    other_company.id = "p_property_b".into();
    other_company.area = "420106001004".into();
    people.push(other_company.clone());
    let company = principal("property_company"); // 420106001003

    let policy = Policy::compile(DEFAULT_MODEL, DEFAULT_POLICY, &people, &known)
        .await
        .unwrap();
    let d = policy.decide(&company, None, &[], now(), &raw);
    assert_eq!(d.rows, RowAccess::Denied, "raw sources are opt-in");

    let (text, _) = with_lines(&[
        "p, property_company, 420106001003*, source:src_property_a, read_all_rows, *, -, allow",
        "p, property_company, 420106001003*, source:src_property_a, read_clear, *, -, allow",
    ]);
    let policy = Policy::compile(DEFAULT_MODEL, &text, &people, &known)
        .await
        .unwrap();
    let d = policy.decide(&company, None, &[], now(), &raw);
    assert_eq!(d.rows, RowAccess::All);
    assert!(d.columns.iter().all(|c| c.access == Access::Clear), "{d:?}");
    let d = policy.decide(&other_company, None, &[], now(), &raw);
    assert_eq!(d.rows, RowAccess::Denied, "the area pattern binds the line");
    // The source lines do not leak into the shared tables.
    let d = policy.decide(&company, None, &[], now(), &table("person"));
    assert_eq!(d.column("name").unwrap().access, Access::Masked);
}

#[test]
fn policy_is_shared_across_threads_and_compiles_in_spawned_tasks() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Policy>();
    fn send<F: Send>(f: F) -> F {
        f
    }
    let people = principals();
    let known = Known::shared();
    drop(send(Policy::compile(
        DEFAULT_MODEL,
        DEFAULT_POLICY,
        &people,
        &known,
    )));
}

/// Per-(jurisdiction, action, roles) enforcers (the default model requires `keyMatch(r.area,
/// p.area)`, `r.act == p.act` and `g(r.sub, p.role)`, so each holds only its jurisdiction's
/// lines of one action and the principal's roles) decide exactly as one enforcer holding
/// every line: the same model with the three terms hidden in parentheses is not recognised
/// as scoped.
#[tokio::test]
async fn per_jurisdiction_enforcers_decide_as_one_enforcer_with_every_line() {
    let unscoped_model = DEFAULT_MODEL.replace(
        "&& keyMatch(r.area, p.area)",
        "&& (keyMatch(r.area, p.area) || r.area == \"-\")",
    );
    assert_ne!(unscoped_model, DEFAULT_MODEL, "the model's area term moved");
    // Nor per action: the action term hidden the same way.
    let unscoped_model = unscoped_model.replace(
        "m = r.act == p.act &&",
        "m = (r.act == p.act || r.act == \"-\") &&",
    );
    assert!(
        unscoped_model.contains("r.act == \"-\""),
        "the model's action term moved"
    );
    // Nor per role.
    let unscoped_model = unscoped_model.replace(
        "&& g(r.sub, p.role)",
        "&& (g(r.sub, p.role) || r.sub == \"-\")",
    );
    assert!(
        unscoped_model.contains("r.sub == \"-\""),
        "the model's role term moved"
    );
    let (text, _) = with_lines(&[
        "p, community_worker, 420106001003*, tag:location, read_masked, *, -, allow",
        "p, community_worker, 420106002001*, tag:health, read_clear, *, -, allow",
        "p, street_officer, 420106001*, person.phone, read_clear, routine, -, allow",
        "p, street_officer, 420106002*, person, read_rows, *, -, deny",
        "p, volunteer, 420106001003007*, tag:contact, read_clear, service_delivery, -, allow",
    ]);
    let mut people = principals();
    for (role, area) in [
        ("community_worker", "420106002001"),
        ("street_officer", "420106002"),
        ("volunteer", "420106001003008"),
        ("district_analyst", "420107"),
    ] {
        people.push(Principal {
            id: format!("other_{role}"),
            name: None,
            roles: vec![role.to_owned()],
            area: area.to_owned(),
        });
    }
    // Two roles in one jurisdiction: its enforcers hold both roles' lines.
    people.push(Principal {
        id: "other_two_roles".into(),
        name: None,
        roles: vec!["volunteer".into(), "community_worker".into()],
        area: "420106001003".into(),
    });
    // Scoped, but verdicts not shared: the object term hidden the same way.
    let unshared_model = DEFAULT_MODEL.replace(
        "|| keyMatch(r.tbl, p.obj))",
        "|| keyMatch(r.tbl, p.obj) || r.tbl == \"-\")",
    );
    assert_ne!(
        unshared_model, DEFAULT_MODEL,
        "the model's object term moved"
    );
    let known = Known::shared();
    let scoped = Policy::compile(DEFAULT_MODEL, &text, &people, &known)
        .await
        .unwrap();
    let unshared = Policy::compile(&unshared_model, &text, &people, &known)
        .await
        .unwrap();
    let unscoped = Policy::compile(&unscoped_model, &text, &people, &known)
        .await
        .unwrap();
    let emergencies = [emergency(1, "420106001003", 2)];
    assert!(scoped.is_area_scoped() && scoped.is_action_scoped() && scoped.is_role_scoped());
    assert!(scoped.shares_verdicts());
    assert!(unshared.is_area_scoped() && !unshared.shares_verdicts());
    assert!(
        !unscoped.is_area_scoped() && !unscoped.is_action_scoped() && !unscoped.is_role_scoped()
    );
    assert!(!unscoped.shares_verdicts());
    let mut compared = 0;
    for who in &people {
        for t in gridhub_catalog::shared_tables() {
            let t = TableInfo::shared(t);
            for purpose in [None, Some("routine"), Some("epidemic_response")] {
                for active in [&emergencies[..], &[]] {
                    let a = scoped.decide(who, purpose, active, now(), &t);
                    let b = unscoped.decide(who, purpose, active, now(), &t);
                    let c = unshared.decide(who, purpose, active, now(), &t);
                    assert_eq!(a, b, "{} {purpose:?} {}", who.id, t.name);
                    assert_eq!(a, c, "{} {purpose:?} {}", who.id, t.name);
                    compared += 1;
                }
            }
        }
        for action in ["manage_policy", "declare_emergency", "read_audit"] {
            assert_eq!(scoped.allows(who, action), unscoped.allows(who, action));
            assert_eq!(scoped.allows(who, action), unshared.allows(who, action));
        }
    }
    assert!(compared > 500);
    // Sharing saved calls: the same decisions took fewer enforce calls.
    assert!(
        scoped.enforce_calls() < unshared.enforce_calls(),
        "{} shared against {} unshared",
        scoped.enforce_calls(),
        unshared.enforce_calls()
    );
    // Some decisions differ between the jurisdictions, so the comparison can fail.
    let phone = |id: &str| {
        let who = people.iter().find(|p| p.id == id).unwrap();
        scoped
            .decide(who, Some("routine"), &[], now(), &table("person"))
            .column("phone")
            .unwrap()
            .access
    };
    assert_eq!(phone("p_street_officer"), Access::Clear);
    assert_ne!(phone("other_street_officer"), Access::Clear);
}

/// A decision depends on who asks only through their roles and jurisdiction: a second
/// principal with the same ones gets the first one's decision without enforcing; one in
/// another jurisdiction does not.
#[tokio::test]
async fn principals_with_the_same_roles_and_jurisdiction_share_decisions() {
    let mut people = principals();
    let first = principal("community_worker");
    let colleague = Principal {
        id: "colleague".into(),
        ..first.clone()
    };
    let elsewhere = Principal {
        id: "elsewhere".into(),
        area: "420106002001".into(),
        ..first.clone()
    };
    people.extend([colleague.clone(), elsewhere.clone()]);
    let policy = Policy::compile(DEFAULT_MODEL, DEFAULT_POLICY, &people, &Known::shared())
        .await
        .unwrap();
    let person = table("person");
    let a = policy.decide(&first, None, &[], now(), &person);
    let calls = policy.enforce_calls();
    assert!(calls > 0);
    let b = policy.decide(&colleague, None, &[], now(), &person);
    assert_eq!(policy.enforce_calls(), calls);
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    // Another jurisdiction gets its own decision (its rows), but no line of the default
    // policy names a jurisdiction: every verdict it needs was made for the first one.
    let c = policy.decide(&elsewhere, None, &[], now(), &person);
    assert_eq!(policy.enforce_calls(), calls);
    assert!(!std::sync::Arc::ptr_eq(&a, &c));
    assert_eq!(c.rows, RowAccess::Jurisdiction("420106002001".into()));
    assert_eq!(a.rows, RowAccess::Jurisdiction(first.area.clone()));
}

/// Verdicts are shared across jurisdictions only where the same lines could decide them: a
/// jurisdiction with a line of its own for an object enforces for that object (and gets what
/// the line says), and for nothing else.
#[tokio::test]
async fn verdicts_are_shared_only_where_the_same_lines_decide() {
    let own = "420106002001";
    let (text, _) = with_lines(&[&format!(
        "p, community_worker, {own}*, tag:health, read_clear, *, -, allow"
    )]);
    let first = principal("community_worker");
    let with_own_line = Principal {
        id: "with_own_line".into(),
        area: own.into(),
        ..first.clone()
    };
    let mut people = principals();
    people.push(with_own_line.clone());
    let policy = Policy::compile(DEFAULT_MODEL, &text, &people, &Known::shared())
        .await
        .unwrap();
    assert!(policy.shares_verdicts());
    let health = table("health_record");
    let a = policy.decide(&first, None, &[], now(), &health);
    let calls = policy.enforce_calls();
    let b = policy.decide(&with_own_line, None, &[], now(), &health);
    // Only the health columns met the jurisdiction's own line: a call for each of their
    // groups (the tag, and a health column some line names), none for the rest.
    let health_groups = 2;
    assert_eq!(policy.enforce_calls(), calls + health_groups);
    assert!(health_groups < calls);
    let access = |d: &gridhub_policy::TableDecision| {
        d.columns
            .iter()
            .filter(|c| c.tag == Tag::Health)
            .map(|c| c.access)
            .collect::<Vec<_>>()
    };
    assert!(!access(&a).is_empty());
    assert!(access(&a).iter().all(|x| *x == Access::Masked));
    assert!(access(&b).iter().all(|x| *x == Access::Clear));
}

/// Sharing verdicts needs a matcher whose subject and jurisdiction appear only in the role
/// and area terms, and whose object term compares objects only.
#[tokio::test]
async fn verdicts_are_not_shared_when_the_matcher_looks_at_who_or_where() {
    let people = principals();
    let known = Known::shared();
    let compiled = |model: String| {
        let people = people.clone();
        let known = known.clone();
        async move {
            Policy::compile(&model, DEFAULT_POLICY, &people, &known)
                .await
                .unwrap()
        }
    };
    assert!(compiled(DEFAULT_MODEL.to_owned()).await.shares_verdicts());
    for (from, to) in [
        (
            "&& keyMatch(r.area, p.area)",
            "&& keyMatch(r.area, p.area) && r.sub != \"x\"",
        ),
        (
            "&& keyMatch(r.area, p.area)",
            "&& keyMatch(r.area, p.area) && r.area != \"4201\"",
        ),
        ("p.obj == r.col ||", "p.obj == r.col || r.sub == \"x\" ||"),
    ] {
        let model = DEFAULT_MODEL.replace(from, to);
        assert_ne!(model, DEFAULT_MODEL, "{from}: the model moved");
        assert!(!compiled(model).await.shares_verdicts(), "{to}");
    }
}
