//! The `sqlite` connector.
//!
//! Option (besides the common `name`, `type`, `label`): `path`, the database file.
//!
//! The database is queried in place through the SQLite provider of
//! `datafusion-table-providers` (`SqliteConnectionPool` + `SQLiteTable`): projections, filters
//! and limits are unparsed into SQL and run by SQLite. Only filters SQLite evaluates exactly
//! as DataFusion does (comparisons, arithmetic, boolean logic, `IS NULL`, `LIKE`, `IN`,
//! `BETWEEN`) are pushed; filters calling functions stay in DataFusion. Every table in
//! `sqlite_master` is a source table (SQLite's internal `sqlite_*` tables excluded); Chinese
//! table and column names work as they are. The file is opened read-only (`mode=ro`): the connector never creates,
//! changes or converts the database (no WAL switch), and a missing file is an error.
//!
//! Column types follow SQLite's declared-type affinity: `INT…` → `Int64`, `CHAR`/`CLOB`/`TEXT`
//! → `Utf8`, `REAL`/`FLOA`/`DOUB` → `Float64`, `BLOB` → `Binary`. Columns without a declared
//! type or with NUMERIC affinity (`NUMERIC`, `DECIMAL`, `DATE`, `BOOLEAN`, …) are typed by the
//! values they hold: only integers → `Int64`, numbers → `Float64`, only text (or nothing) →
//! `Utf8`, only blobs → `Binary`; a column mixing text and numbers is read as text through a
//! temporary view that casts it, so its values survive intact.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion_table_providers::sql::db_connection_pool::sqlitepool::SqliteConnectionPool;
use datafusion_table_providers::sql::db_connection_pool::{DbConnectionPool, JoinPushDown, Mode};
use datafusion_table_providers::sqlite::DynSqliteConnectionPool;
use datafusion_table_providers::sqlite::sql_table::SQLiteTable;
use futures::TryStreamExt;
use gridhub_connector::{Connector, ConnectorContext, Health, Result};
use rusqlite::OpenFlags;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::common::{
    absolute_path, blocking, check_readable_file, connector_factory, invalid_options,
    percent_encode_path, unknown_table,
};

/// The connector kind name.
pub const KIND: &str = "sqlite";

/// How long a read waits for a writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqliteOptions {
    #[serde(default, rename = "name")]
    _name: Option<IgnoredAny>,
    #[serde(default, rename = "type")]
    _type: Option<IgnoredAny>,
    #[serde(default, rename = "label")]
    _label: Option<IgnoredAny>,
    path: String,
}

connector_factory!(SqliteFactory, SqliteConnector);

/// A SQLite database, read in place.
pub struct SqliteConnector {
    ctx: ConnectorContext,
    path: PathBuf,
    /// Opened on first use; one read-only connection shared by this source's tables.
    pool: tokio::sync::OnceCell<Arc<SqliteConnectionPool>>,
}

impl std::fmt::Debug for SqliteConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteConnector")
            .field("source", &self.ctx.source_name)
            .field("path", &self.path)
            .field("open", &self.pool.initialized())
            .finish()
    }
}

impl SqliteConnector {
    /// Parses the options of `ctx`.
    pub fn new(ctx: ConnectorContext) -> Result<Self> {
        let options: SqliteOptions = ctx.parse_options()?;
        if options.path.trim().is_empty() {
            return Err(invalid_options(&ctx, "option `path` is empty"));
        }
        Ok(Self {
            path: ctx.resolve(&options.path),
            ctx,
            pool: tokio::sync::OnceCell::new(),
        })
    }

    /// A blocking read-only connection (never creates the file).
    fn open_read_only(ctx: &ConnectorContext, path: &Path) -> Result<rusqlite::Connection> {
        check_readable_file(ctx, path)?;
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| ctx.io_error(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| ctx.io_error(path, e))?;
        // Reading the schema proves the file is a database.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| ctx.io_error(path, e))?;
        Ok(conn)
    }

