//! Shared test helpers: one principal per role, the default policy compiled, times.

#![allow(dead_code)] // each test binary uses a different part

use chrono::{DateTime, Duration, TimeZone, Utc};
use gridhub_policy::{DEFAULT_MODEL, DEFAULT_POLICY, Emergency, Known, Policy, Principal, ROLES};

/// A sensible jurisdiction per role: the level each role works at.
pub fn area_of(role: &str) -> &'static str {
    match role {
        "city_analyst" | "security_officer" | "auditor" => "4201",
        "district_analyst" | "health_officer" => "420106",
        "street_officer" => "420106001",
        "community_worker" | "property_company" => "420106001003",
        "grid_worker" | "volunteer" => "420106001003007",
        other => panic!("no area for role {other}"),
    }
}

pub fn principal(role: &str) -> Principal {
    Principal {
        id: format!("p_{role}"),
        name: None,
        roles: vec![role.to_owned()],
        area: area_of(role).to_owned(),
    }
}

pub fn principals() -> Vec<Principal> {
    ROLES.iter().map(|r| principal(r)).collect()
}

pub async fn compile(policy: &str) -> Policy {
    Policy::compile(DEFAULT_MODEL, policy, &principals(), &Known::shared())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

pub async fn default_policy() -> Policy {
    compile(DEFAULT_POLICY).await
}

/// The test clock's "now".
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 8, 0, 0).unwrap()
}

pub fn emergency(id: i64, area: &str, hours: i64) -> Emergency {
    Emergency {
        id,
        area: area.to_owned(),
        reason: "outbreak".to_owned(),
        declared_by: "p_security_officer".to_owned(),
        declared_at: now(),
        until: now() + Duration::hours(hours),
        ended_at: None,
        ended_by: None,
    }
}
