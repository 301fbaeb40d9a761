//! A table that cannot be read because a source behind it is down: it keeps its schema
//! (so the catalog and `information_schema` still describe it) and every scan fails with
//! the reason, naming the source.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

#[derive(Debug)]
pub struct UnavailableTable {
    schema: SchemaRef,
    reason: String,
}

impl UnavailableTable {
    pub fn new(schema: SchemaRef, reason: String) -> Self {
        Self { schema, reason }
    }

    /// Why the table cannot be read (names the source).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

#[async_trait]
impl TableProvider for UnavailableTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Plan(self.reason.clone()))
    }
}
