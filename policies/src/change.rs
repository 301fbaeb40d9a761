//! What a policy change does: the [`Widening`]s from one compiled policy to another, and the
//! problems of a policy that would lock the hub's administration out
//! ([`Policy::administration_problems`]).
//!
//! Separation of duties (GB/T 39477) needs to know whether a change *widens* anybody's access:
//! such a change waits for a second officer's approval, and a proposer may never widen his own
//! role. [`widenings`] answers it by comparing the decisions of both policies over a finite
//! decision space that is exact for the hub's model:
//!
//! - **principals**: the hub's configured principals. A decision depends on a principal only
//!   through the lines that can match it (the model requires `g(r.sub, p.role)` and
//!   `keyMatch(r.area, p.area)`: the line's role is one of the principal's and its area pattern
//!   matches the jurisdiction) and through the jurisdiction as the row filter. Principals with
//!   the same roles whose matching lines are the same once the area pattern is left out decide
//!   alike up to their jurisdiction, so one of each group is evaluated; a group whose matching
//!   lines are the same in both policies is skipped (its decisions cannot differ).
//! - **tables**: every governed table (shared, raw, `_rejects`), every column of each.
//! - **purposes**: none and each known purpose. A purpose no line names matches only `*`
//!   lines, exactly as no purpose does, so these cover every purpose a query may state.
//! - **emergencies**: none; one covering the whole jurisdiction (the `emergency` lines apply
//!   to every row); one strictly inside it (they open columns for its rows only). An emergency
//!   elsewhere changes nothing, and several emergencies decide as the best of them, so "some
//!   area declared" in these two shapes covers every emergency state.
//! - **hub actions** (`manage_policy`, `declare_emergency`, `read_audit`) and `pull` per table
//!   and purpose.
//!
//! Principals added to the configuration later are outside this space: adding a principal
//! is a configuration change, the operator's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};

use crate::Principal;
use crate::decide::{Access, Policy, RowAccess, TableDecision};
use crate::emergency::Emergency;
use crate::error::{Location, Problem};
use crate::known::Known;
use crate::parse::{HUB_ACTIONS, Line};

/// One way a change widens access, for a group of principals that decide alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widening {
    /// The principals whose access widens (same roles, same matching lines).
    pub principals: Vec<String>,
    /// Their roles.
    pub roles: Vec<String>,
    /// What widens: `rows of person`, `person.phone`, `pull person`, `hub action read_audit`.
    pub what: String,
    /// The table concerned, if any.
    pub table: Option<String>,
    /// The column concerned, if any.
    pub column: Option<String>,
    /// Before: `denied`, `jurisdiction`, `all`, `masked`, `clear`, `allowed`.
    pub from: String,
    /// After.
    pub to: String,
    /// The first condition it was found under (`without a purpose`, `for purpose
    /// epidemic_response in an emergency covering the jurisdiction`), and how many more.
    pub when: String,
    pub more_conditions: usize,
}

impl Widening {
    /// Whether the widening reaches `principal`: one of its roles, or itself.
    pub fn concerns(&self, principal: &Principal) -> bool {
        self.principals.contains(&principal.id)
            || self.roles.iter().any(|r| principal.roles.contains(r))
    }
}

impl fmt::Display for Widening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 3;
        let mut who = self.principals[..self.principals.len().min(SHOWN)].join(", ");
        if self.principals.len() > SHOWN {
            who.push_str(&format!(" and {} more", self.principals.len() - SHOWN));
        }
        write!(
            f,
            "{}: {} → {} for {who} (roles {}) {}",
            self.what,
            self.from,
            self.to,
            self.roles.join(", "),
            self.when
        )?;
        if self.more_conditions > 0 {
            write!(f, " (and under {} more conditions)", self.more_conditions)?;
        }
        Ok(())
    }
}

/// At most `max` widenings, one a line, then how many more: the diff summary kept with a
/// proposal and shown to its approver.
pub fn summarize(widenings: &[Widening], max: usize) -> String {
    let mut out: Vec<String> = widenings.iter().take(max).map(|w| w.to_string()).collect();
    if widenings.len() > max {
        out.push(format!("… and {} more widenings", widenings.len() - max));
    }
    out.join("\n")
}

/// The emergency states the decision space covers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    None,
    Covering,
    Inside,
}

