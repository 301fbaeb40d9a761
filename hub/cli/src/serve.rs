//! `gridhub serve` and `gridhub token …`: run the hub server; issue, list and revoke the
//! bearer tokens that map callers to principals.

use std::path::Path;

use chrono::Utc;
use clap::Subcommand;
use gridhub_audit::{AuditRecord, Outcome, RecordKind};
use gridhub_engine::GovernedHub;
use gridhub_server::TokenStore;

use crate::access::{show, text_table};
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

/// Serve until Ctrl-C or SIGTERM.
pub async fn serve(
    config: &Path,
    listen: Option<String>,
    metrics_listen: Option<String>,
) -> Result<(), String> {
    let hub = crate::open(config).await?;
    let mut server_config = hub.hub().config().server.clone();
    let address = |flag: &str, a: String| {
        a.parse()
            .map_err(|_| format!("--{flag} {a}: not an address (ip:port)"))
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
    let running = gridhub_server::start(std::sync::Arc::new(hub), server_config)
        .await
        .map_err(|e| e.to_string())?;
    let scheme = if tls == "plaintext" { "http" } else { "https" };
    eprintln!(
        "gridhub serving Arrow Flight SQL and gridhub.v1 on {scheme}://{} ({tls})",
        running.addr
    );
    if let Some(m) = running.metrics_addr {
        eprintln!("metrics: http://{m}/metrics");
    }
    eprintln!("a token for a principal: gridhub token issue --principal ID; stop with Ctrl-C");
    running
        .wait(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
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

/// Record a token change in the audit log (who: the principal the token is for; the
/// operator acts on the server's state dir).
fn audit(hub: &GovernedHub, principal: &str, text: String) -> Result<(), String> {
    let gov = hub.governance();
    let p = gov.principal(principal).map_err(|e| e.to_string())?;
    gov.audit()
        .append(&AuditRecord {
            at: Utc::now(),
            kind: RecordKind::Token,
            principal: p.id.clone(),
            roles: p.roles.clone(),
            area: p.area.clone(),
            purpose: None,
            text,
            tables: vec![],
            columns: vec![],
            rows: None,
            outcome: Outcome::Ok,
            message: None,
            duration_ms: None,
            person_ids: vec![],
            person_ids_truncated: false,
            started_seq: None,
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
}

pub async fn token(config: &Path, what: TokenCommand) -> Result<(), String> {
    let hub = GovernedHub::open_path(config)
        .await
        .map_err(|e| e.to_string())?;
    let store = TokenStore::open(&hub.hub().config().state_dir).map_err(|e| e.to_string())?;
    match what {
        TokenCommand::Issue {
            principal,
            ttl_days,
            comment,
        } => {
            // Only principals of this hub get tokens.
            hub.governance()
                .principal(&principal)
                .map_err(|e| e.to_string())?;
            let days = ttl_days.unwrap_or(hub.hub().config().server.token_ttl_days);
            if days == 0 {
                return Err("--ttl-days must be positive".into());
            }
            let (token, info) = store
                .issue(
                    &principal,
                    chrono::Duration::days(i64::from(days)),
                    &comment,
                    Utc::now(),
                )
                .map_err(|e| e.to_string())?;
            audit(
                &hub,
                &principal,
                format!(
                    "issue token {} for {principal}, expires {}",
                    info.id, info.expires_at
                ),
            )?;
            eprintln!(
                "token {} for {principal}, expires {} — shown once, keep it secret:",
                info.id,
                gridhub_server::api::fmt_time(info.expires_at)
            );
            println!("{token}");
            Ok(())
        }
        TokenCommand::List => {
            let now = Utc::now();
            let rows = store
                .list()
                .map_err(|e| e.to_string())?
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
                        gridhub_server::api::fmt_time(t.issued_at),
                        gridhub_server::api::fmt_time(t.expires_at),
                        t.revoked_at
                            .map(gridhub_server::api::fmt_time)
                            .unwrap_or_default(),
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
            let info = store.revoke(&id, Utc::now()).map_err(|e| e.to_string())?;
            audit(
                &hub,
                &info.principal,
                format!("revoke token {id} of {}", info.principal),
            )?;
            println!("token {id} of {} is revoked", info.principal);
            Ok(())
        }
    }
}
