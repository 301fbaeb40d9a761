//! Integration tests of the written demo data: determinism, defect rates, the real formats
//! (GBK CSV, xlsx), the config, the truth and the manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use calamine::{Data, Reader, Xlsx, open_workbook};
use gridhub_catalog::{shared_table, shared_table_names};
use gridhub_synth::{
    City, GenerateOptions, NoProgress, Progress, is_generated, read_truth, showcase_queries,
};

fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn generate(dir: &Path, scale: usize, seed: u64) -> City {
    let city = City::generate(&GenerateOptions { scale, seed });
    city.write(dir, &NoProgress).unwrap();
    city
}

#[test]
fn same_seed_same_bytes_other_seed_other_data() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let city_a = generate(a.path(), 3_000, 7);
    let city_b = generate(b.path(), 3_000, 7);
    let city_c = generate(c.path(), 3_000, 8);
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert!(fa.len() >= 13, "{:?}", fa.keys().collect::<Vec<_>>());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    // The audit key is the one random file: 32 bytes from the OS, hex, per directory.
    let key = Path::new(gridhub_synth::AUDIT_KEY_FILE);
    let (ka, kb) = (
        String::from_utf8_lossy(&fa[key]),
        String::from_utf8_lossy(&fb[key]),
    );
    assert_eq!(ka.trim_end().len(), 64, "{ka}");
    assert!(ka.trim_end().bytes().all(|b| b.is_ascii_hexdigit()), "{ka}");
    assert_ne!(ka, kb, "two demo hubs share an audit key");
    for (path, bytes) in fa.iter().filter(|(p, _)| p.as_path() != key) {
        assert!(
            bytes == &fb[path],
            "{} differs between two runs",
            path.display()
        );
    }
    assert_eq!(city_a.truth(), city_b.truth());
    assert_ne!(city_a.truth(), city_c.truth());
    let differing = fa
        .iter()
        .filter(|(p, bytes)| fc.get(*p) != Some(bytes))
        .count();
    assert!(
        differing >= 10,
        "only {differing} files differ for another seed"
    );
}

#[test]
fn about_half_a_percent_of_every_table_is_defective() {
    let truth = City::generate(&GenerateOptions {
        scale: 20_000,
        seed: 3,
    })
    .truth();
    assert_eq!(truth.mappings.len(), 16);
    for m in &truth.mappings {
        let label = format!("{}.{} ({} rows)", m.source, m.source_table, m.rows);
        if m.rows >= 1_000 {
            let rate = m.defect_rate();
            assert!((0.003..=0.007).contains(&rate), "{label}: rate {rate}");
        }
        if m.rows >= 200 {
            assert!(!m.defects.is_empty(), "{label}: no defect");
        }
        let mut ids: Vec<&str> = m.defects.iter().map(|d| d.row_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids.len(),
            m.defects.len(),
            "{label}: two defects on one row"
        );
    }
    let total: u64 = truth.mappings.iter().map(|m| m.defects.len() as u64).sum();
    assert_eq!(truth.rejects_per_source.values().sum::<u64>(), total);
    assert_eq!(truth.rejects_per_source.len(), 7);
}

#[test]
fn property_a_is_real_gbk_with_crlf() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), 2_000, 1);
    for (file, header) in [
        (
            "住户.csv",
            "序号,业主姓名,证件号码,手机号,楼栋编号,单元,楼层,房号,更新日期",
        ),
        (
            "楼栋.csv",
            "序号,楼栋编号,地址,总层数,电梯,建成年份,纬度,经度,网格编码",
        ),
    ] {
        let bytes = std::fs::read(dir.path().join("property_a").join(file)).unwrap();
        assert!(
            std::str::from_utf8(&bytes).is_err(),
            "{file} decodes as UTF-8"
        );
        let text = encoding_rs::GB18030
            .decode_without_bom_handling_and_without_replacement(&bytes)
            .unwrap_or_else(|| panic!("{file} is not GB18030"));
        assert!(text.starts_with(&format!("{header}\r\n")), "{file}");
        assert_eq!(text.matches('\n').count(), text.matches("\r\n").count());
        assert!(text.ends_with("\r\n"));
    }
    let text = std::fs::read(dir.path().join("property_a/住户.csv")).unwrap();
    let text = encoding_rs::GBK.decode(&text).0;
    // Names written with a space, phones written with dashes.
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert!(rows.iter().any(|r| r[1].contains(' ')));
    assert!(
        rows.iter()
            .any(|r| r[3].len() == 13 && r[3].as_bytes()[3] == b'-')
    );
}

