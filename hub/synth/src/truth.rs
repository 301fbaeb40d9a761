//! The true answers, computed from the model (never from the written files) with the same
//! rules the hub applies: a row with a defect is rejected; rows of several sources with the
//! same key merge into one; each column takes the first non-null value in precedence order.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::data::{COMPANY_A, COMPANY_B, TAG_ELDERLY_ALONE};
use crate::fmt;
use crate::model::{self, REG_NO_PHONE};
use crate::tables::{DefectKind, RowBuf, TableId};
use crate::{City, GENERATOR_VERSION};

/// One injected defect: the row as `_rejects.row_id` shows it, the source column, the kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InjectedDefect {
    pub row_id: String,
    pub column: String,
    pub kind: DefectKind,
}

/// One mapping (source table → shared table): rows written and defects injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingTruth {
    pub source: String,
    pub source_table: String,
    pub target: String,
    /// The mapping's `row_id` column (`_row` for the xlsx sheets).
    pub row_id: String,
    pub rows: u64,
    /// Sorted by row as written.
    pub defects: Vec<InjectedDefect>,
}

impl MappingTruth {
    /// Injected defects / rows.
    pub fn defect_rate(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            self.defects.len() as f64 / self.rows as f64
        }
    }
}

/// Showcase 1: an elderly person living alone on floor ≥ 4 of a building without a lift.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ElderlyTruth {
    /// Normalised 18-character ID.
    pub id_number: String,
    pub name: String,
    /// `person.area_code` (the grid), None when no accepted row of an area-bearing source
    /// carries it.
    pub grid: Option<String>,
    pub address: String,
    pub floor: i32,
    /// None for self-managed buildings and when the company's building row was rejected.
    pub property_company: Option<String>,
}

/// Showcase 2: persons per (community, health code) on the latest record date.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HealthTruth {
    /// The latest `record_date` (ISO), None without any accepted health record.
    pub date: Option<String>,
    /// Community code (12 digits) → health code (`green`/`yellow`/`red`) → persons.
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
}

/// Everything the hub should find in the synthetic city.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundTruth {
    pub generator_version: u32,
    pub scale: usize,
    pub seed: u64,
    /// One entry per mapping, in config order.
    pub mappings: Vec<MappingTruth>,
    /// Rows of every shared table after merging all sources by key.
    pub shared_rows: BTreeMap<String, u64>,
    /// Rows in `_rejects` per source.
    pub rejects_per_source: BTreeMap<String, u64>,
    /// Showcase 1, sorted by id_number.
    pub elderly_walkup: Vec<ElderlyTruth>,
    /// Showcase 2.
    pub health_latest: HealthTruth,
    /// Showcase 3: property source → normalised IDs whose phone differs from the register's.
    pub phone_mismatch: BTreeMap<String, BTreeSet<String>>,
    /// Rows of the merged `person` table per community (12-digit prefix of area_code).
    pub persons_per_community: BTreeMap<String, u64>,
    /// Rows of the merged `person` table per grid (area_code).
    pub persons_per_grid: BTreeMap<String, u64>,
}

