//! The shared tables: one definition of every table's Arrow schema, each column's tag and
//! Chinese label. Connectors map their sources into these; policies key off the tags.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Name of the provenance column naming the sources that contributed a row.
pub const SOURCE_COLUMN: &str = "_source";
/// Name of the provenance column with the row's last update time (UTC).
pub const UPDATED_AT_COLUMN: &str = "_updated_at";

/// A column's classification; drives policy. Untagged columns are `public`.
///
/// Ordered by sensitivity, least first (`Tag::Public < Tag::Contact < … < Tag::Location`):
/// where one value holds several kinds of data (a raw column feeding two shared columns) it
/// takes the greatest tag, and a value nobody has classified takes [`Tag::MOST_SENSITIVE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tag {
    Public,
    Contact,
    Identity,
    Special,
    Health,
    Location,
}

impl Tag {
    /// The tag of a value of unknown meaning (a raw column no mapping reads, `_rejects.raw`).
    pub const MOST_SENSITIVE: Tag = Tag::Location;

    /// Every tag, in the order the domain reference lists them.
    pub const ALL: [Tag; 6] = [
        Tag::Public,
        Tag::Identity,
        Tag::Contact,
        Tag::Health,
        Tag::Location,
        Tag::Special,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Public => "public",
            Tag::Identity => "identity",
            Tag::Contact => "contact",
            Tag::Health => "health",
            Tag::Location => "location",
            Tag::Special => "special",
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Tag {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tag::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown tag '{s}' (tags: public, identity, contact, health, location, special)"
                )
            })
    }
}

/// What a principal who may read a column only masked sees (docs/domain.md, "Masks").
/// Every mask keeps the column's type, so a masked column stands where the clear one was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mask {
    /// `420106198001011234` → `420106********1234` (region and last four kept).
    IdNumber,
    /// `欧阳明` → `欧阳*` (the surname kept).
    Name,
    /// `13812345678` → `138****5678`.
    Phone,
    /// `1980-05-17` → `1980-01-01` (the year only).
    BirthDate,
    /// A place reads as the name of the community the row lies in.
    Community,
    /// NULL of the column's type: health, location and special values have no partial form.
    Null,
}

impl Mask {
    /// The SQL function that masks a value of this kind, taking the value (or, for
    /// [`Mask::Community`], the row's area code); `None` for [`Mask::Null`].
    pub fn function(self) -> Option<&'static str> {
        match self {
            Mask::IdNumber => Some("gh_mask_id_number"),
            Mask::Name => Some("gh_mask_name"),
            Mask::Phone => Some("gh_mask_phone"),
            Mask::BirthDate => Some("gh_mask_birth_date"),
            Mask::Community => Some("gh_mask_place"),
            Mask::Null => None,
        }
    }

    /// The Arrow type the mask function reads and writes (`None`: any type, [`Mask::Null`]).
    pub fn data_type(self) -> Option<DataType> {
        match self {
            Mask::BirthDate => Some(DataType::Date32),
            Mask::Null => None,
            _ => Some(DataType::Utf8),
        }
    }
}

/// One column of a shared table.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: &'static str,
    pub data_type: DataType,
    pub tag: Tag,
    /// How the column reads where a policy masks it.
    pub mask: Mask,
    /// Chinese label, used for report headers.
    pub label: &'static str,
}

/// One shared table.
#[derive(Debug, Clone)]
pub struct TableDef {
    pub name: &'static str,
    pub label: &'static str,
    /// Key columns: rows with the same key describe the same entity and are merged.
    pub key: &'static [&'static str],
    /// Columns in order, including the provenance columns `_source` and `_updated_at`.
    pub columns: Vec<ColumnDef>,
}

impl TableDef {
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Columns that carry data (everything except the provenance columns).
    pub fn data_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns
            .iter()
            .filter(|c| c.name != SOURCE_COLUMN && c.name != UPDATED_AT_COLUMN)
    }

    pub fn has_area_code(&self) -> bool {
        self.column("area_code").is_some()
    }

    /// The column whose reading decides whether a row may be seen at all. A row of
    /// `person_tag` says by its presence alone that the person carries a special tag, so its
    /// rows are shown only to whoever may read `tag` in clear (a masked tag on a visible row
    /// would still single the person out).
    pub fn presence_column(&self) -> Option<&'static str> {
        match self.name {
            "person_tag" => Some("tag"),
            _ => None,
        }
    }

    /// The table's Arrow schema. Key columns are non-null; everything else nullable.
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| {
                    let nullable = !self.key.contains(&c.name) && c.name != SOURCE_COLUMN;
                    Field::new(c.name, c.data_type.clone(), nullable)
                })
                .collect::<Vec<_>>(),
        ))
    }
}

