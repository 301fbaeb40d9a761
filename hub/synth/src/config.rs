//! The hub config (`gridhub.toml`, format of docs/config.md) for the synthetic sources:
//! `[hub]`, one `[[sources]]` per source, precedence (一数一源) and one `[[mappings]]` per
//! source table, rendered from the same table specs the writers and the truth use.

use std::fmt::Write;

use crate::tables::{Col, TableId};

/// The demo's pseudonym key. Demo only: anyone can read it here, so person_ids of the
/// demo data are not protected. Real deployments set their own secret key.
pub const DEMO_PSEUDONYM_KEY: &str = "gridhub-demo-only-key-do-not-use-in-production";

/// How a source is configured.
pub(crate) struct SourceSpec {
    pub name: &'static str,
    pub kind: &'static str,
    pub label: &'static str,
    /// `path = …` (sqlite, xlsx, single-file parquet).
    pub path: Option<&'static str>,
    pub encoding: Option<&'static str>,
    /// `tables = { name = "file or sheet", … }`, in this order.
    pub tables: &'static [(TableId, &'static str)],
}

pub(crate) const SOURCES: [SourceSpec; 7] = [
    SourceSpec {
        name: "community_register",
        kind: "sqlite",
        label: "社区居民信息登记系统",
        path: Some("community_register.sqlite"),
        encoding: None,
        tables: &[],
    },
    SourceSpec {
        name: "property_a",
        kind: "csv",
        label: "武汉安居物业 住户台账导出 (GBK)",
        path: None,
        encoding: Some("gbk"),
        tables: &[
            (TableId::PaResident, "property_a/住户.csv"),
            (TableId::PaBuilding, "property_a/楼栋.csv"),
        ],
    },
    SourceSpec {
        name: "property_b",
        kind: "xlsx",
        label: "湖北楚天物业 住户与楼宇信息表",
        path: Some("property_b.xlsx"),
        encoding: None,
        tables: &[
            (TableId::PbResident, "住户信息"),
            (TableId::PbBuilding, "楼宇信息"),
        ],
    },
    SourceSpec {
        name: "district_health",
        kind: "parquet",
        label: "区卫健 健康档案与行程数据",
        path: None,
        encoding: None,
        tables: &[
            (
                TableId::HealthRecord,
                "district_health/health_record.parquet",
            ),
            (
                TableId::LocationTrace,
                "district_health/location_trace.parquet",
            ),
        ],
    },
    SourceSpec {
        name: "city_population",
        kind: "csv",
        label: "市人口基础信息库",
        path: None,
        encoding: None,
        tables: &[
            (TableId::CpAdmin, "city_population/admin_unit.csv"),
            (TableId::CpPerson, "city_population/person.csv"),
            (TableId::CpHouse, "city_population/house.csv"),
            (TableId::CpBuilding, "city_population/building.csv"),
        ],
    },
    SourceSpec {
        name: "party_service",
        kind: "csv",
        label: "党员双报到与志愿服务平台",
        path: None,
        encoding: None,
        tables: &[
            (TableId::PartyMember, "party_service/party_member.csv"),
            (TableId::ServiceRecord, "party_service/service_record.csv"),
        ],
    },
    SourceSpec {
        name: "sensor_feed",
        kind: "parquet",
        label: "智慧社区物联感知平台",
        path: Some("sensor_feed/sensor_reading.parquet"),
        encoding: None,
        tables: &[],
    },
];

/// The file (relative to the data directory) a source table is written to.
pub(crate) fn file_of(t: TableId) -> &'static str {
    let spec = t.spec();
    let source = SOURCES
        .iter()
        .find(|s| s.name == spec.source)
        .expect("every table has a source");
    match source.kind {
        "sqlite" | "xlsx" => source.path.expect("sqlite/xlsx have a path"),
        _ => source
            .tables
            .iter()
            .find(|(id, _)| *id == t)
            .map(|(_, f)| *f)
            .or(source.path)
            .expect("every table has a file"),
    }
}

/// A TOML basic string.
pub(crate) fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, quoted otherwise.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_string()
    } else {
        q(s)
    }
}

fn column_spec(col: &Col) -> String {
    match col {
        Col::From(c) => format!("{{ from = {} }}", q(c)),
        Col::Norm(c, n) => format!("{{ from = {}, normalize = {} }}", q(c), q(n)),
        Col::Map(c, pairs) => {
            let entries: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{} = {}", q(k), q(v)))
                .collect();
            format!("{{ from = {}, map = {{ {} }} }}", q(c), entries.join(", "))
        }
        Col::Sql(s) => format!("{{ sql = {} }}", q(s)),
        Col::Value(v) => format!("{{ value = {} }}", q(v)),
    }
}

