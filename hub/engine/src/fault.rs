//! Fault containment: what the hub knows about a broken source, and what it serves of it.
//!
//! A source is *broken* when its files cannot be read, when its connector cannot offer its
//! tables, when a mapping no longer fits its table (a column the mapping reads is missing —
//! schema drift), or when its last refresh failed. A broken source never stops the hub:
//!
//! * with `on_error = "serve_stale"` (the default) a materialised source whose cache still
//!   fits keeps serving that cache ([`Serving::StaleCache`]); any other broken source is
//!   left out of the live views, and the shared tables it feeds keep their last snapshot
//!   ([`Serving::LastSnapshot`]) — both marked in `system.sources` and `system.tables`;
//! * with `on_error = "refuse"` nothing of it is served: its raw tables and every shared
//!   table it feeds answer with an error naming it ([`Serving::Refused`]).
//!
//! Every other source and every table it does not feed keeps working.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use gridhub_mapping::MappingConfig;

/// What the hub found about a source when it opened.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceStatus {
    Ok,
    Broken(SourceFault),
}

impl SourceStatus {
    pub fn is_ok(&self) -> bool {
        matches!(self, SourceStatus::Ok)
    }

    /// The fault, when the source is broken.
    pub fn fault(&self) -> Option<&SourceFault> {
        match self {
            SourceStatus::Ok => None,
            SourceStatus::Broken(f) => Some(f),
        }
    }

    /// `ok` or `broken`.
    pub fn state(&self) -> &'static str {
        match self {
            SourceStatus::Ok => "ok",
            SourceStatus::Broken(_) => "broken",
        }
    }
}

impl fmt::Display for SourceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceStatus::Ok => f.write_str("ok"),
            SourceStatus::Broken(fault) => write!(f, "broken: {fault}"),
        }
    }
}

/// Why a source is broken and what is served of it meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFault {
    /// One or more sentences, each naming the file, table or mapping concerned.
    pub reason: String,
    /// For schema drift: per source table, `table: missing …; added …`.
    pub drift: Vec<String>,
    pub serving: Serving,
    /// Since when (µs since the epoch, UTC) the source has been failing, when known.
    pub since: Option<i64>,
}

impl SourceFault {
    /// The drift as one line: `住户: missing 证件号码; added 证件号` per table, ` | `-joined.
    pub fn drift_text(&self) -> Option<String> {
        (!self.drift.is_empty()).then(|| self.drift.join(" | "))
    }
}

impl fmt::Display for SourceFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        if let Some(drift) = self.drift_text() {
            write!(f, " [schema drift: {drift}]")?;
        }
        write!(f, " — {}", self.serving.describe())
    }
}

/// What the hub serves of a broken source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// Its materialised cache of the last good refresh, which still fits its mappings.
    StaleCache,
    /// Nothing is read from it; the shared tables it feeds are served from their last
    /// snapshot, or, without one, computed from the other sources alone.
    LastSnapshot,
    /// Nothing (`on_error = "refuse"`): its tables and the shared tables it feeds fail.
    Refused,
}

impl Serving {
    /// The name shown in `system.sources.serving`.
    pub fn name(self) -> &'static str {
        match self {
            Serving::StaleCache => "stale_cache",
            Serving::LastSnapshot => "last_snapshot",
            Serving::Refused => "refused",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Serving::StaleCache => "serving its cache of the last good refresh (stale)",
            Serving::LastSnapshot => {
                "its shared tables are served from the last snapshot (stale), or without its rows"
            }
            Serving::Refused => "refused (on_error = \"refuse\")",
        }
    }
}

/// How a table's columns differ from what its mapping needs and what it had before.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Drift {
    /// Columns a mapping reads that the table no longer has.
    pub missing: Vec<String>,
    /// Columns the table has that its last good schema did not.
    pub added: Vec<String>,
}

