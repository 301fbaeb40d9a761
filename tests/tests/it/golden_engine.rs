//! The golden decision table (`policies/tests/golden_decisions.csv`: every role × shared
//! table × column × purpose × emergency state) run through the real engine. One demo
//! principal per role reads every shared table with `SELECT *` for no purpose and every
//! purpose, without and then within an emergency covering the city, and each column of the
//! answer must be what the table says: absent when denied, the operator's values when clear,
//! docs/domain.md's mask of them when masked (computed here from the operator's values) — and the
//! rows exactly those of the principal's jurisdiction, or none when the table is closed.

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, Utc};
use gridhub_catalog::shared_tables;
use gridhub_engine::{EngineError, GovernedHub};
use gridhub_synth::DEMO_PRINCIPALS;
use gridhub_tests::{TestCity, column_names, community_names, masks, rows};

const SCALE: usize = 1_000;

/// (role, table, column, purpose, emergency) → (rows, access), as the golden file says.
type Golden = HashMap<(String, String, String, String, String), (String, String)>;

fn golden() -> Golden {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/tests/golden_decisions.csv"
    );
    let text = std::fs::read_to_string(path).expect("golden file");
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 7, "{line}");
            let s = |i: usize| f[i].to_owned();
            ((s(0), s(1), s(2), s(3), s(4)), (s(5), s(6)))
        })
        .collect()
}

/// An answer as column name → sorted (area_code, value) pairs: rows are compared per column,
/// each value paired with its row's area code (public, so present whenever rows are).
fn by_column(names: &[String], rows: &[Vec<Option<String>>]) -> BTreeMap<String, Vec<Pairs>> {
    let area = names.iter().position(|n| n == "area_code");
    let mut out: BTreeMap<String, Vec<Pairs>> = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        let mut pairs: Vec<Pairs> = rows
            .iter()
            .map(|r| (area.and_then(|a| r[a].clone()), r[i].clone()))
            .collect();
        pairs.sort();
        out.insert(name.clone(), pairs);
    }
    out
}

type Pairs = (Option<String>, Option<String>);

/// docs/domain.md's mask of one value of `column`, given its row's area code (computed by the
/// tests' own masks, not the hub's).
fn masked(
    column: &str,
    (area, value): &Pairs,
    communities: &BTreeMap<String, String>,
) -> Option<String> {
    let value = value.as_deref()?;
    match column {
        "place" => area.as_deref().and_then(|a| masks::place(a, communities)),
        _ => masks::of_column(column, value),
    }
}

async fn answer(hub: &GovernedHub, sql: &str) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let batches = hub.hub().query(sql).await.unwrap();
    (column_names(&batches), rows(&batches))
}

