//! The compiled policy: Casbin verdicts shared by the requests that see the same candidate
//! lines, and per-table decisions cached by (roles, jurisdiction, purpose, relevant
//! emergencies, table).
//!
//! Casbin-rs evaluates its matcher once per policy line for every enforce call (about 30 ms
//! at 10,000 lines), so a call must see only the lines that can match it. Without the
//! shared verdicts below, each (jurisdiction, roles, action) gets its own enforcer holding only
//! the lines whose area pattern matches the jurisdiction, whose role is one of the roles and
//! whose action is that action (the model requires `keyMatch(r.area, p.area)`,
//! `g(r.sub, p.role)` and `r.act == p.act`, so no other line can ever match), built on first
//! use. A table decision then makes as few calls as it can: one or two for the rows, then one
//! or two per distinct tag of the table's columns (columns no line names individually share
//! their tag's decision), one or two more per tag when an emergency lies inside the
//! jurisdiction. The finished [`TableDecision`] is cached; the engine never enforces per row.
//!
//! Verdicts are shared across jurisdictions and principals. When the matcher also requires
//! the object to match (`p.obj == "*" || p.obj == r.tbl || … || keyMatch(r.tbl, p.obj)`) and
//! names `r.sub` and `r.area` only in its role and area terms, an enforce call's verdict
//! depends on nothing but the lines that could match its object (in the jurisdiction, of the
//! roles and the action) and the request's object, action, purpose and emergency fields: two
//! principals whose calls see the same such lines get the same verdict, whoever and wherever
//! they are. Verdicts are cached by exactly that, so a principal's first query mostly finds
//! its verdicts made: only a call whose object meets its own jurisdiction's lines still goes
//! to Casbin, and then to a pooled enforcer refilled with just those lines (no enforcer is
//! built per jurisdiction: building one, a rhai engine and a compiled matcher, costs more
//! than the call). [`Policy::prepare`] makes every role set's verdicts when a policy is
//! applied.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, Model};
use chrono::{DateTime, Utc};
use gridhub_catalog::Tag;

use crate::Principal;
use crate::emergency::{Emergency, Reach};
use crate::error::{Location, PolicyError, Problem, Result};
use crate::known::{Known, TableInfo};
use crate::parse::{ALWAYS, EMERGENCY, Line, check_principals, parse_policy};

/// How a column may be read.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// The value as stored.
    Clear,
    /// The tag's mask (docs/domain.md, "Masks": `420106********1234`, `欧阳*`, `138****5678`, null …).
    Masked,
    /// Not readable: the engine leaves the column out.
    Denied,
}

impl Access {
    fn rank(self) -> u8 {
        match self {
            Access::Denied => 0,
            Access::Masked => 1,
            Access::Clear => 2,
        }
    }
}

/// The decision for one column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDecision {
    pub column: String,
    pub tag: Tag,
    /// Access outside any emergency (or inside one, when an emergency covers the whole
    /// jurisdiction: then every row is in it and this already is the emergency decision).
    pub access: Access,
    /// Clear for rows whose area_code starts with one of these: active emergencies inside the
    /// jurisdiction under which the policy opens this column to clear reading.
    pub emergency_clear_areas: Vec<String>,
    /// Masked (rather than denied) for rows whose area_code starts with one of these: active
    /// emergencies inside the jurisdiction under which the policy opens this column masked.
    /// Empty unless `access` is [`Access::Denied`]; ignoring it only under-grants.
    pub emergency_masked_areas: Vec<String>,
    /// The policy lines that decided (`line 12: p, …`), for `gridhub policy explain`.
    pub lines: Vec<String>,
    /// When not clear: what would allow a clear (or masked) read, one sentence.
    pub hint: Option<String>,
}

/// Which rows of a table a principal may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowAccess {
    /// Rows whose area_code starts with this code (the principal's jurisdiction).
    Jurisdiction(String),
    /// The whole table.
    All,
    /// None: the table is closed to the principal.
    Denied,
}

/// The decision for one table: rows, then every column in the table's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDecision {
    pub table: String,
    pub rows: RowAccess,
    /// The policy lines that decided the rows.
    pub row_lines: Vec<String>,
    pub columns: Vec<ColumnDecision>,
    /// When rows are denied: why, and what would allow them.
    pub reason: Option<String>,
}

impl TableDecision {
    /// A table closed to the principal: no rows, every column denied with `reason` as hint.
    fn closed(table: &TableInfo, row_lines: Vec<String>, reason: String) -> TableDecision {
        TableDecision {
            table: table.name.clone(),
            rows: RowAccess::Denied,
            row_lines,
            columns: table
                .columns
                .iter()
                .map(|c| ColumnDecision {
                    column: c.name.clone(),
                    tag: c.tag,
                    access: Access::Denied,
                    emergency_clear_areas: Vec::new(),
                    emergency_masked_areas: Vec::new(),
                    lines: Vec::new(),
                    hint: Some(reason.clone()),
                })
                .collect(),
            reason: Some(reason),
        }
    }

    /// The decision for one column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnDecision> {
        self.columns.iter().find(|c| c.column == name)
    }
}

/// The effects casbin-rs 2.20's `DefaultEffector` implements (as its model stores them,
/// `p.eft` escaped to `p_eft`); any other effect panics inside `enforce`.
const SUPPORTED_EFFECTS: &[&str] = &[
    "some(where (p_eft == allow)) && !some(where (p_eft == deny))",
    "some(where (p_eft == allow))",
    "!some(where (p_eft == deny))",
    "priority(p_eft) || deny",
];

/// The request fields gridhub sends, in order (the model's request_definition must have 8).
const REQUEST_FIELDS: &str = "sub, area, tbl, col, tag, act, purpose, emg";