impl GroundTruth {
    /// Rows of the merged `person` table whose area_code starts with `prefix` (a city,
    /// district, street, community or grid code: what a principal of that jurisdiction
    /// may see). Persons without area_code are in no area.
    pub fn persons_in_area(&self, prefix: &str) -> u64 {
        self.persons_per_grid
            .iter()
            .filter(|(g, _)| g.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// The truth of one mapping.
    pub fn mapping(&self, source: &str, source_table: &str) -> Option<&MappingTruth> {
        self.mappings
            .iter()
            .find(|m| m.source == source && m.source_table == source_table)
    }

    /// All injected defects of all mappings, as (source, source table, defect).
    pub fn all_defects(&self) -> impl Iterator<Item = (&str, &str, &InjectedDefect)> {
        self.mappings.iter().flat_map(|m| {
            m.defects
                .iter()
                .map(move |d| (m.source.as_str(), m.source_table.as_str(), d))
        })
    }
}

impl City {
    fn ok(&self, t: TableId, i: usize) -> bool {
        self.defect(t, i) == 0
    }

    /// Whether row `i` of `t` has a defect in column `col`.
    fn defect_in(&self, t: TableId, i: usize, col: usize) -> bool {
        let d = self.defect(t, i);
        d > 0 && t.spec().slots[usize::from(d - 1)].column == col
    }

    /// The true answers for this city.
    pub fn truth(&self) -> GroundTruth {
        let n = self.persons.len();
        let mut row = RowBuf::new(16);

        // Mappings and their defects.
        let mut mappings = Vec::new();
        let mut rejects_per_source: BTreeMap<String, u64> = BTreeMap::new();
        for t in TableId::ALL {
            let spec = t.spec();
            let mut defects = Vec::new();
            for (i, &d) in self.defects[t as usize].iter().enumerate() {
                if d == 0 {
                    continue;
                }
                let slot = spec.slots[usize::from(d - 1)];
                defects.push(InjectedDefect {
                    row_id: self.row_id(t, i, &mut row),
                    column: spec.columns[slot.column].0.to_string(),
                    kind: slot.kind,
                });
            }
            *rejects_per_source
                .entry(spec.source.to_string())
                .or_default() += defects.len() as u64;
            mappings.push(MappingTruth {
                source: spec.source.to_string(),
                source_table: spec.table.to_string(),
                target: spec.target.to_string(),
                row_id: spec.row_id_name().to_string(),
                rows: self.rows(t) as u64,
                defects,
            });
        }

        // Persons: which sources hold an accepted row.
        let mut pa_row = vec![u32::MAX; n];
        for (j, r) in self.prop_a.iter().enumerate() {
            pa_row[r.person as usize] = j as u32;
        }
        let mut pb_row = vec![u32::MAX; n];
        for (j, r) in self.prop_b.iter().enumerate() {
            pb_row[r.person as usize] = j as u32;
        }
        let accepted = |t: TableId, j: u32| j != u32::MAX && self.ok(t, j as usize);
        let present: Vec<bool> = (0..n)
            .map(|p| {
                self.ok(TableId::CpPerson, p)
                    || self.ok(TableId::RegResident, p)
                    || accepted(TableId::PaResident, pa_row[p])
                    || accepted(TableId::PbResident, pb_row[p])
            })
            .collect();
        // area_code comes only from the city base and the register (both the true grid).
        let has_area = |p: usize| self.ok(TableId::CpPerson, p) || self.ok(TableId::RegResident, p);

        // Buildings: accepted rows per source.
        let nb = self.buildings.len();
        let mut company_ok = vec![false; nb];
        let mut building_present: Vec<bool> =
            (0..nb).map(|b| self.ok(TableId::CpBuilding, b)).collect();
        for (t, managed) in [
            (TableId::PaBuilding, &self.managed_a),
            (TableId::PbBuilding, &self.managed_b),
        ] {
            for (j, &b) in managed.iter().enumerate() {
                if self.ok(t, j) {
                    company_ok[b as usize] = true;
                    building_present[b as usize] = true;
                }
            }
        }

        let count_ok = |t: TableId| (0..self.rows(t)).filter(|&i| self.ok(t, i)).count() as u64;
        let mut shared_rows = BTreeMap::new();
        shared_rows.insert("admin_unit".to_string(), count_ok(TableId::CpAdmin));
        shared_rows.insert(
            "building".to_string(),
            building_present.iter().filter(|&&b| b).count() as u64,
        );
        shared_rows.insert("house".to_string(), count_ok(TableId::CpHouse));
        shared_rows.insert(
            "person".to_string(),
            present.iter().filter(|&&b| b).count() as u64,
        );
        shared_rows.insert("person_tag".to_string(), count_ok(TableId::RegTag));
        shared_rows.insert("health_record".to_string(), count_ok(TableId::HealthRecord));
        shared_rows.insert(
            "location_trace".to_string(),
            count_ok(TableId::LocationTrace),
        );
        shared_rows.insert("event".to_string(), count_ok(TableId::RegEvent));
        shared_rows.insert("party_member".to_string(), count_ok(TableId::PartyMember));
        shared_rows.insert(
            "service_record".to_string(),
            count_ok(TableId::ServiceRecord),
        );
        shared_rows.insert(
            "sensor_reading".to_string(),
            count_ok(TableId::SensorReading),
        );

        // Showcase 1: elderly living alone high up in walk-ups.
        let mut elderly_walkup = Vec::new();
        for (i, tag) in self.tags.iter().enumerate() {
            if tag.tag != TAG_ELDERLY_ALONE || !self.ok(TableId::RegTag, i) {
                continue;
            }
            let p = tag.person as usize;
            let person = &self.persons[p];
            let house = &self.houses[person.house as usize];
            let b = house.building as usize;
            let building = &self.buildings[b];
            if !present[p]
                || !self.ok(TableId::CpHouse, person.house as usize)
                || house.floor < 4
                || !building_present[b]
                || building.elevator
            {
                continue;
            }
            let company = match (building.company, company_ok[b]) {
                (1, true) => Some(COMPANY_A.to_string()),
                (2, true) => Some(COMPANY_B.to_string()),
                _ => None,
            };
            elderly_walkup.push(ElderlyTruth {
                id_number: fmt::ascii(&person.id).to_string(),
                name: person.name.to_string_plain(),
                grid: has_area(p).then(|| self.grid_of(person).code.clone()),
                address: building.address.clone(),
                floor: i32::from(house.floor),
                property_company: company,
            });
        }
        elderly_walkup.sort();

        // Showcase 2: health codes per community on the latest record date.
        let mut health_latest = HealthTruth::default();
        let latest = self
            .health
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.ok(TableId::HealthRecord, i))
            .map(|(_, r)| r.day)
            .max();
        if let Some(day) = latest {
            let mut date = String::new();
            fmt::date_iso(&mut date, model::health_day(day));
            health_latest.date = Some(date);
            for (i, r) in self.health.iter().enumerate() {
                if r.day != day || !self.ok(TableId::HealthRecord, i) {
                    continue;
                }
                let grid = &self.grid_of(&self.persons[r.person as usize]).code;
                let code = crate::data::HEALTH_CODES[usize::from(r.code)].1;
                *health_latest
                    .counts
                    .entry(grid[..12].to_string())
                    .or_default()
                    .entry(code.to_string())
                    .or_default() += 1;
            }
        }

        // Showcase 3: phones that differ between the register and a property company, on
        // rows whose IDs both normalise (only an ID defect breaks that; phones are clean).
        let mut phone_mismatch: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (t, rows, id_col) in [
            (TableId::PaResident, &self.prop_a, 2usize),
            (TableId::PbResident, &self.prop_b, 1usize),
        ] {
            let set = phone_mismatch
                .entry(t.spec().source.to_string())
                .or_default();
            for (j, r) in rows.iter().enumerate() {
                let p = r.person as usize;
                let person = &self.persons[p];
                if self.defect_in(t, j, id_col) || self.defect_in(TableId::RegResident, p, 1) {
                    continue;
                }
                let register = if person.reg & REG_NO_PHONE == 0 {
                    fmt::phone_normalised(person.phone)
                } else {
                    None
                };
                let company = fmt::phone_normalised(r.phone(person));
                if let (Some(a), Some(b)) = (register, company)
                    && a != b
                {
                    set.insert(fmt::ascii(&person.id).to_string());
                }
            }
        }

        // Persons per area of the merged person table.
        let mut persons_per_grid: BTreeMap<String, u64> = BTreeMap::new();
        let mut persons_per_community: BTreeMap<String, u64> = BTreeMap::new();
        for (p, person) in self.persons.iter().enumerate() {
            if present[p] && has_area(p) {
                let grid = &self.grid_of(person).code;
                *persons_per_grid.entry(grid.clone()).or_default() += 1;
                *persons_per_community
                    .entry(grid[..12].to_string())
                    .or_default() += 1;
            }
        }

        GroundTruth {
            generator_version: GENERATOR_VERSION,
            scale: self.opts.scale,
            seed: self.opts.seed,
            mappings,
            shared_rows,
            rejects_per_source,
            elderly_walkup,
            health_latest,
            phone_mismatch,
            persons_per_community,
            persons_per_grid,
        }
    }
}
