//! Access policy end to end: row filters against the generator's truth, bypass attempts,
//! emergencies with a test clock, policy administration and the audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Duration, Utc};
use gridhub_engine::GovernedHub;
use gridhub_synth::DEMO_PRINCIPALS;
use gridhub_tests::{AsHub, TestCity, community_names, masks, query, rows, sorted};

const SCALE: usize = 2_000;

async fn as_rows(
    hub: &GovernedHub,
    who: &str,
    purpose: Option<&str>,
    sql: &str,
) -> Vec<Vec<Option<String>>> {
    let answer = hub
        .query_as(who, purpose, sql)
        .await
        .unwrap_or_else(|e| panic!("{who}: {sql}\nfailed: {e}"));
    rows(&answer.batches)
}

async fn denied(hub: &GovernedHub, who: &str, purpose: Option<&str>, sql: &str) -> String {
    match hub.query_as(who, purpose, sql).await {
        Ok(a) => panic!("{who}: {sql}\nwas answered: {:?}", rows(&a.batches)),
        Err(e) => e.to_string(),
    }
}

fn area_of(id: &str) -> &'static str {
    DEMO_PRINCIPALS.iter().find(|p| p.0 == id).unwrap().3
}

#[tokio::test]
async fn each_principal_sees_exactly_its_jurisdiction() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    for (id, _, role, area) in DEMO_PRINCIPALS {
        if matches!(role, "security_officer" | "auditor") {
            let e = denied(&hub, id, None, "SELECT count(*) FROM person").await;
            assert!(e.contains("access denied"), "{id}: {e}");
            continue;
        }
        let got = as_rows(&hub, id, None, "SELECT count(*) FROM person").await;
        let n: u64 = got[0][0].as_deref().unwrap().parse().unwrap();
        assert_eq!(n, city.truth.persons_in_area(area), "{id} ({role}, {area})");
        let outside = as_rows(
            &hub,
            id,
            None,
            &format!("SELECT count(*) FROM person WHERE area_code NOT LIKE '{area}%' OR area_code IS NULL"),
        )
        .await;
        assert_eq!(outside[0][0].as_deref(), Some("0"), "{id}");
    }
}

/// Clear values an operator sees, to look for in governed answers.
async fn clear_values(hub: &GovernedHub) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in query(hub, "SELECT id_number, phone, name FROM person").await {
        out.extend(r.into_iter().flatten());
    }
    for r in query(
        hub,
        "SELECT DISTINCT health_code FROM health_record WHERE health_code IS NOT NULL",
    )
    .await
    {
        out.extend(r.into_iter().flatten());
    }
    out
}

/// The persons of `area` as the operator reads them, each with the masked values docs/domain.md
/// gives a principal who reads identity and contact masked (computed by the tests' masks).
struct MaskedPersons {
    /// `SELECT * FROM person` of the area, masked columns masked, and the column names.
    all: Vec<Vec<Option<String>>>,
    names: Vec<String>,
    /// (id_number, phone, name), masked.
    idpn: Vec<[Option<String>; 3]>,
}

