//! The hub server: one tonic server on one port hosting Arrow Flight SQL ([`flight`]) and
//! the hub's own gRPC services (`gridhub.v1`: catalog, policy, audit, health), over TLS
//! (rustls; mTLS optional) with authenticated principals.
//!
//! Every call passes [`AuthInterceptor`] first: a verified client certificate, a bearer
//! token or basic auth (principal id : token) becomes the call's [`Caller`]; anything else
//! is refused with UNAUTHENTICATED before a service sees it. Queries run as the caller under
//! the active policy, are audited, and are guarded: a timeout, a memory pool per query, a
//! cap on concurrent queries per principal, and a limit on request size. One mapping turns
//! the hub's errors into gRPC status codes ([`error`]).

pub mod api;
pub mod auth;
pub mod client;
pub mod error;
pub mod flight;
pub mod guard;
pub mod in_process;
pub mod metrics;
mod services;

use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use gridhub_engine::{GovernedHub, ServerConfig};
use gridhub_policy::Principal;
use gridhub_proto::v1::audit_service_server::AuditServiceServer;
use gridhub_proto::v1::catalog_service_server::CatalogServiceServer;
use gridhub_proto::v1::health_service_server::HealthServiceServer;
use gridhub_proto::v1::policy_service_server::PolicyServiceServer;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};

pub use auth::{
    Authenticator, Credential, TokenInfo, TokenStore, issue_token, list_tokens, revoke_token,
};
pub use error::ServerError;

/// The header that carries a call's purpose (`routine`, `elderly_care`, …).
pub const PURPOSE_HEADER: &str = "x-gridhub-purpose";

/// Who is calling, put into each request's extensions by [`AuthInterceptor`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub credential: Credential,
    /// The call's purpose header, if any.
    pub purpose: Option<String>,
}

/// What the services share.
pub struct ServerState {
    pub hub: Arc<GovernedHub>,
    pub config: ServerConfig,
    pub auth: Authenticator,
    pub concurrency: Arc<guard::Concurrency>,
    pub metrics: Arc<metrics::Metrics>,
}

impl ServerState {
    /// The state of a server for `hub` under `config`; `certificates`: client certificates
    /// identify principals (mTLS configured).
    pub fn new(
        hub: Arc<GovernedHub>,
        config: ServerConfig,
        certificates: bool,
    ) -> Result<Self, ServerError> {
        let tokens = TokenStore::open(&hub.hub().config().state_dir)?;
        Ok(Self {
            hub,
            auth: Authenticator::new(tokens, certificates),
            concurrency: Arc::new(guard::Concurrency::default()),
            metrics: Arc::new(metrics::Metrics::new()),
            config,
        })
    }

    /// Refuse a statement larger than the request limit (the transport limits messages too).
    pub fn check_request_size(&self, sql: &str) -> Result<(), ServerError> {
        let limit = self.config.max_request_kb * 1024;
        if sql.len() > limit {
            return Err(ServerError::BadRequest(format!(
                "the statement is {} bytes; the limit is {limit} ([server] max_request_kb)",
                sql.len()
            )));
        }
        Ok(())
    }
}

/// A fresh random id (queries, prepared statements).
pub fn query_id() -> String {
    use rand::TryRngCore;
    let mut bytes = [0u8; 12];
    let _ = rand::rngs::OsRng.try_fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Caller {
    /// The principal whose policy governs the call; `None` for the operator of a hub
    /// without principals (in-process only, see [`in_process`]).
    pub fn governed_principal(&self) -> Option<&Principal> {
        match self.credential {
            Credential::Operator { .. } => None,
            _ => Some(&self.principal),
        }
    }

    /// The OS user of an operator call.
    pub fn operator(&self) -> Option<&str> {
        match &self.credential {
            Credential::Operator { os_user } => Some(os_user),
            _ => None,
        }
    }
}

/// The call's purpose header, if any.
fn purpose_header(request: &Request<()>) -> Option<String> {
    request
        .metadata()
        .get(PURPOSE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
}

/// Authenticates every call (see [`Authenticator::authenticate`]). On the in-process
/// transport the caller is fixed when the client connects instead ([`in_process`]); the
/// network server never has one, so no network call can act as a local caller.
#[derive(Clone)]
pub struct AuthInterceptor {
    state: Arc<ServerState>,
    local: Option<Arc<Caller>>,
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(local) = &self.local {
            let caller = Caller {
                purpose: purpose_header(&request),
                ..Caller::clone(local)
            };
            request.extensions_mut().insert(caller);
            return Ok(request);
        }
        let peer_certs = request.peer_certs();
        let authenticated = self.state.auth.authenticate(
            &self.state.hub,
            request.metadata(),
            peer_certs.as_deref().map(Vec::as_slice),
        );
        let (principal, credential) = match authenticated {
            Ok(ok) => ok,
            Err(e) => {
                let reason = if request.metadata().get("authorization").is_none() {
                    "missing"
                } else {
                    "invalid"
                };
                self.state.metrics.auth_failure(reason);
                tracing::info!(reason, "refused: {e}");
                return Err(e.into());
            }
        };
        let purpose = purpose_header(&request);
        request.extensions_mut().insert(Caller {
            principal,
            credential,
            purpose,
        });
        Ok(request)
    }
}

/// A running hub server.
pub struct RunningServer {
    /// The gRPC / Flight SQL address (the real port when the config asked for port 0).
    pub addr: SocketAddr,
    /// The metrics endpoint, when configured.
    pub metrics_addr: Option<SocketAddr>,
    pub state: Arc<ServerState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stop accepting calls, let running ones finish, and wait for the server to end.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = &mut self.task;
        let served = task
            .await
            .map_err(|e| ServerError::Startup(format!("server task: {e}")))?;
        if let Some(m) = self.metrics_task.take() {
            m.abort();
        }
        served.map_err(|e| ServerError::Startup(e.to_string()))
    }

    /// Serve until the task ends (an error) — for `gridhub serve`, which stops on a signal.
    pub async fn wait(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        signal.await;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = (&mut self.task)
            .await
            .map_err(|e| ServerError::Startup(format!("server task: {e}")))?;
        served.map_err(|e| ServerError::Startup(e.to_string()))
    }
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|e| {
        ServerError::Startup(format!("cannot read the {what} {}: {e}", path.display()))
    })
}