/// The cache is cleared when it reaches this many decisions (a bound, not an LRU: decisions
/// are cheap to recompute compared with the memory of an unbounded map).
const CACHE_CAPACITY: usize = 100_000;

/// Shared verdicts are dropped, all at once, when this many are held.
const VERDICT_CAPACITY: usize = 65_536;

/// Enforcers (one per jurisdiction and action) are dropped, all at once, when this many are
/// held.
const ENFORCER_CAPACITY: usize = 8_192;

/// Which lines an enforcer holds: (jurisdiction, action, the principal's roles sorted).
type EnforcerKey = (String, String, Vec<String>);

/// What a decision is cached by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DecisionKey {
    /// The principal's roles, sorted: a decision depends on who asks only through their
    /// roles and jurisdiction, so principals sharing both share decisions.
    roles: Vec<String>,
    area: String,
    purpose: Option<String>,
    /// Ids of the active emergencies relevant to the principal's jurisdiction, sorted.
    emergencies: Vec<i64>,
    table: TableInfo,
}

/// The object fields of one request: table object, column object, tag object.
struct Req<'a> {
    tbl: &'a str,
    col: &'a str,
    tag: &'a str,
}

/// The subject fields of one request.
struct Who<'a> {
    principal: &'a Principal,
    /// The stated purpose, empty when none.
    purpose: &'a str,
}

/// What a shared verdict is cached by: the candidate lines of the call (those that could
/// match its object, in the principal's jurisdiction, of its roles and its action) and the
/// request's fields other than subject and jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct VerdictKey {
    lines: Vec<usize>,
    roles: Vec<String>,
    tbl: String,
    col: String,
    tag: String,
    action: String,
    purpose: String,
    emergency: bool,
}

/// The outcome of one enforce call.
#[derive(Clone)]
struct Verdict {
    allowed: bool,
    /// Indices into `Policy::lines` of the lines Casbin reports as deciding.
    lines: Vec<usize>,
    /// Casbin failed (the request is then denied).
    error: Option<String>,
}

/// The decision of a group of columns: one tag, or one individually named column.
#[derive(Clone)]
struct GroupDecision {
    access: Access,
    /// Better access for rows in emergencies inside the jurisdiction, if the policy gives it.
    emergency_access: Option<Access>,
    lines: Vec<String>,
    hint: Option<String>,
}

/// A compiled policy: immutable, shared by every query (`Send + Sync`).
pub struct Policy {
    text: String,
    lines: Vec<Line>,
    /// Rule fields → index into `lines`, to name the lines Casbin explains with.
    by_rule: HashMap<Vec<String>, usize>,
    /// `<table>.<column>` objects some line names: these columns get their own decision.
    named_columns: HashSet<String>,
    /// Indices into `lines` of the allow lines by (action, object), in policy order: what a
    /// hint looks through (not every line of the policy).
    allow_lines: HashMap<(String, String), Vec<usize>>,
    /// Indices into `lines` by area pattern as written (`*`, `420106*`, `420106001003`), in
    /// policy order: an enforcer's lines are found by the jurisdiction's prefixes, not by
    /// testing every line.
    lines_by_area: HashMap<String, Vec<usize>>,
    /// Principal ids by jurisdiction.
    principals_by_area: HashMap<String, Vec<String>>,
    principals: HashMap<String, Principal>,
    /// The parsed model, without lines: each enforcer starts from a copy.
    model: DefaultModel,
    /// Whether the model's matcher requires `keyMatch(r.area, p.area)`: then an enforcer
    /// need only hold the lines of its jurisdiction. Otherwise one enforcer holds them all.
    area_scoped: bool,
    /// Whether the matcher requires `r.act == p.act`: then an enforcer need only hold the
    /// lines of one action, and each enforce call scans only those.
    action_scoped: bool,
    /// Whether the matcher requires `g(r.sub, p.role)` (and principals are the only members
    /// of roles): then an enforcer need only hold the lines of the principal's roles.
    role_scoped: bool,
    /// Whether enforce verdicts are shared by every request that sees the same candidate
    /// lines (module docs): the model requires the area, action, role and object terms and
    /// names `r.sub` and `r.area` nowhere else.
    verdicts_shared: bool,
    /// Indices into `lines` by object as written, for objects without `*`, in policy order.
    lines_by_object: HashMap<String, Vec<usize>>,
    /// Indices into `lines` of the lines whose object has a `*` (`*`, `source:*`): they may
    /// match any object through `keyMatch`.
    pattern_object_lines: Vec<usize>,
    /// Enforcers by (jurisdiction, action, roles), each empty when the policy is not scoped
    /// by it; built on first use.
    enforcers: Mutex<HashMap<EnforcerKey, Arc<Enforcer>>>,
    cache: Mutex<HashMap<DecisionKey, Arc<TableDecision>>>,
    /// Shared enforce verdicts, when `verdicts_shared`.
    verdicts: Mutex<HashMap<VerdictKey, Verdict>>,
    /// Enforcers refilled for each shared verdict's call, when `verdicts_shared`; one per
    /// call in progress at most.
    scratch: Mutex<Vec<Enforcer>>,
    enforce_calls: AtomicU64,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("lines", &self.lines.len())
            .field("principals", &self.principals.len())
            .finish_non_exhaustive()
    }
}

fn model_problem(message: String) -> Problem {
    Problem {
        location: Location::Model,
        message,
    }
}