#[test]
fn property_b_workbook_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let city = generate(dir.path(), 3_000, 5);
    let truth = city.truth();
    let mut wb: Xlsx<_> = open_workbook(dir.path().join("property_b.xlsx")).unwrap();
    assert_eq!(wb.sheet_names(), ["住户信息", "楼宇信息"]);
    let residents = wb.worksheet_range("住户信息").unwrap();
    let header: Vec<String> = residents
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        header,
        [
            "姓名",
            "身份证",
            "性别",
            "出生日期",
            "电话",
            "楼号",
            "单元号",
            "层",
            "室",
            "更新时间"
        ]
    );
    let m = truth.mapping("property_b", "住户信息").unwrap();
    assert_eq!(m.row_id, "_row");
    assert_eq!(residents.height() as u64, m.rows + 1);
    let data: Vec<&[Data]> = residents.rows().skip(1).collect();
    // Birth dates are date cells; the update time is a plain serial number with a fraction.
    assert!(data.iter().all(|r| matches!(r[3], Data::DateTime(_))));
    assert!(
        data.iter()
            .all(|r| matches!(r[9], Data::Float(f) if f > 44_000.0))
    );
    assert!(
        data.iter()
            .all(|r| matches!(r[1], Data::String(ref s) if s.len() == 18))
    );
    assert!(
        data.iter()
            .any(|r| matches!(r[4], Data::String(ref s) if s.starts_with("+86 ")))
    );
    // A defect's row id is the sheet row: the ID cell of that row is the bad one.
    for d in &m.defects {
        let row = data[d.row_id.parse::<usize>().unwrap() - 2];
        let col = header.iter().position(|h| *h == d.column).unwrap();
        let raw = row[col].to_string();
        let invalid = if d.column == "身份证" {
            gridhub_normalize::Normalizer::ResidentId
                .check(&raw, b"k")
                .is_some()
        } else {
            !["男", "女"].contains(&raw.as_str())
        };
        assert!(invalid, "row {} column {} = {raw}", d.row_id, d.column);
    }
    let buildings = wb.worksheet_range("楼宇信息").unwrap();
    assert_eq!(
        buildings.height() as u64,
        truth.mapping("property_b", "楼宇信息").unwrap().rows + 1
    );
}

