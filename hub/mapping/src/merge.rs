//! Merging the accepted rows of several sources into one shared table (一数一源).
//!
//! Rows with the same key are one entity. Each column takes the first non-null value in its
//! precedence order (the least of `rank || value`, the rank one character), `_source` lists the
//! contributing sources in the table's precedence order (a bit per source while aggregating)
//! and `_updated_at` is the latest.
//! A table fed by a single source is not aggregated, so every filter still reaches its scan.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Column;
use datafusion::common::ScalarValue;
use datafusion::functions::expr_fn::{concat, concat_ws, substr};
use datafusion::functions_aggregate::expr_fn::{bit_or, max, min};
use datafusion::logical_expr::{BinaryExpr, Operator, cast, when};
use datafusion::prelude::{DataFrame, Expr, lit};
use gridhub_catalog::TableDef;
use gridhub_catalog::model::{SOURCE_COLUMN, UPDATED_AT_COLUMN};

use crate::config::TablePrecedence;
use crate::error::{MappingError, Result};

fn col_ref(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

/// `CASE _source WHEN s0 THEN 0 WHEN s1 THEN 1 … END`
fn rank(order: &[String]) -> datafusion::error::Result<Expr> {
    let source = col_ref(SOURCE_COLUMN);
    let mut it = order.iter().enumerate();
    let Some((_, first)) = it.next() else {
        return Ok(lit(0i64));
    };
    let mut case = when(source.clone().eq(lit(first.as_str())), lit(0i64));
    for (i, s) in it {
        case = case.when(source.clone().eq(lit(s.as_str())), lit(i as i64));
    }
    case.otherwise(lit(order.len() as i64))
}

/// The rank of a row's source in `order` as one character, in ASCII order: `0`–`9`, `A`–`Z`,
/// `a`–`z` (at most 62 sources), the last for a source `order` does not name.
fn rank_letter(order: &[String]) -> datafusion::error::Result<Expr> {
    const LETTERS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let letter = |i: usize| lit(char::from(LETTERS[i.min(LETTERS.len() - 1)]).to_string());
    let source = col_ref(SOURCE_COLUMN);
    let mut it = order.iter().enumerate();
    let Some((_, first)) = it.next() else {
        return Ok(letter(0));
    };
    let mut case = when(source.clone().eq(lit(first.as_str())), letter(0));
    for (i, s) in it {
        case = case.when(source.clone().eq(lit(s.as_str())), letter(i));
    }
    case.otherwise(letter(order.len()))
}

/// The `_source` bit mask (bit i: the i-th source of `order` contributed) as the names of
/// the contributing sources, comma-separated in precedence order.
fn source_names(order: &[String]) -> Expr {
    let mask = col_ref(SOURCE_COLUMN);
    let names = order.iter().enumerate().map(|(i, s)| {
        let bit = Expr::BinaryExpr(BinaryExpr::new(
            Box::new(mask.clone()),
            Operator::BitwiseAnd,
            Box::new(lit(1i64 << i)),
        ));
        // concat_ws skips NULLs: a source that did not contribute adds nothing.
        when(bit.not_eq(lit(0i64)), lit(s.as_str()))
            .end()
            .unwrap_or_else(|_| lit(ScalarValue::Utf8(None)))
    });
    concat_ws(lit(","), names.collect())
}

/// Combine the accepted rows of each source (`parts`: source name, rows) into the table.
pub fn merge(
    table: &'static TableDef,
    precedence: &TablePrecedence,
    mut parts: Vec<(String, DataFrame)>,
) -> Result<DataFrame> {
    let plan_err = |e: datafusion::error::DataFusionError| MappingError::Plan {
        mapping: format!("merge into {}", table.name),
        source: Box::new(e),
    };
    let sources: Vec<String> = parts.iter().map(|(s, _)| s.clone()).collect();
    let Some((_, first)) = parts.first().cloned() else {
        return Err(MappingError::NoSources {
            table: table.name.to_string(),
        });
    };
    if parts.len() == 1 {
        return Ok(first);
    }
    let mut union = parts.remove(0).1;
    for (_, df) in parts {
        union = union.union(df).map_err(plan_err)?;
    }

    let group: Vec<Expr> = table.key.iter().map(|k| col_ref(k)).collect();
    let table_order = precedence.order_for(SOURCE_COLUMN, &sources);
    if table_order.len() >= 63 {
        return Err(plan_err(datafusion::error::DataFusionError::Plan(format!(
            "{} sources feed {}: at most 62 can be merged into one table",
            table_order.len(),
            table.name
        ))));
    }
    let mut aggregates = Vec::new();
    for c in table
        .columns
        .iter()
        .filter(|c| !table.key.contains(&c.name))
    {
        let expr = match c.name {
            // A bit per contributing source (a cheap integer aggregate; an ordered
            // string_agg keeps a list per entity), spelled out as names after aggregating.
            SOURCE_COLUMN => bit_or(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(lit(1i64)),
                Operator::BitwiseShiftLeft,
                Box::new(rank(&table_order).map_err(plan_err)?),
            ))),
            UPDATED_AT_COLUMN => max(col_ref(UPDATED_AT_COLUMN)),
            // The first non-null value in precedence order as the least of the values, each
            // prefixed with its source's rank as one ASCII character: min over text is a
            // columnar aggregate with one value per entity, where first_value with an
            // ORDER BY keeps per-entity ordering state (gigabytes at 1 M persons).
            name => {
                let order = precedence.order_for(name, &sources);
                let tagged = concat(vec![
                    rank_letter(&order).map_err(plan_err)?,
                    cast(col_ref(name), DataType::Utf8),
                ]);
                min(when(col_ref(name).is_null(), lit(ScalarValue::Utf8(None)))
                    .otherwise(tagged)
                    .map_err(plan_err)?)
            }
        };
        aggregates.push(expr.alias(c.name));
    }
    // Aggregates may widen types: restore the model's types.
    let columns: Vec<Expr> = table
        .columns
        .iter()
        .map(|c| {
            let value = if c.name == SOURCE_COLUMN {
                source_names(&table_order)
            } else if c.name == UPDATED_AT_COLUMN || table.key.contains(&c.name) {
                col_ref(c.name)
            } else {
                // Drop the rank character.
                substr(col_ref(c.name), lit(2i64))
            };
            cast(value, c.data_type.clone()).alias(c.name)
        })
        .collect();
    union
        .aggregate(group, aggregates)
        .and_then(|df| df.select(columns))
        .map_err(plan_err)
}