/// The timestamp type of every time column: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn col(name: &'static str, data_type: DataType, tag: Tag, label: &'static str) -> ColumnDef {
    ColumnDef {
        name,
        data_type,
        tag,
        mask: Mask::Null,
        label,
    }
}

impl ColumnDef {
    /// The column with a partial mask instead of NULL.
    fn masked(self, mask: Mask) -> ColumnDef {
        ColumnDef { mask, ..self }
    }
}

fn table(
    name: &'static str,
    label: &'static str,
    key: &'static [&'static str],
    mut columns: Vec<ColumnDef>,
) -> TableDef {
    columns.push(col(SOURCE_COLUMN, DataType::Utf8, Tag::Public, "数据来源"));
    columns.push(col(
        UPDATED_AT_COLUMN,
        timestamp_type(),
        Tag::Public,
        "更新时间",
    ));
    TableDef {
        name,
        label,
        key,
        columns,
    }
}

static SHARED_TABLES: LazyLock<Vec<TableDef>> = LazyLock::new(|| {
    use DataType::{Boolean, Date32, Float64, Int32, Utf8};
    use Tag::*;
    let ts = timestamp_type;
    vec![
        table(
            "admin_unit",
            "行政区划",
            &["code"],
            vec![
                col("code", Utf8, Public, "区划代码"),
                col("name", Utf8, Public, "名称"),
                col("level", Utf8, Public, "层级"),
                col("parent_code", Utf8, Public, "上级代码"),
            ],
        ),
        table(
            "building",
            "楼栋",
            &["building_id"],
            vec![
                col("building_id", Utf8, Public, "楼栋编号"),
                col("area_code", Utf8, Public, "所属区划"),
                col("address", Utf8, Public, "地址"),
                col("floors", Int32, Public, "层数"),
                col("has_elevator", Boolean, Public, "有无电梯"),
                col("built_year", Int32, Public, "建成年份"),
                col("property_company", Utf8, Public, "物业公司"),
                col("lat", Float64, Public, "纬度"),
                col("lon", Float64, Public, "经度"),
            ],
        ),
        table(
            "house",
            "房屋",
            &["house_id"],
            vec![
                col("house_id", Utf8, Public, "房屋编号"),
                col("building_id", Utf8, Public, "楼栋编号"),
                col("area_code", Utf8, Public, "所属区划"),
                col("unit", Utf8, Public, "单元"),
                col("floor", Int32, Public, "楼层"),
                col("room", Utf8, Public, "房号"),
                col("usage", Utf8, Public, "用途"),
            ],
        ),
        table(
            "person",
            "人口",
            &["person_id"],
            vec![
                col("person_id", Utf8, Public, "人员标识"),
                col("area_code", Utf8, Public, "所属区划"),
                col("house_id", Utf8, Public, "房屋编号"),
                col("id_number", Utf8, Identity, "身份证号").masked(Mask::IdNumber),
                col("name", Utf8, Identity, "姓名").masked(Mask::Name),
                col("gender", Utf8, Public, "性别"),
                col("birth_date", Date32, Identity, "出生日期").masked(Mask::BirthDate),
                col("phone", Utf8, Contact, "联系电话").masked(Mask::Phone),
                col("residency", Utf8, Public, "户籍类型"),
            ],
        ),
        table(
            "person_tag",
            "特殊人群标签",
            &["person_id", "tag"],
            vec![
                col("person_id", Utf8, Public, "人员标识"),
                col("tag", Utf8, Special, "标签"),
                col("area_code", Utf8, Public, "所属区划"),
                col("source", Utf8, Special, "认定来源"),
                col("since", Date32, Special, "认定日期"),
            ],
        ),
        table(
            "health_record",
            "健康记录",
            &["person_id", "record_date"],
            vec![
                col("person_id", Utf8, Public, "人员标识"),
                col("record_date", Date32, Public, "记录日期"),
                col("area_code", Utf8, Public, "所属区划"),
                col("health_code", Utf8, Health, "健康码"),
                col("vaccine_doses", Int32, Health, "疫苗剂次"),
                col("test_date", Date32, Health, "检测日期"),
                col("test_result", Utf8, Health, "检测结果"),
                col("chronic_conditions", Utf8, Health, "慢性病"),
            ],
        ),
        table(
            "location_trace",
            "行程轨迹",
            &["person_id", "ts"],
            vec![
                col("person_id", Utf8, Public, "人员标识"),
                col("ts", ts(), Location, "时间"),
                col("area_code", Utf8, Public, "所属区划"),
                col("place", Utf8, Location, "地点").masked(Mask::Community),
                col("lat", Float64, Location, "纬度"),
                col("lon", Float64, Location, "经度"),
                col("via", Utf8, Public, "采集方式"),
            ],
        ),
        table(
            "event",
            "事件",
            &["event_id"],
            vec![
                col("event_id", Utf8, Public, "事件编号"),
                col("area_code", Utf8, Public, "所属区划"),
                col("category", Utf8, Public, "类别"),
                col("description", Utf8, Public, "描述"),
                col("reported_by", Utf8, Identity, "上报人").masked(Mask::Name),
                col("reported_at", ts(), Public, "上报时间"),
                col("status", Utf8, Public, "状态"),
                col("closed_at", ts(), Public, "办结时间"),
                col("platform", Utf8, Public, "来源平台"),
            ],
        ),
        table(
            "party_member",
            "党员",
            &["person_id"],
            vec![
                col("person_id", Utf8, Public, "人员标识"),
                col("area_code", Utf8, Public, "所属区划"),
                col("organisation", Utf8, Public, "所属党组织"),
                col("kind", Utf8, Public, "报到类型"),
                col("registered_at", Date32, Public, "报到日期"),
            ],
        ),
        table(
            "service_record",
            "志愿服务记录",
            &["record_id"],
            vec![
                col("record_id", Utf8, Public, "记录编号"),
                col("area_code", Utf8, Public, "所属区划"),
                col("person_id", Utf8, Public, "人员标识"),
                col("task", Utf8, Public, "服务内容"),
                col("started_at", ts(), Public, "开始时间"),
                col("hours", Float64, Public, "时长"),
                col("rating", Int32, Public, "评分"),
            ],
        ),
        table(
            "sensor_reading",
            "传感器读数",
            &["device_id", "ts"],
            vec![
                col("device_id", Utf8, Public, "设备编号"),
                col("ts", ts(), Public, "时间"),
                col("area_code", Utf8, Public, "所属区划"),
                col("building_id", Utf8, Public, "楼栋编号"),
                col("metric", Utf8, Public, "指标"),
                col("value", Float64, Public, "读数"),
                col("alarm", Boolean, Public, "告警"),
            ],
        ),
    ]
});