async fn masked_persons(hub: &impl AsHub, area: &str) -> MaskedPersons {
    let batches = hub
        .as_hub()
        .query(&format!(
            "SELECT * FROM person WHERE area_code LIKE '{area}%'"
        ))
        .await
        .unwrap();
    let names: Vec<String> = hub
        .as_hub()
        .query("SELECT * FROM person LIMIT 1")
        .await
        .unwrap()[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut all = rows(&batches);
    for row in &mut all {
        for (cell, column) in row.iter_mut().zip(&names) {
            if let Some(v) = cell.as_deref()
                && let Some(m) = masks::of_column(column, v)
            {
                *cell = Some(m);
            }
        }
    }
    let at = |n: &str| names.iter().position(|c| c == n).unwrap();
    let (id, phone, name) = (at("id_number"), at("phone"), at("name"));
    let idpn = all
        .iter()
        .map(|r| [r[id].clone(), r[phone].clone(), r[name].clone()])
        .collect();
    MaskedPersons { all, names, idpn }
}

fn one_row(values: &[Option<String>]) -> Vec<Option<String>> {
    values.to_vec()
}

fn text(n: usize) -> Option<String> {
    Some(n.to_string())
}

/// The answer a principal who reads person's identity and contact masked must get for each
/// person attempt (None: the attempt reads health data, checked apart).
fn expected_masked_answer(i: usize, p: &MaskedPersons) -> Option<Vec<Vec<Option<String>>>> {
    let idpn = &p.idpn;
    let mid = |r: &[Option<String>; 3]| r[0].clone();
    let out = match i {
        0 => p.all.clone(),
        2 => idpn
            .iter()
            .flat_map(|a| {
                idpn.iter()
                    .filter(move |b| a[1].is_some() && a[1] == b[1])
                    .map(move |b| one_row(&[a[1].clone(), b[0].clone()]))
            })
            .collect(),
        3 => {
            let with_phone: BTreeSet<_> = idpn
                .iter()
                .filter(|r| r[1].is_some())
                .filter_map(mid)
                .collect();
            let id = p.names.iter().position(|c| c == "id_number").unwrap();
            p.all
                .iter()
                .filter(|r| r[id].as_ref().is_some_and(|v| with_phone.contains(v)))
                .cloned()
                .collect()
        }
        4 => idpn.iter().map(|r| r.to_vec()).collect(),
        5 => {
            let set: BTreeSet<Option<String>> =
                idpn.iter().flat_map(|r| r.iter().cloned()).collect();
            set.into_iter().map(|v| vec![v]).collect()
        }
        7 => {
            let mut counts: BTreeMap<Option<String>, usize> = BTreeMap::new();
            for r in idpn {
                *counts.entry(r[1].clone()).or_default() += 1;
            }
            counts.into_iter().map(|(k, n)| vec![k, text(n)]).collect()
        }
        _ => return None,
    };
    Some(out)
}

/// Why the volunteer may not read health records (the roles that may follow).
const HEALTH_ROWS_DENIED: &str = "access denied: reading rows of health_record needs role";

#[tokio::test]
async fn bypass_attempts_return_no_clear_value_and_nothing_outside_the_jurisdiction() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let clear = clear_values(&hub).await;
    let some_phone = query(
        &hub,
        "SELECT phone FROM person WHERE phone IS NOT NULL AND area_code LIKE '420106009%' LIMIT 1",
    )
    .await[0][0]
        .clone()
        .unwrap();
    let attempts = [
        "SELECT * FROM person".to_string(),
        "SELECT p.id_number, p.phone, h.* FROM person p JOIN health_record h ON p.person_id = h.person_id".into(),
        "SELECT a.phone, b.id_number FROM person a JOIN person b ON a.phone = b.phone".into(),
        "SELECT * FROM person WHERE id_number IN (SELECT id_number FROM person WHERE phone IS NOT NULL)".into(),
        "WITH x AS (SELECT id_number, phone, name FROM person) SELECT * FROM x".into(),
        "SELECT id_number AS v FROM person UNION SELECT phone FROM person UNION SELECT name FROM person".into(),
        "SELECT id_number, phone, row_number() OVER (PARTITION BY phone ORDER BY id_number) FROM person".into(),
        "SELECT phone, count(*) FROM person GROUP BY phone".into(),
        "SELECT max(id_number), min(phone), string_agg(name, ',') FROM person".into(),
        "SELECT health_code, count(*) FROM health_record GROUP BY health_code".into(),
    ];
    // Both read person's identity and contact masked (docs/domain.md, "Roles"); the street
    // officer reads health masked, the volunteer no health at all.
    for who in ["zhao.street", "zhou.volunteer"] {
        let area = area_of(who);
        let persons = masked_persons(&hub, area).await;
        // (The volunteer's grid holds nobody at this scale: its exact answers are empty.)
        assert!(
            !persons.all.is_empty() || who == "zhou.volunteer",
            "{who}: the test city has persons in {area}"
        );
        let health_records = query(
            &hub,
            &format!("SELECT count(*) FROM health_record WHERE area_code LIKE '{area}%'"),
        )
        .await[0][0]
            .clone();
        for (i, sql) in attempts.iter().enumerate() {
            let reads_health = sql.contains("health_record");
            if who == "zhou.volunteer" && reads_health {
                // Refused: the volunteer reads no health rows at all.
                let e = denied(&hub, who, None, sql).await;
                assert!(e.starts_with(HEALTH_ROWS_DENIED), "{who}: {sql}: {e}");
                continue;
            }
            let answer = as_rows(&hub, who, None, sql).await;
            // Exactly the masked reads of the jurisdiction's persons.
            if let Some(mut want) = expected_masked_answer(i, &persons) {
                want.sort();
                assert_eq!(sorted(answer.clone()), want, "{who}: {sql}");
            }
            match i {
                6 => {
                    let mut got: Vec<_> = answer.iter().map(|r| r[..2].to_vec()).collect();
                    got.sort();
                    let mut want: Vec<_> = persons.idpn.iter().map(|r| r[..2].to_vec()).collect();
                    want.sort();
                    assert_eq!(got, want, "{who}: {sql}");
                    // Row numbers 1..n within each (masked) phone.
                    let mut numbers: BTreeMap<Option<String>, Vec<u64>> = BTreeMap::new();
                    for r in &answer {
                        numbers
                            .entry(r[1].clone())
                            .or_default()
                            .push(r[2].as_deref().unwrap().parse().unwrap());
                    }
                    for (phone, mut n) in numbers {
                        n.sort();
                        assert_eq!(
                            n,
                            (1..=n.len() as u64).collect::<Vec<_>>(),
                            "{who}: {phone:?}"
                        );
                    }
                }
                8 => {
                    let max_id = persons.idpn.iter().filter_map(|r| r[0].clone()).max();
                    let min_phone = persons.idpn.iter().filter_map(|r| r[1].clone()).min();
                    assert_eq!(answer.len(), 1);
                    assert_eq!(answer[0][..2], [max_id, min_phone], "{who}: {sql}");
                    // (NULL when there is nobody to aggregate.)
                    let mut names: Vec<&str> = answer[0][2]
                        .as_deref()
                        .map(|all| all.split(',').collect())
                        .unwrap_or_default();
                    names.sort();
                    let mut want: Vec<&str> = persons
                        .idpn
                        .iter()
                        .filter_map(|r| r[2].as_deref())
                        .collect();
                    want.sort();
                    assert_eq!(names, want, "{who}: {sql}");
                }
                9 => {
                    // Every health code masked: one group of nulls, every record of the street.
                    assert_eq!(answer, vec![vec![None, health_records.clone()]], "{who}");
                }
                _ => {}
            }
            for row in answer {
                for cell in row.into_iter().flatten() {
                    for part in cell.split(',') {
                        assert!(
                            !clear.contains(part),
                            "{who}: {sql}\nreturned the clear value {part}"
                        );
                    }
                    if cell.len() >= 12
                        && cell.chars().all(|c| c.is_ascii_digit())
                        && cell.starts_with("42")
                    {
                        assert!(cell.starts_with(area), "{who}: {sql}\nreturned area {cell}");
                    }
                }
            }
        }
        // Predicates see the masked value only.
        for sql in [
            format!("SELECT count(*) FROM person WHERE phone = '{some_phone}'"),
            "SELECT count(*) FROM person WHERE id_number LIKE '4201061980%'".into(),
            "SELECT count(*) FROM person WHERE substr(id_number, 7, 4) = '1980'".into(),
        ] {
            let n = as_rows(&hub, who, None, &sql).await;
            assert_eq!(n[0][0].as_deref(), Some("0"), "{who}: {sql}");
        }
        // A range on a masked column counts exactly what the masked values satisfy.
        let expected = persons
            .idpn
            .iter()
            .filter(|r| r[0].as_deref().is_some_and(|m| m > "4201060"))
            .count();
        let got = as_rows(
            &hub,
            who,
            None,
            "SELECT count(*) FROM person WHERE id_number > '4201060'",
        )
        .await;
        assert_eq!(got, vec![vec![text(expected)]], "{who}");
        // Everything that is not a governed table is refused, each for its reason.
        for (sql, reason) in [
            (
                "EXPLAIN SELECT * FROM person",
                "access denied: only queries (SELECT, WITH, UNION …) may run as a principal",
            ),
            (
                "SELECT * FROM information_schema.tables",
                "access denied: information_schema.tables cannot be read by a principal",
            ),
            (
                "SELECT * FROM system.sources",
                "access denied: system.sources cannot be read by a principal",
            ),
            (
                "SELECT * FROM live.person",
                "access denied: live.person cannot be read by a principal",
            ),
            (
                "SELECT * FROM \"src_community_register\".\"居民\"",
                "access denied: no policy line allows reading rows of src_community_register.居民",
            ),
            (
                "SELECT * FROM _rejects",
                "access denied: no policy line allows reading all rows of _rejects",
            ),
            (
                "SELECT * FROM generate_series(1, 3)",
                "unknown table 'generate_series'",
            ),
            (
                "CREATE VIEW v AS SELECT * FROM person",
                "access denied: only queries (SELECT, WITH, UNION …) may run as a principal",
            ),
            (
                "SET datafusion.catalog.information_schema = true",
                "access denied: only queries (SELECT, WITH, UNION …) may run as a principal",
            ),
        ] {
            let e = denied(&hub, who, None, sql).await;
            assert!(e.starts_with(reason), "{who}: {sql}: {e}");
        }
    }
    // A red health code without a purpose: the street officer reads masked (null) codes.
    let red = as_rows(
        &hub,
        "zhao.street",
        None,
        "SELECT count(*) FROM health_record WHERE health_code = 'red'",
    )
    .await;
    assert_eq!(red[0][0].as_deref(), Some("0"));
    // The volunteer may not read the table at all, and is told who may.
    let e = denied(
        &hub,
        "zhou.volunteer",
        None,
        "SELECT count(*) FROM health_record WHERE health_code = 'red'",
    )
    .await;
    assert!(e.starts_with(HEALTH_ROWS_DENIED), "{e}");
}

