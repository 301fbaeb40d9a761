//! Faults stay in their source: a renamed header or a corrupt file of any kind of source
//! marks that source broken with the reason, every table keeps answering what it answered
//! before (the broken source's part from its stale cache or the last snapshot), a failed
//! refresh never replaces a good cache, restoring the file and refreshing recovers without
//! manual cleanup, and leftovers of interrupted refreshes and loads are removed on open.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gridhub_catalog::shared_tables;
use gridhub_engine::{GovernedHub, Hub, NoProgress, RefreshOutcome};
use gridhub_tests::{AsHub, TestCity, open_loaded, query, query_error, sorted};

const SCALE: usize = 1_000;

/// Every shared table's rows (all columns but `_updated_at`, which is the load time for
/// sources that do not map it), sorted.
async fn answers(hub: &impl AsHub) -> BTreeMap<String, Vec<Vec<Option<String>>>> {
    answers_except(hub, &[]).await
}

/// Asserts that two sets of answers are equal table by table (naming the first that is not).
fn assert_same(
    before: &BTreeMap<String, Vec<Vec<Option<String>>>>,
    now: &BTreeMap<String, Vec<Vec<Option<String>>>>,
    when: &str,
) {
    for (table, rows) in before {
        let got = &now[table];
        assert!(
            got == rows,
            "{when}: {table} answers {} rows, {} before (first difference: {:?})",
            got.len(),
            rows.len(),
            got.iter().zip(rows).find(|(a, b)| a != b)
        );
    }
}

/// (state, reason, drift, serving) of a source in `system.sources`.
async fn source_state(hub: &impl AsHub, source: &str) -> (String, String, String, String) {
    let r = query(
        hub,
        &format!(
            "SELECT state, coalesce(reason, ''), coalesce(drift, ''), serving \
             FROM system.sources WHERE name = '{source}'"
        ),
    )
    .await;
    let v = |i: usize| r[0][i].clone().unwrap_or_default();
    (v(0), v(1), v(2), v(3))
}

/// Sources `system.sources` calls broken.
async fn broken_sources(hub: &impl AsHub) -> Vec<String> {
    query(
        hub,
        "SELECT name FROM system.sources WHERE state = 'broken' ORDER BY name",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

/// What `gridhub refresh` does: refresh every source, reopen, load.
async fn refresh_all(config: &Path) -> (Vec<RefreshOutcome>, GovernedHub) {
    let outcomes = {
        let hub = Hub::open_path(config).await.expect("open the hub");
        hub.refresh(&[], &NoProgress).await.expect("refresh")
    };
    (outcomes, open_loaded(config).await)
}

fn outcome<'a>(outcomes: &'a [RefreshOutcome], source: &str) -> &'a RefreshOutcome {
    outcomes
        .iter()
        .find(|o| o.source == source)
        .expect("reported")
}

/// Appends `suffix` to the `index`-th header field (0-based) of a CSV file, in whatever
/// encoding: the ASCII comma never occurs inside a GBK character.
fn rename_header_field(path: &Path, index: usize, suffix: &str) {
    let bytes = std::fs::read(path).unwrap();
    let end = bytes
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap();
    let mut fields: Vec<Vec<u8>> = bytes[..end]
        .split(|&b| b == b',')
        .map(<[u8]>::to_vec)
        .collect();
    fields[index].extend_from_slice(suffix.as_bytes());
    let mut out = fields.join(&b","[..]);
    out.extend_from_slice(&bytes[end..]);
    std::fs::write(path, out).unwrap();
}

/// Files whose name ends in `.tmp` anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(temp_files(&p));
        } else if p.to_string_lossy().ends_with(".tmp") {
            out.push(p);
        }
    }
    out
}

fn state_dir(city: &TestCity) -> PathBuf {
    city.dir.path().join(".gridhub")
}

