//! Bounds on what one principal's SQL may ask of the hub, checked before anything is planned.
//!
//! DataFusion plans and optimises by recursion over the syntax tree and the plan: a left-deep
//! chain of a thousand `+` (2 KB of SQL) overflows a worker thread's stack and aborts the
//! whole process. So a principal's SQL is, in this order:
//! 1. at most [`SqlLimits::max_sql_bytes`] long (refused unparsed);
//! 2. parsed on a planner thread with a large stack ([`PARSE_STACK_BYTES`]): the parser
//!    builds left-deep chains iteratively, but walking and dropping such a tree recurses,
//!    and a refused tree is dropped there too, never on a worker thread;
//! 3. measured with a bounded walk (it stops at the first bound it passes): expression depth,
//!    expression count, `SELECT`s (each side of a `UNION` is one), tables and subquery
//!    nesting;
//! 4. after planning, the logical plan's node count ([`SqlLimits::max_plan_nodes`]).
//!
//! Within these bounds planning and execution recurse at most a few hundred levels. Both
//! planning stages run on a planner thread ([`on_planner_stack`]), and so does a collected
//! (local) query's execution; a streamed answer executes on the runtime's workers, which
//! `gridhub serve` starts with 16 MiB stacks (a debug build's frames need it: tokio's default
//! of 2 MiB does not hold a 100-term expression there).
//! Each refusal is a clear error naming the bound and its value.

use std::ops::ControlFlow;

use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Expr, Query, Select, TableFactor, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;

use crate::error::{EngineError, Result};

/// Stack of the thread a principal's SQL is parsed, measured and (if refused) dropped on.
/// Only the pages touched are ever committed.
pub const PARSE_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Stack of the thread a query within the bounds is planned on (logical and physical).
pub const PLANNER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Work for a planner thread.
type PlannerJob = Box<dyn FnOnce() + Send + 'static>;

/// The hub's planner threads: long-lived, one per core (at least two), each with a stack of
/// [`PARSE_STACK_BYTES`] (which covers [`PLANNER_STACK_BYTES`]) and a tokio runtime of its
/// own, taking jobs from one queue. Starting a thread and a runtime per query cost more than
/// planning a small query does. When every planner thread is busy (a slow plan), a job gets
/// a thread of its own instead of queueing behind it.
struct Planners {
    queue: std::sync::Mutex<std::sync::mpsc::Sender<PlannerJob>>,
    /// Planner threads waiting for a job.
    idle: std::sync::atomic::AtomicUsize,
}

fn planners() -> &'static Planners {
    static PLANNERS: std::sync::OnceLock<Planners> = std::sync::OnceLock::new();
    PLANNERS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<PlannerJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        let mut started = 0;
        for i in 0..threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("gridhub-planner-{i}"))
                .stack_size(PARSE_STACK_BYTES.max(PLANNER_STACK_BYTES))
                .spawn(move || {
                    PLANNING.with(|p| p.set(true));
                    loop {
                        // The lock is held only while waiting for the next job.
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(job) = job else { break };
                        planners()
                            .idle
                            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                        job();
                        planners()
                            .idle
                            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                    }
                });
            started += usize::from(spawned.is_ok());
        }
        Planners {
            queue: std::sync::Mutex::new(tx),
            idle: std::sync::atomic::AtomicUsize::new(started),
        }
    })
}