#[tokio::test]
async fn emergency_opens_location_inside_its_area_and_closes_at_expiry() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let worker = "chen.community";
    let area = area_of(worker);
    let sql = "SELECT count(lat) FROM location_trace";
    let e = denied(&hub, worker, Some("epidemic_response"), sql).await;
    assert!(
        e.contains("location_trace.lat") && e.contains("location"),
        "{e}"
    );

    let now = Utc::now();
    let until = now + Duration::hours(1);
    let em = hub
        .emergency_declare("qian.security", area, until, "outbreak drill")
        .await
        .unwrap();
    let expected = query(
        &hub,
        &format!("SELECT count(lat) FROM location_trace WHERE area_code LIKE '{area}%'"),
    )
    .await;
    assert_ne!(
        expected[0][0].as_deref(),
        Some("0"),
        "the test city has traces in {area}"
    );
    assert_eq!(
        as_rows(&hub, worker, Some("epidemic_response"), sql).await,
        expected
    );

    // Two hours later, nobody having acted, it is closed again.
    hub.governance()
        .set_clock(Arc::new(move || until + Duration::hours(1)));
    denied(&hub, worker, Some("epidemic_response"), sql).await;
    let listed = hub.emergency_list("qian.security").unwrap();
    assert!(listed.iter().any(|(e, active)| e.id == em.id && !active));
    // A worker may not declare one.
    let e = hub
        .emergency_declare(worker, area, until, "no")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("declare_emergency"), "{e}");
}

