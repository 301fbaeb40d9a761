//! The default policy's decision for every role × shared table × column × purpose ×
//! emergency state, checked against (a) docs/domain.md's role table written out by hand below,
//! independently of `policy.csv`, and (b) the checked-in `golden_decisions.csv`
//! (regenerate with `GRIDHUB_BLESS=1 cargo test -p gridhub-policy --test golden`).

mod common;

use gridhub_catalog::{Tag, shared_tables};
use gridhub_policy::{Access, PURPOSES, ROLES, RowAccess, TableInfo};

use common::{default_policy, emergency, now, principal};

/// Roles that read no resident data at all.
const NO_DATA: &[&str] = &["security_officer", "auditor"];

/// docs/domain.md's role table: access to a tag outside purposes and emergencies.
fn base(role: &str, tag: Tag) -> Access {
    use Access::{Clear as C, Denied as D, Masked as M};
    use Tag::*;
    if NO_DATA.contains(&role) {
        return D;
    }
    match (role, tag) {
        (_, Public) => C,
        ("city_analyst" | "district_analyst", Identity | Contact | Health) => M,
        ("city_analyst" | "district_analyst", Location | Special) => D,
        ("street_officer", Identity | Contact | Health | Special) => M,
        ("street_officer", Location) => D,
        ("community_worker" | "grid_worker", Identity | Contact | Special) => C,
        ("community_worker" | "grid_worker", Health) => M,
        ("community_worker" | "grid_worker", Location) => D,
        ("health_officer", Identity | Contact) => C,
        // "clear for epidemic_response": masked (null) for any other purpose.
        ("health_officer", Health) => M,
        ("health_officer", Location | Special) => D,
        ("volunteer", Identity | Contact) => M,
        ("volunteer", Health | Location | Special) => D,
        // "clear for its own rows": shared tables merge sources, so masked here.
        ("property_company", Identity) => M,
        ("property_company", Contact) => C,
        ("property_company", Health | Location | Special) => D,
        (role, tag) => panic!("role table has no entry for {role} {tag}"),
    }
}

/// docs/domain.md's purpose and emergency refinements of the role table.
fn upgraded(role: &str, tag: Tag, purpose: Option<&str>, emergency: bool) -> bool {
    let epidemic = purpose == Some("epidemic_response");
    match (role, tag) {
        ("community_worker", Tag::Health) => epidemic && emergency,
        ("community_worker", Tag::Location) => emergency,
        ("health_officer", Tag::Health) => epidemic,
        ("health_officer", Tag::Location) => emergency,
        _ => false,
    }
}

/// One column opened for one purpose: chronic conditions for elderly care.
fn column_upgraded(role: &str, table: &str, column: &str, purpose: Option<&str>) -> bool {
    matches!(role, "community_worker" | "grid_worker")
        && (table, column) == ("health_record", "chronic_conditions")
        && purpose == Some("elderly_care")
}

fn access(
    role: &str,
    table: &str,
    column: &str,
    tag: Tag,
    purpose: Option<&str>,
    emergency: bool,
) -> Access {
    if upgraded(role, tag, purpose, emergency) || column_upgraded(role, table, column, purpose) {
        Access::Clear
    } else {
        base(role, tag)
    }
}

/// Tables closed to a role beyond its denied tags: not theirs to see (README explains).
fn closed_by_hand(role: &str, table: &str) -> bool {
    match role {
        "volunteer" => matches!(table, "party_member" | "sensor_reading"),
        "property_company" => matches!(table, "party_member" | "service_record"),
        _ => false,
    }
}

/// A table whose sensitive columns stay denied to the role in every purpose and emergency
/// is closed whole: its rows alone would reveal who carries the tag.
fn closed_by_tag(role: &str, table: &TableInfo) -> bool {
    let sensitive: Vec<_> = table
        .columns
        .iter()
        .filter(|c| c.tag != Tag::Public)
        .collect();
    let single_tag = sensitive.iter().all(|c| c.tag == sensitive[0].tag);
    let purposes = std::iter::once(None).chain(PURPOSES.iter().map(|p| Some(*p)));
    !sensitive.is_empty()
        && single_tag
        && table.name != "person"
        && purposes
            .flat_map(|p| [(p, false), (p, true)])
            .all(|(p, e)| {
                sensitive
                    .iter()
                    .all(|c| access(role, &table.name, &c.name, c.tag, p, e) == Access::Denied)
            })
}

