//! The source tables: each one's schema as its platform writes it, how it maps into a shared
//! table, which of its columns may carry an injected defect, and the renderer that turns
//! model row `i` into cells.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::City;
use crate::data::*;
use crate::fmt::{self, PhoneStyle};
use chrono::Days;

use crate::model::{
    self, PROP_NAME_SPACED, PROP_PHONE_STYLED, READINGS_PER_DEVICE, REG_LEGACY_ID, REG_NO_PHONE,
};

/// The kind of an injected defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefectKind {
    /// An 18-character resident ID whose ISO 7064 MOD 11-2 check character is wrong.
    BadCheckDigit,
    /// A date that does not exist (`2021年2月30日`, `20210431`, `2022-06-31 08:00:00`).
    ImpossibleDate,
    /// An administrative code of the wrong length (14 or 16 digits for a grid).
    MalformedAdminCode,
    /// A value outside the column's vocabulary (`紫码`, `未知性别`, `不详`).
    UnknownValue,
}

/// Cell type of a source column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Text,
    /// Parquet Int64.
    I64,
    /// Parquet Int32.
    I32,
    /// Parquet Float64.
    F64,
    /// Parquet Boolean.
    Bool,
    /// Parquet Timestamp(ms, UTC).
    TsMs,
    /// xlsx: a number formatted as a date.
    XlDate,
    /// xlsx: a plain number.
    XlNum,
}

/// One rendered cell; text lives in [`RowBuf::text`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum V {
    Null,
    Text,
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// A reusable row of cells: rendering a row allocates nothing once the buffers are warm.
pub(crate) struct RowBuf {
    pub text: Vec<String>,
    pub val: Vec<V>,
}

impl RowBuf {
    pub(crate) fn new(columns: usize) -> RowBuf {
        RowBuf {
            text: (0..columns).map(|_| String::with_capacity(32)).collect(),
            val: vec![V::Null; columns],
        }
    }

    fn reset(&mut self) {
        for (t, v) in self.text.iter_mut().zip(self.val.iter_mut()) {
            t.clear();
            *v = V::Null;
        }
    }

    /// The text cell `c`, marked as present.
    fn t(&mut self, c: usize) -> &mut String {
        self.val[c] = V::Text;
        &mut self.text[c]
    }

    fn set(&mut self, c: usize, v: V) {
        self.val[c] = v;
    }

    /// Cell `c` as text (numbers formatted as a text connector would read them).
    pub(crate) fn cell_text(&self, c: usize) -> Option<String> {
        match self.val[c] {
            V::Null => None,
            V::Text => Some(self.text[c].clone()),
            V::Int(i) => Some(i.to_string()),
            V::Float(f) => Some(f.to_string()),
            V::Bool(b) => Some(b.to_string()),
        }
    }
}

/// Where a table's row identifier comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowId {
    /// A column of the table.
    Column(usize),
    /// The spreadsheet row the connector adds as `_row` (header = 1, first data row = 2).
    SheetRow,
}

/// A column that may carry a defect, and of which kind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub column: usize,
    pub kind: DefectKind,
    /// The replacement for [`DefectKind::UnknownValue`].
    pub unknown: &'static str,
}

const fn slot(column: usize, kind: DefectKind) -> Slot {
    Slot {
        column,
        kind,
        unknown: "",
    }
}

const fn unknown(column: usize, value: &'static str) -> Slot {
    Slot {
        column,
        kind: DefectKind::UnknownValue,
        unknown: value,
    }
}

/// How a shared column is computed (one `[mappings.columns]` entry).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Col {
    From(&'static str),
    Norm(&'static str, &'static str),
    Map(&'static str, &'static [(&'static str, &'static str)]),
    Sql(&'static str),
    Value(&'static str),
}

pub(crate) struct TableSpec {
    pub source: &'static str,
    pub table: &'static str,
    pub columns: &'static [(&'static str, Ty)],
    pub row_id: RowId,
    pub slots: &'static [Slot],
    pub target: &'static str,
    pub map: &'static [(&'static str, Col)],
}

impl TableSpec {
    /// The row identifier column as the mapping names it.
    pub(crate) fn row_id_name(&self) -> &'static str {
        match self.row_id {
            RowId::Column(c) => self.columns[c].0,
            RowId::SheetRow => "_row",
        }
    }
}

/// Every source table, in the order the sources and mappings are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum TableId {
    RegResident,
    RegTag,
    RegEvent,
    PaResident,
    PaBuilding,
    PbResident,
    PbBuilding,
    HealthRecord,
    LocationTrace,
    CpAdmin,
    CpPerson,
    CpHouse,
    CpBuilding,
    PartyMember,
    ServiceRecord,
    SensorReading,
}

const GENDER_ZH: &[(&str, &str)] = &[("男", "male"), ("女", "female")];
const GENDER_CODE: &[(&str, &str)] = &[("1", "male"), ("2", "female")];
const RESIDENCY_ZH: &[(&str, &str)] = &[("户籍", "registered"), ("流动", "floating")];
const RESIDENCY_CODE: &[(&str, &str)] = &[("1", "registered"), ("2", "floating")];
const USAGE: &[(&str, &str)] = &[("住宅", "residential"), ("商铺", "commercial")];
const KIND: &[(&str, &str)] = &[("居住地报到", "residence"), ("单位报到", "workplace")];

