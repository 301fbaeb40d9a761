//! `gridhub demo`'s data, loaded through every connector and mapping, checked against the
//! ground truth the generator computes from its own model (never from the files).

use std::collections::{BTreeMap, BTreeSet};

use gridhub_synth::{
    DefectKind, ELDERLY_WALKUP_SQL, ElderlyTruth, HEALTH_LATEST_SQL, PHONE_MISMATCH_SQL,
    REJECTS_SQL,
};
use gridhub_tests::{TEST_SCALE, TestCity, query, scalar_i64};

#[tokio::test]
async fn accepted_plus_rejected_equals_what_each_source_wrote() {
    let city = TestCity::generate(TEST_SCALE);
    let hub = city.hub().await;
    let stats = hub.hub().store().load_stats().unwrap();
    assert_eq!(
        stats.len(),
        city.truth.mappings.len(),
        "one load stat per mapping"
    );
    for truth in &city.truth.mappings {
        let s = stats
            .iter()
            .find(|s| s.source == truth.source && s.source_table == truth.source_table)
            .unwrap_or_else(|| panic!("no stats for {}.{}", truth.source, truth.source_table));
        assert_eq!(
            s.accepted + s.rejected,
            truth.rows,
            "{}.{}: accepted + rejected",
            truth.source,
            truth.source_table
        );
        assert_eq!(
            s.rejected,
            truth.defects.len() as u64,
            "{}.{}: rejected rows",
            truth.source,
            truth.source_table
        );
    }
    let defects: usize = city.truth.mappings.iter().map(|m| m.defects.len()).sum();
    assert!(defects > 0, "the city carries injected defects");
}

#[tokio::test]
async fn the_injected_defects_are_exactly_the_rejects() {
    let city = TestCity::generate(TEST_SCALE);
    let hub = city.hub().await;
    let rejects = query(
        &hub,
        "SELECT source, source_table, row_id, reason, raw FROM _rejects",
    )
    .await;
    let found: BTreeSet<(String, String, String)> = rejects
        .iter()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                r[1].clone().unwrap(),
                r[2].clone().expect("every reject names its row"),
            )
        })
        .collect();
    assert_eq!(found.len(), rejects.len(), "each rejected row appears once");
    let expected: BTreeSet<(String, String, String)> = city
        .truth
        .all_defects()
        .map(|(s, t, d)| (s.to_string(), t.to_string(), d.row_id.clone()))
        .collect();
    assert_eq!(found, expected);

    // Each reason says what is wrong, and the raw row is kept.
    for (source, table, defect) in city.truth.all_defects() {
        let row = rejects
            .iter()
            .find(|r| {
                r[0].as_deref() == Some(source)
                    && r[1].as_deref() == Some(table)
                    && r[2].as_deref() == Some(defect.row_id.as_str())
            })
            .unwrap();
        let reason = row[3].as_deref().unwrap();
        let expected_words: &[&str] = match defect.kind {
            DefectKind::BadCheckDigit => &["check"],
            DefectKind::ImpossibleDate => &["date"],
            DefectKind::MalformedAdminCode => &["admin code", "digits"],
            DefectKind::UnknownValue => &["unknown value"],
        };
        assert!(
            expected_words.iter().any(|w| reason.contains(w)),
            "{source}.{table} row {}: {:?} gave reason {reason:?}",
            defect.row_id,
            defect.kind
        );
        let raw = row[4].as_deref().unwrap();
        assert!(
            raw.contains(&format!("\"{}\"", defect.column)),
            "raw row keeps column {}: {raw}",
            defect.column
        );
    }
}

#[tokio::test]
async fn shared_tables_hold_one_row_per_entity() {
    let city = TestCity::generate(TEST_SCALE);
    let hub = city.hub().await;
    for (table, rows) in &city.truth.shared_rows {
        let n = scalar_i64(&hub, &format!("SELECT count(*) FROM {table}")).await;
        assert_eq!(n as u64, *rows, "rows of {table}");
    }
    let counts = hub.hub().store().shared_counts().unwrap();
    for c in counts {
        assert_eq!(
            Some(&c.rows),
            city.truth.shared_rows.get(&c.table),
            "catalog count of {}",
            c.table
        );
    }
    // Keys are unique after merging.
    let dup = scalar_i64(
        &hub,
        "SELECT count(*) FROM (SELECT person_id FROM person GROUP BY person_id HAVING count(*) > 1)",
    )
    .await;
    assert_eq!(dup, 0);
}

#[tokio::test]
async fn showcase_elderly_on_high_floors_without_a_lift() {
    let city = TestCity::generate(TEST_SCALE);
    let hub = city.hub().await;
    let rows = query(&hub, ELDERLY_WALKUP_SQL).await;
    // name, id_number, grid, address, floor, property_company
    // The name is the merged one: it proves each column came from the right source.
    let mut got: Vec<ElderlyTruth> = rows
        .iter()
        .map(|r| ElderlyTruth {
            id_number: r[1].clone().unwrap(),
            name: r[0].clone().unwrap(),
            grid: r[2].clone(),
            address: r[3].clone().unwrap(),
            floor: r[4].as_deref().unwrap().parse().unwrap(),
            property_company: r[5].clone(),
        })
        .collect();
    got.sort();
    assert!(!city.truth.elderly_walkup.is_empty());
    assert_eq!(got, city.truth.elderly_walkup);
}