thread_local! {
    /// A planner thread's runtime, built on its first job.
    static PLANNER_RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime for planning");
    /// Whether this thread is a planner thread (work for one then runs inline).
    static PLANNING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Await `work` run on a planner thread ([`PLANNER_STACK_BYTES`] of stack or more, a runtime
/// of its own): planning is CPU work, and this way its depth does not depend on the stack of
/// whichever thread asked (tokio's workers have 2 MiB). The caller's thread is not blocked.
/// On a planner thread already (a collected query), `work` runs inline. A panic in `work` is
/// resumed in the caller; a planner thread that cannot be had is an internal error.
pub async fn planned<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    if PLANNING.with(|p| p.get()) {
        return work.await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: PlannerJob = Box::new(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            PLANNER_RUNTIME.with(|rt| rt.block_on(work))
        }));
        let _ = tx.send(result);
    });
    let unavailable = |why: String| EngineError::Internal {
        message: format!("no planner thread: {why}"),
    };
    let pool = planners();
    let job = if pool.idle.load(std::sync::atomic::Ordering::Acquire) > 0 {
        let queue = pool.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.send(job).err().map(|e| e.0)
    } else {
        Some(job)
    };
    if let Some(job) = job {
        // Every planner thread is busy (or they have stopped): a thread for this job alone.
        std::thread::Builder::new()
            .name("gridhub-planner-extra".into())
            .stack_size(PARSE_STACK_BYTES.max(PLANNER_STACK_BYTES))
            .spawn(move || {
                PLANNING.with(|p| p.set(true));
                job()
            })
            .map_err(|e| unavailable(e.to_string()))?;
    }
    match rx.await {
        Ok(Ok(answer)) => answer,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Err(unavailable(
            "a planner thread stopped without an answer".into(),
        )),
    }
}

/// The runtime collected queries execute on: one worker per core with a planner thread's
/// stack, shared by the process. A query's own future runs on the thread that asked
/// ([`on_planner_stack`]); the tasks its plan spawns (one per partition) run here, in
/// parallel, as they would on the server's runtime.
fn collect_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: std::sync::OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
                .thread_name("gridhub-collect")
                .thread_stack_size(PLANNER_STACK_BYTES)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EngineError::Internal {
            message: format!("no runtime for collected queries: {e}"),
        })
}

/// Run `work` to completion on a thread of its own with a planner thread's stack (a planner
/// thread for the duration: parsing and planning inside run inline, so it needs
/// [`PARSE_STACK_BYTES`]), blocking the caller meanwhile: for work that borrows from the
/// caller, such as a collected query. What its plan spawns runs on the collect runtime's
/// workers, so a collected query uses every core.
pub fn on_planner_stack<T: Send>(
    work: impl std::future::Future<Output = Result<T>> + Send,
) -> Result<T> {
    let runtime = collect_runtime()?;
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("gridhub-planner".into())
            .stack_size(PARSE_STACK_BYTES.max(PLANNER_STACK_BYTES))
            .spawn_scoped(scope, || {
                PLANNING.with(|p| p.set(true));
                runtime.handle().block_on(work)
            })
            .map_err(|e| EngineError::Internal {
                message: format!("cannot start a planner thread: {e}"),
            })?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// How much a principal's SQL may ask for. The defaults are far above what the hub's own
/// reports and BI tools send, and far below what breaks the planner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlLimits {
    /// Length of the SQL text in bytes.
    pub max_sql_bytes: usize,
    /// Nesting of expressions (`a + b + c` is 3 deep; `f(g(x))` too).
    pub max_expr_depth: usize,
    /// Expressions in the whole statement (an `IN` list of 10,000 literals is 10,001).
    pub max_expr_nodes: usize,
    /// `SELECT`s in the statement: subqueries, CTEs and each side of a set operation.
    pub max_selects: usize,
    /// Tables, joins' sides and derived tables named in `FROM` clauses.
    pub max_tables: usize,
    /// Nesting of queries in queries.
    pub max_query_depth: usize,
    /// Nodes of the logical plan after planning (policy views included).
    pub max_plan_nodes: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        Self {
            max_sql_bytes: 256 * 1024,
            max_expr_depth: 128,
            max_expr_nodes: 50_000,
            max_selects: 64,
            max_tables: 64,
            max_query_depth: 16,
            max_plan_nodes: 4_096,
        }
    }
}

