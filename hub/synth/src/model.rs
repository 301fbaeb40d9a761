//! The in-memory city: administrative units, buildings, houses, people and everything that
//! happens to them, generated from one seed. Rows are kept compact (indices and numbers,
//! no per-row strings) so a million persons fit in a few hundred megabytes and render fast.

use std::collections::HashSet;

use chrono::{Datelike, Days, Duration, NaiveDate, NaiveDateTime};
use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::GenerateOptions;
use crate::data::*;
use crate::fmt;
use crate::tables::TableId;

/// Ages are computed on this date; every generated date lies before it.
pub(crate) fn ref_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 6, 30).expect("valid")
}

/// Origin of the minute counters stored in rows.
pub(crate) fn minute_base() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2020, 1, 1)
        .expect("valid")
        .and_hms_opt(0, 0, 0)
        .expect("valid")
}

pub(crate) fn at_minute(m: u32) -> NaiveDateTime {
    minute_base() + Duration::minutes(i64::from(m))
}

fn minutes_since_base(t: NaiveDateTime) -> u32 {
    (t - minute_base()).num_minutes() as u32
}

/// The health screening days of the district (every 4 days in November 2022).
pub(crate) const HEALTH_DAYS: u32 = 8;
pub(crate) fn health_day(d: u8) -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 11, 1).expect("valid") + Days::new(4 * u64::from(d))
}

/// Start of the location-trace window (Beijing time).
pub(crate) fn trace_base() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2022, 11, 20)
        .expect("valid")
        .and_hms_opt(0, 0, 0)
        .expect("valid")
}

/// Sensor readings: every 2 hours of 2025-06-01 (Beijing), as UTC milliseconds.
pub(crate) const READINGS_PER_DEVICE: usize = 12;
pub(crate) fn sensor_base_ms() -> i64 {
    NaiveDate::from_ymd_opt(2025, 5, 31)
        .expect("valid")
        .and_hms_opt(16, 0, 0)
        .expect("valid")
        .and_utc()
        .timestamp_millis()
}

/// Whole years between `birth` and [`ref_date`].
pub(crate) fn age(birth: NaiveDate) -> u32 {
    let r = ref_date();
    let mut a = r.year() - birth.year();
    if (r.month(), r.day()) < (birth.month(), birth.day()) {
        a -= 1;
    }
    a.max(0) as u32
}

/// SplitMix64: cheap per-row hash for cosmetic variation (update times, jitter).
pub(crate) fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// Index into cumulative weights.
fn pick(r: &mut ChaCha8Rng, cum: &[u32]) -> usize {
    let total = *cum.last().expect("weights");
    let x = r.random_range(0..total);
    cum.partition_point(|&c| c <= x)
}

fn cumulative(weights: impl IntoIterator<Item = u32>) -> Vec<u32> {
    let mut acc = 0;
    weights
        .into_iter()
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Given-name characters are indexed over male, female, then either lists.
pub(crate) const NO_CHAR: u16 = u16::MAX;
pub(crate) fn given_char(i: u16) -> &'static str {
    let i = usize::from(i);
    let (m, f) = (GIVEN_MALE.len(), GIVEN_FEMALE.len());
    if i < m {
        GIVEN_MALE[i]
    } else if i < m + f {
        GIVEN_FEMALE[i - m]
    } else {
        GIVEN_EITHER[i - m - f]
    }
}

/// A person's name: surname index and up to two given-name characters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Name {
    pub surname: u16,
    pub given: [u16; 2],
}

impl Name {
    /// Writes the name, with a space between surname and given name if `spaced`.
    pub(crate) fn write(&self, s: &mut String, spaced: bool) {
        s.push_str(SURNAMES[usize::from(self.surname)].0);
        if spaced {
            s.push(' ');
        }
        for g in self.given {
            if g != NO_CHAR {
                s.push_str(given_char(g));
            }
        }
    }

