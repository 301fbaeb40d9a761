//! Where a command runs: one client of the hub's gRPC services (Flight SQL and `gridhub.v1`)
//! over one of two transports — in-process, over the hub opened from a config, or over the
//! network to a running hub (`--server URL`). Every command is written once, against the
//! client, so local and remote answers agree by construction.
//!
//! Who acts: remotely the caller's credentials (a token or a client certificate) say who
//! it is, and `--as`/`--by` are refused rather than trusted. Locally the command names the
//! principal (`--as` for questions, `--by` for administration); a question without `--as`
//! is the operator's, which may query only a hub without principals and is audited.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::RecordBatch;
use gridhub_engine::GovernedHub;
use gridhub_server::client::{HubClient, RemoteOptions};
use gridhub_server::in_process::{self, LocalCaller};

use crate::error::{CliError, Result};

/// `--server URL --token T` and the TLS files: run on a hub server instead of a config.
/// Global: they may follow the subcommand (`gridhub policy history --server URL`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RemoteArg {
    /// A running hub: http://host:port, or https://host:port for TLS
    #[arg(long, env = "GRIDHUB_SERVER", global = true)]
    pub server: Option<String>,
    /// Bearer token for --server (`gridhub token issue`)
    #[arg(long, env = "GRIDHUB_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) of the hub's TLS certificate
    #[arg(long, global = true)]
    pub ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) for mTLS; its Subject CN is the principal
    #[arg(long, requires = "client_key", global = true)]
    pub client_cert: Option<PathBuf>,
    /// Client key (PEM) for mTLS
    #[arg(long, requires = "client_cert", global = true)]
    pub client_key: Option<PathBuf>,
}

impl RemoteArg {
    /// Connect when `--server` is given.
    async fn connect(&self, purpose: Option<&str>) -> Result<Option<HubClient>> {
        let Some(url) = &self.server else {
            return Ok(None);
        };
        if self.token.is_none() && self.client_cert.is_none() {
            return Err(CliError::Usage(format!(
                "--server {url}: pass --token T (gridhub token issue) or --client-cert/--client-key"
            )));
        }
        HubClient::connect(&RemoteOptions {
            url: url.clone(),
            token: self.token.clone(),
            ca_cert: self.ca_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            purpose: purpose.map(str::to_string),
        })
        .await
        .map(Some)
        .map_err(CliError::Connect)
    }
}

/// Who a command acts as, as its arguments name it.
pub enum Acting<'a> {
    /// A question (`query`, `catalog`): `--as ID`, or the operator without it.
    Asks {
        principal: Option<&'a str>,
        /// What `--as` means to this command, for the refusal with `--server`.
        what: &'static str,
    },
    /// An administrative command: `--by ID` (required locally, refused remotely).
    By(&'a Option<String>),
    /// A command that needs no acting principal (`policy check`).
    Anyone,
}

/// How the hub of a local command is opened.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Open {
    /// Loaded on first use, so the catalog and shared tables are never empty.
    Loaded,
    /// As it is (the audit commands: they must work on a hub that cannot load).
    AsIs,
}

/// The hub a command runs on, through its client.
pub struct Backend {
    client: HubClient,
    /// The hub, when the command runs in-process: what only the hub's host may do
    /// (acknowledging a lost audit log) is done on it directly.
    local: Option<(Arc<GovernedHub>, Option<String>)>,
}

impl Backend {
    /// `--server` when given, else the config at `config` served in-process; acting as
    /// `acting` says, with `purpose` on every call.
    pub async fn open(
        config: &std::path::Path,
        remote: &RemoteArg,
        acting: Acting<'_>,
        purpose: Option<&str>,
        open: Open,
    ) -> Result<Self> {
        if let Some(client) = remote.connect(purpose).await? {
            match acting {
                Acting::Asks {
                    principal: Some(_),
                    what,
                } => {
                    return Err(CliError::Usage(format!(
                        "with --server the token's principal {what}: drop --as"
                    )));
                }
                Acting::By(Some(_)) => {
                    return Err(CliError::Usage(
                        "with --server the token's principal acts: drop --by".into(),
                    ));
                }
                _ => {}
            }
            return Ok(Self {
                client,
                local: None,
            });
        }
        let hub = match open {
            Open::Loaded => {
                GovernedHub::open_loaded(config, &crate::progress::Bar::new(crate::quiet())).await?
            }
            Open::AsIs => GovernedHub::open_path(config).await?,
        };
        Self::in_process(Arc::new(hub), acting, purpose).await
    }

    /// [`Backend::open`] of the loaded hub for a question asked `--as principal` (the
    /// operator without it); `what` is what `--as` means to the command.
    pub async fn open_asking(
        config: &std::path::Path,
        remote: &RemoteArg,
        principal: Option<&str>,
        what: &'static str,
        purpose: Option<&str>,
    ) -> Result<Self> {
        let acting = Acting::Asks { principal, what };
        Self::open(config, remote, acting, purpose, Open::Loaded).await
    }

    /// The client of `hub` in this process, acting as `acting` says.
    pub async fn in_process(
        hub: Arc<GovernedHub>,
        acting: Acting<'_>,
        purpose: Option<&str>,
    ) -> Result<Self> {
        let (caller, by) = match acting {
            Acting::Asks {
                principal: Some(id),
                ..
            } => (LocalCaller::Principal(id.to_string()), None),
            Acting::Asks {
                principal: None, ..
            }
            | Acting::Anyone => (
                LocalCaller::Operator {
                    os_user: gridhub_engine::os_user(),
                },
                None,
            ),
            Acting::By(Some(by)) => (LocalCaller::Principal(by.clone()), Some(by.clone())),
            Acting::By(None) => {
                return Err(CliError::Usage(
                    "name the acting principal with --by ID (a security officer or auditor)".into(),
                ));
            }
        };
        let client = in_process::connect(hub.clone(), caller, purpose.map(str::to_string)).await?;
        Ok(Self {
            client,
            local: Some((hub, by)),
        })
    }

    /// The client: `gridhub.v1` services and Flight SQL.
    pub fn client(&self) -> &HubClient {
        &self.client
    }

    /// Run a statement over Flight SQL and collect its batches.
    pub async fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.client.query(sql).await?)
    }

    /// Acknowledge a missing audit log (on the hub's own config only: the loss of the log
    /// is handled where the state dir is, not over the network).
    pub fn audit_acknowledge_missing(&self, reason: &str) -> Result<u64> {
        match &self.local {
            Some((hub, Some(by))) => Ok(hub.audit_acknowledge_missing(by, reason)?),
            Some((_, None)) => Err(CliError::Usage(
                "name the acting principal with --by ID (a security officer or auditor)".into(),
            )),
            None => Err(CliError::Usage(
                "acknowledge a missing audit log on the hub's host, with its config (without \
                 --server)"
                    .into(),
            )),
        }
    }
}
