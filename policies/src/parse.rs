//! Parsing and validating policy text and principals against what the hub knows.
//!
//! Validation collects every problem instead of stopping at the first, so `gridhub policy
//! check` shows them all at once, each with its line number and the valid choices.

use std::collections::HashMap;

use gridhub_catalog::Tag;

use crate::error::{Location, Problem};
use crate::known::{Known, REJECTS};
use crate::{ACTIONS, Principal, ROLES, is_admin_code};

/// Actions about a table's rows: the object is `*`, a table, a source or `_rejects`.
const ROW_ACTIONS: &[&str] = &["read_rows", "read_all_rows", "pull"];
/// Actions about the hub itself: the object is `*`, purpose `*`, emergency `-`.
pub(crate) const HUB_ACTIONS: &[&str] = &["manage_policy", "declare_emergency", "read_audit"];

/// Value of the emergency field for lines that apply always.
pub(crate) const ALWAYS: &str = "-";
/// Value of the emergency field for lines that apply only in a declared emergency.
pub(crate) const EMERGENCY: &str = "emergency";

/// One validated `p` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// 1-based line number in the policy text.
    pub number: usize,
    pub role: String,
    pub area: String,
    pub object: String,
    pub action: String,
    pub purpose: String,
    pub emergency: String,
    pub allow: bool,
}

impl Line {
    /// The rule as Casbin stores it (the fields after `p`).
    pub fn rule(&self) -> Vec<String> {
        vec![
            self.role.clone(),
            self.area.clone(),
            self.object.clone(),
            self.action.clone(),
            self.purpose.clone(),
            self.emergency.clone(),
            if self.allow { "allow" } else { "deny" }.to_owned(),
        ]
    }

    /// `line 12: p, role, …` for explanations.
    pub fn render(&self) -> String {
        format!("line {}: p, {}", self.number, self.rule().join(", "))
    }

    /// Whether this line's area pattern matches a jurisdiction (Casbin's keyMatch).
    pub fn area_matches(&self, area: &str) -> bool {
        match self.area.strip_suffix('*') {
            Some(prefix) => area.starts_with(prefix),
            None => self.area == area,
        }
    }
}

/// Whether `line` is a policy line (not blank, not a `#` comment).
fn is_rule(line: &str) -> bool {
    let line = line.trim();
    !line.is_empty() && !line.starts_with('#')
}

/// The number of policy lines in `text` (blank lines and `#` comments not counted).
pub fn count_lines(text: &str) -> usize {
    text.lines().filter(|l| is_rule(l)).count()
}

/// Parse and validate every line of `text`; the valid lines and all problems found.
pub(crate) fn parse_policy(text: &str, known: &Known) -> (Vec<Line>, Vec<Problem>) {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    let mut seen: HashMap<Vec<String>, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        if !is_rule(raw) {
            continue;
        }
        let number = i + 1;
        let mut problem = |message: String| {
            problems.push(Problem {
                location: Location::Line(number),
                message,
            })
        };
        let fields: Vec<&str> = raw.split(',').map(str::trim).collect();
        match fields[0] {
            "p" => {}
            "g" => {
                problem(
                    "role assignments come from the hub configuration's [[principals]], not \
                     from `g` lines; remove this line"
                        .to_owned(),
                );
                continue;
            }
            other => {
                problem(format!(
                    "unknown line type '{other}' (policy lines start with `p`)"
                ));
                continue;
            }
        }
        if fields.len() != 8 {
            problem(format!(
                "{} fields after `p`, expected 7: role, area, object, action, purpose, \
                 emergency, allow|deny",
                fields.len() - 1
            ));
            continue;
        }
        let line = Line {
            number,
            role: fields[1].to_owned(),
            area: fields[2].to_owned(),
            object: fields[3].to_owned(),
            action: fields[4].to_owned(),
            purpose: fields[5].to_owned(),
            emergency: fields[6].to_owned(),
            allow: fields[7] == "allow",
        };
        let before = problems.len();
        check_line(&line, fields[7], known, &mut problems);
        if problems.len() > before {
            continue;
        }
        match seen.get(&line.rule()) {
            Some(first) => problems.push(Problem {
                location: Location::Line(number),
                message: format!("repeats line {first}; remove one of them"),
            }),
            None => {
                seen.insert(line.rule(), number);
                lines.push(line);
            }
        }
    }
    (lines, problems)
}

/// Every problem of one line with the right number of fields.
fn check_line(line: &Line, effect: &str, known: &Known, problems: &mut Vec<Problem>) {
    let mut problem = |message: String| {
        problems.push(Problem {
            location: Location::Line(line.number),
            message,
        })
    };
    if !ROLES.contains(&line.role.as_str()) {
        problem(format!(
            "unknown role '{}' (roles: {})",
            line.role,
            ROLES.join(", ")
        ));
    }
    if !valid_area_pattern(&line.area) {
        problem(format!(
            "area '{}' is not a pattern: use `*` or an admin-code prefix followed by `*` \
             (e.g. `420106*`)",
            line.area
        ));
    }
    let object = check_object(&line.object, known);
    if let Err(message) = &object {
        problem(message.clone());
    }
    let action = line.action.as_str();
    if !ACTIONS.contains(&action) {
        problem(format!(
            "unknown action '{action}' (actions: {})",
            ACTIONS.join(", ")
        ));
    } else if let Ok(object) = &object
        && let Some(message) = action_fits(action, object, &line.object)
    {
        problem(message);
    }
    if line.purpose != "*" && !known.purposes.contains(&line.purpose) {
        problem(format!(
            "unknown purpose '{}' (purposes: *, {})",
            line.purpose,
            known.purposes.join(", ")
        ));
    }
    if line.emergency != ALWAYS && line.emergency != EMERGENCY {
        problem(format!(
            "emergency field '{}' must be `-` (applies always) or `emergency` (applies only \
             while a declared emergency covers the rows)",
            line.emergency
        ));
    }
    if effect != "allow" && effect != "deny" {
        problem(format!("effect '{effect}' must be `allow` or `deny`"));
    }
    if (HUB_ACTIONS.contains(&action) && (line.purpose != "*" || line.emergency != ALWAYS))
        || (action == "pull" && line.emergency != ALWAYS)
    {
        problem(format!(
            "{action} is not bound to {}: use purpose `*` and emergency `-`",
            if action == "pull" {
                "emergencies"
            } else {
                "purposes or emergencies"
            }
        ));
    }
}

