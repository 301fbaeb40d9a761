//! Arrow Flight SQL over the hub: statement queries, prepared statements with parameters,
//! and the metadata calls BI tools and drivers make (`GetCatalogs`, `GetDbSchemas`,
//! `GetTables` with the schema each principal sees, `GetTableTypes`, `GetSqlInfo`). Every
//! call is authenticated by [`crate::AuthLayer`] before it reaches this service; queries run
//! through [`Hub::stream_as`] — the same policy views and audit as a local query — and
//! stream to the client batch by batch.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::common::{ParamValues, ScalarValue};
use futures::{Stream, StreamExt, TryStreamExt};
use gridhub_engine::hub::CATALOG;
use gridhub_engine::{PlanUse, PlannedQuery, QueryLimits, VisibleTable};
use prost::Message;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::auth::Credential;
use crate::error::{ServerError, flight_status, status};
use crate::guard::Guarded;
use crate::{Caller, ServerState};

type DoGetStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// Prepared statements are dropped this long after their creation (clients close theirs).
const PREPARED_TTL: Duration = Duration::from_secs(3600);
/// The table type of a table GetTables lists.
const TABLE: &str = "TABLE";
/// The table type of a table whose source cannot be read now.
const UNAVAILABLE_TABLE: &str = "UNAVAILABLE TABLE";
/// Schema metadata key of an unavailable table's reason, in GetTables' `table_schema`.
pub const UNAVAILABLE_METADATA: &str = "gridhub.unavailable";

/// At most this many open prepared statements in the hub.
const PREPARED_MAX: usize = 10_000;

/// The Flight SQL service of the hub.
#[derive(Clone)]
pub struct HubFlightSql {
    state: Arc<ServerState>,
    prepared: Arc<Mutex<HashMap<String, Prepared>>>,
    kept: Arc<Mutex<KeptPlans>>,
}

/// A statement ticket: the SQL and the purpose it was planned with, and the handle of the
/// plan GetFlightInfo kept for it. Harmless to forge: it is run as whoever presents it, under
/// their policy; a kept plan is used only by the principal it was made for, with the same
/// SQL and purpose, and only while what it was decided under still holds.
#[derive(Serialize, Deserialize)]
struct StatementTicket {
    sql: String,
    purpose: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    plan: Option<String>,
}

/// A kept plan is dropped this long after GetFlightInfo made it (DoGet follows at once).
const KEPT_PLAN_TTL: Duration = Duration::from_secs(30);
/// At most this many kept plans in the hub …
const KEPT_PLANS_MAX: usize = 1_024;
/// … and per principal (so one principal's unclaimed plans never push out another's).
const KEPT_PLANS_PER_PRINCIPAL: usize = 16;

/// Plans GetFlightInfo made and verified, kept for the DoGet of their ticket, so that a
/// statement is planned once. Bounded; a plan not found (dropped, or another hub process)
/// is simply made again from the ticket's SQL.
#[derive(Default)]
struct KeptPlans {
    plans: HashMap<String, (Instant, PlannedQuery)>,
}

impl KeptPlans {
    /// Keep `plan`; its handle.
    fn keep(&mut self, plan: PlannedQuery) -> String {
        self.plans
            .retain(|_, (made, _)| made.elapsed() < KEPT_PLAN_TTL);
        let oldest = |plans: &HashMap<String, (Instant, PlannedQuery)>, principal: Option<&str>| {
            plans
                .iter()
                .filter(|(_, (_, p))| principal.is_none_or(|id| p.principal_id() == id))
                .min_by_key(|(_, (made, _))| *made)
                .map(|(handle, _)| handle.clone())
        };
        let principal = plan.principal_id().to_string();
        let own = self
            .plans
            .values()
            .filter(|(_, p)| p.principal_id() == principal)
            .count();
        if own >= KEPT_PLANS_PER_PRINCIPAL
            && let Some(handle) = oldest(&self.plans, Some(&principal))
        {
            self.plans.remove(&handle);
        }
        if self.plans.len() >= KEPT_PLANS_MAX
            && let Some(handle) = oldest(&self.plans, None)
        {
            self.plans.remove(&handle);
        }
        let handle = crate::query_id();
        self.plans.insert(handle.clone(), (Instant::now(), plan));
        handle
    }

