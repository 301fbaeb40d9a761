//! Cross-checks (tests only): every rendered row of every source table goes through the
//! real normalisers of `gridhub-normalize` as its mapping in `gridhub.toml` says; a row is
//! rejected exactly when it carries an injected defect. The accepted rows are then merged
//! with the config's precedence, independently of the model, and the result must match
//! [`City::truth`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::datatypes::DataType;
use gridhub_catalog::shared_table;

use crate::tables::{Col, RowBuf, RowId, TableId};
use crate::{City, GenerateOptions, hub_config};

fn normalise(name: &str, raw: &str) -> Result<String, String> {
    use gridhub_normalize as n;
    let e = |e: n::NormError| e.to_string();
    match name {
        "resident_id" | "person_id" => n::resident_id(raw).map_err(e),
        "name" => n::name(raw).map_err(e),
        "phone" => n::phone(raw).map_err(e),
        "date" => n::date(raw).map(|d| d.to_string()).map_err(e),
        "timestamp" => n::timestamp(raw).map(|t| t.to_string()).map_err(e),
        "admin_code" => n::admin_code(raw).map_err(e),
        "bool" => n::boolean(raw).map(|b| b.to_string()).map_err(e),
        "trim" => n::trim(raw).map_err(e),
        other => panic!("unknown normaliser {other}"),
    }
}

/// The double-quoted identifiers of a SQL expression.
fn quoted_columns(sql: &str) -> Vec<&str> {
    sql.split('"').skip(1).step_by(2).collect()
}

/// Evaluates one mapping column on a rendered row: Ok(value or None) or Err(reason).
fn eval(
    col: &Col,
    target_type: &DataType,
    cell: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    let cast = |v: String| -> Result<String, String> {
        match target_type {
            DataType::Int32 => v
                .parse::<i32>()
                .map(|n| n.to_string())
                .map_err(|_| format!("cannot read '{v}' as Int32")),
            DataType::Float64 => v
                .parse::<f64>()
                .map(|f| f.to_string())
                .map_err(|_| format!("cannot read '{v}' as Float64")),
            DataType::Boolean => match v.as_str() {
                "true" | "false" => Ok(v),
                _ => Err(format!("cannot read '{v}' as Boolean")),
            },
            _ => Ok(v),
        }
    };
    match col {
        Col::From(c) => cell(c).map(cast).transpose(),
        Col::Norm(c, n) => cell(c).map(|v| normalise(n, &v)).transpose(),
        Col::Map(c, pairs) => cell(c)
            .map(|v| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == v)
                    .map(|(_, m)| m.to_string())
                    .ok_or_else(|| format!("unknown value '{v}'"))
            })
            .transpose(),
        Col::Sql(sql) if sql.starts_with("concat(") => Ok(Some(
            quoted_columns(sql)
                .iter()
                .map(|c| cell(c).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("-"),
        )),
        Col::Sql(sql) if sql.starts_with("CAST(CAST(") => {
            let c = quoted_columns(sql)[0];
            cell(c)
                .map(|v| {
                    v.parse::<f64>()
                        .map(|f| (f as i32).to_string())
                        .map_err(|_| format!("cannot cast '{v}'"))
                })
                .transpose()
        }
        Col::Sql(sql) => panic!("no emulation for sql `{sql}`"),
        Col::Value(v) => Ok(Some(v.to_string())),
    }
}

/// Accepted rows of one mapping: key → shared column → value.
type Rows = BTreeMap<String, BTreeMap<String, Option<String>>>;

struct Checked {
    /// (source, table) → accepted rows.
    accepted: BTreeMap<(String, String), Rows>,
    /// (source, table) → row ids of rejected rows.
    rejected: BTreeMap<(String, String), BTreeSet<String>>,
}

