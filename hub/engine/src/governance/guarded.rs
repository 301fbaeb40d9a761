//! The real table under a policy view, and the jurisdiction filter it applies inside its scan.
//!
//! A principal's row filter is not a `Filter` node of the logical plan: the optimizer would
//! merge the user's predicates into it and push the conjunction into the scan, where a user
//! predicate is evaluated on rows outside the jurisdiction too. Such a predicate can reveal
//! what those rows hold without returning them: `CASE WHEN gender = 'x' AND area_code LIKE
//! '420107%' THEN 1/0 END` fails the whole query exactly when a matching row exists
//! elsewhere. So [`GuardedTable`] applies the jurisdiction filter itself, below a
//! [`JurisdictionExec`] that no predicate is pushed through: the user's filters, joins'
//! dynamic filters and everything else of the query run only on rows inside the
//! jurisdiction. A table without a row filter (read whole, or every row proven inside the
//! jurisdiction) has nothing to hide and delegates pushdown to the table it guards.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DFSchema, Statistics};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::filter_pushdown::{
    ChildPushdownResult, FilterDescription, FilterPushdownPhase, FilterPushdownPropagation,
};
use datafusion::physical_plan::limit::LocalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{
    ChildStats, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, StatisticsArgs,
    expressions,
};

/// The real table under a policy view. It only exists inside the plans the hub's policy
/// views build, so a scan of it in a planned query proves the policy's masks sit above it and
/// its row filter below everything else.
#[derive(Debug)]
pub struct GuardedTable {
    inner: Arc<dyn TableProvider>,
    /// The jurisdiction filter, over the inner table's columns; `None` reads every row.
    rows: Option<Expr>,
}

impl GuardedTable {
    pub fn new(inner: Arc<dyn TableProvider>, rows: Option<Expr>) -> Self {
        Self { inner, rows }
    }
}

#[async_trait]
impl TableProvider for GuardedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        match self.rows {
            // A user predicate never reaches a scan that also holds rows outside the
            // jurisdiction: it stays above, and sees only the rows the filter lets through.
            Some(_) => Ok(vec![
                TableProviderFilterPushDown::Unsupported;
                filters.len()
            ]),
            None => self.inner.supports_filters_pushdown(filters),
        }
    }

    fn statistics(&self) -> Option<Statistics> {
        // Statistics of the whole table would describe rows outside the jurisdiction.
        match self.rows {
            Some(_) => None,
            None => self.inner.statistics(),
        }
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let args = ScanArgs::default()
            .with_projection(projection.map(Vec::as_slice))
            .with_filters(Some(filters))
            .with_limit(limit);
        Ok(self.scan_with_args(state, args).await?.into_inner())
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        let Some(rows) = &self.rows else {
            return self.inner.scan_with_args(state, args).await;
        };
        let schema = self.inner.schema();
        // Read what the query asks for plus what the row filter needs.
        let wanted: Vec<usize> = match args.projection() {
            Some(p) => p.to_vec(),
            None => (0..schema.fields().len()).collect(),
        };
        let mut read = wanted.clone();
        for column in rows.column_refs() {
            let index = schema.index_of(&column.name)?;
            if !read.contains(&index) {
                read.push(index);
            }
        }
        // The row filter is the only filter given to the inner scan, when it takes it (it
        // prunes row groups and, in Parquet, is evaluated while decoding); no limit, which
        // would count rows before the filter.
        let pushdown = self
            .inner
            .supports_filters_pushdown(&[rows])?
            .pop()
            .unwrap_or(TableProviderFilterPushDown::Unsupported);
        let row_filters = match pushdown {
            TableProviderFilterPushDown::Unsupported => vec![],
            _ => vec![rows.clone()],
        };
        let inner_args = ScanArgs::default()
            .with_projection(Some(&read))
            .with_filters(Some(&row_filters))
            .with_statistics_requests(args.statistics_requests());
        let mut plan = self
            .inner
            .scan_with_args(state, inner_args)
            .await?
            .into_inner();
        if pushdown != TableProviderFilterPushDown::Exact {
            let df_schema = DFSchema::try_from(plan.schema().as_ref().clone())?;
            let predicate = state.create_physical_expr(rows.clone(), &df_schema)?;
            plan = Arc::new(FilterExec::try_new(predicate, plan)?);
        }
        if read.len() != wanted.len() {
            let out = plan.schema();
            let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = (0..wanted.len())
                .map(|i| {
                    let name = out.field(i).name().clone();
                    let column: Arc<dyn PhysicalExpr> =
                        Arc::new(expressions::Column::new(&name, i));
                    (column, name)
                })
                .collect();
            plan = Arc::new(ProjectionExec::try_new(exprs, plan)?);
        }
        if let Some(n) = args.limit() {
            plan = Arc::new(LocalLimitExec::new(plan, n));
        }
        Ok(ScanResult::new(Arc::new(JurisdictionExec::new(plan))))
    }
}

/// The top of a guarded scan whose rows were filtered to a jurisdiction: it passes batches
/// through and refuses every filter a parent would push below it (static or dynamic), so no
/// expression of the query is evaluated on a row the filter removed.
#[derive(Debug)]
pub struct JurisdictionExec {
    input: Arc<dyn ExecutionPlan>,
}

impl JurisdictionExec {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        Self { input }
    }
}

impl DisplayAs for JurisdictionExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "JurisdictionExec")
    }
}

impl ExecutionPlan for JurisdictionExec {
    fn name(&self) -> &str {
        "JurisdictionExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(JurisdictionExec::new(children.swap_remove(0))))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(Arc::clone(&input_stats[0]))
    }

    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> Result<FilterDescription> {
        Ok(FilterDescription::all_unsupported(
            &parent_filters,
            &self.children(),
        ))
    }

    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> Result<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        Ok(FilterPushdownPropagation::if_all(child_pushdown_result))
    }
}