    /// Drop the plan kept under `handle`: no DoGet will ask for it.
    fn discard(&mut self, handle: &str) {
        self.plans.remove(handle);
    }

    /// Take the plan kept under `handle` if it was made for `principal` from `sql` with
    /// `purpose` and has not expired; another principal's stays where it is.
    fn take(
        &mut self,
        handle: &str,
        principal: &str,
        sql: &str,
        purpose: Option<&str>,
    ) -> Option<PlannedQuery> {
        let (made, plan) = self.plans.get(handle)?;
        if plan.principal_id() != principal {
            return None;
        }
        let usable =
            made.elapsed() < KEPT_PLAN_TTL && plan.sql() == sql && plan.purpose() == purpose;
        let (_, plan) = self.plans.remove(handle)?;
        usable.then_some(plan)
    }
}

/// What a DoGet runs: SQL to plan, or a plan GetFlightInfo kept.
enum Statement {
    Sql {
        sql: String,
        purpose: Option<String>,
        params: Option<ParamValues>,
    },
    Planned(Box<PlannedQuery>),
}

struct Prepared {
    principal: String,
    purpose: Option<String>,
    sql: String,
    params: Option<ParamValues>,
    /// Counts the parameter bindings: a plan made under an earlier binding is not kept.
    binding: u64,
    /// The handle of the plan the last GetFlightInfo made for the next DoGet, if any.
    kept: Option<String>,
    created: Instant,
}

/// What a prepared statement runs: its SQL, purpose and parameters as bound, which binding
/// that is, and the plan kept for it.
struct PreparedRun {
    sql: String,
    purpose: Option<String>,
    params: Option<ParamValues>,
    binding: u64,
    kept: Option<String>,
}

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        // The auth layer puts it there; without it, nothing runs (fail closed).
        .ok_or_else(|| status(ServerError::not_authenticated()))
}

fn sql_info() -> &'static SqlInfoData {
    static INFO: std::sync::OnceLock<SqlInfoData> = std::sync::OnceLock::new();
    INFO.get_or_init(|| {
        let mut b = SqlInfoDataBuilder::new();
        b.append(SqlInfo::FlightSqlServerName, "gridhub");
        b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        b.append(SqlInfo::FlightSqlServerReadOnly, true);
        b.append(SqlInfo::FlightSqlServerSql, true);
        b.append(SqlInfo::FlightSqlServerSubstrait, false);
        b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        b.append(SqlInfo::FlightSqlServerCancel, false);
        b.append(SqlInfo::SqlDdlCatalog, false);
        b.append(SqlInfo::SqlDdlSchema, false);
        b.append(SqlInfo::SqlDdlTable, false);
        // Unquoted identifiers fold to lower case (SqlSupportedCaseSensitivity::Lowercase).
        b.append(SqlInfo::SqlIdentifierCase, 3i32);
        b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        // Not every table is readable by every principal.
        b.append(SqlInfo::SqlAllTablesAreSelectable, false);
        // ASC puts NULLs last, DESC first: NULLs sort high (SqlNullOrdering::SqlNullsSortedHigh).
        b.append(SqlInfo::SqlNullOrdering, 0i32);
        b.build().expect("static SqlInfo")
    })
}

fn schema_bytes(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: arrow::error::ArrowError| status(ServerError::encode("a schema", e)))?;
    Ok(bytes)
}

/// One batch as a Flight stream (metadata answers).
fn single(batch: Result<RecordBatch, FlightError>, schema: SchemaRef) -> DoGetStream {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures::stream::once(async move { batch }))
        .map_err(|e| flight_status(e, |e| ServerError::encode("a metadata answer", e)));
    Box::pin(stream)
}

fn info_for(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| status(ServerError::encode("a flight info", e)))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