/// A server builder for large results: frames up to 1 MiB (when the client allows them) and
/// wide HTTP/2 windows.
fn server_builder() -> Server {
    Server::builder()
        .max_frame_size(1 << 20)
        .initial_stream_window_size(1 << 20)
        .initial_connection_window_size(2 << 20)
}

/// The hub's services (Flight SQL and `gridhub.v1`) on `builder`, each call passing
/// `interceptor` first.
fn routes(
    builder: &mut Server,
    state: &Arc<ServerState>,
    interceptor: AuthInterceptor,
) -> tonic::transport::server::Router {
    let limit = state.config.max_request_kb * 1024;
    let flight = FlightServiceServer::new(flight::HubFlightSql::new(state.clone()))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX);
    let services = services::HubServices::new(state.clone());
    builder
        .add_service(InterceptedService::new(flight, interceptor.clone()))
        .add_service(InterceptedService::new(
            CatalogServiceServer::new(services.clone()).max_decoding_message_size(limit),
            interceptor.clone(),
        ))
        .add_service(InterceptedService::new(
            PolicyServiceServer::new(services.clone()).max_decoding_message_size(limit),
            interceptor.clone(),
        ))
        .add_service(InterceptedService::new(
            AuditServiceServer::new(services.clone()).max_decoding_message_size(limit),
            interceptor.clone(),
        ))
        .add_service(InterceptedService::new(
            HealthServiceServer::new(services).max_decoding_message_size(limit),
            interceptor,
        ))
}

/// Start the hub server for `hub` with `config` (bound before this returns).
pub async fn start(
    hub: Arc<GovernedHub>,
    config: ServerConfig,
) -> Result<RunningServer, ServerError> {
    if config.tls.is_none() && !config.listen.ip().is_loopback() && !config.insecure_plaintext {
        return Err(ServerError::Startup(format!(
            "{} is not a loopback address and [server] has no tls_cert/tls_key: configure TLS \
             (deploy/README.md), or set insecure_plaintext = true",
            config.listen
        )));
    }
    let certificates = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    let state = Arc::new(ServerState::new(hub, config.clone(), certificates)?);

    let mut builder = server_builder();
    if let Some(tls) = &config.tls {
        let identity = Identity::from_pem(
            read(&tls.cert, "TLS certificate")?,
            read(&tls.key, "TLS key")?,
        );
        let mut tls_config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &tls.client_ca {
            // Optional: a caller may use a token instead; a certificate it does present must
            // chain to this CA, or the handshake fails.
            tls_config = tls_config
                .client_ca_root(Certificate::from_pem(read(ca, "client CA")?))
                .client_auth_optional(true);
        }
        builder = builder
            .tls_config(tls_config)
            .map_err(|e| ServerError::Startup(format!("TLS: {e}")))?;
    }
    let interceptor = AuthInterceptor {
        state: state.clone(),
        local: None,
    };
    let router = routes(&mut builder, &state, interceptor);

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServerError::Startup(format!("cannot listen on {}: {e}", config.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Startup(e.to_string()))?;
    let (tx, rx) = oneshot::channel::<()>();
    let (metrics_tx, metrics_rx) = tokio::sync::watch::channel(false);
    // The builder's `tcp_nodelay` applies only to listeners tonic binds itself; an incoming
    // stream must set it per accepted socket, or Nagle + delayed ACK add ~40 ms to every small
    // Flight SQL round trip.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let task = tokio::spawn(async move {
        let served = router
            .serve_with_incoming_shutdown(incoming, async {
                let _ = rx.await;
            })
            .await;
        let _ = metrics_tx.send(true);
        served
    });
    let (metrics_addr, metrics_task) = match config.metrics_listen {
        Some(a) => {
            let mut stop = metrics_rx;
            let (bound, task) = metrics::serve(state.metrics.clone(), a, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .map_err(|e| ServerError::Startup(format!("cannot serve metrics on {a}: {e}")))?;
            (Some(bound), Some(task))
        }
        None => (None, None),
    };
    tracing::info!(%addr, tls = config.tls.is_some(), "hub server listening");
    Ok(RunningServer {
        addr,
        metrics_addr,
        state,
        shutdown: Some(tx),
        task,
        metrics_task,
    })
}