impl Drift {
    /// The drift of a table whose columns are now `present`: `needed` are the columns its
    /// mappings read, `before` its columns at the last good load (if known).
    pub fn between(
        needed: &BTreeSet<String>,
        present: &[String],
        before: Option<&[String]>,
    ) -> Self {
        let present_set: BTreeSet<&String> = present.iter().collect();
        let missing = needed
            .iter()
            .filter(|c| !present_set.contains(c))
            .cloned()
            .collect();
        let added = match before {
            Some(before) => {
                let before: BTreeSet<&String> = before.iter().collect();
                present
                    .iter()
                    .filter(|c| !before.contains(c))
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        };
        Self { missing, added }
    }

    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.added.is_empty()
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing {}", self.missing.join(", ")));
        }
        if !self.added.is_empty() {
            parts.push(format!("added {}", self.added.join(", ")));
        }
        if parts.is_empty() {
            parts.push("no column changed".to_string());
        }
        f.write_str(&parts.join("; "))
    }
}

/// The source columns a mapping reads: every `from`, the `row_id`, and the identifiers of
/// `sql` expressions that name a column (quoted ones, and bare ones among `known`).
pub fn needed_columns(mapping: &MappingConfig, known: &[String]) -> BTreeSet<String> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let mut out = BTreeSet::new();
    if let Some(row_id) = &mapping.row_id {
        out.insert(row_id.clone());
    }
    for spec in mapping.columns.values() {
        if let Some(c) = &spec.from {
            out.insert(c.clone());
        }
        if let Some(sql) = &spec.sql
            && let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize()
        {
            for t in tokens {
                if let Token::Word(w) = t
                    && (w.quote_style == Some('"') || known.contains(&w.value))
                {
                    out.insert(w.value);
                }
            }
        }
    }
    out
}

/// Per shared table, how broken sources affect it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableFaults {
    /// Broken sources whose stale cache feeds the table.
    pub stale: BTreeSet<String>,
    /// Broken sources left out of the table's live view.
    pub absent: BTreeSet<String>,
    /// Broken sources that refuse: the table is not served.
    pub refused: BTreeSet<String>,
}

impl TableFaults {
    pub fn is_empty(&self) -> bool {
        self.stale.is_empty() && self.absent.is_empty() && self.refused.is_empty()
    }

    /// One line for `system.tables.degraded`, e.g. `property_a: stale cache`.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        for s in &self.refused {
            parts.push(format!("{s}: refused"));
        }
        for s in &self.absent {
            parts.push(format!("{s}: left out (broken)"));
        }
        for s in &self.stale {
            parts.push(format!("{s}: stale cache"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Faults by shared table, from the sources' states and the mappings.
pub(crate) type FaultMap = BTreeMap<String, TableFaults>;

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn drift_names_missing_and_added_columns() {
        let needed: BTreeSet<String> = s(&["证件号码", "姓名"]).into_iter().collect();
        let before = s(&["证件号码", "姓名", "_row"]);
        let d = Drift::between(&needed, &s(&["证件号", "姓名", "_row"]), Some(&before));
        assert_eq!(d.missing, ["证件号码"]);
        assert_eq!(d.added, ["证件号"]);
        assert_eq!(d.to_string(), "missing 证件号码; added 证件号");
        let same = Drift::between(&needed, &before, Some(&before));
        assert!(same.is_empty());
    }

    #[test]
    fn sql_identifiers_count_as_needed() {
        let m: MappingConfig = toml::from_str(
            r#"
            source = "s"
            table = "t"
            target = "house"
            row_id = "序号"
            [columns]
            house_id = { sql = "concat(\"楼栋编号\", '-', room)" }
            unit = { from = "单元" }
            "#,
        )
        .unwrap();
        let needed = needed_columns(&m, &s(&["room"]));
        assert_eq!(
            needed,
            s(&["room", "单元", "序号", "楼栋编号"])
                .into_iter()
                .collect()
        );
    }
}