fn expected_rows(role: &str, table: &TableInfo) -> RowAccess {
    if NO_DATA.contains(&role) {
        RowAccess::Denied
    } else if !table.has_area_code {
        RowAccess::All
    } else if closed_by_hand(role, &table.name) || closed_by_tag(role, table) {
        RowAccess::Denied
    } else {
        RowAccess::Jurisdiction(common::area_of(role).to_owned())
    }
}

fn rows_name(rows: &RowAccess) -> &'static str {
    match rows {
        RowAccess::Jurisdiction(_) => "jurisdiction",
        RowAccess::All => "all",
        RowAccess::Denied => "denied",
    }
}

fn access_name(a: Access) -> &'static str {
    match a {
        Access::Clear => "clear",
        Access::Masked => "masked",
        Access::Denied => "denied",
    }
}

#[tokio::test]
async fn default_policy_matches_role_table_and_golden_file() {
    let policy = default_policy().await;
    let tables: Vec<TableInfo> = shared_tables().iter().map(TableInfo::shared).collect();
    let purposes: Vec<Option<&str>> = std::iter::once(None)
        .chain(PURPOSES.iter().map(|p| Some(*p)))
        .collect();
    let mut csv = String::from("role,table,column,purpose,emergency,rows,access\n");
    let mut mismatches = Vec::new();
    for role in ROLES {
        let who = principal(role);
        // Declared for the whole city: covers every test principal's jurisdiction.
        let covering = [emergency(1, "4201", 24)];
        for table in &tables {
            for &purpose in &purposes {
                for (state, emergencies) in [("none", &[][..]), ("covering", &covering[..])] {
                    let d = policy.decide(&who, purpose, emergencies, now(), table);
                    let rows = expected_rows(role, table);
                    if d.rows != rows {
                        mismatches.push(format!(
                            "{role} {} {purpose:?} {state}: rows {:?}, expected {rows:?} ({:?})",
                            table.name, d.rows, d.reason
                        ));
                    }
                    for (c, col) in table.columns.iter().zip(&d.columns) {
                        assert_eq!(c.name, col.column);
                        let want = if rows == RowAccess::Denied {
                            Access::Denied
                        } else {
                            access(
                                role,
                                &table.name,
                                &c.name,
                                c.tag,
                                purpose,
                                state == "covering",
                            )
                        };
                        if col.access != want {
                            mismatches.push(format!(
                                "{role} {}.{} ({}) {purpose:?} {state}: {:?}, expected {want:?} \
                                 (lines {:?})",
                                table.name, c.name, c.tag, col.access, col.lines
                            ));
                        }
                        assert!(col.emergency_clear_areas.is_empty());
                        assert_eq!(col.hint.is_some(), col.access != Access::Clear);
                        csv.push_str(&format!(
                            "{role},{},{},{},{state},{},{}\n",
                            table.name,
                            c.name,
                            purpose.unwrap_or("-"),
                            rows_name(&d.rows),
                            access_name(col.access)
                        ));
                    }
                }
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} decisions differ from docs/domain.md's role table:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden_decisions.csv");
    if std::env::var("GRIDHUB_BLESS").as_deref() == Ok("1") {
        std::fs::write(&path, &csv).unwrap();
        return;
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (create it with GRIDHUB_BLESS=1)", path.display()));
    let differing: Vec<String> = golden
        .lines()
        .zip(csv.lines())
        .filter(|(g, c)| g != c)
        .take(20)
        .map(|(g, c)| format!("  golden: {g}\n  now:    {c}"))
        .collect();
    assert!(
        differing.is_empty() && golden.lines().count() == csv.lines().count(),
        "decisions differ from {} ({} vs {} lines; rerun with GRIDHUB_BLESS=1 if intended):\n{}",
        path.display(),
        golden.lines().count(),
        csv.lines().count(),
        differing.join("\n")
    );
}
