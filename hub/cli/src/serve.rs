//! `gridhub serve` and `gridhub token …`: run the hub server; issue, list and revoke the
//! bearer tokens that map callers to principals.

use std::path::Path;

use chrono::Utc;
use clap::Subcommand;
use gridhub_engine::GovernedHub;
use gridhub_server::api::fmt_time;

use crate::access::{show, text_table};
use crate::error::{CliError, Result};
use crate::output::Format;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Issue a bearer token for a principal; it is printed once and stored only as a hash
    Issue {
        #[arg(long)]
        principal: String,
        /// Lifetime in days [default: [server] token_ttl_days, 90]
        #[arg(long)]
        ttl_days: Option<u32>,
        /// What the token is for (kept with it)
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List tokens: id, principal, issued, expires, revoked (never the secrets)
    List,
    /// Revoke a token by id; it is refused from the next call on
    Revoke { id: String },
}

/// Serve until Ctrl-C or SIGTERM. Every call is authenticated as a principal of the hub;
/// the operator path is never served.
pub async fn serve(
    config: &Path,
    listen: Option<String>,
    metrics_listen: Option<String>,
) -> Result<()> {
    let hub = GovernedHub::open_loaded(config, &crate::progress::Bar::new(crate::quiet())).await?;
    let mut server_config = hub.hub().config().server.clone();
    let address = |flag: &str, a: String| {
        a.parse()
            .map_err(|_| CliError::Usage(format!("--{flag} {a}: not an address (ip:port)")))
    };
    if let Some(a) = listen {
        server_config.listen = address("listen", a)?;
    }
    if let Some(a) = metrics_listen {
        server_config.metrics_listen = Some(address("metrics-listen", a)?);
    }
    let tls = match &server_config.tls {
        Some(t) if t.client_ca.is_some() => "TLS, client certificates accepted",
        Some(_) => "TLS",
        None => "plaintext",
    };
    let running = gridhub_server::start(std::sync::Arc::new(hub), server_config).await?;
    let scheme = if tls == "plaintext" { "http" } else { "https" };
    eprintln!(
        "gridhub serving Arrow Flight SQL and gridhub.v1 on {scheme}://{} ({tls})",
        running.addr
    );
    if let Some(m) = running.metrics_addr {
        eprintln!("metrics: http://{m}/metrics");
    }
    eprintln!("a token for a principal: gridhub token issue --principal ID; stop with Ctrl-C");
    Ok(running.wait(shutdown_signal()).await?)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

pub async fn token(config: &Path, what: TokenCommand) -> Result<()> {
    let hub = GovernedHub::open_path(config).await?;
    match what {
        TokenCommand::Issue {
            principal,
            ttl_days,
            comment,
        } => {
            if ttl_days == Some(0) {
                return Err(CliError::Usage("--ttl-days must be positive".into()));
            }
            let ttl = ttl_days.map(|d| chrono::Duration::days(i64::from(d)));
            let (token, info) = gridhub_server::issue_token(&hub, &principal, ttl, &comment)?;
            eprintln!(
                "token {} for {principal}, expires {} — shown once, keep it secret:",
                info.id,
                fmt_time(info.expires_at)
            );
            println!("{token}");
            Ok(())
        }
        TokenCommand::List => {
            let now = Utc::now();
            let rows = gridhub_server::list_tokens(&hub)?
                .into_iter()
                .map(|t| {
                    let state = match t.revoked_at {
                        Some(_) => "revoked",
                        None if t.expires_at <= now => "expired",
                        None => "valid",
                    };
                    vec![
                        t.id,
                        t.principal,
                        state.to_string(),
                        fmt_time(t.issued_at),
                        fmt_time(t.expires_at),
                        t.revoked_at.map(fmt_time).unwrap_or_default(),
                        t.comment,
                    ]
                })
                .collect();
            show(
                text_table(
                    &[
                        "id",
                        "principal",
                        "state",
                        "issued_at",
                        "expires_at",
                        "revoked_at",
                        "comment",
                    ],
                    rows,
                )?,
                Format::Table,
            )
        }
        TokenCommand::Revoke { id } => {
            let info = gridhub_server::revoke_token(&hub, &id)?;
            println!("token {id} of {} is revoked", info.principal);
            Ok(())
        }
    }
}