#[test]
fn config_is_valid_and_maps_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let city = generate(dir.path(), 2_000, 11);
    let truth = city.truth();
    let text = std::fs::read_to_string(dir.path().join("gridhub.toml")).unwrap();
    let config: toml::Value = toml::from_str(&text).unwrap();
    assert_eq!(config["hub"]["state_dir"].as_str(), Some(".gridhub"));
    assert!(config["hub"]["pseudonym_key"].as_str().unwrap().len() >= 16);
    // The audit key is a file of its own, outside the state dir.
    let key_file = config["hub"]["audit_key_file"].as_str().unwrap();
    assert!(dir.path().join(key_file).is_file(), "{key_file}");
    assert!(!Path::new(key_file).starts_with(".gridhub"), "{key_file}");
    let sources: Vec<&str> = config["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(sources.len(), 7);
    for s in config["sources"].as_array().unwrap() {
        // Every file a source names exists.
        if let Some(p) = s.get("path").and_then(|p| p.as_str()) {
            assert!(dir.path().join(p).is_file(), "{p}");
        }
        if let Some(tables) = s.get("tables").and_then(|t| t.as_table())
            && s["type"].as_str() != Some("xlsx")
        {
            for f in tables.values() {
                assert!(dir.path().join(f.as_str().unwrap()).is_file(), "{f}");
            }
        }
    }
    let mappings = config["mappings"].as_array().unwrap();
    assert_eq!(mappings.len(), truth.mappings.len());
    let mut sources_per_target: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (m, t) in mappings.iter().zip(&truth.mappings) {
        let source = m["source"].as_str().unwrap();
        let target = m["target"].as_str().unwrap();
        assert!(sources.contains(&source), "{source}");
        assert!(shared_table_names().contains(&target), "{target}");
        assert_eq!(
            (source, m["table"].as_str().unwrap()),
            (t.source.as_str(), t.source_table.as_str())
        );
        assert_eq!(m["row_id"].as_str(), Some(t.row_id.as_str()));
        sources_per_target.entry(target).or_default().push(source);
        let def = shared_table(target).unwrap();
        let columns = m["columns"].as_table().unwrap();
        for c in columns.keys() {
            assert!(def.column(c).is_some(), "{target}.{c}");
        }
        for k in def.key {
            assert!(columns.contains_key(*k), "{target}: key {k} unmapped");
        }
        // Every defect sits in a column that is normalised, mapped or cast.
        for d in &t.defects {
            let checked = columns.iter().any(|(name, spec)| {
                spec.get("from").and_then(|f| f.as_str()) == Some(d.column.as_str())
                    && (spec.get("normalize").is_some()
                        || spec.get("map").is_some()
                        || def.column(name).unwrap().data_type != arrow::datatypes::DataType::Utf8)
            });
            assert!(
                checked,
                "{source}.{}: defect column {} is not checked",
                t.source_table, d.column
            );
        }
        // person ids go through the person_id normaliser.
        if let Some(p) = columns.get("person_id") {
            assert_eq!(p["normalize"].as_str(), Some("person_id"));
        }
    }
    assert!(sources_per_target["person"].len() >= 4);
    assert!(sources_per_target["building"].len() >= 3);
    let tables = config["tables"].as_array().unwrap();
    let person = tables
        .iter()
        .find(|t| t["name"].as_str() == Some("person"))
        .unwrap();
    assert_eq!(person["precedence"][0].as_str(), Some("city_population"));
    assert_eq!(
        person["column_precedence"]["phone"][0].as_str(),
        Some("property_a")
    );
    let building = tables
        .iter()
        .find(|t| t["name"].as_str() == Some("building"))
        .unwrap();
    assert_eq!(building["precedence"][0].as_str(), Some("property_a"));
}

#[test]
fn default_scale_truth_has_answers() {
    let opts = GenerateOptions::default();
    assert_eq!((opts.scale, opts.seed), (50_000, 20_260_101));
    let truth = City::generate(&opts).truth();
    assert!(
        truth.elderly_walkup.len() > 50,
        "{}",
        truth.elderly_walkup.len()
    );
    assert!(
        truth
            .elderly_walkup
            .iter()
            .all(|e| e.floor >= 4 && e.id_number.len() == 18)
    );
    assert!(
        truth
            .elderly_walkup
            .iter()
            .any(|e| e.property_company.is_none())
    );
    assert!(
        truth
            .elderly_walkup
            .iter()
            .any(|e| e.property_company.is_some())
    );
    assert_eq!(truth.health_latest.date.as_deref(), Some("2022-11-29"));
    assert_eq!(truth.health_latest.counts.len(), 12);
    for source in ["property_a", "property_b"] {
        assert!(truth.phone_mismatch[source].len() > 100, "{source}");
    }
    assert_eq!(truth.persons_per_community.len(), 12);
    let all = truth.persons_in_area("4201");
    assert_eq!(all, truth.persons_per_grid.values().sum::<u64>());
    assert!(all > 49_900 && all <= 50_000, "{all}");
    assert_eq!(
        truth.persons_in_area("420106") + truth.persons_in_area("420111"),
        all
    );
    let grid = truth.persons_per_grid.keys().next().unwrap();
    assert_eq!(truth.persons_in_area(grid), truth.persons_per_grid[grid]);
    assert_eq!(truth.shared_rows.len(), shared_table_names().len());
    assert!(truth.shared_rows["person"] <= 50_000);
    let queries = showcase_queries();
    assert_eq!(queries.len(), 4);
    assert!(
        queries
            .iter()
            .all(|q| q.sql.contains("SELECT") && q.title.contains(" / "))
    );
}