#[tokio::test]
async fn a_renamed_gbk_header_keeps_the_cache_and_a_fixed_file_recovers() {
    let city = TestCity::generate(SCALE);
    let before = {
        let hub = city.hub().await;
        let a = answers(&hub).await;
        for (table, rows) in &a {
            assert_eq!(
                rows.len() as u64,
                city.truth.shared_rows[table],
                "{table} before the fault"
            );
        }
        a
    };
    let file = city.dir.path().join("property_a/住户.csv");
    let original = std::fs::read(&file).unwrap();
    let cache = state_dir(&city).join("cache/property_a/住户.parquet");
    let cached = std::fs::read(&cache).unwrap();

    // 证件号码 (the ID number, third column) becomes 证件号码2.
    rename_header_field(&file, 2, "2");
    let (outcomes, hub) = refresh_all(&city.config()).await;
    let failed = outcome(&outcomes, "property_a");
    let why = failed.result.as_ref().unwrap_err();
    assert!(why.contains("证件号码") && why.contains("住户"), "{why}");
    assert!(
        failed
            .drift
            .iter()
            .any(|d| d.contains("missing 证件号码") && d.contains("added 证件号码2")),
        "{:?}",
        failed.drift
    );
    for o in outcomes.iter().filter(|o| o.source != "property_a") {
        assert!(o.is_ok(), "the other sources are refreshed: {o}");
    }
    assert_eq!(
        std::fs::read(&cache).unwrap(),
        cached,
        "the good cache is kept as it was"
    );
    assert!(temp_files(&state_dir(&city)).is_empty());

    // Reopened and loaded: broken, serving its stale cache, everything answers as before.
    let (state, reason, drift, serving) = source_state(&hub, "property_a").await;
    assert_eq!(
        (state.as_str(), serving.as_str()),
        ("broken", "stale_cache"),
        "{reason}"
    );
    assert!(
        reason.contains("last refresh failed") && reason.contains("证件号码"),
        "{reason}"
    );
    assert!(drift.contains("missing 证件号码"), "{drift}");
    assert_eq!(broken_sources(&hub).await, ["property_a"]);
    let health = query(
        &hub,
        "SELECT health FROM system.sources WHERE name = 'property_a'",
    )
    .await;
    assert!(
        health[0][0].as_deref().unwrap().starts_with("broken"),
        "{health:?}"
    );
    let degraded = query(
        &hub,
        "SELECT degraded FROM system.tables WHERE name = 'person'",
    )
    .await;
    assert_eq!(degraded[0][0].as_deref(), Some("property_a: stale cache"));
    assert_same(&before, &answers(&hub).await, "while property_a is broken");
    drop(hub);

    // The file is fixed: one refresh recovers it, no manual cleanup.
    std::fs::write(&file, &original).unwrap();
    let (outcomes, hub) = refresh_all(&city.config()).await;
    assert!(outcomes.iter().all(RefreshOutcome::is_ok), "{outcomes:?}");
    assert!(broken_sources(&hub).await.is_empty());
    let (state, _, _, serving) = source_state(&hub, "property_a").await;
    assert_eq!((state.as_str(), serving.as_str()), ("ok", "source"));
    assert_same(&before, &answers(&hub).await, "after the recovery");
}

#[tokio::test]
async fn a_renamed_header_in_an_in_place_csv_breaks_only_its_source() {
    let city = TestCity::generate(SCALE);
    let before = answers(&city.hub().await).await;
    let file = city.dir.path().join("city_population/person.csv");
    let original = std::fs::read(&file).unwrap();
    rename_header_field(&file, 1, "_v2"); // id_no → id_no_v2

    // Opening does not fail, and every table answers as before (person from its snapshot).
    let hub = Hub::open_path(&city.config())
        .await
        .expect("a broken source never stops the hub");
    let (state, reason, drift, serving) = source_state(&hub, "city_population").await;
    assert_eq!(
        (state.as_str(), serving.as_str()),
        ("broken", "last_snapshot")
    );
    assert!(reason.contains("id_no"), "{reason}");
    assert!(
        drift.contains("person: missing id_no; added id_no_v2"),
        "{drift}"
    );
    assert_same(&before, &answers(&hub).await, "opened with the fault");
    // Live, person is computed from its working sources and says it is degraded.
    query(&hub, "SELECT count(*) FROM live.person").await;
    let degraded = query(
        &hub,
        "SELECT degraded FROM system.tables WHERE name = 'person'",
    )
    .await;
    assert!(
        degraded[0][0]
            .as_deref()
            .unwrap()
            .contains("city_population"),
        "{degraded:?}"
    );
    drop(hub);

    // A refresh (and its load) keeps person's snapshot rather than writing it without
    // city_population, and reports the source broken.
    let (outcomes, hub) = refresh_all(&city.config()).await;
    assert!(!outcome(&outcomes, "city_population").is_ok());
    assert_eq!(
        outcomes.iter().filter(|o| !o.is_ok()).count(),
        1,
        "{outcomes:?}"
    );
    assert_same(&before, &answers(&hub).await, "after a load with the fault");
    drop(hub);

    std::fs::write(&file, &original).unwrap();
    let (outcomes, hub) = refresh_all(&city.config()).await;
    assert!(outcomes.iter().all(RefreshOutcome::is_ok), "{outcomes:?}");
    assert!(broken_sources(&hub).await.is_empty());
    assert_same(&before, &answers(&hub).await, "after the recovery");
}