    pub(crate) fn to_string_plain(self) -> String {
        let mut s = String::new();
        self.write(&mut s, false);
        s
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Grid {
    pub code: String,
    pub name: String,
    pub community: u8,
}

#[derive(Debug, Clone)]
pub(crate) struct Building {
    pub id: String,
    pub address: String,
    pub grid: u16,
    pub floors: u8,
    pub units: u8,
    pub elevator: bool,
    pub built_year: u16,
    pub lat: f64,
    pub lon: f64,
    /// 0 = self-managed, 1 = property company A, 2 = property company B.
    pub company: u8,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct House {
    pub building: u32,
    pub unit: u8,
    pub floor: u8,
    /// Room number as written on the door: floor × 100 + index (`502`, `1503`).
    pub room: u16,
    pub commercial: bool,
}

pub(crate) const REG_LEGACY_ID: u8 = 1;
pub(crate) const REG_NO_PHONE: u8 = 2;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Person {
    pub id: [u8; 18],
    pub birth: NaiveDate,
    pub house: u32,
    /// Current phone (see [`fmt::PhoneStyle`]); property companies may know a newer one.
    pub phone: u64,
    pub name: Name,
    pub male: bool,
    pub floating: bool,
    /// Persons in the household (1 = living alone).
    pub household: u8,
    /// Bit i = tag i of [`TAGS`].
    pub tags: u8,
    /// How the community register holds the person: [`REG_LEGACY_ID`], [`REG_NO_PHONE`].
    pub reg: u8,
}

pub(crate) const PROP_NAME_SPACED: u8 = 1;
pub(crate) const PROP_PHONE_STYLED: u8 = 2;

/// A resident row of a property company.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PropRow {
    pub person: u32,
    /// A phone the resident gave the company that differs from the register's (0 = same).
    pub new_phone: u64,
    pub flags: u8,
}

impl PropRow {
    pub(crate) fn phone(&self, p: &Person) -> u64 {
        if self.new_phone != 0 {
            self.new_phone
        } else {
            p.phone
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct TagRow {
    pub person: u32,
    pub tag: u8,
    pub since: NaiveDate,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthRow {
    pub person: u32,
    pub day: u8,
    pub code: u8,
    /// -1 = not recorded.
    pub vaccine: i8,
    /// Days between test and record date; -1 = no test.
    pub test_back: i8,
    pub positive: bool,
    /// 0 = none, else index + 1 into [`CHRONIC`].
    pub chronic: u8,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct TraceRow {
    pub person: u32,
    /// Seconds since [`trace_base`].
    pub secs: u32,
    pub place: u16,
    pub via: u8,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct EventRow {
    pub grid: u16,
    pub category: u8,
    pub template: u8,
    pub reporter: Name,
    /// Minutes since [`minute_base`].
    pub reported: u32,
    /// Index into [`EVENT_STATUS`].
    pub status: u8,
    pub closed_after: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct PartyRow {
    pub person: u32,
    pub workplace: bool,
    pub org: u8,
    pub registered: NaiveDate,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct ServiceRow {
    pub person: u32,
    pub task: u8,
    pub start: u32,
    pub half_hours: u8,
    pub rating: u8,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Device {
    pub building: u32,
    /// Index into [`METRICS`].
    pub metric: u8,
    pub n: u8,
    pub offset_s: u8,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    pub value: f64,
    pub alarm: bool,
}

/// The synthetic city: everything every source will show, and the defects injected into
/// each source table. Generate with [`City::generate`], write with [`City::write`], get the
/// true answers with [`City::truth`].
#[derive(Debug, Clone)]
pub struct City {
    pub(crate) opts: GenerateOptions,
    pub(crate) grids: Vec<Grid>,
    pub(crate) buildings: Vec<Building>,
    pub(crate) houses: Vec<House>,
    pub(crate) persons: Vec<Person>,
    pub(crate) prop_a: Vec<PropRow>,
    pub(crate) prop_b: Vec<PropRow>,
    /// Buildings managed by company A / B, in building order.
    pub(crate) managed_a: Vec<u32>,
    pub(crate) managed_b: Vec<u32>,
    pub(crate) tags: Vec<TagRow>,
    pub(crate) events: Vec<EventRow>,
    pub(crate) health: Vec<HealthRow>,
    pub(crate) traces: Vec<TraceRow>,
    pub(crate) party: Vec<PartyRow>,
    pub(crate) services: Vec<ServiceRow>,
    pub(crate) devices: Vec<Device>,
    /// Reading `k` of device `d` is at index `k * devices.len() + d`.
    pub(crate) readings: Vec<Reading>,
    /// Per source table (indexed by [`TableId`]), per row: 0 = clean, else defect slot + 1.
    pub(crate) defects: Vec<Vec<u8>>,
}

impl City {
    /// Generates the city for `opts` (deterministic: same options, same city).
    pub fn generate(opts: &GenerateOptions) -> City {
        let mut city = City {
            opts: *opts,
            grids: Vec::new(),
            buildings: Vec::new(),
            houses: Vec::new(),
            persons: Vec::with_capacity(opts.scale),
            prop_a: Vec::new(),
            prop_b: Vec::new(),
            managed_a: Vec::new(),
            managed_b: Vec::new(),
            tags: Vec::new(),
            events: Vec::new(),
            health: Vec::new(),
            traces: Vec::new(),
            party: Vec::new(),
            services: Vec::new(),
            devices: Vec::new(),
            readings: Vec::new(),
            defects: Vec::new(),
        };
        let seed = opts.seed;
        city.layout_and_people(&mut rng(seed, 1));
        city.assign_tags(&mut rng(seed, 2));
        city.source_variants(&mut rng(seed, 3));
        city.health_records(&mut rng(seed, 4));
        city.location_traces(&mut rng(seed, 5));
        city.grid_events(&mut rng(seed, 6));
        city.party_and_volunteers(&mut rng(seed, 7));
        city.sensors(&mut rng(seed, 8));
        city.inject_defects(&mut rng(seed, 9));
        city
    }

    /// The options the city was generated with.
    pub fn options(&self) -> &GenerateOptions {
        &self.opts
    }

    /// Number of persons (= the scale).
    pub fn persons(&self) -> usize {
        self.persons.len()
    }

    pub(crate) fn house_of(&self, p: &Person) -> &House {
        &self.houses[p.house as usize]
    }

    pub(crate) fn building_of_house(&self, h: &House) -> &Building {
        &self.buildings[h.building as usize]
    }

    pub(crate) fn grid_of(&self, p: &Person) -> &Grid {
        let b = self.building_of_house(self.house_of(p));
        &self.grids[usize::from(b.grid)]
    }

    pub(crate) fn house_id(&self, s: &mut String, h: &House) {
        use std::fmt::Write;
        let b = self.building_of_house(h);
        let _ = write!(s, "{}-{}-{}", b.id, h.unit, h.room);
    }

    fn layout_and_people(&mut self, r: &mut ChaCha8Rng) {
        let scale = self.opts.scale;
        // Grids: 4–8 per community.
        let mut grid_range = Vec::with_capacity(COMMUNITIES.len());
        for (ci, c) in COMMUNITIES.iter().enumerate() {
            let n = r.random_range(4..=8u16);
            grid_range.push((self.grids.len() as u16, n));
            for g in 1..=n {
                self.grids.push(Grid {
                    code: format!("{}{g:03}", c.code),
                    name: format!("{}第{g}网格", c.name),
                    community: ci as u8,
                });
            }
        }
        let community_cum = cumulative(COMMUNITIES.iter().map(|_| r.random_range(70..=130u32)));
        let grid_offset: Vec<u16> = grid_range
            .iter()
            .map(|&(_, n)| r.random_range(0..n))
            .collect();
        let mut next_no = [0u16; COMMUNITIES.len()];
        let surname_cum = cumulative(SURNAMES.iter().map(|s| s.1));
        let household_cum = cumulative([25, 30, 25, 13, 7]);
        let mut ids: HashSet<u64> = HashSet::with_capacity(scale);

        while self.persons.len() < scale {
            let ci = pick(r, &community_cum);
            let c = &COMMUNITIES[ci];
            next_no[ci] += 1;
            let no = next_no[ci];
            let compound = (no - 1) / 6;
            let (g0, gn) = grid_range[ci];
            let grid_local = (compound + grid_offset[ci]) % gn;
            let district = &DISTRICTS[STREETS[c.street].district];
            let address = format!(
                "{}{}{}号{}栋",
                district.name,
                c.roads[usize::from(compound % 2)],
                compound / 2 + 1,
                (no - 1) % 6 + 1
            );
            let walkup = r.random_bool(0.6);
            let (floors, units, rooms, elevator, built_year, shops, old);
            if walkup {
                floors = r.random_range(5..=7u8);
                units = r.random_range(2..=4u8);
                rooms = 2u16;
                old = r.random_bool(2.0 / 3.0);
                built_year = if old {
                    r.random_range(1980..=2000u16)
                } else {
                    r.random_range(2001..=2012u16)
                };
                // A few old walk-ups had a lift added (加装电梯).
                elevator = r.random_bool(0.1);
                shops = false;
            } else {
                floors = r.random_range(11..=33u8);
                units = r.random_range(1..=3u8);
                rooms = r.random_range(2..=4u16);
                old = false;
                built_year = r.random_range(2001..=2023u16);
                elevator = true;
                shops = r.random_bool(0.4);
            }
            let company = {
                let x: f64 = r.random();
                let (a, b) = if old { (0.40, 0.75) } else { (0.55, 0.95) };
                if x < a {
                    1
                } else if x < b {
                    2
                } else {
                    0
                }
            };
            let gl = f64::from(grid_local);
            let lat = c.lat + ((gl % 3.0) - 1.0) * 0.003 + r.random_range(-0.0012..0.0012);
            let lon = c.lon + ((gl / 3.0).floor() - 1.0) * 0.003 + r.random_range(-0.0012..0.0012);
            let b_idx = self.buildings.len() as u32;
            match company {
                1 => self.managed_a.push(b_idx),
                2 => self.managed_b.push(b_idx),
                _ => {}
            }
            self.buildings.push(Building {
                id: format!("{}-{no:04}", c.code),
                address,
                grid: g0 + grid_local,
                floors,
                units,
                elevator,
                built_year,
                lat: round6(lat),
                lon: round6(lon),
                company,
            });
            let region: u32 = district.code.parse().expect("digits");
            for unit in 1..=units {
                for floor in 1..=floors {
                    for k in 1..=rooms {
                        let h_idx = self.houses.len() as u32;
                        let commercial = shops && floor == 1;
                        self.houses.push(House {
                            building: b_idx,
                            unit,
                            floor,
                            room: u16::from(floor) * 100 + k,
                            commercial,
                        });
                        if commercial || self.persons.len() >= scale {
                            continue;
                        }
                        if r.random_bool(if walkup { 0.08 } else { 0.12 }) {
                            continue; // vacant
                        }
                        let size = (pick(r, &household_cum) + 1).min(scale - self.persons.len());
                        self.household(r, h_idx, size, region, &surname_cum, &mut ids);
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn household(
        &mut self,
        r: &mut ChaCha8Rng,
        house: u32,
        size: usize,
        home_region: u32,
        surname_cum: &[u32],
        ids: &mut HashSet<u64>,
    ) {
        let mut members = [(0i32, false); 5];
        if size == 1 {
            let a = if r.random_bool(0.45) {
                r.random_range(65..=95)
            } else {
                r.random_range(20..=64)
            };
            members[0] = (a, r.random_bool(0.45));
        } else {
            let head = if r.random_bool(0.8) {
                r.random_range(25..=64)
            } else {
                r.random_range(65..=88)
            };
            let head_male = r.random_bool(0.5);
            members[0] = (head, head_male);
            members[1] = ((head + r.random_range(-4..=4)).clamp(20, 95), !head_male);
            for m in members.iter_mut().take(size).skip(2) {
                let mut a = if head >= 55 && r.random_bool(0.5) {
                    head - r.random_range(45..=60)
                } else {
                    head - r.random_range(22..=36)
                };
                if a < 0 {
                    a = r.random_range(0..=3);
                }
                *m = (a, r.random_bool(0.51));
            }
        }
        let head_surname = pick(r, surname_cum) as u16;
        let spouse_surname = pick(r, surname_cum) as u16;
        let family_surname = if members[0].1 || size == 1 {
            head_surname
        } else {
            spouse_surname
        };
        let head_age = members[0].0;
        let floating = r.random_bool(if (18..=50).contains(&head_age) {
            0.30
        } else {
            0.08
        });
        let region = if floating {
            OTHER_REGIONS[r.random_range(0..OTHER_REGIONS.len())]
        } else {
            home_region
        };
        let reference = ref_date();
        for (i, &(a, male)) in members.iter().take(size).enumerate() {
            let days = a as u64 * 365 + a as u64 / 4 + r.random_range(0..365u64);
            let birth = reference - Days::new(days);
            let surname = match i {
                0 => head_surname,
                1 => spouse_surname,
                _ => family_surname,
            };
            let name = self.random_given(r, surname, male);
            // Resident ID: unique (region, birth, sequence); odd sequence for men.
            let key_base = u64::from(region) * 100_000_000_000
                + (birth.year() as u64 * 10_000
                    + u64::from(birth.month()) * 100
                    + u64::from(birth.day()))
                    * 1000;
            let seq = loop {
                let s = r.random_range(0..500u32) * 2 + u32::from(male);
                if ids.insert(key_base + u64::from(s)) {
                    break s;
                }
            };
            let id = fmt::resident_id(region, birth, seq);
            let real_age = age(birth);
            let phone = if real_age < 12 {
                0
            } else if real_age >= 75 && r.random_bool(0.4) {
                80_000_000 + r.random_range(0..10_000_000u64)
            } else if r.random_bool(0.02) {
                0
            } else {
                self::random_mobile(r)
            };
            self.persons.push(Person {
                id,
                birth,
                house,
                phone,
                name,
                male,
                floating,
                household: size as u8,
                tags: 0,
                reg: 0,
            });
        }
    }

    fn random_given(&self, r: &mut ChaCha8Rng, surname: u16, male: bool) -> Name {
        let (m, f, e) = (
            GIVEN_MALE.len() as u16,
            GIVEN_FEMALE.len() as u16,
            GIVEN_EITHER.len() as u16,
        );
        let gendered = |r: &mut ChaCha8Rng| {
            if male {
                r.random_range(0..m)
            } else {
                m + r.random_range(0..f)
            }
        };
        let given = if r.random_bool(0.25) {
            [gendered(r), NO_CHAR]
        } else {
            let first = if r.random_bool(0.5) {
                m + f + r.random_range(0..e)
            } else {
                gendered(r)
            };
            [first, gendered(r)]
        };
        Name { surname, given }
    }

    fn assign_tags(&mut self, r: &mut ChaCha8Rng) {
        let n = self.persons.len();
        // elderly_alone: ~3% of persons, among those ≥ 65 living alone.
        let candidates: Vec<u32> = self
            .persons
            .iter()
            .enumerate()
            .filter(|(_, p)| p.household == 1 && age(p.birth) >= 65)
            .map(|(i, _)| i as u32)
            .collect();
        let k = ((n as f64 * 0.03).round() as usize).min(candidates.len());
        for i in index::sample(r, candidates.len(), k) {
            self.persons[candidates[i] as usize].tags |= 1 << TAG_ELDERLY_ALONE;
        }
        for p in &mut self.persons {
            let a = age(p.birth);
            if r.random_bool(if a >= 65 { 0.04 } else { 0.01 }) {
                p.tags |= 1 << 1; // disabled
            }
            if r.random_bool(0.02) {
                p.tags |= 1 << 2; // low_income
            }
            let care = if a < 14 {
                0.01
            } else if a >= 80 {
                0.05
            } else {
                0.003
            };
            if r.random_bool(care) {
                p.tags |= 1 << 3; // special_care
            }
        }
        let first = NaiveDate::from_ymd_opt(2016, 1, 1).expect("valid");
        let span = (NaiveDate::from_ymd_opt(2025, 6, 1).expect("valid") - first).num_days() as u64;
        for (i, p) in self.persons.iter().enumerate() {
            for t in 0..TAGS.len() as u8 {
                if p.tags & (1 << t) != 0 {
                    self.tags.push(TagRow {
                        person: i as u32,
                        tag: t,
                        since: first + Days::new(r.random_range(0..span)),
                    });
                }
            }
        }
    }

    /// How each source holds each person: legacy IDs and missing phones in the register,
    /// and which residents the property companies list, with their phones and spellings.
    fn source_variants(&mut self, r: &mut ChaCha8Rng) {
        let n = self.persons.len();
        let y2000 = NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid");
        let eligible: Vec<u32> = (0..n as u32)
            .filter(|&i| self.persons[i as usize].birth < y2000)
            .collect();
        let k = ((n as f64 * 0.03).round() as usize).min(eligible.len());
        for i in index::sample(r, eligible.len(), k) {
            self.persons[eligible[i] as usize].reg |= REG_LEGACY_ID;
        }
        for i in 0..n {
            let p = self.persons[i];
            if p.phone != 0 && r.random_bool(0.02) {
                self.persons[i].reg |= REG_NO_PHONE;
            }
            let h = self.houses[p.house as usize];
            let company = self.buildings[h.building as usize].company;
            if company == 0 || age(p.birth) < 16 || !r.random_bool(0.95) {
                continue;
            }
            let new_phone = if fmt::is_mobile(p.phone) && r.random_bool(0.06) {
                random_mobile(r)
            } else {
                0
            };
            let mut flags = 0;
            if company == 1 {
                if r.random_bool(0.04) {
                    flags |= PROP_NAME_SPACED;
                }
                if r.random_bool(0.15) {
                    flags |= PROP_PHONE_STYLED; // 138-1234-5678
                }
            } else if r.random_bool(0.25) {
                flags |= PROP_PHONE_STYLED; // +86 13812345678
            }
            let row = PropRow {
                person: i as u32,
                new_phone,
                flags,
            };
            if company == 1 {
                self.prop_a.push(row);
            } else {
                self.prop_b.push(row);
            }
        }
    }

    fn health_records(&mut self, r: &mut ChaCha8Rng) {
        let seed = self.opts.seed;
        let last = HEALTH_DAYS as u8 - 1;
        for day in 0..HEALTH_DAYS as u8 {
            let p_record = if day == last { 0.55 } else { 0.2 };
            for (i, p) in self.persons.iter().enumerate() {
                if !r.random_bool(p_record) {
                    continue;
                }
                let x = r.random_range(0..1000u32);
                let code = if x < 955 {
                    0
                } else if x < 990 {
                    1
                } else {
                    2
                };
                let h = mix(seed, 4, i as u64);
                let a = age(p.birth);
                let vaccine = match h % 100 {
                    0..=4 => -1,
                    5..=9 => 0,
                    10..=14 => 1,
                    15..=39 => 2,
                    40..=94 => 3,
                    _ => 4,
                };
                let chronic_p = if a >= 50 { 30 } else { 3 };
                let chronic = if (h >> 8) % 100 < chronic_p {
                    1 + ((h >> 16) % CHRONIC.len() as u64) as u8
                } else {
                    0
                };
                let tested = r.random_bool(0.9);
                self.health.push(HealthRow {
                    person: i as u32,
                    day,
                    code,
                    vaccine,
                    test_back: if tested { r.random_range(0..=2) } else { -1 },
                    positive: tested && code == 2 && r.random_bool(0.5),
                    chronic,
                });
            }
        }
    }

    fn location_traces(&mut self, r: &mut ChaCha8Rng) {
        let via_cum = cumulative([20, 65, 15]);
        for i in 0..self.persons.len() as u32 {
            let count = r.random_range(0..=3u32);
            let mut days = [u32::MAX; 3];
            for slot in 0..count as usize {
                let d = loop {
                    let d = r.random_range(0..10u32);
                    if !days.contains(&d) {
                        break d;
                    }
                };
                days[slot] = d;
                self.traces.push(TraceRow {
                    person: i,
                    secs: d * 86_400 + 7 * 3600 + r.random_range(0..15 * 3600),
                    place: r.random_range(0..PLACES.len() as u16),
                    via: pick(r, &via_cum) as u8,
                });
            }
        }
    }

    fn grid_events(&mut self, r: &mut ChaCha8Rng) {
        let n = (self.persons.len() as f64 * 0.04).round() as usize;
        if self.grids.is_empty() {
            return;
        }
        let cat_cum = cumulative(EVENT_CATEGORIES.iter().map(|c| c.1));
        let surname_cum = cumulative(SURNAMES.iter().map(|s| s.1));
        let from = minutes_since_base(
            NaiveDate::from_ymd_opt(2023, 1, 1)
                .expect("valid")
                .and_hms_opt(0, 0, 0)
                .expect("valid"),
        );
        let to = minutes_since_base(ref_date().and_hms_opt(0, 0, 0).expect("valid"));
        for _ in 0..n {
            let category = pick(r, &cat_cum);
            let template = r.random_range(0..EVENT_CATEGORIES[category].2.len()) as u8;
            let surname = pick(r, &surname_cum) as u16;
            let male = r.random_bool(0.4);
            let reporter = self.random_given(r, surname, male);
            // Reported in the daytime (07:00–22:00), on a five-minute mark.
            let reported = r.random_range(from / 1440..to / 1440) * 1440
                + 7 * 60
                + r.random_range(0..15 * 60u32) / 5 * 5;
            let x = r.random_range(0..100u32);
            let status = if x < 10 {
                0
            } else if x < 30 {
                1
            } else {
                2
            };
            self.events.push(EventRow {
                grid: r.random_range(0..self.grids.len() as u16),
                category: category as u8,
                template,
                reporter,
                reported,
                status,
                closed_after: r.random_range(60..14_400u32),
            });
        }
    }

    fn party_and_volunteers(&mut self, r: &mut ChaCha8Rng) {
        let n = self.persons.len();
        let adults: Vec<u32> = (0..n as u32)
            .filter(|&i| age(self.persons[i as usize].birth) >= 18)
            .collect();
        let k = ((n as f64 * 0.05).round() as usize).min(adults.len());
        let mut members: Vec<u32> = index::sample(r, adults.len(), k)
            .into_iter()
            .map(|i| adults[i])
            .collect();
        members.sort_unstable();
        let first = NaiveDate::from_ymd_opt(2018, 3, 1).expect("valid");
        let span = (NaiveDate::from_ymd_opt(2025, 6, 1).expect("valid") - first).num_days() as u64;
        for &p in &members {
            let workplace = r.random_bool(0.3);
            self.party.push(PartyRow {
                person: p,
                workplace,
                org: if workplace {
                    r.random_range(0..WORKPLACE_ORGS.len() as u8)
                } else {
                    r.random_range(1..=4u8)
                },
                registered: first + Days::new(r.random_range(0..span)),
            });
        }
        // Volunteers: party members and about 3% of the other adults.
        let mut volunteers = members.clone();
        for &a in &adults {
            if r.random_bool(0.03) && members.binary_search(&a).is_err() {
                volunteers.push(a);
            }
        }
        if volunteers.is_empty() {
            return;
        }
        let count = (n as f64 * 0.2).round() as usize;
        let from = minutes_since_base(
            NaiveDate::from_ymd_opt(2023, 1, 1)
                .expect("valid")
                .and_hms_opt(0, 0, 0)
                .expect("valid"),
        ) / 1440;
        let to = minutes_since_base(ref_date().and_hms_opt(0, 0, 0).expect("valid")) / 1440;
        let rating_cum = cumulative([2, 3, 10, 35, 50]);
        for _ in 0..count {
            let day = r.random_range(from..to);
            let start = day * 1440 + r.random_range(8..=17u32) * 60 + 30 * r.random_range(0..2u32);
            self.services.push(ServiceRow {
                person: volunteers[r.random_range(0..volunteers.len())],
                task: r.random_range(0..SERVICE_TASKS.len() as u8),
                start,
                half_hours: r.random_range(1..=8u8),
                rating: pick(r, &rating_cum) as u8 + 1,
            });
        }
    }

    fn sensors(&mut self, r: &mut ChaCha8Rng) {
        for (b, building) in self.buildings.iter().enumerate() {
            for u in 1..=building.units {
                self.devices.push(Device {
                    building: b as u32,
                    metric: 0,
                    n: u,
                    offset_s: r.random_range(0..60),
                });
            }
            self.devices.push(Device {
                building: b as u32,
                metric: 1,
                n: 1,
                offset_s: r.random_range(0..60),
            });
            if building.elevator {
                for u in 1..=building.units {
                    self.devices.push(Device {
                        building: b as u32,
                        metric: 2,
                        n: u,
                        offset_s: r.random_range(0..60),
                    });
                }
            }
        }
        let round3 = |x: f64| (x * 1000.0).round() / 1000.0;
        for _ in 0..READINGS_PER_DEVICE {
            for d in &self.devices {
                let reading = match d.metric {
                    0 => {
                        if r.random_bool(0.003) {
                            Reading {
                                value: round3(r.random_range(0.12..0.3)),
                                alarm: true,
                            }
                        } else {
                            Reading {
                                value: round3(r.random_range(0.0..0.05)),
                                alarm: false,
                            }
                        }
                    }
                    1 => {
                        if r.random_bool(0.005) {
                            Reading {
                                value: round3(r.random_range(0.05..0.14)),
                                alarm: true,
                            }
                        } else {
                            Reading {
                                value: round3(r.random_range(0.2..0.45)),
                                alarm: false,
                            }
                        }
                    }
                    _ => {
                        if r.random_bool(0.003) {
                            Reading {
                                value: round3(r.random_range(4.5..9.0)),
                                alarm: true,
                            }
                        } else {
                            Reading {
                                value: round3(r.random_range(0.5..2.5)),
                                alarm: false,
                            }
                        }
                    }
                };
                self.readings.push(reading);
            }
        }
    }

    /// About 0.5% of the rows of every source table (round(rows / 200), so tables under
    /// 100 rows get none) carry exactly one defect in a column the mapping checks.
    fn inject_defects(&mut self, r: &mut ChaCha8Rng) {
        for t in TableId::ALL {
            let n = self.rows(t);
            let mut d = vec![0u8; n];
            let slots = t.spec().slots.len();
            let k = (n + 100) / 200;
            if slots > 0 {
                for i in index::sample(r, n, k) {
                    d[i] = 1 + r.random_range(0..slots) as u8;
                }
            }
            self.defects.push(d);
        }
    }

    pub(crate) fn defect(&self, t: TableId, row: usize) -> u8 {
        self.defects[t as usize][row]
    }
}

fn random_mobile(r: &mut ChaCha8Rng) -> u64 {
    let prefix = MOBILE_PREFIXES[r.random_range(0..MOBILE_PREFIXES.len())];
    u64::from(prefix) * 100_000_000 + r.random_range(0..100_000_000u64)
}