#[test]
fn manifest_marks_a_finished_generation() {
    let dir = tempfile::tempdir().unwrap();
    let opts = GenerateOptions {
        scale: 1_500,
        seed: 2,
    };
    assert!(!is_generated(dir.path(), &opts));
    let city = City::generate(&opts);
    let summary = city.write(dir.path(), &NoProgress).unwrap();
    assert!(is_generated(dir.path(), &opts));
    assert!(!is_generated(
        dir.path(),
        &GenerateOptions { seed: 3, ..opts }
    ));
    assert!(!is_generated(
        dir.path(),
        &GenerateOptions {
            scale: 1_501,
            ..opts
        }
    ));
    assert_eq!(read_truth(dir.path()).unwrap(), city.truth());
    assert!(summary.rows > 10_000);
    assert!(
        summary
            .files
            .iter()
            .any(|f| f.path == "community_register.sqlite")
    );
    // The audit key survives a regeneration (the demo's audit log stays verifiable), and a
    // directory without it is not "generated".
    let key_path = dir.path().join(gridhub_synth::AUDIT_KEY_FILE);
    let key = std::fs::read(&key_path).unwrap();
    city.write(dir.path(), &NoProgress).unwrap();
    assert_eq!(std::fs::read(&key_path).unwrap(), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "the audit key is readable by others: {mode:o}"
        );
    }
    std::fs::remove_file(&key_path).unwrap();
    assert!(!is_generated(dir.path(), &opts));
    city.write(dir.path(), &NoProgress).unwrap();
    assert!(is_generated(dir.path(), &opts));
    // A damaged directory is not "generated".
    std::fs::write(dir.path().join("sensor_feed/sensor_reading.parquet"), b"x").unwrap();
    assert!(!is_generated(dir.path(), &opts));
    // generate_or_reuse writes it again, then reuses it unchanged.
    let written = gridhub_synth::generate_or_reuse(dir.path(), &opts, &NoProgress).unwrap();
    assert_eq!(written.config, dir.path().join(gridhub_synth::CONFIG_FILE));
    assert_eq!(written.written.as_ref().map(|s| s.rows), Some(summary.rows));
    let before = files(dir.path());
    let reused = gridhub_synth::generate_or_reuse(dir.path(), &opts, &NoProgress).unwrap();
    assert!(reused.written.is_none(), "regenerated a complete directory");
    assert_eq!(files(dir.path()), before);
}

/// Counts what a progress reporter is told.
#[derive(Default)]
struct Count {
    started: std::cell::Cell<u64>,
    total: std::cell::Cell<u64>,
    advanced: std::cell::Cell<u64>,
    finished: std::cell::Cell<u64>,
}

impl Progress for Count {
    fn start(&self, _what: &str, total: u64) {
        self.started.set(self.started.get() + 1);
        self.total.set(self.total.get() + total);
    }
    fn advance(&self, n: u64) {
        self.advanced.set(self.advanced.get() + n);
    }
    fn finish(&self) {
        self.finished.set(self.finished.get() + 1);
    }
}

#[test]
fn progress_sees_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let count = Count::default();
    let summary = City::generate(&GenerateOptions {
        scale: 40_000,
        seed: 4,
    })
    .write(dir.path(), &count)
    .unwrap();
    assert_eq!(count.started.get(), 16);
    assert_eq!(count.finished.get(), 16);
    assert_eq!(count.total.get(), summary.rows);
    assert_eq!(count.advanced.get(), summary.rows);
}