impl State {
    fn label(self) -> &'static str {
        match self {
            State::None => "",
            State::Covering => " in an emergency covering the jurisdiction",
            State::Inside => " in an emergency inside the jurisdiction (its rows)",
        }
    }

    /// A synthetic active emergency of this shape for a jurisdiction (negative ids never
    /// collide with stored ones).
    fn emergencies(self, area: &str, now: DateTime<Utc>) -> Vec<Emergency> {
        let area = match self {
            State::None => return Vec::new(),
            State::Covering => area.to_owned(),
            // Strictly inside: `Emergency::reach` compares prefixes only.
            State::Inside => format!("{area}0"),
        };
        vec![Emergency {
            id: if self == State::Covering { -1 } else { -2 },
            area,
            reason: "decision space of a policy change".to_owned(),
            declared_by: String::new(),
            declared_at: now,
            until: now + Duration::hours(1),
            ended_at: None,
            ended_by: None,
        }]
    }
}

fn row_rank(r: &RowAccess) -> (u8, &'static str) {
    match r {
        RowAccess::Denied => (0, "denied"),
        RowAccess::Jurisdiction(_) => (1, "jurisdiction"),
        RowAccess::All => (2, "all"),
    }
}

fn access_rank(a: Access) -> (u8, &'static str) {
    match a {
        Access::Denied => (0, "denied"),
        Access::Masked => (1, "masked"),
        Access::Clear => (2, "clear"),
    }
}

/// The best access a column decision gives any row: the emergency areas count.
fn best(c: &crate::ColumnDecision) -> Access {
    if !c.emergency_clear_areas.is_empty() {
        Access::Clear
    } else if !c.emergency_masked_areas.is_empty() && c.access == Access::Denied {
        Access::Masked
    } else {
        c.access
    }
}

/// The lines that can match `p`, area pattern left out, sorted: principals with the same roles
/// and the same such lines decide alike (up to their jurisdiction).
fn signature(policy: &Policy, p: &Principal) -> Vec<Vec<String>> {
    let mut rules: Vec<Vec<String>> = policy
        .lines()
        .iter()
        .filter(|l: &&Line| p.roles.contains(&l.role))
        .filter(|l| !policy.is_area_scoped() || l.area_matches(&p.area))
        .map(|l| {
            let mut rule = l.rule();
            rule.remove(1);
            rule
        })
        .collect();
    rules.sort();
    rules
}

/// Collects widenings per (group, what, from, to), keeping the first condition.
#[derive(Default)]
struct Found {
    by_key: BTreeMap<(usize, String, &'static str, &'static str), (usize, Widening)>,
    order: usize,
}

impl Found {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        group: &[&Principal],
        index: usize,
        what: String,
        table: Option<&str>,
        column: Option<&str>,
        from: &'static str,
        to: &'static str,
        when: String,
    ) {
        let key = (index, what.clone(), from, to);
        if let Some((_, w)) = self.by_key.get_mut(&key) {
            w.more_conditions += 1;
            return;
        }
        self.order += 1;
        let mut roles = group[0].roles.clone();
        roles.sort();
        self.by_key.insert(
            key,
            (
                self.order,
                Widening {
                    principals: group.iter().map(|p| p.id.clone()).collect(),
                    roles,
                    what,
                    table: table.map(str::to_owned),
                    column: column.map(str::to_owned),
                    from: from.to_owned(),
                    to: to.to_owned(),
                    when,
                    more_conditions: 0,
                },
            ),
        );
    }

    fn into_list(self) -> Vec<Widening> {
        let mut all: Vec<(usize, Widening)> = self.by_key.into_values().collect();
        all.sort_by_key(|(order, _)| *order);
        all.into_iter().map(|(_, w)| w).collect()
    }
}

/// What principals that decide alike share: roles, matching lines in the old and the new
/// policy (area patterns left out), and the jurisdiction when the model is not area-scoped.
type GroupKey = (Vec<String>, Vec<Vec<String>>, Vec<Vec<String>>, String);