/// The demo's principals: (id, name, role, jurisdiction), one per role and a second security
/// officer (a policy change that widens access needs another officer's approval).
pub const DEMO_PRINCIPALS: [(&str, &str, &str, &str); 11] = [
    ("wang.city", "王市", "city_analyst", "4201"),
    ("li.district", "李区", "district_analyst", "420106"),
    ("zhao.street", "赵街", "street_officer", "420106009"),
    ("chen.community", "陈社", "community_worker", "420106009001"),
    ("liu.grid", "刘网", "grid_worker", "420106009001001"),
    ("sun.health", "孙卫", "health_officer", "420106"),
    ("zhou.volunteer", "周志", "volunteer", "420106009001002"),
    ("anju.property", "安居物业", "property_company", "420106009"),
    ("qian.security", "钱安", "security_officer", "4201"),
    ("sun.security", "孙保", "security_officer", "4201"),
    ("wu.audit", "吴审", "auditor", "4201"),
];

/// The hub config for the synthetic sources, relative to the data directory.
pub fn hub_config() -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# gridhub config for the synthetic demo city (written by `gridhub demo`, gridhub-synth).\n\
         # Format: docs/config.md. Paths are relative to this file.\n"
    );
    let _ = writeln!(s, "[hub]");
    let _ = writeln!(s, "state_dir = \".gridhub\"");
    let _ = writeln!(
        s,
        "# DEMO ONLY: a published key protects nothing. Set your own secret key\n\
         # (or GRIDHUB_PSEUDONYM_KEY) for real data."
    );
    let _ = writeln!(s, "pseudonym_key = {}", q(DEMO_PSEUDONYM_KEY));
    let _ = writeln!(
        s,
        "# The audit log's key: random, written by `gridhub demo` next to this file, outside\n\
         # the state dir (docs/audit.md)."
    );
    let _ = writeln!(s, "audit_key_file = {}", q(crate::AUDIT_KEY_FILE));
    let _ = writeln!(
        s,
        "\n# `gridhub serve`: plaintext on loopback for the demo (deploy/README.md: TLS, mTLS).\n\
         [server]\n\
         listen = \"127.0.0.1:50051\"\n\
         metrics_listen = \"127.0.0.1:9464\""
    );

    let _ = writeln!(
        s,
        "\n# Who may query, one principal per role of policies/policy.csv (docs/domain.md, \"Roles\"), and a\n\
         # second security officer: a policy change that widens access needs another one's approval.\n\
         # area is the jurisdiction: an admin code; rows are filtered to codes starting with it."
    );
    for (id, name, role, area) in DEMO_PRINCIPALS {
        let _ = writeln!(s, "\n[[principals]]");
        let _ = writeln!(s, "id = {}", q(id));
        let _ = writeln!(s, "name = {}", q(name));
        let _ = writeln!(s, "roles = [{}]", q(role));
        let _ = writeln!(s, "area = {}", q(area));
    }

    for src in &SOURCES {
        let _ = writeln!(s, "\n[[sources]]");
        let _ = writeln!(s, "name = {}", q(src.name));
        let _ = writeln!(s, "type = {}", q(src.kind));
        let _ = writeln!(s, "label = {}", q(src.label));
        if let Some(e) = src.encoding {
            let _ = writeln!(s, "encoding = {}", q(e));
        }
        if let Some(p) = src.path {
            let _ = writeln!(s, "path = {}", q(p));
        }
        if !src.tables.is_empty() {
            let entries: Vec<String> = src
                .tables
                .iter()
                .map(|(t, f)| format!("{} = {}", key(t.spec().table), q(f)))
                .collect();
            let _ = writeln!(s, "tables = {{ {} }}", entries.join(", "));
        }
    }

    let _ = writeln!(
        s,
        "\n# 一数一源: the city population base is authoritative for identity; the property\n\
         # companies know the current phone numbers and their own buildings best."
    );
    let _ = writeln!(s, "[[tables]]");
    let _ = writeln!(s, "name = \"person\"");
    let _ = writeln!(
        s,
        "precedence = [\"city_population\", \"community_register\", \"property_a\", \"property_b\"]"
    );
    let _ = writeln!(s, "[tables.column_precedence]");
    let _ = writeln!(
        s,
        "phone = [\"property_a\", \"property_b\", \"community_register\", \"city_population\"]"
    );
    let _ = writeln!(s, "\n[[tables]]");
    let _ = writeln!(s, "name = \"building\"");
    let _ = writeln!(
        s,
        "precedence = [\"property_a\", \"property_b\", \"city_population\"]"
    );

    for t in TableId::ALL {
        let spec = t.spec();
        let _ = writeln!(s, "\n[[mappings]]");
        let _ = writeln!(s, "source = {}", q(spec.source));
        let _ = writeln!(s, "table = {}", q(spec.table));
        let _ = writeln!(s, "target = {}", q(spec.target));
        let _ = writeln!(s, "row_id = {}", q(spec.row_id_name()));
        let _ = writeln!(s, "[mappings.columns]");
        let width = spec.map.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
        for (target, col) in spec.map {
            let _ = writeln!(s, "{:width$} = {}", key(target), column_spec(col));
        }
    }
    s
}