#[tokio::test]
async fn golden_decisions_hold_in_the_engines_answers() {
    let golden = golden();
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let communities = community_names(&hub).await;
    assert!(!communities.is_empty());
    let purposes: Vec<&str> = std::iter::once("-")
        .chain(gridhub_policy::PURPOSES.iter().copied())
        .collect();

    // The operator's answer per (table, jurisdiction): the ground truth.
    let mut truth: HashMap<(String, String), BTreeMap<String, Vec<Pairs>>> = HashMap::new();
    let mut checked = 0usize;
    let mut compared = 0usize;
    let mut open = 0usize;
    let mut problems = Vec::new();
    for state in ["none", "covering"] {
        let emergency = if state == "covering" {
            Some(
                hub.emergency_declare(
                    "qian.security",
                    "4201",
                    Utc::now() + Duration::days(1),
                    "golden test",
                )
                .await
                .unwrap(),
            )
        } else {
            None
        };
        for (id, _, role, area) in DEMO_PRINCIPALS {
            for table in shared_tables() {
                let has_area = table.column("area_code").is_some();
                let key = (table.name.to_string(), area.to_string());
                if !truth.contains_key(&key) {
                    let filter = if has_area {
                        format!(" WHERE area_code LIKE '{area}%'")
                    } else {
                        String::new()
                    };
                    let (names, rows) =
                        answer(&hub, &format!("SELECT * FROM {}{filter}", table.name)).await;
                    truth.insert(key.clone(), by_column(&names, &rows));
                }
                let expected = &truth[&key];
                for purpose in &purposes {
                    let stated = (*purpose != "-").then_some(*purpose);
                    let decision = |column: &str| {
                        golden
                            .get(&(
                                role.to_string(),
                                table.name.to_string(),
                                column.to_string(),
                                purpose.to_string(),
                                state.to_string(),
                            ))
                            .unwrap_or_else(|| {
                                panic!("golden has no {role} {}.{column}", table.name)
                            })
                            .clone()
                    };
                    let rows_decision = decision("_source").0;
                    open += usize::from(rows_decision != "denied");
                    let sql = format!("SELECT * FROM {}", table.name);
                    let what = format!("{id} ({role}) {} {purpose} {state}", table.name);
                    let got = match hub.query_as(id, stated, &sql).await {
                        Ok(a) => a,
                        Err(EngineError::Denied { message }) => {
                            if rows_decision != "denied" {
                                problems.push(format!("{what}: refused ({message})"));
                            }
                            checked += 1;
                            continue;
                        }
                        Err(e) => panic!("{what}: {e}"),
                    };
                    checked += 1;
                    if rows_decision == "denied" {
                        problems.push(format!("{what}: answered, golden says closed"));
                        continue;
                    }
                    let names = column_names(&got.batches);
                    let got = by_column(&names, &rows(&got.batches));
                    if expected.is_empty() || expected.values().all(Vec::is_empty) {
                        // No rows in this jurisdiction: nothing to compare but the count.
                        if got.values().any(|v| !v.is_empty()) {
                            problems.push(format!("{what}: rows where the operator has none"));
                        }
                        continue;
                    }
                    compared += 1;
                    for c in &table.columns {
                        let (rows_here, access) = decision(c.name);
                        assert_eq!(rows_here, rows_decision);
                        let column = got.get(c.name);
                        let want = &expected[c.name];
                        let ok = match (access.as_str(), column) {
                            ("denied", None) => true,
                            ("clear", Some(values)) => values == want,
                            ("masked", Some(values)) => {
                                let mut masks: Vec<Pairs> = want
                                    .iter()
                                    .map(|p| (p.0.clone(), masked(c.name, p, &communities)))
                                    .collect();
                                masks.sort();
                                *values == masks
                            }
                            _ => false,
                        };
                        if !ok {
                            problems.push(format!(
                                "{what}: {} should be {access}, got {}",
                                c.name,
                                match column {
                                    None => "absent".to_owned(),
                                    Some(v) => format!(
                                        "{} rows, first {:?} (operator's first {:?})",
                                        v.len(),
                                        v.first(),
                                        want.first()
                                    ),
                                }
                            ));
                        }
                    }
                    // Nothing beyond the table's columns.
                    for name in got.keys() {
                        if table.column(name).is_none() {
                            problems.push(format!("{what}: unexpected column {name}"));
                        }
                    }
                }
            }
        }
        if let Some(e) = emergency {
            hub.emergency_end("qian.security", e.id).await.unwrap();
        }
    }
    assert_eq!(
        checked,
        2 * DEMO_PRINCIPALS.len() * shared_tables().len() * purposes.len()
    );
    assert!(
        problems.is_empty(),
        "{} of {checked} answers differ from the golden table:\n{}",
        problems.len(),
        problems[..problems.len().min(40)].join("\n")
    );
    // At least half the open answers had rows to compare column by column (at this scale
    // the demo's grid-level principals find no rows in most tables: 592 of 1,136 at 1,000
    // persons).
    assert!(
        compared * 2 >= open,
        "{compared} of {open} open answers compared"
    );
}
