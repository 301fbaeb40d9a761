//! Merging the accepted rows of several sources into one shared table (一数一源).
//!
//! Rows with the same key are one entity. Each column takes the first non-null value in its
//! precedence order (`first_value(c ORDER BY rank) IGNORE NULLS`), `_source` lists the
//! contributing sources in the table's precedence order and `_updated_at` is the latest.
//! A table fed by a single source is not aggregated, so every filter still reaches its scan.

use datafusion::common::Column;
use datafusion::functions_aggregate::expr_fn::max;
use datafusion::functions_aggregate::first_last::first_value_udaf;
use datafusion::functions_aggregate::string_agg::string_agg;
use datafusion::logical_expr::expr::NullTreatment;
use datafusion::logical_expr::{ExprFunctionExt, cast, when};
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
    let mut aggregates = Vec::new();
    for c in table
        .columns
        .iter()
        .filter(|c| !table.key.contains(&c.name))
    {
        let expr = match c.name {
            SOURCE_COLUMN => string_agg(col_ref(SOURCE_COLUMN), lit(","))
                .order_by(vec![rank(&table_order).map_err(plan_err)?.sort(true, true)])
                .build()
                .map_err(plan_err)?,
            UPDATED_AT_COLUMN => max(col_ref(UPDATED_AT_COLUMN)),
            name => {
                let order = precedence.order_for(name, &sources);
                // One builder for both: `.null_treatment()` on an already built
                // `first_value(x, order)` would drop the ORDER BY (DataFusion 55).
                first_value_udaf()
                    .call(vec![col_ref(name)])
                    .order_by(vec![rank(&order).map_err(plan_err)?.sort(true, true)])
                    .null_treatment(NullTreatment::IgnoreNulls)
                    .build()
                    .map_err(plan_err)?
            }
        };
        aggregates.push(expr.alias(c.name));
    }
    // Aggregates may widen types (string_agg gives LargeUtf8): restore the model's types.
    let columns: Vec<Expr> = table
        .columns
        .iter()
        .map(|c| cast(col_ref(c.name), c.data_type.clone()).alias(c.name))
        .collect();
    union
        .aggregate(group, aggregates)
        .and_then(|df| df.select(columns))
        .map_err(plan_err)
}