#[tokio::test]
async fn an_invalid_policy_is_refused_and_the_active_one_stays() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let officer = "qian.security";
    let before = hub.policy_history(officer).unwrap();
    let e = hub
        .policy_apply(
            officer,
            "p, wizard, *, person, read_rows, *, -, allow\n",
            "bad",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("wizard"), "{e}");
    assert_eq!(hub.policy_history(officer).unwrap().len(), before.len());
    assert_eq!(
        as_rows(&hub, "zhao.street", None, "SELECT count(phone) FROM person")
            .await
            .len(),
        1
    );

    // A valid change applies at once; rollback restores the old decisions.
    let text = format!(
        "{}\np, street_officer, *, person.phone, read_masked, *, -, deny\n",
        gridhub_policy::DEFAULT_POLICY
    );
    let v = hub
        .policy_apply(officer, &text, "no phones")
        .await
        .unwrap()
        .active()
        .cloned()
        .expect("a narrowing change applies at once");
    let e = denied(&hub, "zhao.street", None, "SELECT phone FROM person").await;
    assert!(e.contains("person.phone"), "{e}");
    // Rolling back opens the phones again: a widening, so a second officer approves it.
    let proposal = hub
        .policy_rollback(officer, v.version - 1)
        .await
        .unwrap()
        .pending()
        .cloned()
        .expect("a widening rollback waits for approval");
    denied(&hub, "zhao.street", None, "SELECT phone FROM person").await;
    hub.policy_approve("sun.security", proposal.id)
        .await
        .unwrap();
    as_rows(
        &hub,
        "zhao.street",
        None,
        "SELECT phone FROM person LIMIT 1",
    )
    .await;
    // Only a policy manager may apply.
    let e = hub
        .policy_apply("zhao.street", &text, "mine")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("manage_policy"), "{e}");
}

