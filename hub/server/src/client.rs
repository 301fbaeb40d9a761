//! Talking to a hub: the channel — over the network (plaintext or TLS, optionally with a
//! client certificate) or in-process ([`crate::in_process`]) — the bearer token and purpose
//! on every call, the hub's gRPC clients, and Flight SQL queries. Used by every CLI command,
//! the tests and the benchmarks: a command is written once, against this client.

use std::path::PathBuf;

use arrow::array::RecordBatch;
use arrow_flight::sql::client::FlightSqlServiceClient;
use futures::TryStreamExt;
use gridhub_proto::v1::audit_service_client::AuditServiceClient;
use gridhub_proto::v1::catalog_service_client::CatalogServiceClient;
use gridhub_proto::v1::health_service_client::HealthServiceClient;
use gridhub_proto::v1::policy_service_client::PolicyServiceClient;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use crate::PURPOSE_HEADER;

/// How to reach a hub.
#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// `http://host:port` (plaintext), `https://host:port` (TLS); `grpc://` and
    /// `grpc+tls://` are accepted as the same.
    pub url: String,
    /// A bearer token (`gridhub token issue`).
    pub token: Option<String>,
    /// CA certificate (PEM) that signed the hub's certificate; required for TLS.
    pub ca_cert: Option<PathBuf>,
    /// Client certificate and key (PEM) for mTLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// The purpose sent with every call.
    pub purpose: Option<String>,
}

/// Adds the token and purpose headers to each call.
#[derive(Clone)]
pub struct Headers {
    authorization: Option<AsciiMetadataValue>,
    purpose: Option<AsciiMetadataValue>,
}

impl tonic::service::Interceptor for Headers {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        set(request.metadata_mut(), &self.authorization, &self.purpose);
        Ok(request)
    }
}

fn set(
    md: &mut MetadataMap,
    authorization: &Option<AsciiMetadataValue>,
    purpose: &Option<AsciiMetadataValue>,
) {
    if let Some(a) = authorization {
        md.insert("authorization", a.clone());
    }
    if let Some(p) = purpose {
        md.insert(PURPOSE_HEADER, p.clone());
    }
}

type Intercepted = InterceptedService<Channel, Headers>;

/// HTTP/2 receive window of a stream (the connection's is twice it).
pub(crate) const RECEIVE_WINDOW: u32 = 16 << 20;
/// Largest HTTP/2 frame the client accepts (the protocol's maximum is 16 MiB - 1).
pub(crate) const MAX_FRAME: u32 = 1 << 20;

/// A connection to a hub, over the network or in-process.
#[derive(Clone)]
pub struct HubClient {
    channel: Channel,
    headers: Headers,
    url: String,
    token: Option<String>,
    purpose: Option<String>,
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
}

/// The network client's earlier name: the same client.
pub type Remote = HubClient;