#[tokio::test]
async fn a_corrupt_file_of_each_kind_breaks_only_its_source() {
    let city = TestCity::generate(SCALE);
    let before = answers(&city.hub().await).await;
    // (source, file, how it is corrupted, what the reason must name)
    let cases: [(&str, &str, &[u8], &str); 5] = [
        (
            "property_a",
            "property_a/楼栋.csv",
            b"\xff\xff\xff,\xff\n1,2\n",
            "楼栋.csv",
        ),
        (
            "city_population",
            "city_population/house.csv",
            b"",
            "house.csv",
        ),
        (
            "property_b",
            "property_b.xlsx",
            b"PK\x03\x04 truncated",
            "property_b.xlsx",
        ),
        (
            "district_health",
            "district_health/health_record.parquet",
            b"PAR1 garbage PAR1",
            "health_record.parquet",
        ),
        (
            "community_register",
            "community_register.sqlite",
            b"SQLite format 3\0 garbage",
            "community_register",
        ),
    ];
    for (source, name, garbage, named) in cases {
        let file = city.dir.path().join(name);
        let original = std::fs::read(&file).unwrap();
        std::fs::write(&file, garbage).unwrap();

        let (outcomes, hub) = refresh_all(&city.config()).await;
        let failed = outcome(&outcomes, source);
        let why = failed
            .result
            .as_ref()
            .err()
            .map(String::as_str)
            .unwrap_or("");
        assert!(why.contains(named), "{source}: refresh reports {failed}");
        assert_eq!(
            outcomes.iter().filter(|o| !o.is_ok()).count(),
            1,
            "{outcomes:?}"
        );
        assert_eq!(
            broken_sources(&hub).await,
            [source],
            "only {source} is broken"
        );
        let (_, reason, _, _) = source_state(&hub, source).await;
        assert!(reason.contains(named), "{source}: {reason}");
        assert_same(&before, &answers(&hub).await, &format!("{source} corrupt"));
        drop(hub);

        std::fs::write(&file, &original).unwrap();
        let (outcomes, hub) = refresh_all(&city.config()).await;
        assert!(
            outcomes.iter().all(RefreshOutcome::is_ok),
            "{source}: {outcomes:?}"
        );
        assert!(broken_sources(&hub).await.is_empty(), "{source} recovered");
        assert_same(&before, &answers(&hub).await, &format!("{source} restored"));
    }
    assert!(temp_files(&state_dir(&city)).is_empty());
}

#[tokio::test]
async fn refuse_fails_what_the_broken_source_feeds_and_nothing_else() {
    let city = TestCity::generate(SCALE);
    let before = answers(&city.hub().await).await;
    let config = std::fs::read_to_string(city.config()).unwrap();
    let marked = config.replacen(
        "name = \"property_a\"\n",
        "name = \"property_a\"\non_error = \"refuse\"\n",
        1,
    );
    assert_ne!(marked, config);
    std::fs::write(city.config(), marked).unwrap();
    let fed: Vec<String> = {
        let hub = city.hub().await;
        assert_same(&before, &answers(&hub).await, "with on_error set");
        query(
            &hub,
            "SELECT DISTINCT target_table FROM system.loads WHERE source = 'property_a'",
        )
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect()
    };
    assert!(fed.contains(&"person".to_string()), "{fed:?}");

    rename_header_field(&city.dir.path().join("property_a/住户.csv"), 2, "2");
    let (_, hub) = refresh_all(&city.config()).await;
    let (state, _, _, serving) = source_state(&hub, "property_a").await;
    assert_eq!((state.as_str(), serving.as_str()), ("broken", "refused"));
    let e = query_error(&hub, "SELECT count(*) FROM src_property_a.\"楼栋\"").await;
    assert!(e.contains("property_a"), "{e}");
    let now = answers_except(&hub, &fed).await;
    for table in &fed {
        let e = query_error(&hub, &format!("SELECT count(*) FROM {table}")).await;
        assert!(
            e.contains("property_a") && e.contains("refuse"),
            "{table}: {e}"
        );
    }
    for (table, rows) in &now {
        assert_eq!(
            rows, &before[table],
            "{table} is not fed by property_a and answers as before"
        );
    }
}