/// Every shared table, in a stable order.
pub fn shared_tables() -> &'static [TableDef] {
    &SHARED_TABLES
}

/// One shared table by name.
pub fn shared_table(name: &str) -> Option<&'static TableDef> {
    SHARED_TABLES.iter().find(|t| t.name == name)
}

/// Names of all shared tables, for error messages.
pub fn shared_table_names() -> Vec<&'static str> {
    SHARED_TABLES.iter().map(|t| t.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_provenance_and_its_key() {
        for t in shared_tables() {
            assert!(t.column(SOURCE_COLUMN).is_some(), "{}", t.name);
            assert!(t.column(UPDATED_AT_COLUMN).is_some(), "{}", t.name);
            for k in t.key {
                assert!(t.column(k).is_some(), "{}.{k}", t.name);
            }
        }
    }

    #[test]
    fn sensitive_columns_are_tagged() {
        let person = shared_table("person").unwrap();
        assert_eq!(person.column("id_number").unwrap().tag, Tag::Identity);
        assert_eq!(person.column("phone").unwrap().tag, Tag::Contact);
        let health = shared_table("health_record").unwrap();
        assert_eq!(health.column("health_code").unwrap().tag, Tag::Health);
        let trace = shared_table("location_trace").unwrap();
        assert_eq!(trace.column("lat").unwrap().tag, Tag::Location);
        assert_eq!("health".parse::<Tag>().unwrap(), Tag::Health);
        assert!("secret".parse::<Tag>().is_err());
    }
}
