//! The hub's behaviour around the data: pushdown into source scans, the persisted catalog,
//! a broken source, and errors a user can act on.

use gridhub_engine::{Hub, NoProgress};
use gridhub_tests::{AsHub, TestCity, query, query_error, scalar_i64};

const SCALE: usize = 2_000;

async fn physical_plan(hub: &impl AsHub, sql: &str) -> String {
    let rows = query(hub, &format!("EXPLAIN {sql}")).await;
    rows.iter()
        .filter(|r| r[0].as_deref() == Some("physical_plan"))
        .map(|r| r[1].clone().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_filter_on_a_shared_table_reaches_the_parquet_scan() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    // health_record comes from one Parquet source: through the live view, the filter on
    // area_code must be a predicate of the source's Parquet scan itself, not only a
    // FilterExec above it.
    let plan = physical_plan(
        &hub,
        "SELECT count(*) FROM live.health_record WHERE area_code LIKE '420106%'",
    )
    .await;
    let scan = plan
        .lines()
        .find(|l| l.contains("DataSourceExec") && l.contains("parquet"))
        .unwrap_or_else(|| panic!("no parquet scan in\n{plan}"));
    assert!(
        scan.contains("predicate="),
        "no predicate in the scan: {scan}"
    );
    assert!(
        scan.contains("420106"),
        "the filter value is not in the scan: {scan}"
    );
}

#[tokio::test]
async fn a_filter_on_a_shared_table_reaches_the_sqlite_query() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let some_event = query(&hub, "SELECT event_id FROM event ORDER BY event_id LIMIT 1").await;
    let id = some_event[0][0].clone().unwrap();
    let plan = physical_plan(
        &hub,
        &format!("SELECT category FROM live.event WHERE event_id = '{id}'"),
    )
    .await;
    let scan = plan
        .lines()
        .find(|l| l.contains("SELECT") && l.contains("事件"))
        .unwrap_or_else(|| panic!("no SQLite scan in\n{plan}"));
    assert!(
        scan.contains("WHERE"),
        "the filter did not reach SQLite: {scan}"
    );
    assert!(
        scan.contains(&id),
        "the filter value did not reach SQLite: {scan}"
    );
}

#[tokio::test]
async fn the_catalog_survives_a_restart_and_is_queryable() {
    let city = TestCity::generate(SCALE);
    let loaded = {
        let hub = city.hub().await;
        hub.hub().store().load_stats().unwrap()
    };
    // Reopen without loading: counts come from the embedded store.
    let hub = Hub::open_path(&city.config()).await.unwrap();
    assert_eq!(hub.store().load_stats().unwrap(), loaded);
    let rows = query(
        &hub,
        "SELECT source, sum(accepted), sum(rejected) FROM system.loads GROUP BY source ORDER BY source",
    )
    .await;
    assert_eq!(rows.len(), 7, "seven sources: {rows:?}");
    for r in &rows {
        let source = r[0].as_deref().unwrap();
        let written: u64 = city
            .truth
            .mappings
            .iter()
            .filter(|m| m.source == source)
            .map(|m| m.rows)
            .sum();
        let accepted: u64 = r[1].as_deref().unwrap().parse().unwrap();
        let rejected: u64 = r[2].as_deref().unwrap().parse().unwrap();
        assert_eq!(accepted + rejected, written, "{source}");
    }
    // Sources, tags and lineage are there too.
    let tags = query(
        &hub,
        "SELECT tag FROM system.columns WHERE table_name = 'person' AND name = 'phone'",
    )
    .await;
    assert_eq!(tags[0][0].as_deref(), Some("contact"));
    let cached = query(
        &hub,
        "SELECT name FROM system.sources WHERE materialised AND last_refresh IS NOT NULL ORDER BY name",
    )
    .await;
    assert_eq!(
        cached
            .iter()
            .map(|r| r[0].clone().unwrap())
            .collect::<Vec<_>>(),
        ["property_a", "property_b"],
        "the GBK CSV and the xlsx sources are cached, with their refresh time"
    );
    let lineage = scalar_i64(
        &hub,
        "SELECT count(*) FROM system.lineage WHERE shared_table = 'person' AND shared_column = 'phone'",
    )
    .await;
    let mapped = hub
        .config()
        .mappings
        .iter()
        .filter(|m| m.target == "person" && m.columns.contains_key("phone"))
        .count();
    assert!(mapped >= 3);
    assert_eq!(
        lineage as usize, mapped,
        "one lineage row per source that maps person.phone"
    );
}

