//! The showcase queries `gridhub demo` runs over the hub, each answered by the truth.

use serde::Serialize;

/// One showcase query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Showcase {
    /// Stable identifier, also the name of the matching [`crate::GroundTruth`] field.
    pub id: &'static str,
    /// Chinese and English title.
    pub title: &'static str,
    /// DataFusion SQL over the hub (shared tables, `src_<source>."<table>"`, `_rejects`).
    pub sql: &'static str,
}

/// Showcase 1 — [`crate::GroundTruth::elderly_walkup`].
pub const ELDERLY_WALKUP_SQL: &str = r#"-- Elderly residents living alone on floor 4 or higher of a building without a lift
SELECT p.name,
       p.id_number,
       p.area_code        AS grid,
       b.address,
       h.floor,
       b.property_company
FROM person_tag t
JOIN person   p ON p.person_id   = t.person_id
JOIN house    h ON h.house_id    = p.house_id
JOIN building b ON b.building_id = h.building_id
WHERE t.tag = 'elderly_alone'
  AND h.floor >= 4
  AND b.has_elevator = false
ORDER BY grid, h.floor DESC, p.id_number"#;

/// Showcase 2 — [`crate::GroundTruth::health_latest`].
pub const HEALTH_LATEST_SQL: &str = r#"-- Health codes per community on the latest record date
WITH latest AS (
    SELECT max(record_date) AS record_date FROM health_record
)
SELECT substr(h.area_code, 1, 12)   AS community,
       a.name                       AS community_name,
       h.health_code,
       count(DISTINCT h.person_id)  AS persons
FROM health_record h
JOIN latest l ON h.record_date = l.record_date
LEFT JOIN admin_unit a ON a.code = substr(h.area_code, 1, 12)
GROUP BY substr(h.area_code, 1, 12), a.name, h.health_code
ORDER BY community, h.health_code"#;

/// Showcase 3 — [`crate::GroundTruth::phone_mismatch`].
pub const PHONE_MISMATCH_SQL: &str = r#"-- Residents whose phone differs between the community register and a property company
WITH register AS (
    SELECT gh_resident_id("身份证号") AS id_number,
           gh_phone("联系电话")       AS phone
    FROM src_community_register."居民"
),
company AS (
    SELECT 'property_a'               AS source,
           gh_resident_id("证件号码") AS id_number,
           gh_phone("手机号")         AS phone
    FROM src_property_a."住户"
    UNION ALL
    SELECT 'property_b',
           gh_resident_id("身份证"),
           gh_phone("电话")
    FROM src_property_b."住户信息"
)
SELECT c.source,
       r.id_number,
       r.phone AS register_phone,
       c.phone AS company_phone
FROM register r
JOIN company c ON c.id_number = r.id_number
WHERE r.phone <> c.phone
ORDER BY c.source, r.id_number"#;

/// Showcase 4 — [`crate::GroundTruth::rejects_per_source`].
pub const REJECTS_SQL: &str = r#"-- Rows each source failed to deliver cleanly
SELECT source,
       count(*) AS rejected_rows
FROM _rejects
GROUP BY source
ORDER BY source"#;

/// The showcase queries, in the order the demo runs them.
pub fn showcase_queries() -> Vec<Showcase> {
    vec![
        Showcase {
            id: "elderly_walkup",
            title: "无电梯楼4层及以上的独居老人 / Elderly living alone on floor ≥ 4 without a lift",
            sql: ELDERLY_WALKUP_SQL,
        },
        Showcase {
            id: "health_latest",
            title: "最新一天各社区健康码分布 / Health codes per community on the latest day",
            sql: HEALTH_LATEST_SQL,
        },
        Showcase {
            id: "phone_mismatch",
            title: "社区登记与物业电话不一致的居民 / Residents whose phone differs between register and property company",
            sql: PHONE_MISMATCH_SQL,
        },
        Showcase {
            id: "rejects_per_source",
            title: "各数据源被拒绝的行数 / Rejected rows per source",
            sql: REJECTS_SQL,
        },
    ]
}