/// Every problem of a parsed model that would make gridhub's requests fail or panic.
fn check_model(model: &DefaultModel) -> Vec<Problem> {
    let mut problems = Vec::new();
    let sections = model.get_model();
    let assertion = |sec: &str| sections.get(sec).and_then(|m| m.get(sec));
    match assertion("r") {
        Some(r) if r.tokens.len() == 8 => {}
        Some(r) => problems.push(model_problem(format!(
            "request_definition has {} fields; gridhub requests carry 8 ({REQUEST_FIELDS})",
            r.tokens.len()
        ))),
        None => problems.push(model_problem(format!(
            "no request_definition `r = {REQUEST_FIELDS}`"
        ))),
    }
    match assertion("p") {
        Some(p) if p.tokens.len() == 7 && p.tokens.last().is_some_and(|t| t == "p_eft") => {}
        Some(_) | None => problems.push(model_problem(
            "policy_definition must be `p = role, area, obj, act, purpose, emg, eft` (7 \
             fields, the effect last), the policy line format"
                .to_owned(),
        )),
    }
    if assertion("g").is_none() {
        problems.push(model_problem(
            "no role_definition `g = _, _`: principals are mapped to roles with it".to_owned(),
        ));
    }
    if assertion("m").is_none() {
        problems.push(model_problem("no [matchers] `m = …`".to_owned()));
    }
    match assertion("e") {
        Some(e) if SUPPORTED_EFFECTS.contains(&e.value.as_str()) => {}
        Some(e) => problems.push(model_problem(format!(
            "policy_effect `{}` is not supported by casbin-rs (supported: {})",
            e.value.replace("p_eft", "p.eft"),
            SUPPORTED_EFFECTS
                .iter()
                .map(|s| format!("`{}`", s.replace("p_eft", "p.eft")))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        None => problems.push(model_problem("no [policy_effect] `e = …`".to_owned())),
    }
    problems
}

/// Whether the model's matcher has `keyMatch(r.area, p.area)` as one of its top-level `&&`
/// terms, so that a line whose area pattern does not match a jurisdiction never applies to it.
fn requires_area_match(model: &DefaultModel) -> bool {
    has_top_level_term(
        model,
        &["keyMatch(r_area,p_area)", "keyMatch(r.area,p.area)"],
    )
}

/// Whether the model's matcher has `r.act == p.act` as one of its top-level `&&` terms, so
/// that a line of another action never applies to a request.
fn requires_action_match(model: &DefaultModel) -> bool {
    has_top_level_term(
        model,
        &[
            "r_act==p_act",
            "r.act==p.act",
            "p_act==r_act",
            "p.act==r.act",
        ],
    )
}

/// Whether the model's matcher has `g(r.sub, p.role)` as one of its top-level `&&` terms, so
/// that a line of a role the principal does not hold never applies to it (the `g` links are
/// principal → role only: no role is a member of another).
fn requires_role_match(model: &DefaultModel) -> bool {
    has_top_level_term(model, &["g(r_sub,p_role)", "g(r.sub,p.role)"])
}

/// Whether one of the matcher's top-level `&&` terms is a parenthesised `||` of object
/// comparisons only — `p.obj == "*"`, `p.obj == r.tbl`, `p.obj == r.col`, `p.obj == r.tag`
/// (either way round) and `keyMatch(r.tbl, p.obj)` — so that a line whose object is neither
/// `*`-patterned nor the request's table, column or tag never applies to it.
fn requires_object_match(model: &DefaultModel) -> bool {
    const DISJUNCTS: [&str; 5] = [
        "p_obj==\"*\"",
        "p_obj==r_tbl",
        "p_obj==r_col",
        "p_obj==r_tag",
        "keyMatch(r_tbl,p_obj)",
    ];
    let known = |d: &str| {
        let d = d.replace("p.obj", "p_obj").replace("r.", "r_");
        DISJUNCTS.contains(&d.as_str())
            || d.split_once("==")
                .is_some_and(|(a, b)| DISJUNCTS.contains(&format!("{b}=={a}").as_str()))
    };
    top_level_terms(model).iter().any(|term| {
        term.strip_prefix('(')
            .and_then(|t| t.strip_suffix(')'))
            .and_then(|inner| split_top_level(inner, b'|'))
            .is_some_and(|ds| ds.iter().all(|d| known(d)))
    })
}

/// How many times the matcher names request field `field` (`sub`, `area`).
fn mentions(model: &DefaultModel, field: &str) -> usize {
    let compact = compact_matcher(model).unwrap_or_default();
    compact.matches(&format!("r_{field}")).count() + compact.matches(&format!("r.{field}")).count()
}

/// The matcher without white space and line continuations.
fn compact_matcher(model: &DefaultModel) -> Option<String> {
    let matcher = model.get_model().get("m").and_then(|m| m.get("m"))?;
    Some(
        matcher
            .value
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '\\')
            .collect(),
    )
}

/// `text` split at its top-level (unparenthesised) `&&` (`op` = `&`) or `||` (`op` = `|`);
/// `None` when the other operator also appears at the top level.
fn split_top_level(text: &str, op: u8) -> Option<Vec<&str>> {
    let other = if op == b'&' { b'|' } else { b'&' };
    let mut depth = 0i32;
    let mut parts = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => depth += 1,
            b')' => depth -= 1,
            b if b == op && depth == 0 && bytes.get(i + 1) == Some(&op) => {
                parts.push(&text[start..i]);
                start = i + 2;
                i += 1;
            }
            b if b == other && depth == 0 && bytes.get(i + 1) == Some(&other) => return None,
            _ => {}
        }
        i += 1;
    }
    parts.push(&text[start..]);
    Some(parts)
}