/// The flight info of a metadata command (answered in full by its DoGet): the caller must be
/// authenticated, the ticket is the command itself.
fn metadata_info(
    request: Request<FlightDescriptor>,
    schema: &Schema,
    command: Vec<u8>,
) -> Result<Response<FlightInfo>, Status> {
    caller(&request)?;
    Ok(Response::new(info_for(
        schema,
        command,
        request.into_inner(),
    )?))
}

/// The first row of a parameter batch as positional parameters `$1`, `$2`, ….
fn parameters(batches: &[RecordBatch]) -> Result<ParamValues, Status> {
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(ParamValues::List(vec![]));
    };
    if rows > 1 {
        return Err(status(ServerError::BadParameter {
            message: format!("{rows} parameter rows: a query binds one row of parameters"),
        }));
    }
    let values = batch
        .columns()
        .iter()
        .map(|c: &ArrayRef| ScalarValue::try_from_array(c.as_ref(), 0).map(Into::into))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            status(ServerError::BadParameter {
                message: e.to_string(),
            })
        })?;
    Ok(ParamValues::List(values))
}

impl HubFlightSql {
    pub fn new(state: Arc<ServerState>) -> Self {
        Self {
            state,
            prepared: Arc::new(Mutex::new(HashMap::new())),
            kept: Arc::new(Mutex::new(KeptPlans::default())),
        }
    }

    fn limits(&self) -> QueryLimits {
        QueryLimits {
            memory_bytes: Some(self.state.config.query_memory_bytes),
            ..QueryLimits::default()
        }
    }

    /// Plan as the caller (audits a refusal): the schema the caller will get.
    async fn plan(
        &self,
        caller: &Caller,
        purpose: Option<&str>,
        sql: &str,
    ) -> Result<gridhub_engine::PreparedPlan, Status> {
        self.state.check_request_size(sql)?;
        if let Some(os_user) = caller.operator() {
            self.state.hub.operator_queries_allowed().map_err(status)?;
            return self
                .state
                .hub
                .operator_plan(os_user, sql)
                .await
                .map(|schema| gridhub_engine::PreparedPlan {
                    schema,
                    parameters: Vec::new(),
                })
                .map_err(status);
        }
        let planned = self
            .state
            .hub
            .prepare_as(&caller.principal.id, purpose, sql)
            .await;
        self.planning_status(planned)
    }

    /// A planning result as the client gets it; a denial is counted.
    fn planning_status<T>(&self, planned: gridhub_engine::Result<T>) -> Result<T, Status> {
        if let Err(gridhub_engine::EngineError::Denied { .. }) = &planned {
            self.state.metrics.denied();
        }
        planned.map_err(status)
    }

    /// Plan a statement as the caller (a principal) to the physical plan, verified, for its
    /// DoGet to run (audits a refusal).
    async fn plan_statement(
        &self,
        caller: &Caller,
        purpose: Option<&str>,
        sql: &str,
        params: Option<ParamValues>,
    ) -> Result<PlannedQuery, Status> {
        self.state.check_request_size(sql)?;
        let planned = self
            .state
            .hub
            .plan_query(&caller.principal.id, purpose, sql, params, &self.limits())
            .await;
        self.planning_status(planned)
    }