/// `system.*` is read when queried: a load shows in the open session's catalog tables at
/// once (nothing is re-registered), and the catalog's typed rows say the same as its SQL.
#[tokio::test]
async fn the_catalog_tables_are_read_when_queried() {
    let city = TestCity::generate(SCALE);
    let hub = gridhub_engine::GovernedHub::open_path(&city.config())
        .await
        .unwrap();
    let before = scalar_i64(&hub, "SELECT count(*) FROM system.loads").await;
    assert_eq!(before, 0, "nothing loaded yet");
    let rows_before = query(&hub, "SELECT rows FROM system.tables WHERE name = 'person'").await;
    assert_eq!(rows_before, vec![vec![None]], "no count before a load");

    hub.hub().load(&NoProgress).await.unwrap();
    let mappings = city.truth.mappings.len() as i64;
    assert_eq!(
        scalar_i64(&hub, "SELECT count(*) FROM system.loads").await,
        mappings,
        "one load row per mapping, seen by the same session"
    );
    let persons = scalar_i64(&hub, "SELECT rows FROM system.tables WHERE name = 'person'").await;
    assert_eq!(
        persons,
        scalar_i64(&hub, "SELECT count(*) FROM person").await
    );
    let typed = hub.hub().system().tables().unwrap();
    let person = typed.iter().find(|t| t.name == "person").unwrap();
    assert_eq!(person.rows, Some(persons as u64));
    assert_eq!(person.served_from, "snapshot");
    let accepted: u64 = hub
        .hub()
        .system()
        .loads()
        .unwrap()
        .iter()
        .map(|l| l.accepted)
        .sum();
    assert_eq!(
        scalar_i64(&hub, "SELECT sum(accepted) FROM system.loads").await as u64,
        accepted
    );
    // A projection and a filter on a system table work like on any table.
    let phone = query(
        &hub,
        "SELECT data_type, tag FROM system.columns WHERE table_name = 'person' AND name = 'phone'",
    )
    .await;
    assert_eq!(
        phone,
        vec![vec![Some("Utf8".to_string()), Some("contact".to_string())]]
    );
}

#[tokio::test]
async fn a_broken_source_is_named_and_the_rest_keeps_working() {
    let city = TestCity::generate(SCALE);
    {
        city.hub().await;
    }
    // The property company's workbook disappears, and so does its cache.
    std::fs::remove_file(city.dir.path().join("property_b.xlsx")).unwrap();
    std::fs::remove_dir_all(city.dir.path().join(".gridhub/cache/property_b")).unwrap();
    let hub = Hub::open_path(&city.config()).await.unwrap();
    let health = query(
        &hub,
        "SELECT health FROM system.sources WHERE name = 'property_b'",
    )
    .await;
    let health = health[0][0].clone().unwrap();
    assert!(
        health.starts_with("broken") && health.contains("property_b.xlsx"),
        "{health}"
    );

    // Read live, the table it feeds goes without its rows, and the catalog says so.
    query(&hub, "SELECT count(*) FROM live.building").await;
    assert_degraded_by(&hub, "building", "property_b").await;
    // The snapshot of the last load still answers, and the catalog says where it is from.
    let buildings = scalar_i64(&hub, "SELECT count(*) FROM building").await;
    assert_eq!(buildings as u64, city.truth.shared_rows["building"]);
    let served = query(
        &hub,
        "SELECT served_from, snapshot_at IS NOT NULL FROM system.tables WHERE name = 'building'",
    )
    .await;
    assert_eq!(served[0], [Some("snapshot".into()), Some("true".into())]);
    // Tables that do not depend on it answer live too.
    let events = scalar_i64(&hub, "SELECT count(*) FROM live.event").await;
    assert_eq!(events as u64, city.truth.shared_rows["event"]);
}

#[tokio::test]
async fn a_source_down_before_any_load_is_left_out_of_its_shared_tables_by_name() {
    let city = TestCity::generate(SCALE);
    std::fs::remove_file(city.dir.path().join("property_b.xlsx")).unwrap();
    let hub = Hub::open_path(&city.config()).await.unwrap();
    // No snapshot, no cache: building answers from its other sources, marked degraded.
    query(&hub, "SELECT count(*) FROM building").await;
    assert_degraded_by(&hub, "building", "property_b").await;
    let events = scalar_i64(&hub, "SELECT count(*) FROM event").await;
    assert_eq!(events as u64, city.truth.shared_rows["event"]);
}