/// The matcher's top-level `&&` terms, white space removed; none when the matcher has a
/// top-level `||`.
fn top_level_terms(model: &DefaultModel) -> Vec<String> {
    let Some(compact) = compact_matcher(model) else {
        return Vec::new();
    };
    split_top_level(&compact, b'&')
        .unwrap_or_default()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Whether one of the matcher's top-level `&&` terms (white space removed) is one of `any`;
/// false when the matcher has a top-level `||`.
fn has_top_level_term(model: &DefaultModel, any: &[&str]) -> bool {
    // casbin-rs stores the matcher with `.` replaced by `_` in field names.
    top_level_terms(model)
        .iter()
        .any(|t| any.contains(&t.as_str()))
}

/// An enforcer holding `lines`, with each principal's roles as `g` links.
async fn build_enforcer<'a>(
    model: DefaultModel,
    principals: impl Iterator<Item = &'a Principal>,
    lines: impl Iterator<Item = &'a Line>,
) -> std::result::Result<Enforcer, String> {
    let mut enforcer = Enforcer::new(model, MemoryAdapter::default())
        .await
        .map_err(|e| format!("casbin cannot build an enforcer from it: {e}"))?;
    let roles: Vec<Vec<String>> = principals
        .flat_map(|p| p.roles.iter().map(|r| vec![p.id.clone(), r.clone()]))
        .collect();
    let rules: Vec<Vec<String>> = lines.map(Line::rule).collect();
    let model = enforcer.get_mut_model();
    model.add_policies("g", "g", roles);
    model.add_policies("p", "p", rules);
    enforcer
        .build_role_links()
        .map_err(|e| format!("casbin cannot map principals to roles: {e}"))?;
    Ok(enforcer)
}

/// A principal's roles, sorted, each once: what enforcers and decisions are keyed by.
fn role_set(principal: &Principal) -> Vec<String> {
    let mut roles = principal.roles.clone();
    roles.sort();
    roles.dedup();
    roles
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".to_owned())
}

impl Policy {
    /// Parse and validate the model, every policy line (against `known`) and the principals,
    /// reporting all problems at once; build the enforcer (principals mapped to roles with
    /// `g` lines); probe one request under `catch_unwind`, so a model casbin-rs would panic
    /// or fail on at enforce time is refused here.
    pub async fn compile(
        model: &str,
        policy: &str,
        principals: &[Principal],
        known: &Known,
    ) -> Result<Policy> {
        let (lines, mut problems) = parse_policy(policy, known);
        problems.extend(check_principals(principals));
        let parsed = match DefaultModel::from_str(model).await {
            Ok(parsed) => {
                problems.extend(check_model(&parsed));
                Some(parsed)
            }
            Err(e) => {
                problems.push(model_problem(format!("does not parse: {e}")));
                None
            }
        };
        let Some(parsed) = parsed.filter(|_| problems.is_empty()) else {
            return Err(PolicyError::Invalid(problems));
        };
        let refuse = |message: String| PolicyError::Invalid(vec![model_problem(message)]);

        let area_scoped = requires_area_match(&parsed);
        let action_scoped = requires_action_match(&parsed);
        let role_scoped = requires_role_match(&parsed);
        let verdicts_shared = area_scoped
            && action_scoped
            && role_scoped
            && requires_object_match(&parsed)
            && mentions(&parsed, "sub") == 1
            && mentions(&parsed, "area") == 1;
        let template = parsed.clone();
        // The probe enforcer holds every line and principal: what it cannot build or enforce,
        // no per-jurisdiction enforcer could.
        let enforcer = build_enforcer(parsed, principals.iter(), lines.iter())
            .await
            .map_err(refuse)?;

        let probe: Vec<String> = ["", "4201", "*", "", "", "read_audit", "", ALWAYS]
            .map(String::from)
            .into();
        match catch_unwind(AssertUnwindSafe(|| enforcer.enforce(probe))) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(refuse(format!("casbin fails to enforce with it: {e}"))),
            Err(panic) => {
                return Err(refuse(format!(
                    "casbin-rs panics when enforcing with it: {}",
                    panic_message(&*panic)
                )));
            }
        }