/// Parse `sql` within `limits`: one statement, measured, on a thread with a large stack.
pub async fn parse_bounded(
    sql: &str,
    limits: &SqlLimits,
    recursion_limit: usize,
) -> Result<DfStatement> {
    if sql.len() > limits.max_sql_bytes {
        return Err(too_large(format!(
            "the SQL text is {} bytes, more than the {} a query may have",
            sql.len(),
            limits.max_sql_bytes
        )));
    }
    let sql = sql.to_string();
    let limits = limits.clone();
    planned(async move { parse_and_measure(&sql, &limits, recursion_limit) }).await
}

fn parse_and_measure(sql: &str, limits: &SqlLimits, recursion_limit: usize) -> Result<DfStatement> {
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&GenericDialect {})
        .with_recursion_limit(recursion_limit)
        .build()
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| EngineError::syntax(&e))?;
    if statements.len() != 1 {
        return Err(EngineError::sql(format!(
            "one SQL statement per query, not {} (separate them into several queries)",
            statements.len()
        )));
    }
    let statement = statements.pop_front().expect("one statement");
    if let DfStatement::Statement(s) = &statement {
        let mut measure = Measure::new(limits);
        if let ControlFlow::Break(why) = s.visit(&mut measure) {
            return Err(too_large(why));
        }
    }
    Ok(statement)
}

/// Refuse a plan with more than `max_plan_nodes` nodes (counted with subqueries; the walk
/// stops at the bound).
pub fn check_plan(plan: &LogicalPlan, limits: &SqlLimits) -> Result<()> {
    let mut nodes = 0usize;
    let _ = plan.apply_with_subqueries(|_| {
        nodes += 1;
        Ok(if nodes > limits.max_plan_nodes {
            datafusion::common::tree_node::TreeNodeRecursion::Stop
        } else {
            datafusion::common::tree_node::TreeNodeRecursion::Continue
        })
    });
    if nodes > limits.max_plan_nodes {
        return Err(too_large(format!(
            "the query's plan has more than {} nodes",
            limits.max_plan_nodes
        )));
    }
    Ok(())
}

fn too_large(why: String) -> EngineError {
    EngineError::QueryTooLarge {
        message: format!("{why}; simplify the query or split it into several"),
    }
}

/// Counts what the bounds are about while walking the tree; breaks at the first bound passed,
/// so the walk itself never recurses deeper than the bounds.
struct Measure<'a> {
    limits: &'a SqlLimits,
    depth: usize,
    nodes: usize,
    selects: usize,
    tables: usize,
    queries: usize,
}

impl<'a> Measure<'a> {
    fn new(limits: &'a SqlLimits) -> Self {
        Self {
            limits,
            depth: 0,
            nodes: 0,
            selects: 0,
            tables: 0,
            queries: 0,
        }
    }
}

impl Visitor for Measure<'_> {
    type Break = String;

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<String> {
        self.queries += 1;
        if self.queries > self.limits.max_query_depth {
            return ControlFlow::Break(format!(
                "queries are nested more than {} deep",
                self.limits.max_query_depth
            ));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<String> {
        self.queries -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, _: &Select) -> ControlFlow<String> {
        self.selects += 1;
        if self.selects > self.limits.max_selects {
            return ControlFlow::Break(format!(
                "the query has more than {} SELECTs",
                self.limits.max_selects
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, _: &TableFactor) -> ControlFlow<String> {
        self.tables += 1;
        if self.tables > self.limits.max_tables {
            return ControlFlow::Break(format!(
                "the query reads more than {} tables",
                self.limits.max_tables
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<String> {
        self.depth += 1;
        self.nodes += 1;
        if self.depth > self.limits.max_expr_depth {
            return ControlFlow::Break(format!(
                "an expression is nested more than {} deep",
                self.limits.max_expr_depth
            ));
        }
        if self.nodes > self.limits.max_expr_nodes {
            return ControlFlow::Break(format!(
                "the query has more than {} expressions",
                self.limits.max_expr_nodes
            ));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<String> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}