    /// Run a query as the operator of a hub without principals (in-process only): collected
    /// and audited by the engine, then sent as a stream. Bounded like any SQL the hub plans;
    /// no timeout cuts it short, since a query stopped mid-way would go unaudited.
    async fn run_as_operator(
        &self,
        caller: &Caller,
        os_user: &str,
        sql: String,
        params: Option<ParamValues>,
    ) -> Result<Response<DoGetStream>, Status> {
        if params.is_some_and(|p| !matches!(&p, ParamValues::List(v) if v.is_empty())) {
            return Err(Status::invalid_argument(
                "the operator's queries take no parameters: put the values in the SQL",
            ));
        }
        self.state.hub.operator_queries_allowed().map_err(status)?;
        let _permit = self
            .state
            .concurrency
            .acquire(
                &caller.principal.id,
                self.state.config.max_queries_per_principal,
            )
            .map_err(Status::from)?;
        let answer = self
            .state
            .hub
            .operator_query(os_user, &sql)
            .await
            .map_err(status)?;
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(answer.schema)
            .build(futures::stream::iter(answer.batches.into_iter().map(Ok)))
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight)))
    }

    /// Drop a kept plan no DoGet will run.
    fn discard_kept(&self, handle: Option<String>) {
        if let Some(handle) = handle {
            self.kept.lock().expect("kept plans lock").discard(&handle);
        }
    }

    /// What a DoGet runs: the plan kept under `handle` if it is the caller's, for `sql` and
    /// `purpose`, and still fresh; else `sql` to plan again (counted as not kept).
    fn kept_or_sql(
        &self,
        caller: &Caller,
        handle: Option<&str>,
        sql: String,
        purpose: Option<String>,
        params: Option<ParamValues>,
    ) -> Statement {
        let kept = handle.and_then(|handle| {
            self.kept.lock().expect("kept plans lock").take(
                handle,
                &caller.principal.id,
                &sql,
                purpose.as_deref(),
            )
        });
        match kept {
            Some(planned) => Statement::Planned(Box::new(planned)),
            None => {
                if caller.operator().is_none() {
                    self.state.metrics.statement_plan("not_kept");
                }
                Statement::Sql {
                    sql,
                    purpose,
                    params,
                }
            }
        }
    }

    /// Run a statement as the caller and stream its answer, under the server's guards.
    async fn run(
        &self,
        caller: &Caller,
        statement: Statement,
    ) -> Result<Response<DoGetStream>, Status> {
        let purpose = match &statement {
            Statement::Sql { purpose, .. } => purpose.clone(),
            Statement::Planned(p) => p.purpose().map(str::to_string),
        };
        if let Some(os_user) = caller.operator() {
            let Statement::Sql { sql, params, .. } = statement else {
                return Err(status(ServerError::BadTicket));
            };
            return self.run_as_operator(caller, os_user, sql, params).await;
        }
        let state = &self.state;
        let config = &state.config;
        let query_id = crate::query_id();
        let span = tracing::info_span!(
            "query",
            principal = %caller.principal.id,
            purpose = purpose.as_deref().unwrap_or(""),
            query_id = %query_id
        );
        let permit = state
            .concurrency
            .acquire(&caller.principal.id, config.max_queries_per_principal)?;
        let started = Instant::now();
        state.metrics.query_started();
        let limits = self.limits();
        let streamed = async {
            match statement {
                Statement::Sql {
                    sql,
                    purpose,
                    params,
                } => {
                    state
                        .hub
                        .stream_as(
                            &caller.principal.id,
                            purpose.as_deref(),
                            &sql,
                            params,
                            &limits,
                        )
                        .await
                }
                Statement::Planned(planned) => {
                    let (stream, used) = state.hub.run_planned(*planned).await?;
                    state.metrics.statement_plan(match used {
                        PlanUse::Kept => "kept",
                        PlanUse::MadeAgain => "made_again",
                    });
                    Ok(stream)
                }
            }
        };
        let planned = tokio::time::timeout(config.query_timeout, streamed)
            .instrument(span.clone())
            .await;
        let stream = match planned {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let outcome = e.outcome().as_str();
                state
                    .metrics
                    .query_ended(outcome, 0, started.elapsed().as_secs_f64());
                span.in_scope(|| tracing::info!(outcome, "query refused: {e}"));
                return Err(status(e));
            }
            Err(_) => {
                state
                    .metrics
                    .query_ended("timeout", 0, started.elapsed().as_secs_f64());
                return Err(status(ServerError::Timeout {
                    seconds: config.query_timeout.as_secs(),
                }));
            }
        };
        span.in_scope(|| tracing::info!(tables = stream.decisions().len(), "query streaming"));
        let schema = stream.schema();
        let remaining = config.query_timeout.saturating_sub(started.elapsed());
        let guarded = Guarded::new(
            stream,
            config.query_timeout,
            remaining,
            permit,
            state.metrics.clone(),
            started,
            span,
        );
        let metrics = state.metrics.clone();
        let flight = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(guarded.map_err(|e| FlightError::Tonic(Box::new(status(e)))))
            .map(move |item| {
                if let Ok(data) = &item {
                    metrics.sent((data.data_header.len() + data.data_body.len()) as u64);
                }
                item.map_err(|e| flight_status(e, |e| ServerError::encode("a batch", e)))
            });
        Ok(Response::new(Box::pin(flight)))
    }

    /// The SQL, purpose, bound parameters and kept plan of the caller's prepared statement
    /// `handle`; the kept plan's handle is taken out (a plan runs once).
    fn prepared(&self, handle: &[u8], caller: &Caller) -> Result<PreparedRun, Status> {
        let key = String::from_utf8_lossy(handle).to_string();
        let mut map = self.prepared.lock().expect("prepared lock");
        let unknown = || {
            status(ServerError::UnknownPreparedStatement {
                handle: key.clone(),
            })
        };
        let p = map.get_mut(&key).ok_or_else(unknown)?;
        if p.principal != caller.principal.id {
            // Handles are not shared between principals: another's reads as unknown.
            return Err(unknown());
        }
        Ok(PreparedRun {
            sql: p.sql.clone(),
            purpose: p.purpose.clone(),
            params: p.params.clone(),
            binding: p.binding,
            kept: p.kept.take(),
        })
    }

    /// Readable tables of the caller with the schema the caller sees, from the policy's
    /// decisions (nothing is planned), under the caller's concurrency cap and the query
    /// timeout like any query.
    async fn readable_tables(&self, caller: &Caller) -> Result<Vec<VisibleTable>, Status> {
        let state = &self.state;
        let _permit = state
            .concurrency
            .acquire(&caller.principal.id, state.config.max_queries_per_principal)?;
        let listed = tokio::time::timeout(
            state.config.query_timeout,
            state
                .hub
                .visible_tables(&caller.principal.id, caller.purpose.as_deref()),
        )
        .await
        .map_err(|_| {
            status(ServerError::Timeout {
                seconds: state.config.query_timeout.as_secs(),
            })
        })?;
        listed.map_err(status)
    }
}