#[tokio::test]
async fn health_reads_are_audited_by_person_and_tampering_is_detected() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let answer = as_rows(
        &hub,
        "sun.health",
        Some("epidemic_response"),
        "SELECT person_id, health_code FROM health_record WHERE health_code = 'red'",
    )
    .await;
    assert!(!answer.is_empty(), "the test city has red codes");
    let person = answer[0][0].clone().unwrap();
    let found = hub
        .audit_search(
            "wu.audit",
            &gridhub_audit::AuditFilter {
                person_id: Some(person.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(found.len(), 1, "one read returned {person}");
    let rec = &found[0].record;
    assert_eq!(rec.principal, "sun.health");
    assert_eq!(rec.purpose.as_deref(), Some("epidemic_response"));
    assert_eq!(rec.rows, Some(answer.len() as u64));
    // Denied reads are audited too, as denied.
    denied(
        &hub,
        "zhou.volunteer",
        None,
        "SELECT health_code FROM health_record",
    )
    .await;
    let denials = hub
        .audit_search(
            "wu.audit",
            &gridhub_audit::AuditFilter {
                principal: Some("zhou.volunteer".into()),
                outcome: Some(gridhub_audit::Outcome::Denied),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(denials.len(), 1);
    assert!(hub.audit_verify("wu.audit").unwrap().ok());
    // The auditor reads no resident data.
    denied(&hub, "wu.audit", None, "SELECT * FROM person").await;

    // Edit a record behind the hub's back.
    let db = city.dir.path().join(".gridhub/audit.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let seq = found[0].seq as i64;
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for t in triggers {
        conn.execute_batch(&format!("DROP TRIGGER \"{t}\""))
            .unwrap();
    }
    let changed = conn
        .execute(
            "UPDATE audit_log SET record = replace(record, 'sun.health', 'li.district') WHERE seq = ?1",
            [seq],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let report = hub.audit_verify("wu.audit").unwrap();
    assert!(
        report.problems.iter().any(|p| p.seq == found[0].seq),
        "{:?}",
        report.problems
    );
}

/// Whether a raw admin code lies in `area` once normalised as docs/domain.md says (white space
/// dropped, full-width digits folded, digits only, 4/6/9/12/15 of them): computed here,
/// independently of the mapping.
fn raw_code_in(raw: &str, area: &str) -> bool {
    let code: String = raw
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '０'..='９' => char::from(b'0' + (c as u32 - '０' as u32) as u8),
            c => c,
        })
        .collect();
    code.chars().all(|c| c.is_ascii_digit())
        && matches!(code.len(), 4 | 6 | 9 | 12 | 15)
        && code.starts_with(area)
}

#[tokio::test]
async fn raw_tables_show_the_jurisdictions_rows_under_their_columns_tags() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let register = "\"src_community_register\".\"居民\"";
    let all = query(
        &hub,
        &format!("SELECT \"网格编码\", \"身份证号\" FROM {register}"),
    )
    .await;
    for who in ["liu.grid", "chen.community"] {
        let area = area_of(who);
        let expected = all
            .iter()
            .filter(|r| r[0].as_deref().is_some_and(|c| raw_code_in(c, area)))
            .count();
        // (The grid may hold no register rows at this scale; the community does.)
        assert!(expected > 0 || who == "liu.grid", "{who}");
        let got = as_rows(
            &hub,
            who,
            None,
            &format!("SELECT \"网格编码\", \"身份证号\" FROM {register}"),
        )
        .await;
        assert_eq!(got.len(), expected, "{who}: rows of {area}");
        // Identity is clear to community and grid workers: the ID numbers as stored.
        let ids: BTreeSet<_> = all.iter().filter_map(|r| r[1].clone()).collect();
        assert!(
            got.iter()
                .all(|r| r[1].as_ref().is_none_or(|id| ids.contains(id)))
        );
    }
    // Health in the health platform's raw table: masked (null) for a community worker; the
    // resident ID that becomes the public pseudonym person_id stays identity, not public.
    let health = as_rows(
        &hub,
        "chen.community",
        None,
        "SELECT \"健康码\", \"证件号码\" FROM \"src_district_health\".\"health_record\"",
    )
    .await;
    assert!(!health.is_empty());
    assert!(
        health.iter().all(|r| r[0].is_none()),
        "健康码 is health: masked"
    );
    // Street officers and volunteers have no raw-table line: refused.
    for who in ["zhao.street", "zhou.volunteer"] {
        denied(&hub, who, None, &format!("SELECT count(*) FROM {register}")).await;
    }
}

#[tokio::test]
async fn a_masked_place_reads_as_its_communitys_name() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let text = format!(
        "{}\np, street_officer, *, location_trace, read_rows, *, -, allow\n\
         p, street_officer, *, tag:location, read_masked, *, -, allow\n\
         p, community_worker, *, tag:location, read_masked, *, -, allow\n",
        gridhub_policy::DEFAULT_POLICY
    );
    let proposal = hub
        .policy_apply("qian.security", &text, "masked places")
        .await
        .unwrap()
        .pending()
        .cloned()
        .expect("opening places widens access");
    hub.policy_approve("sun.security", proposal.id)
        .await
        .unwrap();
    let names = community_names(&hub).await;
    let got = as_rows(
        &hub,
        "zhao.street",
        None,
        "SELECT area_code, place, lat, lon, ts FROM location_trace",
    )
    .await;
    assert!(!got.is_empty());
    for r in &got {
        let community = &r[0].as_deref().unwrap()[..12];
        assert_eq!(r[1].as_ref(), names.get(community), "{r:?}");
        assert!(r[2].is_none() && r[3].is_none() && r[4].is_none(), "{r:?}");
    }
    // The raw location table's place column feeds `place`: the same mask.
    let raw = as_rows(
        &hub,
        "chen.community",
        None,
        "SELECT \"地点\", \"纬度\" FROM \"src_district_health\".\"location_trace\"",
    )
    .await;
    assert!(!raw.is_empty());
    let community = names.get(area_of("chen.community")).unwrap();
    assert!(
        raw.iter()
            .all(|r| r[0].as_ref() == Some(community) && r[1].is_none()),
        "{:?}",
        &raw[..3.min(raw.len())]
    );
}

#[tokio::test]
async fn a_jurisdiction_filter_is_dropped_only_where_the_snapshot_proves_it_redundant() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let plan = |who: &'static str| {
        let hub = &hub;
        async move {
            let gov = hub.governance();
            let principal = gov.principal(who).unwrap().clone();
            let df = hub
                .plan_as(
                    &principal,
                    None,
                    "SELECT count(*) FROM person",
                    &mut Vec::new(),
                )
                .await
                .unwrap();
            let physical = df.create_physical_plan().await.unwrap();
            format!(
                "{}",
                datafusion::physical_plan::displayable(physical.as_ref()).indent(true)
            )
        }
    };
    // Every person of the city lies in 4201: the snapshot's statistics prove it.
    let city_wide = plan("wang.city").await;
    assert!(
        !city_wide.contains("LIKE") && !city_wide.contains("JurisdictionExec"),
        "{city_wide}"
    );
    // A street is a part of the city: its filter stays, inside the guarded scan.
    let street = plan("zhao.street").await;
    assert!(
        street.contains("LIKE 420106009%") && street.contains("JurisdictionExec"),
        "{street}"
    );
    // And the counts are still right.
    let n = as_rows(&hub, "wang.city", None, "SELECT count(*) FROM person").await;
    assert_eq!(
        n[0][0].as_deref().unwrap().parse::<u64>().unwrap(),
        city.truth.persons_in_area("4201")
    );
}

