//! A large synthetic policy for benchmarks: the default policy plus per-community grants for
//! community workers, grid workers and volunteers (area patterns like `420106001003*`), up to
//! a given number of lines, and one community worker and one grid worker per community.

use crate::{DEFAULT_POLICY, Principal, count_lines};

/// The 12-digit code of community `i`: streets of 100 communities in district 420106.
pub fn community_code(i: usize) -> String {
    format!("420106{:03}{:03}", i / 100 + 1, i % 100 + 1)
}

/// The per-community grants for community `code`.
fn grants(code: &str) -> [String; 10] {
    [
        format!(
            "p, community_worker, {code}*, health_record.chronic_conditions, read_clear, service_delivery, -, allow"
        ),
        format!("p, community_worker, {code}*, tag:location, read_masked, *, -, allow"),
        format!("p, community_worker, {code}*, tag:health, read_clear, elderly_care, -, allow"),
        format!(
            "p, community_worker, {code}*, location_trace, read_rows, epidemic_response, -, allow"
        ),
        format!("p, grid_worker, {code}*, tag:location, read_clear, *, emergency, allow"),
        format!("p, grid_worker, {code}*, location_trace, read_rows, *, emergency, allow"),
        format!("p, grid_worker, {code}*, tag:health, read_clear, elderly_care, -, allow"),
        format!("p, grid_worker, {code}*, person.phone, read_masked, *, -, deny"),
        format!("p, volunteer, {code}*, person, read_rows, service_delivery, -, allow"),
        format!("p, volunteer, {code}*, tag:contact, read_clear, service_delivery, -, allow"),
    ]
}

/// The default policy followed by per-community grants over `communities` communities, cut
/// at `total_lines` policy lines.
pub fn large_policy(total_lines: usize, communities: usize) -> String {
    let mut text = DEFAULT_POLICY.to_owned();
    let mut count = count_lines(DEFAULT_POLICY);
    'outer: for i in 0..communities {
        for line in grants(&community_code(i)) {
            if count >= total_lines {
                break 'outer;
            }
            text.push_str(&line);
            text.push('\n');
            count += 1;
        }
    }
    text
}

fn principal(id: String, role: &str, area: String) -> Principal {
    Principal {
        id,
        name: None,
        roles: vec![role.to_owned()],
        area,
    }
}

/// One community worker (`cw<i>`) and one grid worker (`gw<i>`, grid 001 of the community)
/// per community.
pub fn community_principals(communities: usize) -> Vec<Principal> {
    let mut all = Vec::with_capacity(2 * communities);
    for i in 0..communities {
        let code = community_code(i);
        all.push(principal(
            format!("cw{i}"),
            "community_worker",
            code.clone(),
        ));
        all.push(principal(
            format!("gw{i}"),
            "grid_worker",
            format!("{code}001"),
        ));
    }
    all
}