use DefectKind::{BadCheckDigit, ImpossibleDate, MalformedAdminCode};
use Ty::{Bool, F64, I32, I64, Text, TsMs, XlDate, XlNum};

static SPECS: [TableSpec; 16] = [
    TableSpec {
        source: "community_register",
        table: "居民",
        columns: &[
            ("序号", Text),
            ("身份证号", Text),
            ("姓名", Text),
            ("性别", Text),
            ("出生日期", Text),
            ("联系电话", Text),
            ("户籍类型", Text),
            ("房屋编号", Text),
            ("网格编码", Text),
            ("更新时间", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[
            slot(1, BadCheckDigit),
            slot(4, ImpossibleDate),
            slot(8, MalformedAdminCode),
            unknown(3, "未知性别"),
        ],
        target: "person",
        map: &[
            ("person_id", Col::Norm("身份证号", "person_id")),
            ("id_number", Col::Norm("身份证号", "resident_id")),
            ("name", Col::Norm("姓名", "name")),
            ("gender", Col::Map("性别", GENDER_ZH)),
            ("birth_date", Col::Norm("出生日期", "date")),
            ("phone", Col::Norm("联系电话", "phone")),
            ("residency", Col::Map("户籍类型", RESIDENCY_ZH)),
            ("house_id", Col::From("房屋编号")),
            ("area_code", Col::Norm("网格编码", "admin_code")),
            ("_updated_at", Col::Norm("更新时间", "timestamp")),
        ],
    },
    TableSpec {
        source: "community_register",
        table: "特殊人群",
        columns: &[
            ("序号", Text),
            ("身份证号", Text),
            ("姓名", Text),
            ("标签", Text),
            ("认定日期", Text),
            ("网格编码", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[
            slot(1, BadCheckDigit),
            slot(4, ImpossibleDate),
            unknown(3, "未知类别"),
            slot(5, MalformedAdminCode),
        ],
        target: "person_tag",
        map: &[
            ("person_id", Col::Norm("身份证号", "person_id")),
            ("tag", Col::Map("标签", &TAGS)),
            ("area_code", Col::Norm("网格编码", "admin_code")),
            ("source", Col::Value(TAG_SOURCE)),
            ("since", Col::Norm("认定日期", "date")),
        ],
    },
    TableSpec {
        source: "community_register",
        table: "事件",
        columns: &[
            ("序号", Text),
            ("事件编号", Text),
            ("网格编码", Text),
            ("类别", Text),
            ("描述", Text),
            ("上报人", Text),
            ("上报时间", Text),
            ("状态", Text),
            ("办结时间", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[
            slot(6, ImpossibleDate),
            slot(2, MalformedAdminCode),
            unknown(7, "已撤销"),
        ],
        target: "event",
        map: &[
            ("event_id", Col::From("事件编号")),
            ("area_code", Col::Norm("网格编码", "admin_code")),
            ("category", Col::From("类别")),
            ("description", Col::From("描述")),
            ("reported_by", Col::Norm("上报人", "name")),
            ("reported_at", Col::Norm("上报时间", "timestamp")),
            ("status", Col::Map("状态", &EVENT_STATUS)),
            ("closed_at", Col::Norm("办结时间", "timestamp")),
            ("platform", Col::Value(EVENT_PLATFORM)),
        ],
    },
    TableSpec {
        source: "property_a",
        table: "住户",
        columns: &[
            ("序号", Text),
            ("业主姓名", Text),
            ("证件号码", Text),
            ("手机号", Text),
            ("楼栋编号", Text),
            ("单元", Text),
            ("楼层", Text),
            ("房号", Text),
            ("更新日期", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[slot(2, BadCheckDigit), slot(8, ImpossibleDate)],
        target: "person",
        map: &[
            ("person_id", Col::Norm("证件号码", "person_id")),
            ("id_number", Col::Norm("证件号码", "resident_id")),
            ("name", Col::Norm("业主姓名", "name")),
            ("phone", Col::Norm("手机号", "phone")),
            (
                "house_id",
                Col::Sql("concat(\"楼栋编号\", '-', \"单元\", '-', \"房号\")"),
            ),
            ("_updated_at", Col::Norm("更新日期", "timestamp")),
        ],
    },
    TableSpec {
        source: "property_a",
        table: "楼栋",
        columns: &[
            ("序号", Text),
            ("楼栋编号", Text),
            ("地址", Text),
            ("总层数", Text),
            ("电梯", Text),
            ("建成年份", Text),
            ("纬度", Text),
            ("经度", Text),
            ("网格编码", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[unknown(4, "不详"), slot(8, MalformedAdminCode)],
        target: "building",
        map: &[
            ("building_id", Col::From("楼栋编号")),
            ("area_code", Col::Norm("网格编码", "admin_code")),
            ("address", Col::From("地址")),
            ("floors", Col::From("总层数")),
            ("has_elevator", Col::Norm("电梯", "bool")),
            ("built_year", Col::From("建成年份")),
            ("property_company", Col::Value(COMPANY_A)),
            ("lat", Col::From("纬度")),
            ("lon", Col::From("经度")),
        ],
    },
    TableSpec {
        source: "property_b",
        table: "住户信息",
        columns: &[
            ("姓名", Text),
            ("身份证", Text),
            ("性别", Text),
            ("出生日期", XlDate),
            ("电话", Text),
            ("楼号", Text),
            ("单元号", Text),
            ("层", XlNum),
            ("室", Text),
            ("更新时间", XlNum),
        ],
        row_id: RowId::SheetRow,
        slots: &[slot(1, BadCheckDigit), unknown(2, "不详")],
        target: "person",
        map: &[
            ("person_id", Col::Norm("身份证", "person_id")),
            ("id_number", Col::Norm("身份证", "resident_id")),
            ("name", Col::Norm("姓名", "name")),
            ("gender", Col::Map("性别", GENDER_ZH)),
            ("birth_date", Col::Norm("出生日期", "date")),
            ("phone", Col::Norm("电话", "phone")),
            (
                "house_id",
                Col::Sql("concat(\"楼号\", '-', \"单元号\", '-', \"室\")"),
            ),
            ("_updated_at", Col::Norm("更新时间", "timestamp")),
        ],
    },
    TableSpec {
        source: "property_b",
        table: "楼宇信息",
        columns: &[
            ("楼号", Text),
            ("地址", Text),
            ("总层数", XlNum),
            ("电梯", Text),
            ("建成年份", XlNum),
            ("网格编码", Text),
            ("纬度", XlNum),
            ("经度", XlNum),
        ],
        row_id: RowId::SheetRow,
        slots: &[unknown(3, "待查"), slot(5, MalformedAdminCode)],
        target: "building",
        map: &[
            ("building_id", Col::From("楼号")),
            ("area_code", Col::Norm("网格编码", "admin_code")),
            ("address", Col::From("地址")),
            // Number cells: read as text, which may be "6" or "6.0".
            (
                "floors",
                Col::Sql("CAST(CAST(\"总层数\" AS DOUBLE) AS INT)"),
            ),
            ("has_elevator", Col::Norm("电梯", "bool")),
            (
                "built_year",
                Col::Sql("CAST(CAST(\"建成年份\" AS DOUBLE) AS INT)"),
            ),
            ("property_company", Col::Value(COMPANY_B)),
            ("lat", Col::From("纬度")),
            ("lon", Col::From("经度")),
        ],
    },
    TableSpec {
        source: "district_health",
        table: "health_record",
        columns: &[
            ("序号", I64),
            ("证件号码", Text),
            ("健康码", Text),
            ("疫苗接种剂次", I32),
            ("核酸日期", Text),
            ("核酸结果", Text),
            ("慢病", Text),
            ("记录日期", Text),
            ("区划代码", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[
            slot(1, BadCheckDigit),
            slot(7, ImpossibleDate),
            unknown(2, "紫码"),
            slot(8, MalformedAdminCode),
        ],
        target: "health_record",
        map: &[
            ("person_id", Col::Norm("证件号码", "person_id")),
            ("record_date", Col::Norm("记录日期", "date")),
            ("area_code", Col::Norm("区划代码", "admin_code")),
            ("health_code", Col::Map("健康码", &HEALTH_CODES)),
            ("vaccine_doses", Col::From("疫苗接种剂次")),
            ("test_date", Col::Norm("核酸日期", "date")),
            ("test_result", Col::Map("核酸结果", &TEST_RESULTS)),
            ("chronic_conditions", Col::From("慢病")),
        ],
    },
    TableSpec {
        source: "district_health",
        table: "location_trace",
        columns: &[
            ("序号", I64),
            ("证件号码", Text),
            ("时间", Text),
            ("地点", Text),
            ("纬度", F64),
            ("经度", F64),
            ("方式", Text),
            ("区划代码", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[
            slot(1, BadCheckDigit),
            slot(2, ImpossibleDate),
            unknown(6, "人工登记"),
            slot(7, MalformedAdminCode),
        ],
        target: "location_trace",
        map: &[
            ("person_id", Col::Norm("证件号码", "person_id")),
            ("ts", Col::Norm("时间", "timestamp")),
            ("area_code", Col::Norm("区划代码", "admin_code")),
            ("place", Col::From("地点")),
            ("lat", Col::From("纬度")),
            ("lon", Col::From("经度")),
            ("via", Col::Map("方式", &VIA)),
        ],
    },
    TableSpec {
        source: "city_population",
        table: "admin_unit",
        columns: &[
            ("seq", Text),
            ("code", Text),
            ("name", Text),
            ("level", Text),
            ("parent_code", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[slot(1, MalformedAdminCode)],
        target: "admin_unit",
        map: &[
            ("code", Col::Norm("code", "admin_code")),
            ("name", Col::From("name")),
            ("level", Col::From("level")),
            ("parent_code", Col::Norm("parent_code", "admin_code")),
        ],
    },
    TableSpec {
        source: "city_population",
        table: "person",
        columns: &[
            ("seq", Text),
            ("id_no", Text),
            ("full_name", Text),
            ("sex", Text),
            ("birth", Text),
            ("residency_type", Text),
            ("house_no", Text),
            ("area_code", Text),
            ("updated", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[
            slot(1, BadCheckDigit),
            slot(4, ImpossibleDate),
            unknown(3, "9"),
            slot(7, MalformedAdminCode),
        ],
        target: "person",
        map: &[
            ("person_id", Col::Norm("id_no", "person_id")),
            ("id_number", Col::Norm("id_no", "resident_id")),
            ("name", Col::Norm("full_name", "name")),
            ("gender", Col::Map("sex", GENDER_CODE)),
            ("birth_date", Col::Norm("birth", "date")),
            ("residency", Col::Map("residency_type", RESIDENCY_CODE)),
            ("house_id", Col::From("house_no")),
            ("area_code", Col::Norm("area_code", "admin_code")),
            ("_updated_at", Col::Norm("updated", "timestamp")),
        ],
    },
    TableSpec {
        source: "city_population",
        table: "house",
        columns: &[
            ("seq", Text),
            ("house_id", Text),
            ("building_id", Text),
            ("area_code", Text),
            ("unit", Text),
            ("floor", Text),
            ("room", Text),
            ("usage", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[slot(3, MalformedAdminCode), unknown(7, "未知")],
        target: "house",
        map: &[
            ("house_id", Col::From("house_id")),
            ("building_id", Col::From("building_id")),
            ("area_code", Col::Norm("area_code", "admin_code")),
            ("unit", Col::From("unit")),
            ("floor", Col::From("floor")),
            ("room", Col::From("room")),
            ("usage", Col::Map("usage", USAGE)),
        ],
    },
    TableSpec {
        source: "city_population",
        table: "building",
        columns: &[
            ("seq", Text),
            ("building_id", Text),
            ("area_code", Text),
            ("address", Text),
            ("floors", Text),
            ("elevator", Text),
            ("built_year", Text),
            ("lat", Text),
            ("lon", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[slot(2, MalformedAdminCode), unknown(5, "U")],
        target: "building",
        map: &[
            ("building_id", Col::From("building_id")),
            ("area_code", Col::Norm("area_code", "admin_code")),
            ("address", Col::From("address")),
            ("floors", Col::From("floors")),
            ("has_elevator", Col::Norm("elevator", "bool")),
            ("built_year", Col::From("built_year")),
            ("lat", Col::From("lat")),
            ("lon", Col::From("lon")),
        ],
    },
    TableSpec {
        source: "party_service",
        table: "party_member",
        columns: &[
            ("序号", Text),
            ("姓名", Text),
            ("身份证号码", Text),
            ("所属党组织", Text),
            ("报到类型", Text),
            ("报到日期", Text),
            ("区划代码", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[
            slot(2, BadCheckDigit),
            slot(5, ImpossibleDate),
            unknown(4, "其他"),
            slot(6, MalformedAdminCode),
        ],
        target: "party_member",
        map: &[
            ("person_id", Col::Norm("身份证号码", "person_id")),
            ("area_code", Col::Norm("区划代码", "admin_code")),
            ("organisation", Col::From("所属党组织")),
            ("kind", Col::Map("报到类型", KIND)),
            ("registered_at", Col::Norm("报到日期", "date")),
        ],
    },
    TableSpec {
        source: "party_service",
        table: "service_record",
        columns: &[
            ("记录编号", Text),
            ("志愿者姓名", Text),
            ("志愿者身份证号", Text),
            ("服务内容", Text),
            ("开始时间", Text),
            ("服务时长", Text),
            ("评分", Text),
            ("网格编码", Text),
        ],
        row_id: RowId::Column(0),
        slots: &[
            slot(2, BadCheckDigit),
            slot(4, ImpossibleDate),
            slot(7, MalformedAdminCode),
        ],
        target: "service_record",
        map: &[
            ("record_id", Col::From("记录编号")),
            ("area_code", Col::Norm("网格编码", "admin_code")),
            ("person_id", Col::Norm("志愿者身份证号", "person_id")),
            ("task", Col::From("服务内容")),
            ("started_at", Col::Norm("开始时间", "timestamp")),
            ("hours", Col::From("服务时长")),
            ("rating", Col::From("评分")),
        ],
    },
    TableSpec {
        source: "sensor_feed",
        table: "sensor_reading",
        columns: &[
            ("seq", I64),
            ("device_id", Text),
            ("ts", TsMs),
            ("building_id", Text),
            ("area_code", Text),
            ("metric", Text),
            ("value", F64),
            ("alarm", Bool),
        ],
        row_id: RowId::Column(0),
        slots: &[slot(4, MalformedAdminCode), unknown(5, "温度")],
        target: "sensor_reading",
        map: &[
            ("device_id", Col::From("device_id")),
            ("ts", Col::From("ts")),
            ("area_code", Col::Norm("area_code", "admin_code")),
            ("building_id", Col::From("building_id")),
            ("metric", Col::Map("metric", &METRICS)),
            ("value", Col::From("value")),
            ("alarm", Col::From("alarm")),
        ],
    },
];

impl TableId {
    pub(crate) const ALL: [TableId; 16] = [
        TableId::RegResident,
        TableId::RegTag,
        TableId::RegEvent,
        TableId::PaResident,
        TableId::PaBuilding,
        TableId::PbResident,
        TableId::PbBuilding,
        TableId::HealthRecord,
        TableId::LocationTrace,
        TableId::CpAdmin,
        TableId::CpPerson,
        TableId::CpHouse,
        TableId::CpBuilding,
        TableId::PartyMember,
        TableId::ServiceRecord,
        TableId::SensorReading,
    ];

    pub(crate) fn spec(self) -> &'static TableSpec {
        &SPECS[self as usize]
    }
}

/// Rows of the admin_unit table: city, districts, streets, communities, then grids.
fn admin_rows() -> usize {
    1 + DISTRICTS.len() + STREETS.len() + COMMUNITIES.len()
}

impl City {
    /// Rows of a source table.
    pub(crate) fn rows(&self, t: TableId) -> usize {
        match t {
            TableId::RegResident | TableId::CpPerson => self.persons.len(),
            TableId::RegTag => self.tags.len(),
            TableId::RegEvent => self.events.len(),
            TableId::PaResident => self.prop_a.len(),
            TableId::PaBuilding => self.managed_a.len(),
            TableId::PbResident => self.prop_b.len(),
            TableId::PbBuilding => self.managed_b.len(),
            TableId::HealthRecord => self.health.len(),
            TableId::LocationTrace => self.traces.len(),
            TableId::CpAdmin => admin_rows() + self.grids.len(),
            TableId::CpHouse => self.houses.len(),
            TableId::CpBuilding => self.buildings.len(),
            TableId::PartyMember => self.party.len(),
            TableId::ServiceRecord => self.services.len(),
            TableId::SensorReading => self.readings.len(),
        }
    }

    /// The row identifier of row `i` exactly as the mapping's `row_id` reads it.
    pub(crate) fn row_id(&self, t: TableId, i: usize, row: &mut RowBuf) -> String {
        match t.spec().row_id {
            RowId::SheetRow => (i + 2).to_string(),
            RowId::Column(c) => {
                self.render(t, i, row);
                row.cell_text(c).unwrap_or_default()
            }
        }
    }

    /// Renders row `i` of table `t` (with its injected defect, if any) into `row`.
    pub(crate) fn render(&self, t: TableId, i: usize, row: &mut RowBuf) {
        row.reset();
        let seed = self.opts.seed;
        match t {
            TableId::RegResident => {
                let p = &self.persons[i];
                let _ = write!(row.t(0), "{}", i + 1);
                write_register_id(row.t(1), p);
                p.name.write(row.t(2), false);
                row.t(3).push_str(if p.male { "男" } else { "女" });
                fmt::date_cn(row.t(4), p.birth);
                if p.phone != 0 && p.reg & REG_NO_PHONE == 0 {
                    fmt::phone(row.t(5), p.phone, PhoneStyle::Spaced);
                }
                row.t(6).push_str(if p.floating { "流动" } else { "户籍" });
                self.house_id(row.t(7), self.house_of(p));
                row.t(8).push_str(&self.grid_of(p).code);
                fmt::datetime_iso(row.t(9), cosmetic_time(seed, 10, i, 2023, 30));
            }
            TableId::RegTag => {
                let tag = &self.tags[i];
                let p = &self.persons[tag.person as usize];
                let _ = write!(row.t(0), "{}", i + 1);
                write_register_id(row.t(1), p);
                p.name.write(row.t(2), false);
                row.t(3).push_str(TAGS[usize::from(tag.tag)].0);
                fmt::date_dot(row.t(4), tag.since);
                row.t(5).push_str(&self.grid_of(p).code);
            }
            TableId::RegEvent => {
                let e = &self.events[i];
                let reported = model::at_minute(e.reported);
                let grid = &self.grids[usize::from(e.grid)];
                let category = &EVENT_CATEGORIES[usize::from(e.category)];
                let _ = write!(row.t(0), "{}", i + 1);
                let _ = write!(
                    row.t(1),
                    "SJ{}{:06}",
                    chrono::Datelike::year(&reported),
                    i + 1
                );
                row.t(2).push_str(&grid.code);
                row.t(3).push_str(category.0);
                let _ = write!(
                    row.t(4),
                    "{}：{}",
                    grid.name,
                    category.2[usize::from(e.template)]
                );
                e.reporter.write(row.t(5), false);
                fmt::datetime_slash(row.t(6), reported);
                row.t(7).push_str(EVENT_STATUS[usize::from(e.status)].0);
                if e.status == 2 {
                    fmt::datetime_slash(row.t(8), model::at_minute(e.reported + e.closed_after));
                }
            }
            TableId::PaResident | TableId::PbResident => {
                let a = t == TableId::PaResident;
                let pr = if a { &self.prop_a[i] } else { &self.prop_b[i] };
                let p = &self.persons[pr.person as usize];
                let h = self.house_of(p);
                let b = self.building_of_house(h);
                let styled = pr.flags & PROP_PHONE_STYLED != 0;
                if a {
                    let _ = write!(row.t(0), "{}", i + 1);
                    p.name.write(row.t(1), pr.flags & PROP_NAME_SPACED != 0);
                    row.t(2).push_str(fmt::ascii(&p.id));
                    let style = if styled {
                        PhoneStyle::Dashed
                    } else {
                        PhoneStyle::Plain
                    };
                    fmt::phone(row.t(3), pr.phone(p), style);
                    row.t(4).push_str(&b.id);
                    let _ = write!(row.t(5), "{}", h.unit);
                    let _ = write!(row.t(6), "{}", h.floor);
                    let _ = write!(row.t(7), "{}", h.room);
                    fmt::date_compact(row.t(8), cosmetic_time(seed, 11, i, 2022, 40).date());
                } else {
                    p.name.write(row.t(0), false);
                    row.t(1).push_str(fmt::ascii(&p.id));
                    row.t(2).push_str(if p.male { "男" } else { "女" });
                    row.set(3, V::Float(fmt::excel_serial(p.birth)));
                    let phone = pr.phone(p);
                    let style = if styled && fmt::is_mobile(phone) {
                        PhoneStyle::Plus86
                    } else {
                        PhoneStyle::Plain
                    };
                    fmt::phone(row.t(4), phone, style);
                    if row.text[4].is_empty() {
                        row.set(4, V::Null);
                    }
                    row.t(5).push_str(&b.id);
                    let _ = write!(row.t(6), "{}", h.unit);
                    row.set(7, V::Int(i64::from(h.floor)));
                    let _ = write!(row.t(8), "{}", h.room);
                    let when = cosmetic_time(seed, 12, i, 2022, 40);
                    row.set(9, V::Float(fmt::excel_serial_time(when)));
                }
                if a && row.text[3].is_empty() {
                    row.set(3, V::Null);
                }
            }
            TableId::PaBuilding => {
                let b = &self.buildings[self.managed_a[i] as usize];
                let _ = write!(row.t(0), "{}", i + 1);
                row.t(1).push_str(&b.id);
                row.t(2).push_str(&b.address);
                let _ = write!(row.t(3), "{}", b.floors);
                row.t(4).push_str(if b.elevator { "有" } else { "无" });
                let _ = write!(row.t(5), "{}", b.built_year);
                let _ = write!(row.t(6), "{:.6}", b.lat);
                let _ = write!(row.t(7), "{:.6}", b.lon);
                row.t(8).push_str(&self.grids[usize::from(b.grid)].code);
            }
            TableId::PbBuilding => {
                let b = &self.buildings[self.managed_b[i] as usize];
                row.t(0).push_str(&b.id);
                row.t(1).push_str(&b.address);
                row.set(2, V::Int(i64::from(b.floors)));
                row.t(3).push_str(if b.elevator { "是" } else { "否" });
                row.set(4, V::Int(i64::from(b.built_year)));
                row.t(5).push_str(&self.grids[usize::from(b.grid)].code);
                row.set(6, V::Float(b.lat));
                row.set(7, V::Float(b.lon));
            }
            TableId::HealthRecord => {
                let r = &self.health[i];
                let p = &self.persons[r.person as usize];
                let day = model::health_day(r.day);
                row.set(0, V::Int(i as i64 + 1));
                row.t(1).push_str(fmt::ascii(&p.id));
                row.t(2).push_str(HEALTH_CODES[usize::from(r.code)].0);
                if r.vaccine >= 0 {
                    row.set(3, V::Int(i64::from(r.vaccine)));
                }
                if r.test_back >= 0 {
                    fmt::date_compact(row.t(4), day - Days::new(r.test_back as u64));
                    row.t(5).push_str(TEST_RESULTS[usize::from(r.positive)].0);
                }
                if r.chronic > 0 {
                    row.t(6).push_str(CHRONIC[usize::from(r.chronic - 1)]);
                }
                fmt::date_iso(row.t(7), day);
                row.t(8).push_str(&self.grid_of(p).code);
            }
            TableId::LocationTrace => {
                let r = &self.traces[i];
                let p = &self.persons[r.person as usize];
                let place = &PLACES[usize::from(r.place)];
                let h = model::mix(seed, 5, i as u64);
                let jitter = |bits: u64| ((bits % 1001) as f64 - 500.0) / 1e6;
                row.set(0, V::Int(i as i64 + 1));
                row.t(1).push_str(fmt::ascii(&p.id));
                fmt::datetime_iso(
                    row.t(2),
                    model::trace_base() + chrono::Duration::seconds(i64::from(r.secs)),
                );
                row.t(3).push_str(place.0);
                row.set(4, V::Float(round6(place.1 + jitter(h))));
                row.set(5, V::Float(round6(place.2 + jitter(h >> 20))));
                row.t(6).push_str(VIA[usize::from(r.via)].0);
                row.t(7).push_str(&self.grid_of(p).code);
            }
            TableId::CpAdmin => {
                let _ = write!(row.t(0), "{}", i + 1);
                let (code, name, level, parent): (&str, &str, &str, &str) = admin_unit(self, i);
                row.t(1).push_str(code);
                row.t(2).push_str(name);
                row.t(3).push_str(level);
                if !parent.is_empty() {
                    row.t(4).push_str(parent);
                }
            }
            TableId::CpPerson => {
                let p = &self.persons[i];
                let _ = write!(row.t(0), "{}", i + 1);
                row.t(1).push_str(fmt::ascii(&p.id));
                p.name.write(row.t(2), false);
                row.t(3).push_str(if p.male { "1" } else { "2" });
                fmt::date_compact(row.t(4), p.birth);
                row.t(5).push_str(if p.floating { "2" } else { "1" });
                self.house_id(row.t(6), self.house_of(p));
                row.t(7).push_str(&self.grid_of(p).code);
                fmt::datetime_rfc3339_beijing(row.t(8), cosmetic_time(seed, 13, i, 2024, 18));
            }
            TableId::CpHouse => {
                let h = &self.houses[i];
                let b = self.building_of_house(h);
                let _ = write!(row.t(0), "{}", i + 1);
                self.house_id(row.t(1), h);
                row.t(2).push_str(&b.id);
                row.t(3).push_str(&self.grids[usize::from(b.grid)].code);
                let _ = write!(row.t(4), "{}", h.unit);
                let _ = write!(row.t(5), "{}", h.floor);
                let _ = write!(row.t(6), "{}", h.room);
                row.t(7)
                    .push_str(if h.commercial { "商铺" } else { "住宅" });
            }
            TableId::CpBuilding => {
                let b = &self.buildings[i];
                let _ = write!(row.t(0), "{}", i + 1);
                row.t(1).push_str(&b.id);
                row.t(2).push_str(&self.grids[usize::from(b.grid)].code);
                row.t(3).push_str(&b.address);
                let _ = write!(row.t(4), "{}", b.floors);
                row.t(5).push_str(if b.elevator { "Y" } else { "N" });
                let _ = write!(row.t(6), "{}", b.built_year);
                let _ = write!(row.t(7), "{:.6}", b.lat);
                let _ = write!(row.t(8), "{:.6}", b.lon);
            }
            TableId::PartyMember => {
                let m = &self.party[i];
                let p = &self.persons[m.person as usize];
                let grid = self.grid_of(p);
                let _ = write!(row.t(0), "{}", i + 1);
                p.name.write(row.t(1), false);
                row.t(2).push_str(fmt::ascii(&p.id));
                if m.workplace {
                    row.t(3).push_str(WORKPLACE_ORGS[usize::from(m.org)]);
                    row.t(4).push_str("单位报到");
                } else {
                    let community = &COMMUNITIES[usize::from(grid.community)];
                    let _ = write!(row.t(3), "{}党委第{}党支部", community.name, m.org);
                    row.t(4).push_str("居住地报到");
                }
                fmt::date_slash(row.t(5), m.registered);
                row.t(6).push_str(&grid.code);
            }
            TableId::ServiceRecord => {
                let s = &self.services[i];
                let p = &self.persons[s.person as usize];
                let _ = write!(row.t(0), "FW{:08}", i + 1);
                p.name.write(row.t(1), false);
                row.t(2).push_str(fmt::ascii(&p.id));
                row.t(3).push_str(SERVICE_TASKS[usize::from(s.task)]);
                fmt::datetime_slash(row.t(4), model::at_minute(s.start));
                let _ = write!(row.t(5), "{}", f64::from(s.half_hours) / 2.0);
                let _ = write!(row.t(6), "{}", s.rating);
                row.t(7).push_str(&self.grid_of(p).code);
            }
            TableId::SensorReading => {
                let nd = self.devices.len();
                let (k, d) = (i / nd, i % nd);
                debug_assert!(k < READINGS_PER_DEVICE);
                let dev = &self.devices[d];
                let b = &self.buildings[dev.building as usize];
                let reading = &self.readings[i];
                row.set(0, V::Int(i as i64 + 1));
                let prefix = ["YG", "SY", "DT"][usize::from(dev.metric)];
                let _ = write!(row.t(1), "{}-{}{}", b.id, prefix, dev.n);
                row.set(
                    2,
                    V::Int(
                        model::sensor_base_ms()
                            + k as i64 * 7_200_000
                            + i64::from(dev.offset_s) * 1000,
                    ),
                );
                row.t(3).push_str(&b.id);
                row.t(4).push_str(&self.grids[usize::from(b.grid)].code);
                row.t(5).push_str(METRICS[usize::from(dev.metric)].0);
                row.set(6, V::Float(reading.value));
                row.set(7, V::Bool(reading.alarm));
            }
        }
        let d = self.defect(t, i);
        if d > 0 {
            let s = t.spec().slots[usize::from(d - 1)];
            corrupt(&mut row.text[s.column], s, i);
            debug_assert_eq!(row.val[s.column], V::Text);
        }
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The register holds about 3% of people born before 2000 under their old 15-digit ID.
fn write_register_id(s: &mut String, p: &model::Person) {
    if p.reg & REG_LEGACY_ID != 0 {
        s.push_str(fmt::ascii(&fmt::legacy_id(&p.id)));
    } else {
        s.push_str(fmt::ascii(&p.id));
    }
}

/// A per-row update time: from January 1 of `year`, within `months` months, on a working
/// hour, to the second.
fn cosmetic_time(seed: u64, table: u64, i: usize, year: i32, months: u32) -> chrono::NaiveDateTime {
    let h = model::mix(seed, table, i as u64);
    let day = (h % (u64::from(months) * 30)) as i64;
    let secs = 8 * 3600 + ((h >> 20) % (10 * 3600)) as i64;
    chrono::NaiveDate::from_ymd_opt(year, 1, 1)
        .expect("valid")
        .and_hms_opt(0, 0, 0)
        .expect("valid")
        + chrono::Duration::days(day)
        + chrono::Duration::seconds(secs)
}

/// Row `i` of the admin_unit table: (code, name, level, parent code).
pub(crate) fn admin_unit(city: &City, i: usize) -> (&str, &str, &'static str, &'static str) {
    let nd = DISTRICTS.len();
    let ns = STREETS.len();
    let nc = COMMUNITIES.len();
    if i == 0 {
        (CITY_CODE, CITY_NAME, "city", "")
    } else if i <= nd {
        let d = &DISTRICTS[i - 1];
        (d.code, d.name, "district", CITY_CODE)
    } else if i <= nd + ns {
        let s = &STREETS[i - 1 - nd];
        (s.code, s.name, "street", DISTRICTS[s.district].code)
    } else if i <= nd + ns + nc {
        let c = &COMMUNITIES[i - 1 - nd - ns];
        (c.code, c.name, "community", STREETS[c.street].code)
    } else {
        let g = &city.grids[i - 1 - nd - ns - nc];
        (
            g.code.as_str(),
            g.name.as_str(),
            "grid",
            COMMUNITIES[usize::from(g.community)].code,
        )
    }
}

/// Applies a defect to a rendered text cell.
fn corrupt(s: &mut String, slot: Slot, row: usize) {
    match slot.kind {
        DefectKind::BadCheckDigit => {
            let mut id: Vec<u8> = s.as_bytes().to_vec();
            if id.len() == 15 {
                // A legacy ID gets its 18-character form, with a wrong check digit.
                let mut full = Vec::with_capacity(18);
                full.extend_from_slice(&id[..6]);
                full.extend_from_slice(b"19");
                full.extend_from_slice(&id[6..15]);
                full.push(b'0');
                id = full;
            }
            let correct = fmt::check_char(&id[..17]);
            let pos = fmt::CHECK
                .iter()
                .position(|&c| c == correct)
                .expect("check char");
            id[17] = fmt::CHECK[(pos + 1 + row % 10) % 11];
            *s = String::from_utf8(id).expect("ASCII");
        }
        DefectKind::ImpossibleDate => {
            let (m, d) = [(2, 30), (2, 31), (4, 31), (6, 31), (9, 31), (11, 31)][row % 6];
            let year = s[..4].to_string();
            let rest = &s[4..];
            let tail = rest
                .find([' ', 'T'])
                .map(|p| rest[p..].to_string())
                .unwrap_or_default();
            *s = if rest.starts_with('年') {
                format!("{year}年{m}月{d}日{tail}")
            } else if rest.starts_with('-') {
                format!("{year}-{m:02}-{d:02}{tail}")
            } else if rest.starts_with('/') {
                format!("{year}/{m}/{d}{tail}")
            } else if rest.starts_with('.') {
                format!("{year}.{m}.{d}{tail}")
            } else {
                format!("{year}{m:02}{d:02}{tail}")
            };
        }
        DefectKind::MalformedAdminCode => {
            if row.is_multiple_of(2) {
                s.pop();
            } else {
                s.push('0');
            }
        }
        DefectKind::UnknownValue => {
            s.clear();
            s.push_str(slot.unknown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: DefectKind, input: &str, row: usize) -> String {
        let mut s = input.to_string();
        corrupt(
            &mut s,
            Slot {
                column: 0,
                kind,
                unknown: "紫码",
            },
            row,
        );
        s
    }

    #[test]
    fn corruptions() {
        assert_eq!(run(ImpossibleDate, "1980年1月1日", 0), "1980年2月30日");
        assert_eq!(run(ImpossibleDate, "19800101", 2), "19800431");
        assert_eq!(run(ImpossibleDate, "2022-11-29", 1), "2022-02-31");
        assert_eq!(run(ImpossibleDate, "2023/5/6 14:30", 3), "2023/6/31 14:30");
        assert_eq!(
            run(ImpossibleDate, "2024-01-15T08:00:00+08:00", 0),
            "2024-02-30T08:00:00+08:00"
        );
        assert_eq!(run(ImpossibleDate, "2021.3.5", 4), "2021.9.31");
        assert_eq!(
            run(MalformedAdminCode, "420106009001003", 0),
            "42010600900100"
        );
        assert_eq!(
            run(MalformedAdminCode, "420106009001003", 1),
            "4201060090010030"
        );
        assert_eq!(run(DefectKind::UnknownValue, "绿码", 0), "紫码");
        let bad = run(BadCheckDigit, "11010519491231002X", 0);
        assert_eq!(&bad[..17], "11010519491231002");
        assert_ne!(&bad[17..], "X");
        let bad = run(BadCheckDigit, "110105491231002", 5);
        assert_eq!(bad.len(), 18);
        assert_ne!(&bad[17..], "X");
    }
}