    async fn with_connection<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&ConnectorContext, &Path, &rusqlite::Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let ctx = self.ctx.clone();
        let path = self.path.clone();
        blocking(&self.ctx, move || {
            let conn = Self::open_read_only(&ctx, &path)?;
            f(&ctx, &path, &conn)
        })
        .await
    }

    async fn pool(&self) -> Result<Arc<SqliteConnectionPool>> {
        self.pool
            .get_or_try_init(|| async {
                // Fails, naming the file, when it is missing or not a database.
                self.with_connection(|_, _, _| Ok(())).await?;
                let abs = absolute_path(&self.path).map_err(|e| self.ctx.io_error(&self.path, e))?;
                let abs_str = abs.to_str().ok_or_else(|| {
                    self.ctx.io_error(&abs, "the path is not valid UTF-8")
                })?;
                // A URI so that SQLite opens the file read-only and never creates it. The
                // pool is built without `setup()`, which would switch the file to WAL mode.
                let uri = format!("file:{}?mode=ro", percent_encode_path(abs_str));
                let pool = SqliteConnectionPool::new(
                    &uri,
                    Mode::File,
                    JoinPushDown::AllowedFor(uri.clone()),
                    vec![],
                    BUSY_TIMEOUT,
                )
                .await
                .map_err(|e| self.ctx.io_error(&self.path, e))?;
                let conn = pool
                    .connect()
                    .await
                    .map_err(|e| self.ctx.io_error(&self.path, e))?;
                if let Some(conn) = conn.as_async() {
                    let timeout = format!("PRAGMA busy_timeout = {}", BUSY_TIMEOUT.as_millis());
                    let set = async {
                        let stream = conn.query_arrow(&timeout, &[], None).await?;
                        stream.try_collect::<Vec<_>>().await?;
                        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                    };
                    if let Err(e) = set.await {
                        tracing::warn!(source = %self.ctx.source_name, "cannot set busy_timeout: {e}");
                    }
                }
                Ok(Arc::new(pool))
            })
            .await
            .cloned()
    }
}

/// `name` as an SQLite identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn list_tables(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND substr(name, 1, 7) <> 'sqlite_' ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// How a column is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnRead {
    /// As stored, with this Arrow type.
    Direct(ColumnType),
    /// `CAST(column AS TEXT)`: mixed text and numbers.
    AsText,
}

/// The Arrow types the connector maps SQLite columns to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnType {
    Int64,
    Float64,
    Utf8,
    Binary,
}

impl ColumnType {
    fn arrow(self) -> DataType {
        match self {
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Binary => DataType::Binary,
        }
    }
}

/// The type implied by a declared column type (SQLite affinity rules), `None` when the
/// values decide (NUMERIC affinity or no declared type).
fn declared_type(decl: &str) -> Option<ColumnType> {
    let d = decl.to_ascii_uppercase();
    if d.contains("INT") {
        Some(ColumnType::Int64)
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        Some(ColumnType::Utf8)
    } else if d.contains("BLOB") {
        Some(ColumnType::Binary)
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        Some(ColumnType::Float64)
    } else {
        None
    }
}