fn check_all_rows(city: &City) -> Checked {
    let mut accepted = BTreeMap::new();
    let mut rejected = BTreeMap::new();
    for t in TableId::ALL {
        let spec = t.spec();
        let target = shared_table(spec.target).expect("shared table");
        let mut row = RowBuf::new(spec.columns.len());
        let mut rows: Rows = BTreeMap::new();
        let mut bad = BTreeSet::new();
        for i in 0..city.rows(t) {
            city.render(t, i, &mut row);
            let cell = |name: &str| -> Option<String> {
                let c = spec
                    .columns
                    .iter()
                    .position(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("{}: no column {name}", spec.table));
                row.cell_text(c)
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            };
            let mut values = BTreeMap::new();
            let mut reasons = Vec::new();
            for (name, col) in spec.map {
                let ty = target
                    .column(name)
                    .unwrap_or_else(|| panic!("{}.{name}", target.name))
                    .data_type
                    .clone();
                match eval(col, &ty, &cell) {
                    Ok(v) => {
                        values.insert(name.to_string(), v);
                    }
                    Err(e) => reasons.push(format!("{name}: {e}")),
                }
            }
            let key: Vec<String> = target
                .key
                .iter()
                .map(|k| values.get(*k).cloned().flatten().unwrap_or_default())
                .collect();
            if reasons.is_empty() && key.iter().any(String::is_empty) {
                reasons.push("missing key".into());
            }
            let defect = city.defect(t, i);
            assert_eq!(
                !reasons.is_empty(),
                defect > 0,
                "{}.{} row {i}: reasons {reasons:?}, injected defect slot {defect}",
                spec.source,
                spec.table
            );
            if reasons.is_empty() {
                let key = key.join("|");
                let dup = rows.insert(key.clone(), values);
                assert!(
                    dup.is_none(),
                    "{}.{}: duplicate key {key}",
                    spec.source,
                    spec.table
                );
            } else {
                let id = match spec.row_id {
                    RowId::Column(c) => row.cell_text(c).expect("row id"),
                    RowId::SheetRow => (i + 2).to_string(),
                };
                bad.insert(id);
            }
        }
        let k = (spec.source.to_string(), spec.table.to_string());
        accepted.insert(k.clone(), rows);
        rejected.insert(k, bad);
    }
    Checked { accepted, rejected }
}

/// Precedence from the written config: per-column order, else the table's, then unlisted
/// sources by name (as docs/config.md says).
fn order_for(config: &toml::Value, table: &str, column: &str, sources: &[String]) -> Vec<String> {
    let entry = config["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"].as_str() == Some(table));
    let listed: Vec<String> = entry
        .and_then(|t| {
            t.get("column_precedence")
                .and_then(|c| c.get(column))
                .or_else(|| t.get("precedence"))
        })
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut order: Vec<String> = listed.into_iter().filter(|s| sources.contains(s)).collect();
    let mut rest: Vec<String> = sources
        .iter()
        .filter(|s| !order.contains(s))
        .cloned()
        .collect();
    rest.sort();
    order.extend(rest);
    order
}

/// Merges the accepted rows of every mapping into the shared tables.
fn merge(checked: &Checked, config: &toml::Value) -> BTreeMap<String, Rows> {
    let mut by_target: BTreeMap<&str, Vec<(String, &Rows)>> = BTreeMap::new();
    for t in TableId::ALL {
        let spec = t.spec();
        let rows = &checked.accepted[&(spec.source.to_string(), spec.table.to_string())];
        by_target
            .entry(spec.target)
            .or_default()
            .push((spec.source.to_string(), rows));
    }
    let mut merged = BTreeMap::new();
    for (target, parts) in by_target {
        let def = shared_table(target).expect("shared table");
        let sources: Vec<String> = parts.iter().map(|(s, _)| s.clone()).collect();
        let keys: BTreeSet<&String> = parts.iter().flat_map(|(_, r)| r.keys()).collect();
        let mut out: Rows = BTreeMap::new();
        for key in keys {
            let mut row = BTreeMap::new();
            for c in def.data_columns() {
                let order = order_for(config, target, c.name, &sources);
                let v = order.iter().find_map(|s| {
                    let (_, rows) = parts.iter().find(|(n, _)| n == s)?;
                    rows.get(key)?.get(c.name).cloned().flatten()
                });
                row.insert(c.name.to_string(), v);
            }
            out.insert(key.clone(), row);
        }
        merged.insert(target.to_string(), out);
    }
    merged
}

fn get<'a>(row: &'a BTreeMap<String, Option<String>>, c: &str) -> Option<&'a str> {
    row.get(c).and_then(|v| v.as_deref())
}