#[tonic::async_trait]
impl FlightSqlService for HubFlightSql {
    type FlightService = HubFlightSql;

    /// Basic auth (principal id : token) in, `authorization: Bearer <token>` out — the flow
    /// ADBC and JDBC use. The auth layer has already checked the credentials.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        let caller = caller(&request)?;
        self.state.metrics.request("Handshake");
        let token = match &caller.credential {
            Credential::Basic => {
                let header = request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let encoded = header.split_once(' ').map(|(_, r)| r).unwrap_or_default();
                crate::auth::basic(encoded.trim())?.1
            }
            Credential::Bearer => request
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|h| h.split_once(' ').map(|(_, t)| t.trim().to_string()))
                .unwrap_or_default(),
            // A certificate needs no token, nor does an in-process caller; the handshake
            // succeeds with an empty one.
            Credential::Certificate | Credential::Local | Credential::Operator { .. } => {
                String::new()
            }
        };
        let output = futures::stream::iter(vec![Ok(HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        })]);
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(output));
        if !token.is_empty() {
            let value = MetadataValue::try_from(format!("Bearer {token}"))
                .map_err(|e| status(ServerError::encode("the token header", e)))?;
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = caller(&request)?;
        self.state.metrics.request("GetFlightInfoStatement");
        let purpose = caller.purpose.as_deref();
        let (schema, kept) = if caller.operator().is_some() {
            let plan = self.plan(&caller, purpose, &query.query).await?;
            (plan.schema, None)
        } else {
            // Planned to the physical plan and verified once: its DoGet runs this plan.
            let planned = self
                .plan_statement(&caller, purpose, &query.query, None)
                .await?;
            let schema = planned.schema();
            let handle = self.kept.lock().expect("kept plans lock").keep(planned);
            (schema, Some(handle))
        };
        let ticket = serde_json::to_vec(&StatementTicket {
            sql: query.query,
            purpose: caller.purpose.clone(),
            plan: kept,
        })
        .map_err(|e| status(ServerError::encode("a statement ticket", e)))?;
        let ticket = TicketStatementQuery {
            statement_handle: ticket.into(),
        };
        let info = info_for(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = caller(&request)?;
        self.state.metrics.request("DoGetStatement");
        let t: StatementTicket = serde_json::from_slice(&ticket.statement_handle)
            .map_err(|_| status(ServerError::BadTicket))?;
        // The call's own purpose header wins over the one the ticket was planned with.
        let purpose = caller.purpose.clone().or(t.purpose);
        let statement = self.kept_or_sql(&caller, t.plan.as_deref(), t.sql, purpose, None);
        self.run(&caller, statement).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let caller = caller(&request)?;
        self.state.metrics.request("CreatePreparedStatement");
        let plan = self
            .plan(&caller, caller.purpose.as_deref(), &query.query)
            .await?;
        let parameter_schema = Schema::new(
            plan.parameters
                .iter()
                .map(|(name, t)| Field::new(name, t.clone().unwrap_or(DataType::Null), true))
                .collect::<Vec<_>>(),
        );
        let handle = crate::query_id();
        {
            let mut map = self.prepared.lock().expect("prepared lock");
            map.retain(|_, p| p.created.elapsed() < PREPARED_TTL);
            if map.len() >= PREPARED_MAX {
                return Err(status(ServerError::TooManyPreparedStatements {
                    limit: PREPARED_MAX,
                }));
            }
            map.insert(
                handle.clone(),
                Prepared {
                    principal: caller.principal.id.clone(),
                    purpose: caller.purpose.clone(),
                    sql: query.query,
                    params: None,
                    binding: 0,
                    kept: None,
                    created: Instant::now(),
                },
            );
        }
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into_bytes().into(),
            dataset_schema: schema_bytes(&plan.schema)?,
            parameter_schema: if plan.parameters.is_empty() {
                Default::default()
            } else {
                schema_bytes(&parameter_schema)?
            },
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let caller = caller(&request)?;
        self.state.metrics.request("BindParameters");
        let run = self.prepared(&query.prepared_statement_handle, &caller)?;
        // A plan kept for the parameters bound so far is not this statement's any more.
        self.discard_kept(run.kept);
        let stream = request.into_inner().map_err(FlightError::from);
        let batches: Vec<RecordBatch> =
            arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(stream)
                .try_collect()
                .await
                .map_err(|e| {
                    flight_status(e, |e| ServerError::BadParameter {
                        message: e.to_string(),
                    })
                })?;
        let params = parameters(&batches)?;
        let key = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        if let Some(p) = self.prepared.lock().expect("prepared lock").get_mut(&key) {
            p.params = Some(params);
            p.binding += 1;
            self.discard_kept(p.kept.take());
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let caller = caller(&request)?;
        self.state.metrics.request("GetFlightInfoPreparedStatement");
        let run = self.prepared(&cmd.prepared_statement_handle, &caller)?;
        // This call plans again: an earlier call's plan is replaced.
        self.discard_kept(run.kept);
        let purpose = caller.purpose.clone().or(run.purpose);
        let schema = if caller.operator().is_some() {
            self.plan(&caller, purpose.as_deref(), &run.sql)
                .await?
                .schema
        } else {
            // Planned to the physical plan and verified once, with the parameters bound now:
            // the statement's next DoGet runs this plan unless they are bound again first.
            let planned = self
                .plan_statement(&caller, purpose.as_deref(), &run.sql, run.params)
                .await?;
            let schema = planned.schema();
            let handle = self.kept.lock().expect("kept plans lock").keep(planned);
            let key = String::from_utf8_lossy(&cmd.prepared_statement_handle).to_string();
            match self.prepared.lock().expect("prepared lock").get_mut(&key) {
                Some(p) if p.binding == run.binding => {
                    self.discard_kept(p.kept.replace(handle));
                }
                // Closed, or bound again while this call planned: the plan is no one's.
                _ => self.discard_kept(Some(handle)),
            }
            schema
        };
        let info = info_for(&schema, cmd.as_any().encode_to_vec(), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = caller(&request)?;
        self.state.metrics.request("DoGetPreparedStatement");
        let run = self.prepared(&cmd.prepared_statement_handle, &caller)?;
        let purpose = caller.purpose.clone().or(run.purpose);
        let statement =
            self.kept_or_sql(&caller, run.kept.as_deref(), run.sql, purpose, run.params);
        self.run(&caller, statement).await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let caller = caller(&request)?;
        self.state.metrics.request("ClosePreparedStatement");
        let key = String::from_utf8_lossy(&query.prepared_statement_handle).to_string();
        let mut map = self.prepared.lock().expect("prepared lock");
        if map
            .get(&key)
            .is_some_and(|p| p.principal == caller.principal.id)
            && let Some(p) = map.remove(&key)
        {
            self.discard_kept(p.kept);
        }
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        metadata_info(request, &schema, query.as_any().encode_to_vec())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        caller(&request)?;
        self.state.metrics.request("GetCatalogs");
        let mut builder = query.into_builder();
        builder.append(CATALOG);
        let schema = builder.schema();
        Ok(Response::new(single(builder.build(), schema)))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(request, &schema, query.as_any().encode_to_vec())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = caller(&request)?;
        self.state.metrics.request("GetDbSchemas");
        let mut schemas: Vec<String> = self
            .readable_tables(&caller)
            .await?
            .into_iter()
            .map(|t| t.schema)
            .collect();
        schemas.dedup();
        let mut builder = query.into_builder();
        for s in schemas {
            builder.append(CATALOG, s);
        }
        let schema = builder.schema();
        Ok(Response::new(single(builder.build(), schema)))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        metadata_info(request, &schema, query.as_any().encode_to_vec())
    }

    /// Only the tables the caller may read, each with the columns the caller sees (denied
    /// columns absent) under the call's purpose.
    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let caller = caller(&request)?;
        self.state.metrics.request("GetTables");
        let tables = self.readable_tables(&caller).await?;
        let mut builder = query.into_builder();
        for t in tables {
            // A table whose source is broken is listed as such, the reason in its schema's
            // metadata (GetTables has no column for it).
            let (kind, columns) = match &t.unavailable {
                None => (TABLE, t.columns.as_ref().clone()),
                Some(reason) => (
                    UNAVAILABLE_TABLE,
                    t.columns
                        .as_ref()
                        .clone()
                        .with_metadata([(UNAVAILABLE_METADATA.to_string(), reason.clone())].into()),
                ),
            };
            builder
                .append(CATALOG, t.schema, t.table, kind, &columns)
                .map_err(|e| status(ServerError::encode("a table's schema", e)))?;
        }
        let schema = builder.schema();
        Ok(Response::new(single(builder.build(), schema)))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = Schema::new(vec![Field::new("table_type", DataType::Utf8, false)]);
        metadata_info(request, &schema, query.as_any().encode_to_vec())
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        caller(&request)?;
        self.state.metrics.request("GetTableTypes");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "table_type",
            DataType::Utf8,
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow::array::StringArray::from(vec![
                TABLE,
                UNAVAILABLE_TABLE,
            ])) as Arc<dyn Array>],
        )
        .map_err(FlightError::Arrow);
        Ok(Response::new(single(batch, schema)))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(sql_info()).schema();
        metadata_info(request, &schema, query.as_any().encode_to_vec())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        caller(&request)?;
        self.state.metrics.request("GetSqlInfo");
        let builder = query.into_builder(sql_info());
        let schema = builder.schema();
        Ok(Response::new(single(builder.build(), schema)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
