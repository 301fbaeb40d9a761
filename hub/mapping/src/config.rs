//! The `[[mappings]]` and `[[tables]]` sections of the hub config (see docs/config.md).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// How one source table maps into one shared table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// A `[[sources]]` name.
    pub source: String,
    /// The table inside the source.
    pub table: String,
    /// The shared table it maps into.
    pub target: String,
    /// Source column identifying a row in `_rejects` (default: `_row` when the source has it).
    #[serde(default)]
    pub row_id: Option<String>,
    /// Shared column name → how to compute it.
    pub columns: BTreeMap<String, ColumnSpec>,
}

impl MappingConfig {
    /// `source.table → target`, used to name the mapping in errors.
    pub fn label(&self) -> String {
        format!("{}.{} → {}", self.source, self.table, self.target)
    }
}

/// How one shared column is computed from the source row.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// A source column.
    #[serde(default)]
    pub from: Option<String>,
    /// A DataFusion SQL expression over the source columns.
    #[serde(default)]
    pub sql: Option<String>,
    /// A constant.
    #[serde(default)]
    pub value: Option<toml::Value>,
    /// A normaliser name (docs/config.md).
    #[serde(default)]
    pub normalize: Option<String>,
    /// A value map: source value (trimmed) → shared value. Values not in the map reject the row.
    #[serde(default)]
    pub map: Option<BTreeMap<String, toml::Value>>,
}

/// Where a column's value comes from, once the spec is validated.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnOrigin<'a> {
    Column(&'a str),
    Sql(&'a str),
    Constant(&'a toml::Value),
}

impl fmt::Display for ColumnOrigin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnOrigin::Column(c) => f.write_str(c),
            ColumnOrigin::Sql(s) => write!(f, "sql: {s}"),
            ColumnOrigin::Constant(v) => write!(f, "value: {v}"),
        }
    }
}

impl ColumnSpec {
    /// The single origin of the value, or why the spec is ambiguous.
    pub fn origin(&self) -> Result<ColumnOrigin<'_>, String> {
        match (&self.from, &self.sql, &self.value) {
            (Some(c), None, None) => Ok(ColumnOrigin::Column(c)),
            (None, Some(s), None) => Ok(ColumnOrigin::Sql(s)),
            (None, None, Some(v)) => Ok(ColumnOrigin::Constant(v)),
            (None, None, None) => Err("needs one of `from`, `sql` or `value`".into()),
            _ => Err("takes only one of `from`, `sql` or `value`".into()),
        }
    }

    /// The transformation applied, for lineage: the normaliser name or `map`.
    pub fn transform(&self) -> Option<String> {
        match (&self.normalize, &self.map) {
            (Some(n), _) => Some(n.clone()),
            (None, Some(m)) => Some(format!("map ({} values)", m.len())),
            (None, None) => None,
        }
    }
}

/// Precedence of sources for one shared table (一数一源).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TablePrecedence {
    pub name: String,
    /// Sources, most authoritative first.
    #[serde(default)]
    pub precedence: Vec<String>,
    /// Per-column orders that differ from the table's.
    #[serde(default)]
    pub column_precedence: BTreeMap<String, Vec<String>>,
}

impl TablePrecedence {
    /// The order of sources for one column: its own, else the table's; sources not listed
    /// come after the listed ones, by name.
    pub fn order_for(&self, column: &str, sources: &[String]) -> Vec<String> {
        let listed = self
            .column_precedence
            .get(column)
            .unwrap_or(&self.precedence);
        let mut order: Vec<String> = listed
            .iter()
            .filter(|s| sources.contains(s))
            .cloned()
            .collect();
        let mut rest: Vec<String> = sources
            .iter()
            .filter(|s| !order.contains(s))
            .cloned()
            .collect();
        rest.sort();
        rest.dedup();
        order.extend(rest);
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_puts_unlisted_sources_last_by_name() {
        let p = TablePrecedence {
            name: "person".into(),
            precedence: vec!["city".into(), "register".into()],
            column_precedence: BTreeMap::from([(
                "phone".into(),
                vec!["property_a".into(), "register".into()],
            )]),
        };
        let sources: Vec<String> = ["z_src", "register", "property_a", "city"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            p.order_for("name", &sources),
            ["city", "register", "property_a", "z_src"]
        );
        assert_eq!(
            p.order_for("phone", &sources),
            ["property_a", "register", "city", "z_src"]
        );
    }

    #[test]
    fn a_spec_needs_exactly_one_origin() {
        let none = ColumnSpec::default();
        assert!(none.origin().is_err());
        let two = ColumnSpec {
            from: Some("a".into()),
            sql: Some("b".into()),
            ..Default::default()
        };
        assert!(two.origin().unwrap_err().contains("only one"));
    }
}