#[test]
fn rows_and_truth_agree_with_the_real_normalisers_and_an_independent_merge() {
    let city = City::generate(&GenerateOptions {
        scale: 8_000,
        seed: 99,
    });
    let truth = city.truth();
    let config: toml::Value = toml::from_str(&hub_config()).expect("config parses");
    let checked = check_all_rows(&city);

    // Rejected rows are exactly the injected defects, by row id.
    for m in &truth.mappings {
        let expected: BTreeSet<String> = m.defects.iter().map(|d| d.row_id.clone()).collect();
        assert_eq!(expected.len(), m.defects.len(), "one defect per row");
        assert_eq!(
            checked.rejected[&(m.source.clone(), m.source_table.clone())],
            expected,
            "{}.{}",
            m.source,
            m.source_table
        );
    }
    let mut rejects: BTreeMap<String, u64> = BTreeMap::new();
    for ((source, _), ids) in &checked.rejected {
        *rejects.entry(source.clone()).or_default() += ids.len() as u64;
    }
    assert_eq!(rejects, truth.rejects_per_source);

    // Row counts of the merged shared tables.
    let merged = merge(&checked, &config);
    let counts: BTreeMap<String, u64> = merged
        .iter()
        .map(|(t, rows)| (t.clone(), rows.len() as u64))
        .collect();
    assert_eq!(counts, truth.shared_rows);

    // Showcase 1 by joining the merged tables.
    let mut elderly = Vec::new();
    for tag in merged["person_tag"].values() {
        if get(tag, "tag") != Some("elderly_alone") {
            continue;
        }
        let Some(p) = merged["person"].get(get(tag, "person_id").unwrap()) else {
            continue;
        };
        let Some(h) = get(p, "house_id").and_then(|h| merged["house"].get(h)) else {
            continue;
        };
        let Some(b) = get(h, "building_id").and_then(|b| merged["building"].get(b)) else {
            continue;
        };
        let floor: i32 = get(h, "floor").unwrap().parse().unwrap();
        if floor >= 4 && get(b, "has_elevator") == Some("false") {
            elderly.push(crate::ElderlyTruth {
                id_number: get(p, "id_number").unwrap().to_string(),
                name: get(p, "name").unwrap().to_string(),
                grid: get(p, "area_code").map(String::from),
                address: get(b, "address").unwrap().to_string(),
                floor,
                property_company: get(b, "property_company").map(String::from),
            });
        }
    }
    elderly.sort();
    assert!(!truth.elderly_walkup.is_empty());
    assert_eq!(elderly, truth.elderly_walkup);

    // Showcase 2.
    let health = &merged["health_record"];
    let latest = health.values().filter_map(|r| get(r, "record_date")).max();
    assert_eq!(latest.map(String::from), truth.health_latest.date);
    let mut counts: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for r in health.values() {
        if get(r, "record_date") == latest {
            *counts
                .entry(get(r, "area_code").unwrap()[..12].to_string())
                .or_default()
                .entry(get(r, "health_code").unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(counts, truth.health_latest.counts);

    // Showcase 3 over the raw rows, as the SQL does.
    let raw_pairs = |t: TableId, id_col: &str, phone_col: &str| {
        let spec = t.spec();
        let ci = spec.columns.iter().position(|(n, _)| *n == id_col).unwrap();
        let cp = spec
            .columns
            .iter()
            .position(|(n, _)| *n == phone_col)
            .unwrap();
        let mut row = RowBuf::new(spec.columns.len());
        let mut out = Vec::new();
        for i in 0..city.rows(t) {
            city.render(t, i, &mut row);
            let id = row
                .cell_text(ci)
                .and_then(|s| normalise("resident_id", &s).ok());
            let phone = row.cell_text(cp).and_then(|s| normalise("phone", &s).ok());
            if let (Some(id), Some(phone)) = (id, phone) {
                out.push((id, phone));
            }
        }
        out
    };
    let register: HashMap<String, String> = raw_pairs(TableId::RegResident, "身份证号", "联系电话")
        .into_iter()
        .collect();
    for (t, id_col, phone_col) in [
        (TableId::PaResident, "证件号码", "手机号"),
        (TableId::PbResident, "身份证", "电话"),
    ] {
        let found: BTreeSet<String> = raw_pairs(t, id_col, phone_col)
            .into_iter()
            .filter(|(id, phone)| register.get(id).is_some_and(|r| r != phone))
            .map(|(id, _)| id)
            .collect();
        assert!(!found.is_empty());
        assert_eq!(
            found,
            truth.phone_mismatch[t.spec().source],
            "{}",
            t.spec().source
        );
    }

    // Persons per grid of the merged person table.
    let mut per_grid: BTreeMap<String, u64> = BTreeMap::new();
    for p in merged["person"].values() {
        if let Some(a) = get(p, "area_code") {
            *per_grid.entry(a.to_string()).or_default() += 1;
        }
    }
    assert_eq!(per_grid, truth.persons_per_grid);
}
