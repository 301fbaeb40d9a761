//! Policy views: a table decision compiled into the view a principal reads the table
//! through — `Projection(masks) ← guarded scan(row filter)`.
//!
//! The row filter (jurisdiction, presence columns) runs inside the guarded scan, below every
//! predicate of the query ([`GuardedTable`]). Each column reads clear, masked or not at all;
//! its mask is the catalog's ([`Mask`], chosen on the column model, see [`super::tags`]).
//! Masks are opaque SQL functions that keep the column's type, so any predicate, join or
//! aggregate of the user's query — pushed down or not — sees only the masked value.

use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::datasource::{ViewTable, provider_as_source};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, ScalarUDF, lit, when};
use gridhub_catalog::Mask;
use gridhub_policy::{Access, ColumnDecision, RowAccess, TableDecision};

use super::guarded::GuardedTable;
use super::tags::{Reading, column};
use crate::error::{EngineError, Result};
use crate::hub::{CATALOG, Hub, SHARED_SCHEMA};

/// What the views of one query are built with: the hub's functions and the place mask of
/// the loaded communities.
pub(crate) struct ViewBuilder<'a> {
    pub(crate) hub: &'a Hub,
    pub(crate) place_mask: ScalarUDF,
}

impl ViewBuilder<'_> {
    /// Compile a decision into the view a principal reads the table through.
    pub(crate) fn policy_view(
        &self,
        reference: TableReference,
        provider: Arc<dyn TableProvider>,
        decision: &TableDecision,
        reading: &Reading,
    ) -> Result<ViewTable> {
        let schema = provider.schema();
        let rows = match &decision.rows {
            // A snapshot whose every row lies in the jurisdiction (its file's exact statistics
            // prove it) needs no row filter: a city-wide principal pays nothing for it.
            RowAccess::Jurisdiction(area) if proven_inside(&provider, reading, area) => None,
            // No jurisdiction expression: `in_areas` is false, so no row (fail closed).
            RowAccess::Jurisdiction(area) => Some(reading.in_areas(std::slice::from_ref(area))),
            RowAccess::All => None,
            RowAccess::Denied => {
                return Err(EngineError::Denied {
                    message: decision.reason.clone().unwrap_or_else(|| {
                        format!("table {} is closed to this principal", decision.table)
                    }),
                });
            }
        };
        let rows = match (rows, presence_filter(decision, reading)) {
            (rows, None) => rows,
            (None, Some(p)) => Some(p),
            (Some(r), Some(p)) => Some(r.and(p)),
        };
        let guarded: Arc<dyn TableProvider> = Arc::new(GuardedTable::new(provider.clone(), rows));
        let plan = LogicalPlanBuilder::scan(reference, provider_as_source(guarded), None)
            .map_err(EngineError::plan)?;
        let mut exprs = Vec::new();
        for field in schema.fields() {
            // A column the decision does not know is denied.
            let Some(c) = decision.column(field.name()) else {
                continue;
            };
            if let Some(e) = self.column_expr(c, field.data_type(), reading)? {
                exprs.push(e.alias(field.name()));
            }
        }
        if exprs.is_empty() {
            return Err(EngineError::Denied {
                message: format!(
                    "no column of {} is readable by this principal with this purpose",
                    decision.table
                ),
            });
        }
        let plan = plan
            .project(exprs)
            .and_then(|p| p.build())
            .map_err(EngineError::plan)?;
        Ok(ViewTable::new(plan, None))
    }

    /// The masked form of a column: its catalog mask where the function fits its type (a
    /// place reads as its community's name), NULL of the column's type otherwise.
    fn mask(&self, name: &str, data_type: &DataType, reading: &Reading) -> Result<Expr> {
        let mask = reading.mask(name);
        let fits = mask.data_type().as_ref() == Some(data_type);
        match mask.function() {
            Some(_) if mask == Mask::Community => match reading.area.as_slice() {
                [area] if fits => Ok(self.place_mask.call(vec![area.clone()])),
                _ => typed_null(data_type),
            },
            Some(function) if fits => Ok(self
                .hub
                .context()
                .udf(function)
                .map_err(EngineError::plan)?
                .call(vec![column(name)])),
            _ => typed_null(data_type),
        }
    }

    /// The expression a column is read through, or None when it is absent.
    fn column_expr(
        &self,
        c: &ColumnDecision,
        data_type: &DataType,
        reading: &Reading,
    ) -> Result<Option<Expr>> {
        let mask = || self.mask(&c.column, data_type, reading);
        let base = match c.access {
            Access::Clear => Some(column(&c.column)),
            Access::Masked => Some(mask()?),
            Access::Denied => None,
        };
        if c.emergency_clear_areas.is_empty() && c.emergency_masked_areas.is_empty() {
            return Ok(base);
        }
        let mut otherwise = match base {
            Some(e) => e,
            None => typed_null(data_type)?,
        };
        if !c.emergency_masked_areas.is_empty() {
            otherwise = when(reading.in_areas(&c.emergency_masked_areas), mask()?)
                .otherwise(otherwise)
                .map_err(EngineError::plan)?;
        }
        if c.emergency_clear_areas.is_empty() {
            return Ok(Some(otherwise));
        }
        Ok(Some(
            when(
                reading.in_areas(&c.emergency_clear_areas),
                column(&c.column),
            )
            .otherwise(otherwise)
            .map_err(EngineError::plan)?,
        ))
    }
}

