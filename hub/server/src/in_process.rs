//! The hub's own services without a network: the same tonic services `gridhub serve`
//! hosts (Flight SQL and `gridhub.v1`), served over an in-memory duplex stream to one
//! [`HubClient`]. The CLI runs every command through this client when it works on a config
//! and through a network client with `--server`, so no command is written twice and local
//! and remote answers agree by construction.
//!
//! Who calls is fixed when the client connects ([`LocalCaller`]): a principal of the hub the
//! CLI names (`--as`, `--by`), or the operator of a hub without principals. These callers
//! exist only here — the network server authenticates every call from its credentials and
//! never produces them.

use std::sync::Arc;

use gridhub_engine::GovernedHub;
use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};

use crate::client::{HubClient, MAX_FRAME, RECEIVE_WINDOW};
use crate::{AuthInterceptor, Caller, Credential, ServerError, ServerState};

/// Who the in-process client acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalCaller {
    /// A principal of the hub, by id.
    Principal(String),
    /// The operator: queries run ungoverned and audited as `operator:<os user>`, and only on
    /// a hub without principals ([`gridhub_engine::operator`]).
    Operator { os_user: String },
}

/// The URL an in-process client reports.
pub const IN_PROCESS_URL: &str = "in-process";

/// Buffer of the in-memory stream, each way.
const DUPLEX_BYTES: usize = 1 << 20;

fn caller(hub: &GovernedHub, who: LocalCaller) -> Result<Caller, ServerError> {
    Ok(match who {
        LocalCaller::Principal(id) => Caller {
            principal: hub.governance().principal(&id)?.clone(),
            credential: Credential::Local,
            purpose: None,
        },
        LocalCaller::Operator { os_user } => Caller {
            principal: gridhub_engine::operator_principal(&os_user),
            credential: Credential::Operator { os_user },
            purpose: None,
        },
    })
}

/// Serve `hub` in-process and connect a client acting as `who`, sending `purpose` with
/// every call. The server's guards apply as on the network: `[server]` query timeout,
/// memory per query, concurrent queries per principal and request size.
pub async fn connect(
    hub: Arc<GovernedHub>,
    who: LocalCaller,
    purpose: Option<String>,
) -> Result<HubClient, ServerError> {
    let caller = caller(&hub, who)?;
    let config = hub.hub().config().server.clone();
    let state = Arc::new(ServerState::new(hub, config, false)?);
    let interceptor = AuthInterceptor {
        state: state.clone(),
        local: Some(Arc::new(caller)),
    };
    let router = crate::routes(&mut crate::server_builder(), &state, interceptor);
    let (client_io, server_io) = tokio::io::duplex(DUPLEX_BYTES);
    // One connection: the accept loop ends after it, the connection is served until the
    // client drops it.
    tokio::spawn(
        router.serve_with_incoming(futures::stream::iter([Ok::<_, std::io::Error>(server_io)])),
    );
    let mut client_io = Some(client_io);
    let channel = Endpoint::from_static("http://in-process.gridhub")
        .initial_stream_window_size(RECEIVE_WINDOW)
        .initial_connection_window_size(2 * RECEIVE_WINDOW)
        .max_frame_size(MAX_FRAME)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let io = client_io.take();
            async move {
                io.map(TokioIo::new).ok_or_else(|| {
                    std::io::Error::other("the in-process connection to the hub was closed")
                })
            }
        }))
        .await
        .map_err(|e| {
            ServerError::Startup(format!(
                "in-process connection: {}",
                crate::client::source_chain(&e)
            ))
        })?;
    HubClient::over(channel, IN_PROCESS_URL.into(), None, purpose).map_err(ServerError::BadRequest)
}