/// Columns of a table and how each is read.
fn table_columns(
    conn: &rusqlite::Connection,
    table: &str,
) -> rusqlite::Result<Vec<(String, ColumnRead)>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote_ident(table)))?;
    let declared: Vec<(String, String)> = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(1)?, r.get::<_, Option<String>>(2)?))
        })?
        .map(|r| r.map(|(name, decl)| (name, decl.unwrap_or_default())))
        .collect::<rusqlite::Result<_>>()?;
    let undecided: Vec<usize> = declared
        .iter()
        .enumerate()
        .filter(|(_, (_, decl))| declared_type(decl).is_none())
        .map(|(i, _)| i)
        .collect();
    // One scan: which storage classes occur in each undecided column.
    let mut classes = vec![[false; 4]; declared.len()];
    if !undecided.is_empty() {
        let probes: Vec<String> = undecided
            .iter()
            .flat_map(|&i| {
                let c = quote_ident(&declared[i].0);
                ["integer", "real", "text", "blob"]
                    .map(|t| format!("coalesce(max(typeof({c}) = '{t}'), 0)"))
            })
            .collect();
        let sql = format!("SELECT {} FROM {}", probes.join(", "), quote_ident(table));
        conn.query_row(&sql, [], |r| {
            for (k, &i) in undecided.iter().enumerate() {
                for (t, seen) in classes[i].iter_mut().enumerate() {
                    *seen = r.get::<_, i64>(k * 4 + t)? != 0;
                }
            }
            Ok(())
        })?;
    }
    Ok(declared
        .into_iter()
        .enumerate()
        .map(|(i, (name, decl))| {
            let read = match declared_type(&decl) {
                Some(t) => ColumnRead::Direct(t),
                None => match classes[i] {
                    // [integer, real, text, blob]
                    [true, false, false, false] => ColumnRead::Direct(ColumnType::Int64),
                    [_, true, false, false] => ColumnRead::Direct(ColumnType::Float64),
                    [false, false, _, false] => ColumnRead::Direct(ColumnType::Utf8),
                    [false, false, false, true] => ColumnRead::Direct(ColumnType::Binary),
                    _ => ColumnRead::AsText,
                },
            };
            (name, read)
        })
        .collect())
}

#[async_trait]
impl Connector for SqliteConnector {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn discover(&self) -> Result<Vec<String>> {
        self.with_connection(|ctx, path, conn| list_tables(conn).map_err(|e| ctx.io_error(path, e)))
            .await
    }

