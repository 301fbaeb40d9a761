//! `gridhub`: the command line of the integration hub.
//!
//! `gridhub demo` writes a synthetic city spread over seven sources and answers cross-source
//! questions over it; `gridhub query` runs SQL over a hub config; `gridhub catalog` shows
//! the sources, shared tables, row counts and rejects; `gridhub refresh` rebuilds the caches
//! of materialised sources and reloads the statistics; `gridhub bench load` measures loading.
//! `gridhub query --as ID --purpose P` runs under the access policy; `gridhub principals`,
//! `gridhub policy …` and `gridhub audit …` administer it. `gridhub serve` runs the hub
//! server (Arrow Flight SQL and the hub's gRPC services); `--server URL --token T` runs
//! `query`, `catalog`, `policy` and `audit` against a running hub instead of a config.

mod access;
mod backend;
mod bench;
mod bench_latency;
mod bench_serve;
mod catalog;
mod demo;
mod error;
mod output;
mod progress;
mod serve;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gridhub_engine::GovernedHub;

use crate::backend::{Acting, Backend, Open, RemoteArg};
use crate::error::{CliError, Result};
use crate::output::Format;

#[derive(Parser, Debug)]
#[command(name = "gridhub", version, about = "Integration hub for community governance data", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Debug, Clone)]
struct ConfigArg {
    /// Hub config file [default: ./gridhub.toml if present, else ./gridhub-demo/gridhub.toml]
    #[arg(long, short, env = "GRIDHUB_CONFIG", global = true)]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> PathBuf {
        self.config.clone().unwrap_or_else(|| {
            let local = PathBuf::from("gridhub.toml");
            if local.exists() {
                local
            } else {
                Path::new(demo::DEFAULT_DIR).join(gridhub_synth::CONFIG_FILE)
            }
        })
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate (or reuse) a synthetic city, load it, and run showcase cross-source queries
    Demo {
        /// Directory for the sources and the hub config
        #[arg(long, default_value = demo::DEFAULT_DIR)]
        dir: PathBuf,
        /// Number of persons
        #[arg(long, default_value_t = gridhub_synth::GenerateOptions::default().scale)]
        scale: usize,
        /// Random seed (the same seed writes the same files)
        #[arg(long, default_value_t = gridhub_synth::GenerateOptions::default().seed)]
        seed: u64,
    },
    /// Run one SQL statement over the hub
    Query {
        #[command(flatten)]
        config: ConfigArg,
        /// Output format
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Show at most this many rows in table format
        #[arg(long)]
        max_rows: Option<usize>,
        /// Run as this principal (required when the config defines principals)
        #[arg(long = "as")]
        principal: Option<String>,
        /// The purpose of the query (routine, statistics, elderly_care, epidemic_response, …)
        #[arg(long)]
        purpose: Option<String>,
        #[command(flatten)]
        remote: RemoteArg,
        /// The SQL statement
        sql: String,
    },
    /// List the principals of a hub config: id, roles, jurisdiction
    Principals {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Check, apply, explain and roll back access policies; declare and end emergencies
    Policy {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        remote: RemoteArg,
        #[command(subcommand)]
        what: access::PolicyCommand,
    },
    /// Verify and search the audit log
    Audit {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        remote: RemoteArg,
        /// Output format (accepted after the subcommand too: `audit search -f csv`)
        #[arg(long, short, value_enum, default_value_t = Format::Table, global = true)]
        format: Format,
        #[command(subcommand)]
        what: access::AuditCommand,
    },
    /// Show sources, shared tables, row counts, rejects and refresh times
    Catalog {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also list every shared column with its tag and label
        #[arg(long)]
        columns: bool,
        /// Also count rejected rows per source table (the rows: `_rejects`, under the policy)
        #[arg(long)]
        rejects: bool,
        /// Answer as this principal would be answered: row counts only of what it may read
        #[arg(long = "as")]
        principal: Option<String>,
        #[command(flatten)]
        remote: RemoteArg,
    },
    /// Serve Arrow Flight SQL and the hub's gRPC services (catalog, policy, audit, health)
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Listen here instead of [server] listen (e.g. 0.0.0.0:50051; port 0 picks one)
        #[arg(long)]
        listen: Option<String>,
        /// Serve /metrics here instead of [server] metrics_listen
        #[arg(long)]
        metrics_listen: Option<String>,
    },
    /// Issue, list and revoke the bearer tokens that identify callers of `gridhub serve`
    Token {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        what: serve::TokenCommand,
    },
    /// Rebuild the caches of materialised sources (all, or those named), report each source
    /// (ok / broken: why) and reload statistics; fails if any source is broken
    Refresh {
        #[command(flatten)]
        config: ConfigArg,
        /// Sources to refresh (default: every source)
        sources: Vec<String>,
    },
    /// Benchmarks
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs its requests (principal, purpose, query id, outcome) by default.
    let default_level = match cli.command {
        Command::Serve { .. } => "info",
        _ => "error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GRIDHUB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    // Workers with a known, generous stack: planning recurses over the query (bounded by the
    // hub's SQL limits, which are checked against tokio's 2 MiB default; this is headroom).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(16 << 20)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Progress bars only on a terminal.
fn quiet() -> bool {
    !std::io::stderr().is_terminal()
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Demo { dir, scale, seed } => demo::run(&dir, scale, seed).await,
        Command::Query {
            config,
            format,
            max_rows,
            principal,
            purpose,
            remote,
            sql,
        } => {
            let backend = Backend::open_asking(
                &config.path(),
                &remote,
                principal.as_deref(),
                "runs the query",
                purpose.as_deref(),
            )
            .await?;
            let batches = backend.query(&sql).await?;
            print(&output::render(&batches, format, max_rows)?)
        }
        Command::Principals { config, format } => {
            let hub = GovernedHub::open_path(&config.path()).await?;
            access::principals(&hub, format)
        }
        Command::Policy {
            config,
            remote,
            what,
        } => {
            let backend =
                Backend::open(&config.path(), &remote, what.acting(), None, Open::Loaded).await?;
            access::policy(&backend, what).await
        }
        Command::Audit {
            config,
            remote,
            format,
            what,
        } => {
            let backend =
                Backend::open(&config.path(), &remote, what.acting(), None, Open::AsIs).await?;
            access::audit(&backend, what, format).await
        }
        Command::Catalog {
            config,
            format,
            columns,
            rejects,
            principal,
            remote,
        } => {
            let backend =
                Backend::open_asking(&config.path(), &remote, principal.as_deref(), "asks", None)
                    .await?;
            catalog::show(&backend, format, columns, rejects).await
        }
        Command::Serve {
            config,
            listen,
            metrics_listen,
        } => serve::serve(&config.path(), listen, metrics_listen).await,
        Command::Token { config, what } => serve::token(&config.path(), what).await,
        Command::Refresh { config, sources } => {
            let bar = progress::Bar::new(quiet());
            let (hub, refreshed) =
                GovernedHub::refresh_and_reload(&config.path(), &sources, &bar).await?;
            for outcome in &refreshed {
                println!("{outcome}");
            }
            let backend = Backend::in_process(
                std::sync::Arc::new(hub),
                Acting::Asks {
                    principal: None,
                    what: "asks",
                },
                None,
            )
            .await?;
            catalog::show(&backend, Format::Table, false, false).await?;
            let broken: Vec<String> = refreshed
                .iter()
                .filter(|o| !o.is_ok())
                .map(|o| o.source.clone())
                .collect();
            if broken.is_empty() {
                Ok(())
            } else {
                Err(CliError::BrokenSources {
                    broken,
                    total: refreshed.len(),
                })
            }
        }
        Command::Bench { what } => bench::run(what).await,
    }
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::Output(e.to_string())),
    }
}