/// What a policy line's object names.
enum Object {
    /// `*`: everything.
    Any,
    /// A shared table or `_rejects`, and whether it has area_code.
    Table { has_area_code: bool },
    /// `<table>.<column>`.
    Column,
    /// `tag:<tag>`.
    Tag,
    /// `source:<source>`: every raw table of a source.
    Source,
}

fn check_object(object: &str, known: &Known) -> Result<Object, String> {
    if object == "*" {
        return Ok(Object::Any);
    }
    if let Some(tag) = object.strip_prefix("tag:") {
        return tag.parse::<Tag>().map(|_| Object::Tag);
    }
    if let Some(source) = object.strip_prefix("source:") {
        return if source == "*" || known.sources.iter().any(|s| s == source) {
            Ok(Object::Source)
        } else {
            Err(format!(
                "unknown source '{source}' (sources: *, {})",
                list(&known.sources)
            ))
        };
    }
    if object == REJECTS {
        let has_area_code = known
            .nameable_table(REJECTS)
            .is_some_and(|t| t.has_area_code);
        return Ok(Object::Table { has_area_code });
    }
    if let Some((table, column)) = object.split_once('.') {
        if known.sources.iter().any(|s| s == table) {
            return Err(format!(
                "raw source columns cannot be named one by one: use `source:{table}` or a \
                 `tag:` object"
            ));
        }
        let Some(info) = known.nameable_table(table) else {
            return Err(format!(
                "unknown table '{table}' in '{object}' (tables: {})",
                known.shared_names().join(", ")
            ));
        };
        return if info.columns.iter().any(|c| c.name == column) {
            Ok(Object::Column)
        } else {
            Err(format!(
                "unknown column '{column}' of table {table} (columns: {})",
                info.columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        };
    }
    match known.nameable_table(object) {
        Some(info) => Ok(Object::Table {
            has_area_code: info.has_area_code,
        }),
        None => Err(format!(
            "unknown object '{object}' (objects: *, a table ({}), <table>.<column>, \
             tag:<tag>, source:<source>, {REJECTS})",
            known.shared_names().join(", ")
        )),
    }
}

/// Why `action` cannot apply to `object`, if it cannot.
fn action_fits(action: &str, object: &Object, name: &str) -> Option<String> {
    if HUB_ACTIONS.contains(&action) {
        return (!matches!(object, Object::Any))
            .then(|| format!("{action} is about the hub, not '{name}': use object `*`"));
    }
    if ROW_ACTIONS.contains(&action) {
        return match object {
            Object::Column | Object::Tag => Some(format!(
                "{action} is about a table's rows, not '{name}': use `*`, a table, \
                 `source:<source>` or {REJECTS}"
            )),
            Object::Table {
                has_area_code: false,
            } if action == "read_rows" => Some(format!(
                "{name} has no area_code, so it has no rows by jurisdiction: use read_all_rows"
            )),
            _ => None,
        };
    }
    None
}

/// `*` or 1 to 15 digits followed by `*`.
fn valid_area_pattern(area: &str) -> bool {
    area == "*"
        || area.strip_suffix('*').is_some_and(|digits| {
            (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
        })
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none configured".to_owned()
    } else {
        items.join(", ")
    }
}

/// Every problem of the principal list: unknown roles, invalid areas, repeated or unusable ids.
pub(crate) fn check_principals(principals: &[Principal]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut seen = HashMap::new();
    for p in principals {
        let mut problem = |message: String| {
            problems.push(Problem {
                location: Location::Principal(p.id.clone()),
                message,
            })
        };
        if p.id.trim().is_empty() {
            problem("empty principal id".to_owned());
        }
        // With `g(r.sub, p.role)` a principal named like a role would get that role's lines.
        if ROLES.contains(&p.id.as_str()) {
            problem("a principal id must not be a role name".to_owned());
        }
        if seen.insert(p.id.as_str(), ()).is_some() {
            problem("principal id is listed twice".to_owned());
        }
        if p.roles.is_empty() {
            problem(format!("has no roles (roles: {})", ROLES.join(", ")));
        }
        for role in &p.roles {
            if !ROLES.contains(&role.as_str()) {
                problem(format!(
                    "unknown role '{role}' (roles: {})",
                    ROLES.join(", ")
                ));
            }
        }
        if !is_admin_code(&p.area) {
            problem(format!(
                "area '{}' is not an admin code (4, 6, 9, 12 or 15 digits: city, district, \
                 street, community, grid)",
                p.area
            ));
        }
    }
    problems
}
