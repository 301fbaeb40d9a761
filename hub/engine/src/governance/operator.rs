//! The local operator: whoever runs the CLI on the hub's host against a hub config that
//! defines no principals. There is no policy to apply, so the operator reads every table —
//! but never unseen: every operator query is audited like a principal's (the SQL, the
//! tables it names, the outcome, the rows and the `person_id`s returned), recorded as
//! `operator:<OS user>`, and bounded like any SQL the hub plans ([`crate::bounds`]).
//!
//! Only in-process callers reach this path, and arbitrary operator SQL only on a hub without
//! principals ([`GovernedHub::operator_queries_allowed`]); the network server authenticates every
//! call as a principal and never runs it.

use std::collections::BTreeSet;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;
use gridhub_audit::Outcome;

use super::GovernedHub;
use super::record::{PersonIds, query_record};
use crate::{EngineError, Result};

/// The principal name of the operator in audit records (followed by `:` and the OS user).
pub const OPERATOR: &str = "operator";

/// The OS user running this process, as the operator's audit records name it: `$USER`,
/// else `$LOGNAME`, else `unknown`.
pub fn os_user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .map(|u| u.trim().to_string())
        .find(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The principal the operator acting as `os_user` is audited as: `operator:<os user>` with
/// the `operator` role and no jurisdiction (it reads through no policy view).
pub fn operator_principal(os_user: &str) -> gridhub_policy::Principal {
    gridhub_policy::Principal {
        id: format!("{OPERATOR}:{os_user}"),
        name: None,
        roles: vec![OPERATOR.into()],
        area: String::new(),
    }
}

/// The tables a logical plan scans, by the names the SQL used.
fn scanned_tables(plan: &LogicalPlan) -> Vec<String> {
    let mut tables = BTreeSet::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            tables.insert(scan.table_name.to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    tables.into_iter().collect()
}

/// The answer to an operator query.
#[derive(Debug)]
pub struct OperatorAnswer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Sequence number of the audit record.
    pub audit_seq: u64,
}

impl GovernedHub {
    /// Whether a query of the operator's own choosing may run: only on a hub without
    /// principals — with principals, every query runs as one of them. (The demo's fixed
    /// showcase queries run as the audited operator on its governed hub; arbitrary SQL from
    /// `gridhub query` does not.)
    pub fn operator_queries_allowed(&self) -> Result<()> {
        let principals = self.governance().principals();
        if principals.is_empty() {
            return Ok(());
        }
        Err(EngineError::Denied {
            message: format!(
                "this hub has principals: run the query as one with --as ID [--purpose P] \
                 (principals: {})",
                principals
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// Plan `sql` as the operator (the schema of its answer); a refusal is audited.
    pub async fn operator_plan(&self, os_user: &str, sql: &str) -> Result<SchemaRef> {
        let started = Instant::now();
        match self.hub.sql(sql).await {
            Ok(df) => Ok(df.schema().inner().clone()),
            Err(e) => {
                self.operator_record(os_user, sql, Vec::new(), Err(&e), started)?;
                Err(e)
            }
        }
    }

    /// Run `sql` as the operator `os_user` and collect the answer. The audit record is
    /// durable before the answer is returned; if it cannot be written, nothing is returned.
    pub async fn operator_query(&self, os_user: &str, sql: &str) -> Result<OperatorAnswer> {
        let started = Instant::now();
        let (tables, result) = match self.hub.sql(sql).await {
            Ok(df) => {
                let tables = scanned_tables(df.logical_plan());
                let schema = df.schema().inner().clone();
                let collected = df.collect().await.map_err(EngineError::execution);
                (tables, collected.map(|b| (schema, b)))
            }
            Err(e) => (Vec::new(), Err(e)),
        };
        match result {
            Ok((schema, batches)) => {
                let audit_seq =
                    self.operator_record(os_user, sql, tables, Ok(&batches), started)?;
                Ok(OperatorAnswer {
                    schema,
                    batches,
                    audit_seq,
                })
            }
            Err(e) => {
                self.operator_record(os_user, sql, tables, Err(&e), started)?;
                Err(e)
            }
        }
    }

    /// Append the audit record of an operator query.
    fn operator_record(
        &self,
        os_user: &str,
        sql: &str,
        tables: Vec<String>,
        result: std::result::Result<&[RecordBatch], &EngineError>,
        started: Instant,
    ) -> Result<u64> {
        let (outcome, message, rows, (person_ids, person_ids_truncated)) = match result {
            Ok(batches) => (
                Outcome::Ok,
                None,
                Some(batches.iter().map(|b| b.num_rows() as u64).sum()),
                {
                    let mut ids = PersonIds::default();
                    for b in batches {
                        ids.add(b);
                    }
                    ids.into_sorted()
                },
            ),
            Err(e) => (e.outcome(), Some(e.to_string()), None, (Vec::new(), false)),
        };
        let operator = operator_principal(os_user);
        // The operator reads through no policy view: no decisions, the tables it scanned.
        let mut record = query_record(
            &operator,
            None,
            sql,
            &[],
            rows,
            outcome,
            message,
            started,
            (person_ids, person_ids_truncated),
        );
        record.tables = tables;
        Ok(self.governance().audit().append(&record)?)
    }
}