/// Asserts that the catalog marks shared `table` degraded, naming the broken `source`.
async fn assert_degraded_by(hub: &impl AsHub, table: &str, source: &str) {
    let degraded = query(
        hub,
        &format!("SELECT degraded FROM system.tables WHERE name = '{table}'"),
    )
    .await;
    assert!(
        degraded[0][0].as_deref().unwrap_or("").contains(source),
        "the catalog names the source: {degraded:?}"
    );
}

/// Where the shared tables fed by a source are served from, distinct.
async fn served_from(hub: &impl AsHub) -> Vec<String> {
    query(
        hub,
        "SELECT DISTINCT served_from FROM system.tables WHERE sources <> ''",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

/// Rows in one of `a` / `b` and not the other (as multisets).
async fn difference(hub: &impl AsHub, a: &str, b: &str) -> i64 {
    scalar_i64(
        hub,
        &format!(
            "SELECT (SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})) \
                  + (SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}))"
        ),
    )
    .await
}

/// The merged tables a load writes (each fed by several sources, so each is an aggregate).
const MERGED: [&str; 3] = ["person", "building", "house"];

/// A merged table's rows in key order, without `_updated_at`: a mapping with no time of its
/// own stamps its rows with the time the hub was opened, which differs between two hubs.
async fn rows_by_key(hub: &impl AsHub, table: &str) -> Vec<Vec<Option<String>>> {
    let def = gridhub_catalog::shared_tables()
        .iter()
        .find(|d| d.name == table)
        .unwrap();
    let columns: Vec<&str> = def
        .columns
        .iter()
        .map(|c| c.name)
        .filter(|c| *c != gridhub_catalog::model::UPDATED_AT_COLUMN)
        .collect();
    let sql = format!(
        "SELECT {} FROM {table} ORDER BY {table}_id",
        columns.join(", ")
    );
    query(hub, &sql).await
}

/// A load in a 2 MiB memory pool, in batches of 256 rows, spills the person merge (observed
/// in the load's spill counts) and writes the same tables, row for row, as a load that does
/// not spill (but for the time stamp of each hub's opening) and exactly what the live views
/// compute, one row per entity. The snapshot writer's buffers are accounted apart from the
/// merges' pool, so however the plans' partitions interleave the merges cannot starve it.
#[tokio::test]
async fn a_load_that_spills_its_merges_writes_the_same_tables() {
    let city = TestCity::generate(SCALE);
    // A load with the default pool: nothing spills.
    let roomy = Hub::open_path(&city.config()).await.unwrap();
    let summary = roomy.load(&NoProgress).await.unwrap();
    for t in MERGED {
        assert_eq!(
            summary.spilled[t],
            Default::default(),
            "{t}: a {} MiB pool holds the merge",
            roomy.config().load_memory_mb
        );
    }
    let unspilled = {
        let mut tables = Vec::new();
        for t in MERGED {
            tables.push(rows_by_key(&roomy, t).await);
        }
        tables
    };

    let text = std::fs::read_to_string(city.config()).unwrap();
    let small = city.dir.path().join("small-memory.toml");
    std::fs::write(
        &small,
        text.replacen("[hub]", "[hub]\nload_memory_mb = 2\nbatch_size = 256", 1),
    )
    .unwrap();
    let hub = Hub::open_path(&small).await.unwrap();
    assert_eq!(hub.config().load_memory_mb, 2);
    let summary = hub.load(&NoProgress).await.unwrap();
    assert_eq!(served_from(&hub).await, ["snapshot"]);
    // The person merge (the largest: about 1.4 MB of spilled runs at this scale, in ten
    // files) cannot fit; building and house may.
    let spilled = summary.spilled["person"];
    assert!(
        spilled.files > 0 && spilled.rows > 0 && spilled.bytes > 0,
        "person: the merge spills in a 2 MiB pool: {spilled:?}"
    );
    for (t, unspilled) in MERGED.into_iter().zip(unspilled) {
        let rows = rows_by_key(&hub, t).await;
        assert!(!rows.is_empty(), "{t}: no rows to compare");
        assert!(
            rows == unspilled,
            "{t}: the spilled load wrote other rows than the unspilled one"
        );
        assert_eq!(difference(&hub, t, &format!("live.{t}")).await, 0, "{t}");
        let distinct = scalar_i64(&hub, &format!("SELECT count(DISTINCT {t}_id) FROM {t}")).await;
        assert_eq!(rows.len() as i64, distinct, "{t}: one row per entity");
    }
}

#[tokio::test]
async fn shared_tables_are_served_from_the_load_snapshot_equal_to_the_live_views() {
    let city = TestCity::generate(SCALE);
    // Before the first load every table is the live view.
    let hub = Hub::open_path(&city.config()).await.unwrap();
    assert_eq!(served_from(&hub).await, ["live"]);
    hub.load(&NoProgress).await.unwrap();
    assert_eq!(served_from(&hub).await, ["snapshot"]);

    // Every table and the rejects hold exactly what the live views compute.
    let mut tables: Vec<&str> = gridhub_catalog::shared_tables()
        .iter()
        .map(|t| t.name)
        .collect();
    tables.push("_rejects");
    for t in &tables {
        assert_eq!(difference(&hub, t, &format!("live.{t}")).await, 0, "{t}");
    }
    let plan = physical_plan(&hub, "SELECT count(*) FROM person WHERE gender = 'F'").await;
    assert!(
        plan.contains("snapshots"),
        "person is read from its snapshot:\n{plan}"
    );

    // A new hub over the same config serves the snapshot without loading …
    let reopened = Hub::open_path(&city.config()).await.unwrap();
    assert_eq!(served_from(&reopened).await, ["snapshot"]);
    // … and a hub whose mappings would give other values (another pseudonym key) does not.
    let text = std::fs::read_to_string(city.config()).unwrap();
    let other = city.dir.path().join("other-key.toml");
    std::fs::write(
        &other,
        text.replace(
            gridhub_synth::DEMO_PSEUDONYM_KEY,
            "another-key-of-at-least-16-chars",
        ),
    )
    .unwrap();
    let other_hub = Hub::open_path(&other).await.unwrap();
    assert_eq!(served_from(&other_hub).await, ["live"]);
    assert!(difference(&other_hub, "person", "live.person").await == 0);
    assert_ne!(
        query(&other_hub, "SELECT min(person_id) FROM person").await,
        query(&reopened, "SELECT min(person_id) FROM person").await,
        "the other key gives other pseudonyms, so the first hub's snapshot must not be served"
    );
}

#[tokio::test]
async fn errors_are_one_clear_sentence() {
    let city = TestCity::generate(SCALE);
    let hub = Hub::open_path(&city.config()).await.unwrap();
    let e = query_error(&hub, "SELECT * FROM persons").await;
    assert!(e.starts_with("unknown table 'persons'"), "{e}");
    assert!(
        e.contains("person,") && e.contains("src_property_a.住户"),
        "lists known tables: {e}"
    );

    let e = query_error(&hub, "SELEC * FROM person").await;
    assert!(e.starts_with("SQL error"), "{e}");
    assert!(e.contains("at line 1, column 1"), "says where: {e}");

    let e = query_error(&hub, "SELECT nope FROM person").await;
    assert!(e.contains("nope"), "{e}");

    let e = Hub::open_path(&city.dir.path().join("missing.toml"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config file not found") && e.contains("missing.toml"),
        "{e}"
    );
}

#[tokio::test]
async fn refresh_rebuilds_a_materialised_cache() {
    let city = TestCity::generate(SCALE);
    let hub = city.hub().await;
    let before = query(
        &hub,
        "SELECT last_refresh FROM system.sources WHERE name = 'property_a'",
    )
    .await;
    std::thread::sleep(std::time::Duration::from_millis(20));
    let refreshed = hub
        .hub()
        .refresh(&["property_a".to_string()], &NoProgress)
        .await
        .unwrap();
    assert_eq!(refreshed.len(), 1);
    assert!(refreshed[0].is_ok(), "{}", refreshed[0]);
    let rows_written: u64 = city
        .truth
        .mappings
        .iter()
        .filter(|m| m.source == "property_a")
        .map(|m| m.rows)
        .sum();
    assert_eq!(refreshed[0].rows(), Some(rows_written));
    let hub = Hub::open_path(&city.config()).await.unwrap();
    hub.load(&NoProgress).await.unwrap();
    let after = query(
        &hub,
        "SELECT last_refresh FROM system.sources WHERE name = 'property_a'",
    )
    .await;
    assert_ne!(before, after, "the refresh time moved");
    let e = hub
        .refresh(&["nope".to_string()], &NoProgress)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no source 'nope'"), "{e}");
}