impl HubClient {
    /// Connect (TLS when the URL says so). Errors are one sentence naming the URL.
    pub async fn connect(options: &RemoteOptions) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = options.url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = options.url.strip_prefix("grpc+tls://") {
            (true, r)
        } else if let Some(r) = options.url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = options.url.strip_prefix("grpc://") {
            (false, r)
        } else {
            return Err(format!(
                "--server {}: use http://host:port, or https://host:port for TLS",
                options.url
            ));
        };
        let scheme = if tls { "https" } else { "http" };
        // Results flow to the client: large HTTP/2 receive windows and frames let a stream
        // run at memory speed instead of waiting on 64 KiB window updates and 16 KiB frames.
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{rest}"))
            .map_err(|e| format!("--server {}: {e}", options.url))?
            .initial_stream_window_size(RECEIVE_WINDOW)
            .initial_connection_window_size(2 * RECEIVE_WINDOW)
            .max_frame_size(MAX_FRAME)
            .tcp_nodelay(true);
        if tls {
            let ca = options.ca_cert.as_ref().ok_or_else(|| {
                format!(
                    "--server {} uses TLS: pass --ca-cert FILE (the CA that signed the hub's certificate)",
                    options.url
                )
            })?;
            let mut config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(read(ca, "CA certificate")?));
            match (&options.client_cert, &options.client_key) {
                (Some(c), Some(k)) => {
                    config = config.identity(Identity::from_pem(
                        read(c, "client certificate")?,
                        read(k, "client key")?,
                    ));
                }
                (None, None) => {}
                _ => return Err("--client-cert and --client-key go together".into()),
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| format!("TLS for {}: {e}", options.url))?;
        }
        let channel = endpoint.connect().await.map_err(|e| {
            format!(
                "cannot reach the hub at {}: {}",
                options.url,
                source_chain(&e)
            )
        })?;
        Self::over(
            channel,
            options.url.clone(),
            options.token.clone(),
            options.purpose.clone(),
        )
    }

    /// A client over an established channel, sending `token` and `purpose` with each call.
    pub(crate) fn over(
        channel: Channel,
        url: String,
        token: Option<String>,
        purpose: Option<String>,
    ) -> Result<Self, String> {
        let header = |text: String, what: &str| -> Result<AsciiMetadataValue, String> {
            text.parse()
                .map_err(|_| format!("the {what} is not a valid header value"))
        };
        let headers = Headers {
            authorization: token
                .as_ref()
                .map(|t| header(format!("Bearer {t}"), "token"))
                .transpose()?,
            purpose: purpose
                .as_ref()
                .map(|p| header(p.clone(), "purpose"))
                .transpose()?,
        };
        Ok(Self {
            channel,
            headers,
            url,
            token,
            purpose,
        })
    }

    /// The hub's URL (`in-process` for the in-process transport).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn intercepted(&self) -> Intercepted {
        InterceptedService::new(self.channel.clone(), self.headers.clone())
    }

    pub fn catalog(&self) -> CatalogServiceClient<Intercepted> {
        CatalogServiceClient::new(self.intercepted())
    }

    pub fn policy(&self) -> PolicyServiceClient<Intercepted> {
        PolicyServiceClient::new(self.intercepted())
    }

    pub fn audit(&self) -> AuditServiceClient<Intercepted> {
        AuditServiceClient::new(self.intercepted())
    }

    pub fn health(&self) -> HealthServiceClient<Intercepted> {
        HealthServiceClient::new(self.intercepted())
    }

    /// A Flight SQL client carrying the token and purpose.
    pub fn flight_sql(&self) -> FlightSqlServiceClient<Channel> {
        let mut client = FlightSqlServiceClient::new(self.channel.clone());
        if let Some(t) = &self.token {
            client.set_token(t.clone());
        }
        if let Some(p) = &self.purpose {
            client.set_header(PURPOSE_HEADER, p.clone());
        }
        client
    }

    /// Run a statement over Flight SQL and collect its batches (every endpoint, in order).
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>, Status> {
        let mut client = self.flight_sql();
        let info = client
            .execute(sql.to_string(), None)
            .await
            .map_err(to_status)?;
        let mut batches = Vec::new();
        for endpoint in info.endpoint {
            let ticket = endpoint
                .ticket
                .ok_or_else(|| Status::internal("the hub returned an endpoint without a ticket"))?;
            let stream = client.do_get(ticket).await.map_err(to_status)?;
            batches.extend(stream.try_collect::<Vec<_>>().await.map_err(to_status)?);
        }
        Ok(batches)
    }
}

/// Flight client errors carry the server's status; keep it.
pub fn to_status(e: arrow_flight::error::FlightError) -> Status {
    Status::from(e)
}

/// An error with its causes, for transport failures (whose top message is vague).
pub fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A status as the CLI prints it: the hub's message, with the code when the message alone
/// does not say what happened.
pub fn describe_status(s: &Status) -> String {
    match s.code() {
        tonic::Code::Unauthenticated => format!("not authenticated: {}", s.message()),
        tonic::Code::Unavailable => format!("hub unavailable: {}", s.message()),
        tonic::Code::DeadlineExceeded | tonic::Code::ResourceExhausted => {
            format!("{} ({:?})", s.message(), s.code())
        }
        _ => s.message().to_string(),
    }
}