    async fn table(&self, name: &str) -> Result<Arc<dyn TableProvider>> {
        let owned = name.to_string();
        let (tables, columns) = self
            .with_connection(move |ctx, path, conn| {
                let tables = list_tables(conn).map_err(|e| ctx.io_error(path, e))?;
                if !tables.contains(&owned) {
                    return Ok((tables, None));
                }
                let columns = table_columns(conn, &owned).map_err(|e| {
                    ctx.io_error(path, format!("cannot read the columns of '{owned}': {e}"))
                })?;
                Ok((tables, Some(columns)))
            })
            .await?;
        let Some(columns) = columns else {
            return Err(unknown_table(&self.ctx, name, &tables));
        };
        let schema: SchemaRef = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, read)| {
                    let t = match read {
                        ColumnRead::Direct(t) => t.arrow(),
                        ColumnRead::AsText => DataType::Utf8,
                    };
                    Field::new(n, t, true)
                })
                .collect::<Vec<_>>(),
        ));
        let pool = self.pool().await?;
        let reference = if columns.iter().any(|(_, r)| *r == ColumnRead::AsText) {
            // A temporary view (in the connection's own temp schema; the file stays untouched)
            // casts the mixed columns to text.
            let view = format!("gridhub_view_{name}");
            let select: Vec<String> = columns
                .iter()
                .map(|(n, r)| match r {
                    ColumnRead::AsText => format!("CAST({0} AS TEXT) AS {0}", quote_ident(n)),
                    ColumnRead::Direct(_) => quote_ident(n),
                })
                .collect();
            let statements = [
                format!("DROP VIEW IF EXISTS temp.{}", quote_ident(&view)),
                format!(
                    "CREATE TEMP VIEW {} AS SELECT {} FROM main.{}",
                    quote_ident(&view),
                    select.join(", "),
                    quote_ident(name)
                ),
            ];
            let conn = pool
                .connect()
                .await
                .map_err(|e| self.ctx.io_error(&self.path, e))?;
            let conn = conn
                .as_async()
                .ok_or_else(|| self.ctx.error("SQLite connection is not async"))?;
            for sql in &statements {
                conn.execute(sql, &[]).await.map_err(|e| {
                    self.ctx.io_error(
                        &self.path,
                        format!("cannot create a view for '{name}': {e}"),
                    )
                })?;
            }
            TableReference::partial("temp", view)
        } else {
            TableReference::bare(name)
        };
        let dyn_pool: Arc<DynSqliteConnectionPool> = pool;
        Ok(Arc::new(NonEmptyProjection {
            inner: Arc::new(SQLiteTable::new_with_schema(&dyn_pool, schema, reference)),
        }))
    }

    async fn health(&self) -> Health {
        match self.with_connection(|_, _, _| Ok(())).await {
            Ok(()) => Health::Ok,
            Err(e) => Health::Unavailable(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity() {
        assert_eq!(declared_type("INTEGER"), Some(ColumnType::Int64));
        assert_eq!(declared_type("bigint"), Some(ColumnType::Int64));
        assert_eq!(declared_type("VARCHAR(18)"), Some(ColumnType::Utf8));
        assert_eq!(declared_type("TEXT"), Some(ColumnType::Utf8));
        assert_eq!(declared_type("DOUBLE PRECISION"), Some(ColumnType::Float64));
        assert_eq!(declared_type("BLOB"), Some(ColumnType::Binary));
        assert_eq!(declared_type(""), None);
        assert_eq!(declared_type("DATE"), None);
        assert_eq!(declared_type("NUMERIC(10,2)"), None);
    }
}

/// Asks SQLite for one column when DataFusion asks for none (`count(*)`): the SQLite
/// provider of datafusion-table-providers 0.15.1 returns every column for an empty
/// projection, which DataFusion rejects as a schema mismatch. The extra column is projected
/// away again, keeping the row count.
#[derive(Debug)]
struct NonEmptyProjection {
    inner: Arc<dyn TableProvider>,
}

#[async_trait]
impl TableProvider for NonEmptyProjection {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        self.inner.table_type()
    }

    /// Only filters SQLite evaluates exactly as DataFusion does are offered to the inner
    /// provider, which otherwise claims any filter — including calls to gridhub's own
    /// functions that SQLite does not have.
    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::logical_expr::Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        use datafusion::logical_expr::TableProviderFilterPushDown::Unsupported;
        let safe: Vec<&datafusion::logical_expr::Expr> = filters
            .iter()
            .copied()
            .filter(|f| sqlite_can_evaluate(f))
            .collect();
        let mut decided = self.inner.supports_filters_pushdown(&safe)?.into_iter();
        Ok(filters
            .iter()
            .map(|f| {
                if sqlite_can_evaluate(f) {
                    decided.next().unwrap_or(Unsupported)
                } else {
                    Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        match projection {
            Some(p) if p.is_empty() && !self.inner.schema().fields().is_empty() => {
                let plan = self
                    .inner
                    .scan(state, Some(&vec![0]), filters, limit)
                    .await?;
                let none: Vec<datafusion::physical_plan::projection::ProjectionExpr> = Vec::new();
                Ok(Arc::new(
                    datafusion::physical_plan::projection::ProjectionExec::try_new(none, plan)?,
                ))
            }
            _ => self.inner.scan(state, projection, filters, limit).await,
        }
    }
}

/// Whether SQLite evaluates `expr` as DataFusion would: columns, literals, comparisons,
/// arithmetic, boolean logic, `IS [NOT] NULL`, `LIKE`, `IN (…)`, `BETWEEN`. No functions,
/// casts or `CASE` (their semantics differ, or SQLite lacks them).
fn sqlite_can_evaluate(expr: &datafusion::logical_expr::Expr) -> bool {
    use datafusion::common::tree_node::TreeNode;
    use datafusion::logical_expr::{Expr, Operator};
    let unsupported = expr.exists(|e| {
        Ok(match e {
            Expr::Column(_)
            | Expr::Literal(..)
            | Expr::Not(_)
            | Expr::IsNull(_)
            | Expr::IsNotNull(_)
            | Expr::Negative(_)
            | Expr::InList(_)
            | Expr::Between(_) => false,
            Expr::Like(like) => like.case_insensitive || like.escape_char.is_some(),
            Expr::BinaryExpr(b) => !matches!(
                b.op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
                    | Operator::And
                    | Operator::Or
                    | Operator::Plus
                    | Operator::Minus
                    | Operator::Multiply
            ),
            _ => true,
        })
    });
    matches!(unsupported, Ok(false))
}