/// [`answers`] for every table but `skip`.
async fn answers_except(
    hub: &impl AsHub,
    skip: &[String],
) -> BTreeMap<String, Vec<Vec<Option<String>>>> {
    let mut out = BTreeMap::new();
    for def in shared_tables()
        .iter()
        .filter(|d| !skip.iter().any(|s| s == d.name))
    {
        let columns: Vec<String> = def
            .columns
            .iter()
            .filter(|c| c.name != "_updated_at")
            .map(|c| format!("\"{}\"", c.name))
            .collect();
        let sql = format!("SELECT {} FROM {}", columns.join(", "), def.name);
        out.insert(def.name.to_string(), sorted(query(hub, &sql).await));
    }
    out
}

#[tokio::test]
async fn leftovers_of_interrupted_refreshes_and_loads_are_removed_on_open() {
    let city = TestCity::generate(SCALE);
    let before = answers(&city.hub().await).await;
    let state = state_dir(&city);
    let snapshots = state.join("snapshots");
    let current = std::fs::read_to_string(snapshots.join("CURRENT")).unwrap();
    let current = current.trim();

    // What `kill -9` leaves at each step of a refresh and a load (pid 0 never runs):
    // a half-written cache file (killed while writing), a complete one not yet renamed
    // (killed between write and rename), a set being written, a temporary CURRENT, and a
    // complete set that never became current (killed between manifest and CURRENT).
    let workbook_cache = std::fs::read_dir(state.join("cache/property_b"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .expect("the workbook is cached");
    let leftovers = [
        state.join("cache/property_a/.住户.parquet.0.1.tmp"),
        workbook_cache.with_file_name(format!(
            ".{}.0.2.tmp",
            workbook_cache.file_name().unwrap().to_string_lossy()
        )),
        snapshots.join("CURRENT.0.tmp"),
    ];
    std::fs::write(&leftovers[0], b"PAR1 half").unwrap();
    std::fs::copy(&workbook_cache, &leftovers[1]).unwrap();
    std::fs::write(&leftovers[2], b"99").unwrap();
    let writing = snapshots.join("1");
    std::fs::create_dir_all(&writing).unwrap();
    std::fs::write(writing.join(".writing.0"), b"").unwrap();
    std::fs::write(writing.join("person.parquet"), b"PAR1 half").unwrap();
    let never_current = snapshots.join(format!("{}", current.parse::<i64>().unwrap() + 1));
    std::fs::create_dir_all(&never_current).unwrap();
    for e in std::fs::read_dir(snapshots.join(current))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), never_current.join(e.file_name())).unwrap();
    }
    // A set being written by a process that still runs (this one) stays.
    let running = snapshots.join("2");
    std::fs::create_dir_all(&running).unwrap();
    std::fs::write(
        running.join(format!(".writing.{}", std::process::id())),
        b"",
    )
    .unwrap();

    let hub = Hub::open_path(&city.config()).await.unwrap();
    for p in &leftovers {
        assert!(!p.exists(), "{} is removed", p.display());
    }
    assert!(!writing.exists() && !never_current.exists());
    assert!(running.exists(), "a set another process is writing stays");
    assert_eq!(
        std::fs::read_to_string(snapshots.join("CURRENT"))
            .unwrap()
            .trim(),
        current
    );
    assert!(broken_sources(&hub).await.is_empty());
    assert_same(&before, &answers(&hub).await, "after the cleanup");
}
