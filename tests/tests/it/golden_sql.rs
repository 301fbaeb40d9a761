//! Governed SQL as golden files (`tests/golden/*.gq`, format in `gridhub_tests::golden`):
//! each case a principal, a purpose, an SQL text and the rows or refusal it must get, run
//! through the real engine over a small deterministic city. After an intended change of
//! behaviour, regenerate them and review the diff:
//!
//! ```sh
//! GRIDHUB_BLESS=1 cargo nextest run -p gridhub-tests -E 'test(golden)'
//! ```
//!
//! A second test reads the files' masked values back and recomputes them from the clear
//! values with docs/domain.md's masks, written out in the tests (`gridhub_tests::masks`), so a
//! blessed file cannot make a wrong mask the expectation.

use std::collections::{BTreeMap, HashMap};

use gridhub_synth::DEMO_PRINCIPALS;
use gridhub_tests::golden::{self, Step};
use gridhub_tests::{TestCity, masks, query};

/// Persons in the golden files' city: a handful of rows per grid, so answers stay short.
const GOLDEN_SCALE: usize = 2_000;

#[tokio::test]
async fn golden_sql_cases_hold_in_the_engines_answers() {
    let city = TestCity::generate(GOLDEN_SCALE);
    let hub = city.hub().await;
    let files = golden::golden_files();
    assert!(
        !files.is_empty(),
        "no golden files in {:?}",
        golden::golden_dir()
    );
    let mut problems = Vec::new();
    let mut cases = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a golden file");
        let expected = golden::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let got = golden::run(&hub, &expected).await;
        cases += expected
            .iter()
            .filter(|r| matches!(r.step, Step::Case(_)))
            .count();
        if golden::blessing() {
            std::fs::write(file, golden::render(&got)).expect("write a golden file");
        } else {
            problems.extend(golden::differences(file, &expected, &got));
        }
    }
    assert!(cases > 0, "the golden files hold no case");
    assert!(
        problems.is_empty(),
        "{} of {cases} golden cases differ (rerun with {}=1 if the change is intended, and \
         review the diff):\n\n{}",
        problems.len(),
        golden::BLESS_VAR,
        problems.join("\n")
    );
}

/// The person columns docs/domain.md masks by value, as the golden decision table says each
/// role reads them (`policies/tests/golden_decisions.csv`, outside emergencies).
const PERSON_MASKED_COLUMNS: [&str; 4] = ["id_number", "name", "phone", "birth_date"];

fn person_access(role: &str, column: &str, purpose: Option<&str>) -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../policies/tests/golden_decisions.csv"
    );
    let text = std::fs::read_to_string(path).expect("golden decisions");
    let want = format!("{role},person,{column},{},none,", purpose.unwrap_or("-"));
    text.lines()
        .find_map(|l| l.strip_prefix(want.as_str()))
        .and_then(|rest| rest.split(',').nth(1))
        .unwrap_or_else(|| panic!("no golden decision {want}"))
        .to_owned()
}

/// Every golden case outside an emergency that answers `person_id` with person's identity
/// or contact columns under their own names: each such value must be the clear value of
/// that person (as the operator reads it) when the role reads it clear, and docs/domain.md's
/// mask of it, computed here, when masked.
#[tokio::test]
async fn golden_masked_values_are_domain_masks_of_the_clear_values() {
    let city = TestCity::generate(GOLDEN_SCALE);
    let hub = city.hub().await;
    let clear: HashMap<String, Vec<Option<String>>> = query(
        &hub,
        "SELECT person_id, id_number, name, phone, birth_date FROM person",
    )
    .await
    .into_iter()
    .map(|mut r| (r.remove(0).expect("a person_id"), r))
    .collect();
    // The operator's clear values are the generator's: its elderly residents living alone
    // high up in walk-ups are there with their ID numbers and names.
    let by_id: HashMap<&str, &str> = clear
        .values()
        .filter_map(|r| Some((r[0].as_deref()?, r[1].as_deref()?)))
        .collect();
    assert!(!city.truth.elderly_walkup.is_empty());
    for e in &city.truth.elderly_walkup {
        assert_eq!(by_id.get(e.id_number.as_str()), Some(&e.name.as_str()));
    }

    let roles: BTreeMap<&str, &str> = DEMO_PRINCIPALS.iter().map(|p| (p.0, p.2)).collect();
    let (mut masked, mut clear_checked) = (0, 0);
    let mut problems = Vec::new();
    for file in golden::golden_files() {
        let text = std::fs::read_to_string(&file).expect("read a golden file");
        let records = golden::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut in_emergency = false;
        for r in &records {
            let case = match &r.step {
                Step::DeclareEmergency { .. } => {
                    in_emergency = true;
                    continue;
                }
                Step::EndEmergency => {
                    in_emergency = false;
                    continue;
                }
                Step::Case(c) => c,
            };
            let Some((header, rows)) = case.answer() else {
                continue;
            };
            let Some(key) = header.iter().position(|h| h == "person_id") else {
                continue;
            };
            if in_emergency {
                continue;
            }
            let role = roles[case.principal.as_str()];
            for (i, column) in header.iter().enumerate() {
                let Some(c) = PERSON_MASKED_COLUMNS.iter().position(|m| m == column) else {
                    continue;
                };
                let access = person_access(role, column, case.purpose.as_deref());
                for row in &rows {
                    let person = row[key].as_deref().expect("a person_id");
                    let value = clear.get(person).unwrap_or_else(|| {
                        panic!("{}:{}: no person {person}", file.display(), r.line)
                    })[c]
                        .as_deref();
                    let want = match access.as_str() {
                        "clear" => {
                            clear_checked += 1;
                            value.map(str::to_owned)
                        }
                        "masked" => {
                            masked += 1;
                            value.and_then(|v| masks::of_column(column, v))
                        }
                        other => panic!("{}:{}: {column} is {other}", file.display(), r.line),
                    };
                    if row[i] != want {
                        problems.push(format!(
                            "{}:{}: {} ({role}) {column} of {person}: the file has {:?}, \
                             docs/domain.md's {access} value is {want:?}",
                            file.display(),
                            r.line,
                            case.principal,
                            row[i]
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(masked >= 20, "only {masked} masked values checked");
    assert!(
        clear_checked >= 5,
        "only {clear_checked} clear values checked"
    );
}