/// `gh_mask_place` knowing the communities of the loaded `admin_unit` (code → name); `None`
/// while `admin_unit` cannot be read (its source down, no snapshot).
pub(crate) async fn place_mask(hub: &Hub) -> Result<Option<ScalarUDF>> {
    let rows = hub
        .context()
        .sql(&format!(
            "SELECT code, name FROM {CATALOG}.{SHARED_SCHEMA}.admin_unit \
             WHERE length(code) = 12 AND name IS NOT NULL"
        ))
        .await;
    let batches = match rows {
        Ok(df) => df.collect().await,
        Err(e) => Err(e),
    };
    let Ok(batches) = batches else {
        return Ok(None);
    };
    let mut communities = std::collections::BTreeMap::new();
    let text = |a: &datafusion::arrow::array::ArrayRef| {
        datafusion::arrow::compute::cast(a, &DataType::Utf8)
            .map_err(|e| EngineError::plan(e.into()))
    };
    for b in &batches {
        let (codes, names) = (text(b.column(0))?, text(b.column(1))?);
        for (code, name) in codes
            .as_string::<i32>()
            .iter()
            .zip(names.as_string::<i32>())
        {
            if let (Some(code), Some(name)) = (code, name) {
                communities.insert(code.to_string(), name.to_string());
            }
        }
    }
    Ok(Some(gridhub_normalize::place_mask_udf(communities)))
}

/// The filter the presence columns put on a table's rows: none when each reads clear; rows
/// of the emergency areas that open it to clear reading; otherwise no row at all.
fn presence_filter(decision: &TableDecision, reading: &Reading) -> Option<Expr> {
    reading
        .presence
        .iter()
        .filter_map(|name| match decision.column(name) {
            Some(c) if c.access == Access::Clear => None,
            Some(c) if !c.emergency_clear_areas.is_empty() => {
                Some(reading.in_areas(&c.emergency_clear_areas))
            }
            _ => Some(lit(false)),
        })
        .reduce(Expr::and)
}

/// Whether `provider` is a snapshot of a shared table whose every row's `area_code` starts
/// with `area` (raw tables and live views are never proven).
fn proven_inside(provider: &Arc<dyn TableProvider>, reading: &Reading, area: &str) -> bool {
    reading.area_is_own_column()
        && provider
            .downcast_ref::<crate::snapshot::SnapshotTable>()
            .is_some_and(|s| s.all_rows_in(area))
}

/// NULL of a column's type: what a masked or closed value reads as.
fn typed_null(data_type: &DataType) -> Result<Expr> {
    ScalarValue::try_from(data_type)
        .map(lit)
        .map_err(EngineError::plan)
}