#[tokio::test]
async fn showcase_health_codes_per_community() {
    let city = TestCity::generate(TEST_SCALE);
    let hub = city.hub().await;
    let rows = query(&hub, HEALTH_LATEST_SQL).await;
    let mut got: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in rows {
        got.entry(r[0].clone().unwrap()).or_default().insert(
            r[2].clone().unwrap(),
            r[3].as_deref().unwrap().parse().unwrap(),
        );
    }
    assert!(!city.truth.health_latest.counts.is_empty());
    assert_eq!(got, city.truth.health_latest.counts);
}

#[tokio::test]
async fn showcase_phones_that_disagree_and_rejects_per_source() {
    let city = TestCity::generate(TEST_SCALE);
    let hub = city.hub().await;
    let rows = query(&hub, PHONE_MISMATCH_SQL).await;
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in rows {
        got.entry(r[0].clone().unwrap())
            .or_default()
            .insert(r[1].clone().unwrap());
    }
    assert!(city.truth.phone_mismatch.values().any(|s| !s.is_empty()));
    let expected: BTreeMap<String, BTreeSet<String>> = city
        .truth
        .phone_mismatch
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(got, expected);

    let rows = query(&hub, REJECTS_SQL).await;
    let got: BTreeMap<String, u64> = rows
        .iter()
        .map(|r| {
            (
                r[0].clone().unwrap(),
                r[1].as_deref().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, city.truth.rejects_per_source);
}

#[tokio::test]
async fn raw_tables_stay_queryable_under_their_source_schema() {
    let city = TestCity::generate(TEST_SCALE);
    let hub = city.hub().await;
    for m in &city.truth.mappings {
        let n = scalar_i64(
            &hub,
            &format!(
                "SELECT count(*) FROM src_{}.\"{}\"",
                m.source, m.source_table
            ),
        )
        .await;
        assert_eq!(n as u64, m.rows, "src_{}.{}", m.source, m.source_table);
    }
}

#[tokio::test]
async fn person_id_is_a_keyed_pseudonym_not_the_id() {
    let city = TestCity::generate(TEST_SCALE);
    let hub = city.hub().await;
    let rows = query(
        &hub,
        "SELECT person_id, id_number, gh_person_id(id_number) FROM person LIMIT 50",
    )
    .await;
    assert_eq!(rows.len(), 50);
    for r in rows {
        let pid = r[0].as_deref().unwrap();
        let id = r[1].as_deref().unwrap();
        assert_eq!(pid.len(), 32);
        assert!(pid.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(id.len(), 18);
        assert_eq!(
            Some(pid),
            r[2].as_deref(),
            "stable: the same key gives the same pseudonym"
        );
    }
}

#[tokio::test]
async fn every_source_maps_to_the_shared_schema_with_normalised_values() {
    let city = TestCity::generate(TEST_SCALE);
    let hub = city.hub().await;
    for def in gridhub_catalog::shared_tables() {
        let df = hub
            .hub()
            .sql(&format!("SELECT * FROM {}", def.name))
            .await
            .unwrap();
        let got: Vec<(String, String)> = df
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().to_string()))
            .collect();
        let expected: Vec<(String, String)> = def
            .columns
            .iter()
            .map(|c| (c.name.to_string(), c.data_type.to_string()))
            .collect();
        assert_eq!(got, expected, "schema of {}", def.name);
    }
    // Values are normalised, whichever source they came from: no row breaks a rule.
    let violations = [
        (
            "person",
            "gh_check('resident_id', id_number) IS NOT NULL OR length(id_number) <> 18",
        ),
        (
            "person",
            "phone IS NOT NULL AND gh_check('phone', phone) IS NOT NULL",
        ),
        ("person", "gender NOT IN ('male', 'female')"),
        ("person", "residency NOT IN ('registered', 'floating')"),
        ("person", "name LIKE '% %'"),
        ("person", "length(area_code) NOT IN (12, 15)"),
        (
            "person",
            "birth_date < DATE '1900-01-01' OR birth_date > current_date()",
        ),
        (
            "health_record",
            "health_code NOT IN ('green', 'yellow', 'red')",
        ),
        (
            "building",
            "has_elevator IS NULL OR floors IS NULL OR floors < 1",
        ),
        (
            "location_trace",
            "via NOT IN ('checkpoint', 'scan', 'telecom')",
        ),
        (
            "person_tag",
            "tag NOT IN ('elderly_alone', 'disabled', 'low_income', 'special_care')",
        ),
    ];
    for (table, rule) in violations {
        let n = scalar_i64(&hub, &format!("SELECT count(*) FROM {table} WHERE {rule}")).await;
        assert_eq!(n, 0, "{table} rows where {rule}");
    }
    // Every row says where it came from.
    for def in gridhub_catalog::shared_tables() {
        let n = scalar_i64(
            &hub,
            &format!("SELECT count(*) FROM {} WHERE _source IS NULL", def.name),
        )
        .await;
        assert_eq!(n, 0, "{} rows without _source", def.name);
    }
}