fn divides_by_zero(error: &str) -> bool {
    error
        .to_lowercase()
        .replace(' ', "")
        .contains("dividebyzero")
}

/// A predicate that fails on some value would reveal that a row outside the jurisdiction
/// holds it (the query errors instead of answering) if it were evaluated below the row
/// filter. It is not: every predicate of the query runs above it.
#[tokio::test]
async fn a_predicate_never_sees_a_row_outside_the_jurisdiction() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    // Division by a zero the planner cannot fold away, only for rows of another street.
    let boom = "1 / (length(person_id) - length(person_id))";
    let elsewhere = "area_code NOT LIKE '420106009%'";
    // As the operator, the probe does fail: there are such rows.
    let e = gridhub_tests::query_error(
        &hub,
        &format!(
            "SELECT count(*) FROM person WHERE CASE WHEN {elsewhere} THEN {boom} ELSE 0 END = 0"
        ),
    )
    .await;
    assert!(divides_by_zero(&e), "{e}");
    let inside = city.truth.persons_in_area("420106009");
    let probes = [
        format!(
            "SELECT count(*) FROM person WHERE CASE WHEN {elsewhere} THEN {boom} ELSE 0 END = 0"
        ),
        format!(
            "SELECT count(*) FROM person p JOIN house h ON h.house_id = p.house_id \
             WHERE CASE WHEN h.{elsewhere} THEN {boom} ELSE 0 END = 0 \
               AND CASE WHEN p.{elsewhere} THEN {boom} ELSE 0 END = 0"
        ),
        format!(
            "SELECT count(*) FROM (SELECT * FROM person WHERE CASE WHEN {elsewhere} THEN {boom} ELSE 0 END = 0) t"
        ),
        format!(
            "SELECT count(*) FROM person WHERE person_id IN (SELECT person_id FROM person WHERE CASE WHEN {elsewhere} THEN {boom} ELSE 0 END = 0)"
        ),
    ];
    for (i, sql) in probes.iter().enumerate() {
        let got = as_rows(&hub, "zhao.street", None, sql).await;
        let n: u64 = got[0][0].as_deref().unwrap().parse().unwrap();
        assert!(n > 0 && n <= inside, "{sql}: {n} of {inside}");
        // The plain probe counts every person of the street.
        if i == 0 {
            assert_eq!(n, inside, "{sql}");
        }
    }

    // A raw table, whose row filter is the mapping's area code: the register rows of
    // another district (420111, not chen.community's 420106) fail the probe.
    let register = "\"src_community_register\".\"居民\"";
    let boom = "1 / (length(\"网格编码\") - length(\"网格编码\"))";
    let probe = format!(
        "SELECT count(*) FROM {register} \
         WHERE CASE WHEN \"网格编码\" LIKE '420111%' THEN {boom} ELSE 0 END = 0"
    );
    let e = gridhub_tests::query_error(&hub, &probe).await;
    assert!(divides_by_zero(&e), "{e}");
    let got = as_rows(&hub, "chen.community", None, &probe).await;
    let all = as_rows(
        &hub,
        "chen.community",
        None,
        &format!("SELECT count(*) FROM {register}"),
    )
    .await;
    assert_eq!(got, all);
}