        let by_rule = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (l.rule(), i))
            .collect();
        let named_columns = lines
            .iter()
            .filter(|l| l.object.contains('.') && !l.object.starts_with("source:"))
            .map(|l| l.object.clone())
            .collect();
        let mut allow_lines: HashMap<(String, String), Vec<usize>> = HashMap::new();
        for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.allow) {
            allow_lines
                .entry((line.action.clone(), line.object.clone()))
                .or_default()
                .push(i);
        }
        let mut lines_by_area: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, line) in lines.iter().enumerate() {
            lines_by_area.entry(line.area.clone()).or_default().push(i);
        }
        let mut lines_by_object: HashMap<String, Vec<usize>> = HashMap::new();
        let mut pattern_object_lines = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if line.object.contains('*') {
                pattern_object_lines.push(i);
            } else {
                lines_by_object
                    .entry(line.object.clone())
                    .or_default()
                    .push(i);
            }
        }
        let mut principals_by_area: HashMap<String, Vec<String>> = HashMap::new();
        for p in principals {
            principals_by_area
                .entry(p.area.clone())
                .or_default()
                .push(p.id.clone());
        }
        Ok(Policy {
            text: policy.to_owned(),
            lines,
            by_rule,
            named_columns,
            allow_lines,
            lines_by_area,
            principals_by_area,
            principals: principals
                .iter()
                .map(|p| (p.id.clone(), p.clone()))
                .collect(),
            model: template,
            area_scoped,
            action_scoped,
            role_scoped,
            verdicts_shared,
            lines_by_object,
            pattern_object_lines,
            enforcers: Mutex::new(HashMap::new()),
            cache: Mutex::new(HashMap::new()),
            verdicts: Mutex::new(HashMap::new()),
            scratch: Mutex::new(Vec::new()),
            enforce_calls: AtomicU64::new(0),
        })
    }

    /// The policy text as compiled.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The validated lines, in policy order.
    pub(crate) fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Whether each jurisdiction gets an enforcer holding only its lines (the model requires
    /// `keyMatch(r.area, p.area)`); otherwise one enforcer holds every line.
    pub fn is_area_scoped(&self) -> bool {
        self.area_scoped
    }

    /// Whether each enforcer holds the lines of one action only (the model requires
    /// `r.act == p.act`).
    pub fn is_action_scoped(&self) -> bool {
        self.action_scoped
    }

    /// Whether each enforcer holds the lines of the principal's roles only (the model
    /// requires `g(r.sub, p.role)`).
    pub fn is_role_scoped(&self) -> bool {
        self.role_scoped
    }

    /// Whether enforce verdicts are shared across principals and jurisdictions that see the
    /// same candidate lines (module docs).
    pub fn shares_verdicts(&self) -> bool {
        self.verdicts_shared
    }

    /// The number of policy lines (blank lines and comments not counted).
    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    /// How many times this policy has called Casbin's enforce (decisions served from the
    /// cache, and verdicts shared with an earlier call, call it no more).
    pub fn enforce_calls(&self) -> u64 {
        self.enforce_calls.load(Ordering::Relaxed)
    }

    /// The decision for one table, cached by (the principal's roles and jurisdiction, purpose,
    /// ids of the active emergencies relevant to the jurisdiction, table). `now` decides which
    /// emergencies are active.
    ///
    /// A principal that differs from the one the policy was compiled with (unknown id, other
    /// roles or area) is denied everything: the configuration changed and the policy must be
    /// recompiled.
    pub fn decide(
        &self,
        principal: &Principal,
        purpose: Option<&str>,
        emergencies: &[Emergency],
        now: DateTime<Utc>,
        table: &TableInfo,
    ) -> Arc<TableDecision> {
        if self.principals.get(&principal.id) != Some(principal) {
            return Arc::new(Self::unknown_principal(principal, table));
        }
        let relevant: Vec<(&Emergency, Reach)> = emergencies
            .iter()
            .filter(|e| e.is_active(now))
            .filter_map(|e| e.reach(&principal.area).map(|r| (e, r)))
            .collect();
        let mut ids: Vec<i64> = relevant.iter().map(|(e, _)| e.id).collect();
        ids.sort_unstable();
        ids.dedup();
        let key = DecisionKey {
            roles: role_set(principal),
            area: principal.area.clone(),
            purpose: purpose.map(str::to_owned),
            emergencies: ids,
            table: table.clone(),
        };
        if let Some(hit) = self.lock_cache().get(&key) {
            return Arc::clone(hit);
        }

        let covering = relevant.iter().any(|(_, r)| *r == Reach::Covering);
        // Under a covering emergency every row is in one: inside ones add nothing.
        let mut inside: Vec<String> = if covering {
            Vec::new()
        } else {
            relevant.iter().map(|(e, _)| e.area.clone()).collect()
        };
        inside.sort();
        inside.dedup();
        let who = Who {
            principal,
            purpose: purpose.unwrap_or(""),
        };
        let decision = Arc::new(self.compute(&who, covering, &inside, table));

        let mut cache = self.lock_cache();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&decision));
        decision
    }

    /// Make, ahead of the first queries, the shared verdicts every role set needs for
    /// `tables` with no purpose and no emergency: for each distinct role set among the
    /// principals, the decisions of the one principal whose jurisdiction has the fewest lines
    /// of its own, so that what it decides is shared by the most jurisdictions. Nothing when
    /// verdicts are not shared (decisions are then per jurisdiction and roles anyway).
    /// Returns the enforce calls made.
    pub fn prepare(&self, tables: &[TableInfo], now: DateTime<Utc>) -> u64 {
        if !self.verdicts_shared {
            return 0;
        }
        let calls = self.enforce_calls();
        let mut representatives: HashMap<Vec<String>, (usize, &Principal)> = HashMap::new();
        for p in self.principals.values() {
            let own = self.area_line_indices(&p.area).len();
            let slot = representatives.entry(role_set(p)).or_insert((own, p));
            if (own, &p.id) < (slot.0, &slot.1.id) {
                *slot = (own, p);
            }
        }
        let mut chosen: Vec<&Principal> = representatives.into_values().map(|(_, p)| p).collect();
        chosen.sort_by(|a, b| a.id.cmp(&b.id));
        for who in chosen {
            for table in tables {
                self.decide(who, None, &[], now, table);
            }
        }
        self.enforce_calls() - calls
    }

    /// Whether the principal may do a hub action: `manage_policy`, `declare_emergency`,
    /// `read_audit` (lines with object `*`; not bound to purposes or emergencies).
    pub fn allows(&self, principal: &Principal, action: &str) -> bool {
        if self.principals.get(&principal.id) != Some(principal) {
            return false;
        }
        let who = Who {
            principal,
            purpose: "",
        };
        let req = Req {
            tbl: "*",
            col: "",
            tag: "",
        };
        self.check(&who, action, &req, false).allowed
    }

    /// Whether the principal may pull `table` into a local replica. What the replica holds is
    /// still [`Policy::decide`]'s decision for the same principal and purpose.
    pub fn may_pull(
        &self,
        principal: &Principal,
        purpose: Option<&str>,
        table: &TableInfo,
    ) -> bool {
        if self.principals.get(&principal.id) != Some(principal) {
            return false;
        }
        let who = Who {
            principal,
            purpose: purpose.unwrap_or(""),
        };
        let object = table.object();
        let req = Req {
            tbl: &object,
            col: "",
            tag: "",
        };
        self.check(&who, "pull", &req, false).allowed
    }

    /// The enforcer for one principal's jurisdiction, roles and one action: the policy lines
    /// whose area pattern matches the jurisdiction, whose role is one of the principal's and
    /// whose action is `action`, and the role links of the principals with that jurisdiction
    /// and those roles; built on first use, kept until [`ENFORCER_CAPACITY`] are held (then
    /// the map starts over).
    fn enforcer_for(
        &self,
        principal: &Principal,
        action: &str,
    ) -> std::result::Result<Arc<Enforcer>, String> {
        let roles = if self.role_scoped {
            role_set(principal)
        } else {
            Vec::new()
        };
        let key: EnforcerKey = (
            if self.area_scoped {
                &principal.area
            } else {
                ""
            }
            .to_owned(),
            if self.action_scoped { action } else { "" }.to_owned(),
            roles,
        );
        let mut enforcers = self.enforcers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = enforcers.get(&key) {
            return Ok(Arc::clone(hit));
        }
        let principals: Vec<&Principal> = if self.area_scoped {
            self.principals_by_area
                .get(&key.0)
                .into_iter()
                .flatten()
                .filter_map(|id| self.principals.get(id))
                .collect()
        } else {
            self.principals.values().collect()
        };
        let principals = principals
            .into_iter()
            .filter(|p| !self.role_scoped || role_set(p) == key.2);
        let candidates: Vec<usize> = if self.area_scoped {
            self.area_line_indices(&key.0)
        } else {
            (0..self.lines.len()).collect()
        };
        let lines = candidates.iter().map(|&i| &self.lines[i]).filter(|l| {
            (!self.area_scoped || l.area_matches(&key.0))
                && (!self.action_scoped || l.action == key.1)
                && (!self.role_scoped || key.2.contains(&l.role))
        });
        // Building from a parsed model and an in-memory adapter does no I/O: blocking on it
        // is as cheap as the work itself, and keeps decisions synchronous.
        let built =
            futures::executor::block_on(build_enforcer(self.model.clone(), principals, lines))?;
        if enforcers.len() >= ENFORCER_CAPACITY {
            enforcers.clear();
        }
        let built = Arc::new(built);
        enforcers.insert(key, Arc::clone(&built));
        Ok(built)
    }

    /// Indices of the lines whose area pattern can match the jurisdiction `area` — `*`, a
    /// prefix of it followed by `*`, or itself — in policy order.
    fn area_line_indices(&self, area: &str) -> Vec<usize> {
        let mut patterns = vec![area.to_owned()];
        patterns.extend(
            area.char_indices()
                .map(|(i, _)| &area[..i])
                .chain(std::iter::once(area))
                .map(|prefix| format!("{prefix}*")),
        );
        let mut indices: Vec<usize> = patterns
            .iter()
            .filter_map(|p| self.lines_by_area.get(p))
            .flatten()
            .copied()
            .collect();
        indices.sort_unstable();
        indices.dedup();
        indices
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<DecisionKey, Arc<TableDecision>>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters: entries are inserted whole.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unknown_principal(principal: &Principal, table: &TableInfo) -> TableDecision {
        let reason = format!(
            "principal '{}' is not the one the policy was compiled with (unknown id, or its \
             roles or area changed): reload the configuration",
            principal.id
        );
        TableDecision::closed(table, Vec::new(), reason)
    }

    fn compute(
        &self,
        who: &Who,
        covering: bool,
        inside: &[String],
        table: &TableInfo,
    ) -> TableDecision {
        let object = table.object();
        let row_req = Req {
            tbl: &object,
            col: "",
            tag: "",
        };
        let mut row_verdicts = Vec::new();
        let mut rows = RowAccess::Denied;
        if table.has_area_code {
            let v = self.check(who, "read_rows", &row_req, covering);
            if v.allowed {
                rows = RowAccess::Jurisdiction(who.principal.area.clone());
            }
            row_verdicts.push(v);
        }
        if rows == RowAccess::Denied {
            let v = self.check(who, "read_all_rows", &row_req, covering);
            if v.allowed {
                rows = RowAccess::All;
            }
            row_verdicts.push(v);
        }
        let row_lines = self.render(&row_verdicts);

        if rows == RowAccess::Denied {
            let mut actions = vec![(
                "read_all_rows",
                format!("reading all rows of {}", table.name),
            )];
            if table.has_area_code {
                actions.insert(0, ("read_rows", format!("reading rows of {}", table.name)));
            }
            let reason = self.hint(who, &row_req, covering, &actions, &row_verdicts);
            return TableDecision::closed(table, row_lines, reason);
        }

        // Columns no line names share their tag's decision: one computation per group.
        let mut groups: HashMap<String, GroupDecision> = HashMap::new();
        let mut columns = Vec::with_capacity(table.columns.len());
        for c in &table.columns {
            let col_object = format!("{}.{}", table.name, c.name);
            let named = table.columns_nameable() && self.named_columns.contains(&col_object);
            let tag_object = format!("tag:{}", c.tag);
            let group_key = if named {
                col_object.clone()
            } else {
                tag_object.clone()
            };
            let group = groups.entry(group_key).or_insert_with(|| {
                let req = Req {
                    tbl: &object,
                    col: if named { &col_object } else { "" },
                    tag: &tag_object,
                };
                self.group(who, &req, covering, !inside.is_empty())
            });
            let areas = |a: Access| {
                if group.emergency_access == Some(a) {
                    inside.to_vec()
                } else {
                    Vec::new()
                }
            };
            columns.push(ColumnDecision {
                column: c.name.clone(),
                tag: c.tag,
                access: group.access,
                emergency_clear_areas: areas(Access::Clear),
                emergency_masked_areas: areas(Access::Masked),
                lines: group.lines.clone(),
                hint: group.hint.clone(),
            });
        }
        TableDecision {
            table: table.name.clone(),
            rows,
            row_lines,
            columns,
            reason: None,
        }
    }

    /// Clear if read_clear is allowed, else masked if read_masked, else denied; then, with
    /// emergencies inside the jurisdiction, whether the emergency state gives better access.
    fn group(&self, who: &Who, req: &Req, covering: bool, inside: bool) -> GroupDecision {
        let mut verdicts = vec![self.check(who, "read_clear", req, covering)];
        let mut access = Access::Clear;
        if !verdicts[0].allowed {
            let masked = self.check(who, "read_masked", req, covering);
            access = if masked.allowed {
                Access::Masked
            } else {
                Access::Denied
            };
            verdicts.push(masked);
        }
        let hint = match access {
            Access::Clear => None,
            Access::Masked => Some(self.hint(
                who,
                req,
                covering,
                &[("read_clear", "clear read".into())],
                &verdicts,
            )),
            Access::Denied => Some(self.hint(
                who,
                req,
                covering,
                &[
                    ("read_clear", "clear read".into()),
                    ("read_masked", "masked read".into()),
                ],
                &verdicts,
            )),
        };
        let mut emergency_access = None;
        if inside && access != Access::Clear {
            let clear = self.check(who, "read_clear", req, true);
            let better = if clear.allowed {
                Access::Clear
            } else if access == Access::Denied {
                let masked = self.check(who, "read_masked", req, true);
                let better = if masked.allowed {
                    Access::Masked
                } else {
                    Access::Denied
                };
                verdicts.push(masked);
                better
            } else {
                access
            };
            verdicts.push(clear);
            if better.rank() > access.rank() {
                emergency_access = Some(better);
            }
        }
        GroupDecision {
            access,
            emergency_access,
            lines: self.render(&verdicts),
            hint,
        }
    }

    /// The verdict of one request: a shared one when a request with the same candidate lines
    /// and fields was decided (module docs), else one enforce call.
    fn check(&self, who: &Who, action: &str, req: &Req, emergency: bool) -> Verdict {
        if !self.verdicts_shared {
            return self.enforce(who, action, req, emergency);
        }
        let key = VerdictKey {
            lines: self.candidate_lines(who.principal, action, req),
            roles: role_set(who.principal),
            tbl: req.tbl.to_owned(),
            col: req.col.to_owned(),
            tag: req.tag.to_owned(),
            action: action.to_owned(),
            purpose: who.purpose.to_owned(),
            emergency,
        };
        if let Some(hit) = self.lock_verdicts().get(&key) {
            return hit.clone();
        }
        let verdict = self.enforce_with_lines(who, action, req, emergency, &key.lines);
        // An error (an enforcer that could not be built, say) is not shared: it denies this
        // call and is tried again on the next.
        if verdict.error.is_none() {
            let mut verdicts = self.lock_verdicts();
            if verdicts.len() >= VERDICT_CAPACITY {
                verdicts.clear();
            }
            verdicts.insert(key, verdict.clone());
        }
        verdict
    }

    /// The lines that could match a request of `principal` for `action` on `req`'s object:
    /// object `*`-patterned or the request's table, column or tag; area pattern matching the
    /// jurisdiction; role one of the principal's; action `action`. In policy order.
    fn candidate_lines(&self, principal: &Principal, action: &str, req: &Req) -> Vec<usize> {
        let mut objects = vec![req.tbl, req.col, req.tag];
        objects.sort_unstable();
        objects.dedup();
        let mut lines: Vec<usize> = objects
            .iter()
            .filter_map(|o| self.lines_by_object.get(*o))
            .flatten()
            .chain(&self.pattern_object_lines)
            .copied()
            .filter(|&i| {
                let line = &self.lines[i];
                line.action == action
                    && principal.roles.contains(&line.role)
                    && line.area_matches(&principal.area)
            })
            .collect();
        lines.sort_unstable();
        lines.dedup();
        lines
    }

    /// One enforce call (counted) by an enforcer holding exactly `lines` and the principal's
    /// role links: the candidate lines, outside which no line can match (module docs). The
    /// enforcer is a scratch one from a pool, refilled for the call, so a verdict costs no
    /// enforcer build (a rhai engine and the compiled matcher). Casbin errors deny.
    fn enforce_with_lines(
        &self,
        who: &Who,
        action: &str,
        req: &Req,
        emergency: bool,
        lines: &[usize],
    ) -> Verdict {
        self.enforce_calls.fetch_add(1, Ordering::Relaxed);
        let denied = |error: String| Verdict {
            allowed: false,
            lines: Vec::new(),
            error: Some(error),
        };
        let pooled = self.scratch.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut enforcer = match pooled {
            Some(enforcer) => enforcer,
            None => match futures::executor::block_on(build_enforcer(
                self.model.clone(),
                std::iter::empty(),
                std::iter::empty(),
            )) {
                Ok(enforcer) => enforcer,
                Err(e) => return denied(e),
            },
        };
        let p = who.principal;
        let model = enforcer.get_mut_model();
        model.clear_policy();
        model.add_policies(
            "g",
            "g",
            p.roles
                .iter()
                .map(|r| vec![p.id.clone(), r.clone()])
                .collect(),
        );
        model.add_policies(
            "p",
            "p",
            lines.iter().map(|&i| self.lines[i].rule()).collect(),
        );
        if let Err(e) = enforcer.build_role_links() {
            // Not returned to the pool: the next call starts from a fresh one.
            return denied(format!("casbin cannot map principals to roles: {e}"));
        }
        let verdict = self.verdict(enforcer.enforce_ex(self.request(who, action, req, emergency)));
        self.scratch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(enforcer);
        verdict
    }

    /// The request fields of one enforce call, in the model's order.
    fn request(&self, who: &Who, action: &str, req: &Req, emergency: bool) -> Vec<String> {
        let p = who.principal;
        [
            p.id.as_str(),
            p.area.as_str(),
            req.tbl,
            req.col,
            req.tag,
            action,
            who.purpose,
            if emergency { EMERGENCY } else { ALWAYS },
        ]
        .map(String::from)
        .into()
    }

    /// A verdict from what Casbin answered: the deciding lines by index, or the error.
    fn verdict(&self, answer: casbin::Result<(bool, Vec<Vec<String>>)>) -> Verdict {
        match answer {
            Ok((allowed, rules)) => Verdict {
                allowed,
                lines: rules
                    .iter()
                    .filter_map(|r| self.by_rule.get(r).copied())
                    .collect(),
                error: None,
            },
            Err(e) => Verdict {
                allowed: false,
                lines: Vec::new(),
                error: Some(e.to_string()),
            },
        }
    }

    fn lock_verdicts(&self) -> std::sync::MutexGuard<'_, HashMap<VerdictKey, Verdict>> {
        // Entries are inserted whole: a panic elsewhere cannot leave one half made.
        self.verdicts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One enforce call (counted). Casbin errors deny: fail closed.
    fn enforce(&self, who: &Who, action: &str, req: &Req, emergency: bool) -> Verdict {
        self.enforce_calls.fetch_add(1, Ordering::Relaxed);
        let enforcer = match self.enforcer_for(who.principal, action) {
            Ok(enforcer) => enforcer,
            Err(e) => {
                return Verdict {
                    allowed: false,
                    lines: Vec::new(),
                    error: Some(e),
                };
            }
        };
        self.verdict(enforcer.enforce_ex(self.request(who, action, req, emergency)))
    }

    /// The deciding lines of some verdicts, each once, in policy order.
    fn render(&self, verdicts: &[Verdict]) -> Vec<String> {
        let mut indices: Vec<usize> = verdicts.iter().flat_map(|v| v.lines.clone()).collect();
        indices.sort_unstable();
        indices.dedup();
        let mut out: Vec<String> = indices.iter().map(|&i| self.lines[i].render()).collect();
        out.extend(
            verdicts
                .iter()
                .filter_map(|v| v.error.as_ref())
                .map(|e| format!("casbin error (denied): {e}")),
        );
        out
    }

    /// One sentence on what would allow each of `actions` (action, label): the purposes,
    /// emergencies or roles the policy's allow lines for this object ask for. Actions no line
    /// allows are left out unless none is allowed by any line.
    fn hint(
        &self,
        who: &Who,
        req: &Req,
        emergency: bool,
        actions: &[(&str, String)],
        verdicts: &[Verdict],
    ) -> String {
        let deny_lines: Vec<String> = verdicts
            .iter()
            .flat_map(|v| &v.lines)
            .map(|&i| &self.lines[i])
            .filter(|l| !l.allow)
            .map(|l| l.number.to_string())
            .collect();
        let parts: Vec<String> = actions
            .iter()
            .filter_map(|(action, label)| {
                let (alternatives, overridden) = self.alternatives(who, req, emergency, action);
                if overridden {
                    Some(format!(
                        "{label} is denied by a deny line{}",
                        if deny_lines.is_empty() {
                            String::new()
                        } else {
                            format!(" (line {})", deny_lines.join(", "))
                        }
                    ))
                } else if alternatives.is_empty() {
                    None
                } else {
                    Some(format!("{label} needs {}", or_list(&alternatives)))
                }
            })
            .collect();
        if parts.is_empty() {
            let labels: Vec<&str> = actions.iter().map(|(_, l)| l.as_str()).collect();
            format!("no policy line allows {}", labels.join(" or "))
        } else {
            parts.join("; ")
        }
    }

    /// The conditions of each allow line for `action` on this object that the request does
    /// not meet, as "purpose X and a declared emergency (role R)"; and whether one of the
    /// principal's lines fully applies (then only a deny line can have refused).
    fn alternatives(
        &self,
        who: &Who,
        req: &Req,
        emergency: bool,
        action: &str,
    ) -> (Vec<String>, bool) {
        // The principal's own roles first: what it could do itself comes before who else can.
        let (mut own_alternatives, mut others) = (Vec::new(), Vec::new());
        let mut overridden = false;
        let mut candidates: Vec<usize> = ["*", req.tbl, req.col, req.tag]
            .iter()
            .filter_map(|object| {
                self.allow_lines
                    .get(&(action.to_owned(), (*object).to_owned()))
            })
            .flatten()
            .copied()
            .collect();
        // In policy order, each once (the column object may be empty, like no line's).
        candidates.sort_unstable();
        candidates.dedup();
        for line in candidates.iter().map(|&i| &self.lines[i]) {
            let own = who.principal.roles.contains(&line.role);
            if own && !line.area_matches(&who.principal.area) {
                continue;
            }
            let mut conditions = Vec::new();
            if line.purpose != "*" && (!own || line.purpose != who.purpose) {
                conditions.push(format!("purpose {}", line.purpose));
            }
            if line.emergency == EMERGENCY && (!own || !emergency) {
                conditions.push("a declared emergency".to_owned());
            }
            let alternative = match (own, conditions.is_empty()) {
                (true, true) => {
                    overridden = true;
                    continue;
                }
                (false, true) => format!("role {}", line.role),
                (_, false) => format!("{} (role {})", conditions.join(" and "), line.role),
            };
            let list = if own {
                &mut own_alternatives
            } else {
                &mut others
            };
            if !list.contains(&alternative) {
                list.push(alternative);
            }
        }
        own_alternatives.extend(others);
        (own_alternatives, overridden)
    }
}

/// "a or b or c", at most four named, then "(and N more)".
fn or_list(items: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut out = items[..items.len().min(SHOWN)].join(" or ");
    if items.len() > SHOWN {
        out.push_str(&format!(" (and {} more)", items.len() - SHOWN));
    }
    out
}