/// Every way `new` widens access compared with `old`, over the hub's `principals`, the
/// governed tables of `known`, no purpose and each purpose, and the emergency states (see the
/// module docs for why this space is exact). Empty when the change only narrows or changes
/// nothing. `now` dates the synthetic emergencies.
pub fn widenings(
    old: &Policy,
    new: &Policy,
    principals: &[Principal],
    known: &Known,
    now: DateTime<Utc>,
) -> Vec<Widening> {
    // Group principals that decide alike in both policies.
    let mut groups: BTreeMap<GroupKey, Vec<&Principal>> = BTreeMap::new();
    for p in principals {
        let (before, after) = (signature(old, p), signature(new, p));
        if before == after {
            continue;
        }
        let mut roles = p.roles.clone();
        roles.sort();
        roles.dedup();
        // Without area-scoped models the jurisdiction may matter in ways lines do not show.
        let area = if old.is_area_scoped() && new.is_area_scoped() {
            String::new()
        } else {
            p.area.clone()
        };
        groups
            .entry((roles, before, after, area))
            .or_default()
            .push(p);
    }

    let mut purposes: Vec<Option<&str>> = vec![None];
    purposes.extend(known.purposes.iter().map(|p| Some(p.as_str())));
    let mut found = Found::default();
    for (index, group) in groups.values().enumerate() {
        let p = group[0];
        for action in HUB_ACTIONS {
            if new.allows(p, action) && !old.allows(p, action) {
                found.add(
                    group,
                    index,
                    format!("hub action {action}"),
                    None,
                    None,
                    "denied",
                    "allowed",
                    String::new(),
                );
            }
        }
        for table in &known.tables {
            for purpose in &purposes {
                let when = match purpose {
                    None => "without a purpose".to_owned(),
                    Some(x) => format!("for purpose {x}"),
                };
                if new.may_pull(p, *purpose, table) && !old.may_pull(p, *purpose, table) {
                    found.add(
                        group,
                        index,
                        format!("pull {}", table.name),
                        Some(&table.name),
                        None,
                        "denied",
                        "allowed",
                        when.clone(),
                    );
                }
                for state in [State::None, State::Covering, State::Inside] {
                    let emergencies = state.emergencies(&p.area, now);
                    let before = old.decide(p, *purpose, &emergencies, now, table);
                    let after = new.decide(p, *purpose, &emergencies, now, table);
                    compare(
                        &mut found,
                        group,
                        index,
                        &before,
                        &after,
                        format!("{when}{}", state.label()),
                    );
                }
            }
        }
    }
    found.into_list()
}

fn compare(
    found: &mut Found,
    group: &[&Principal],
    index: usize,
    before: &TableDecision,
    after: &TableDecision,
    when: String,
) {
    let (b, b_label) = row_rank(&before.rows);
    let (a, a_label) = row_rank(&after.rows);
    if a > b {
        found.add(
            group,
            index,
            format!("rows of {}", after.table),
            Some(&after.table),
            None,
            b_label,
            a_label,
            when.clone(),
        );
    }
    for new_col in &after.columns {
        let Some(old_col) = before.column(&new_col.column) else {
            continue;
        };
        for (old_access, new_access) in [
            (old_col.access, new_col.access),
            (best(old_col), best(new_col)),
        ] {
            let (b, b_label) = access_rank(old_access);
            let (a, a_label) = access_rank(new_access);
            if a > b {
                found.add(
                    group,
                    index,
                    format!("{}.{}", after.table, new_col.column),
                    Some(&after.table),
                    Some(&new_col.column),
                    b_label,
                    a_label,
                    when.clone(),
                );
                break;
            }
        }
    }
}

/// The hub actions without which the hub cannot be administered: changing the policy, and
/// reading the audit log.
pub const ADMINISTRATION: &[(&str, &str)] = &[
    (
        "manage_policy",
        "nobody could change the policy again (rollback, apply and history would be refused \
         to everyone)",
    ),
    ("read_audit", "nobody could read or verify the audit log"),
];

impl Policy {
    /// Why this policy would lock the hub's administration out: it has no lines, or none of
    /// the hub's `principals` may `manage_policy`, or none may `read_audit`. Empty when it is
    /// administrable. A hub without principals has no administration to lock out (every query
    /// runs as its operator), so only the empty policy is refused then.
    pub fn administration_problems(&self, principals: &[Principal]) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.line_count() == 0 {
            problems.push(Problem {
                location: Location::Policy,
                message: "the policy has no lines: it would deny everything to everyone, \
                          the administration of policies and the audit log included"
                    .to_owned(),
            });
            return problems;
        }
        if principals.is_empty() {
            return problems;
        }
        let ids: BTreeSet<&str> = principals.iter().map(|p| p.id.as_str()).collect();
        for (action, consequence) in ADMINISTRATION {
            if !principals.iter().any(|p| self.allows(p, action)) {
                problems.push(Problem {
                    location: Location::Policy,
                    message: format!(
                        "no principal may {action} under it (principals: {}), so {consequence}; \
                         keep a line such as `p, security_officer, *, *, {action}, *, -, allow`",
                        ids.iter().copied().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        }
        problems
    }
}
