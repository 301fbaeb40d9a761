//! The hub config: built-in defaults < environment (`GRIDHUB_*`) < the TOML file.
//! The format is documented in docs/config.md; `deploy/gridhub.example.toml` is tested.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use gridhub_catalog::{shared_table, shared_table_names};
use gridhub_mapping::{MappingConfig, TablePrecedence};
use gridhub_policy::Principal;
use serde::Deserialize;

use crate::error::{EngineError, Result};

/// `[hub]`: where state lives and the pseudonym key.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HubSection {
    #[serde(default)]
    pub state_dir: Option<String>,
    #[serde(default)]
    pub pseudonym_key: Option<String>,
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// Memory (MiB) a load's merges may hold before they spill to the temp dir.
    #[serde(default)]
    pub load_memory_mb: Option<usize>,
    /// Serve shared tables from the snapshot of the last load (default true).
    #[serde(default)]
    pub snapshots: Option<bool>,
    /// Key of the audit log's hash chain, inline (prefer `audit_key_file`).
    #[serde(default)]
    pub audit_key: Option<String>,
    /// A file holding the audit key (outside the state dir).
    #[serde(default)]
    pub audit_key_file: Option<String>,
    /// The audit witness: an append-only file on another file system that records the
    /// chain head (gridhub-audit's docs, "The witness").
    #[serde(default)]
    pub audit_witness: Option<String>,
    /// Witness the chain head every this many records (default 100).
    #[serde(default)]
    pub audit_witness_every: Option<u64>,
}

/// `[server]` as written: how `gridhub serve` listens and guards queries.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    #[serde(default)]
    pub listen: Option<String>,
    #[serde(default)]
    pub metrics_listen: Option<String>,
    #[serde(default)]
    pub tls_cert: Option<String>,
    #[serde(default)]
    pub tls_key: Option<String>,
    #[serde(default)]
    pub client_ca: Option<String>,
    #[serde(default)]
    pub insecure_plaintext: Option<bool>,
    #[serde(default)]
    pub query_timeout_secs: Option<u64>,
    #[serde(default)]
    pub query_memory_mb: Option<usize>,
    #[serde(default)]
    pub max_queries_per_principal: Option<usize>,
    #[serde(default)]
    pub max_request_kb: Option<usize>,
    #[serde(default)]
    pub token_ttl_days: Option<u32>,
}

/// `[policy]` as written: limits on policy administration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// The longest an emergency may be declared for, in hours (default 72).
    #[serde(default)]
    pub emergency_max_hours: Option<u64>,
}

/// The resolved `[policy]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// The longest an emergency may be declared for: a declaration whose expiry lies further
    /// ahead is refused.
    pub emergency_max: chrono::Duration,
}

/// Default of `[policy] emergency_max_hours`: three days.
pub const DEFAULT_EMERGENCY_MAX_HOURS: u64 = 72;
/// Upper bound of `[policy] emergency_max_hours`: one year.
const EMERGENCY_MAX_HOURS_LIMIT: u64 = 24 * 366;

impl PolicyConfig {
    fn resolve(section: PolicySection, err: &dyn Fn(String) -> EngineError) -> Result<Self> {
        let hours = section
            .emergency_max_hours
            .unwrap_or(DEFAULT_EMERGENCY_MAX_HOURS);
        if hours == 0 || hours > EMERGENCY_MAX_HOURS_LIMIT {
            return Err(err(format!(
                "[policy] emergency_max_hours = {hours} must be between 1 and \
                 {EMERGENCY_MAX_HOURS_LIMIT} (a year)"
            )));
        }
        Ok(Self {
            emergency_max: chrono::Duration::hours(hours as i64),
        })
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            emergency_max: chrono::Duration::hours(DEFAULT_EMERGENCY_MAX_HOURS as i64),
        }
    }
}

/// TLS of the hub server: its certificate and key, and the CA of client certificates.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// mTLS: client certificates signed by this CA identify their principal (Subject CN).
    pub client_ca: Option<PathBuf>,
}

/// The resolved `[server]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: std::net::SocketAddr,
    /// Where Prometheus scrapes `/metrics` (none: no metrics endpoint).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// TLS is required when set: a plaintext connection is refused.
    pub tls: Option<TlsFiles>,
    /// Serve plaintext on an address other than loopback.
    pub insecure_plaintext: bool,
    pub query_timeout: std::time::Duration,
    /// Each query's memory pool (`query_memory_mb`, in bytes).
    pub query_memory_bytes: usize,
    pub max_queries_per_principal: usize,
    pub max_request_kb: usize,
    pub token_ttl_days: u32,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
pub const ENV_LISTEN: &str = "GRIDHUB_LISTEN";
pub const ENV_METRICS_LISTEN: &str = "GRIDHUB_METRICS_LISTEN";
pub const ENV_QUERY_TIMEOUT_SECS: &str = "GRIDHUB_QUERY_TIMEOUT_SECS";
pub const ENV_QUERY_MEMORY_MB: &str = "GRIDHUB_QUERY_MEMORY_MB";
pub const ENV_MAX_QUERIES_PER_PRINCIPAL: &str = "GRIDHUB_MAX_QUERIES_PER_PRINCIPAL";

impl ServerConfig {
    fn resolve(
        section: ServerSection,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        err: &dyn Fn(String) -> EngineError,
    ) -> Result<Self> {
        let address = |key: &str, text: String| -> Result<std::net::SocketAddr> {
            text.parse().map_err(|_| {
                err(format!(
                    "[server] {key} = '{text}' is not an address (ip:port, e.g. 127.0.0.1:50051)"
                ))
            })
        };
        let number =
            |key: &str, file: Option<u64>, var: Option<&str>, default: u64| -> Result<u64> {
                let value = match (file, var.and_then(|v| env(v).map(|x| (v, x)))) {
                    (Some(n), _) => n,
                    (None, Some((var, text))) => text
                        .parse()
                        .map_err(|_| err(format!("{var}={text} is not a number")))?,
                    (None, None) => default,
                };
                if value == 0 {
                    return Err(err(format!("[server] {key} must be positive")));
                }
                Ok(value)
            };
        let listen = address(
            "listen",
            section
                .listen
                .or_else(|| env(ENV_LISTEN))
                .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
        )?;
        let metrics_listen = section
            .metrics_listen
            .or_else(|| env(ENV_METRICS_LISTEN))
            .map(|a| address("metrics_listen", a))
            .transpose()?;
        let path = |p: String| {
            if Path::new(&p).is_absolute() {
                PathBuf::from(p)
            } else {
                base.join(p)
            }
        };
        let tls = match (section.tls_cert, section.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: path(cert),
                key: path(key),
                client_ca: section.client_ca.map(path),
            }),
            (None, None) if section.client_ca.is_some() => {
                return Err(err(
                    "[server] client_ca needs tls_cert and tls_key (mTLS is TLS)".into(),
                ));
            }
            (None, None) => None,
            _ => {
                return Err(err(
                    "[server] tls_cert and tls_key go together: set both, or neither".into(),
                ));
            }
        };
        Ok(Self {
            listen,
            metrics_listen,
            tls,
            insecure_plaintext: section.insecure_plaintext.unwrap_or(false),
            query_timeout: std::time::Duration::from_secs(number(
                "query_timeout_secs",
                section.query_timeout_secs,
                Some(ENV_QUERY_TIMEOUT_SECS),
                300,
            )?),
            query_memory_bytes: (number(
                "query_memory_mb",
                section.query_memory_mb.map(|n| n as u64),
                Some(ENV_QUERY_MEMORY_MB),
                1024,
            )? as usize)
                << 20,
            max_queries_per_principal: number(
                "max_queries_per_principal",
                section.max_queries_per_principal.map(|n| n as u64),
                Some(ENV_MAX_QUERIES_PER_PRINCIPAL),
                4,
            )? as usize,
            max_request_kb: number(
                "max_request_kb",
                section.max_request_kb.map(|n| n as u64),
                None,
                4096,
            )? as usize,
            token_ttl_days: number(
                "token_ttl_days",
                section.token_ttl_days.map(u64::from),
                None,
                90,
            )? as u32,
        })
    }
}

/// The config file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    hub: Option<HubSection>,
    #[serde(default)]
    sources: Vec<toml::Table>,
    #[serde(default)]
    tables: Vec<TablePrecedence>,
    #[serde(default)]
    mappings: Vec<MappingConfig>,
    #[serde(default)]
    principals: Vec<Principal>,
    #[serde(default)]
    server: Option<ServerSection>,
    #[serde(default)]
    policy: Option<PolicySection>,
}

/// One `[[sources]]` entry: the common keys, and every key for the connector.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    pub name: String,
    pub kind: String,
    pub label: Option<String>,
    /// What is served of the source while it is broken (`on_error`).
    pub on_error: OnError,
    /// The connector's options (the `[[sources]]` entry without `on_error`).
    pub options: toml::Table,
}

/// What the hub serves of a source while it is broken (`[[sources]] on_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Its last good data — the cache of its last good refresh, or the shared tables' last
    /// snapshot — marked stale in the catalog (default).
    #[default]
    ServeStale,
    /// Nothing: its raw tables and every shared table it feeds answer with an error naming it.
    Refuse,
}

impl OnError {
    /// The name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            OnError::ServeStale => "serve_stale",
            OnError::Refuse => "refuse",
        }
    }
}

/// The resolved hub config.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The config file; relative paths resolve against its directory.
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub pseudonym_key: String,
    pub batch_size: usize,
    /// Memory (MiB) a load's merges may hold before they spill sorted runs to the temp dir.
    pub load_memory_mb: usize,
    /// Serve `public.*` from snapshots written by each load (false: always the live views).
    pub snapshots: bool,
    /// Key of the audit log's hash chain: never the pseudonym key, never read from the state
    /// dir. `None` only for a hub without principals, which audits nothing.
    pub audit_key: Option<String>,
    /// The audit witness file, outside the state dir.
    pub audit_witness: Option<PathBuf>,
    /// Records between witness entries.
    pub audit_witness_every: u64,
    /// Who may query, with roles and jurisdiction (`[[principals]]`).
    pub principals: Vec<Principal>,
    pub sources: Vec<SourceConfig>,
    pub tables: Vec<TablePrecedence>,
    pub mappings: Vec<MappingConfig>,
    /// How `gridhub serve` listens and guards queries (`[server]`).
    pub server: ServerConfig,
    /// Limits on policy administration (`[policy]`).
    pub policy: PolicyConfig,
}

const DEFAULT_STATE_DIR: &str = ".gridhub";
const DEFAULT_BATCH_SIZE: usize = 8192;
const DEFAULT_LOAD_MEMORY_MB: usize = 512;

/// Environment variables read by the config layer.
pub const ENV_STATE_DIR: &str = "GRIDHUB_STATE_DIR";
pub const ENV_PSEUDONYM_KEY: &str = "GRIDHUB_PSEUDONYM_KEY";
pub const ENV_BATCH_SIZE: &str = "GRIDHUB_BATCH_SIZE";
pub const ENV_LOAD_MEMORY_MB: &str = "GRIDHUB_LOAD_MEMORY_MB";
pub const ENV_SNAPSHOTS: &str = "GRIDHUB_SNAPSHOTS";
pub const ENV_AUDIT_KEY: &str = "GRIDHUB_AUDIT_KEY";

/// Records between audit witness entries when `audit_witness_every` is not set.
pub const DEFAULT_AUDIT_WITNESS_EVERY: u64 = 100;

impl HubConfig {
    /// Read and validate the config file at `path`, layering the environment under it.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EngineError::ConfigNotFound {
                    path: path.display().to_string(),
                }
            } else {
                EngineError::Config {
                    path: path.display().to_string(),
                    message: e.to_string(),
                }
            }
        })?;
        Self::parse(path, &text, |k| std::env::var(k).ok())
    }

    /// Parse config text as if read from `path`, with `env` as the environment.
    pub fn parse(path: &Path, text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let err = |message: String| EngineError::Config {
            path: path.display().to_string(),
            message,
        };
        let file: ConfigFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let hub = file.hub.unwrap_or(HubSection {
            state_dir: None,
            pseudonym_key: None,
            batch_size: None,
            load_memory_mb: None,
            snapshots: None,
            audit_key: None,
            audit_key_file: None,
            audit_witness: None,
            audit_witness_every: None,
        });
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));

        // defaults < environment < file
        let state_dir = hub
            .state_dir
            .or_else(|| env(ENV_STATE_DIR))
            .unwrap_or_else(|| DEFAULT_STATE_DIR.to_string());
        let state_dir = if Path::new(&state_dir).is_absolute() {
            PathBuf::from(state_dir)
        } else {
            base.join(state_dir)
        };
        let pseudonym_key = hub
            .pseudonym_key
            .or_else(|| env(ENV_PSEUDONYM_KEY))
            .ok_or_else(|| {
                err(format!(
                    "no pseudonym key: set [hub] pseudonym_key or the environment variable {ENV_PSEUDONYM_KEY}"
                ))
            })?;
        if pseudonym_key.len() < 16 {
            return Err(err(
                "the pseudonym key must be at least 16 characters".into()
            ));
        }
        let batch_size = match hub.batch_size {
            Some(n) => n,
            None => match env(ENV_BATCH_SIZE) {
                Some(v) => v
                    .parse()
                    .map_err(|_| err(format!("{ENV_BATCH_SIZE}={v} is not a number")))?,
                None => DEFAULT_BATCH_SIZE,
            },
        };
        if batch_size == 0 {
            return Err(err("batch_size must be positive".into()));
        }
        let load_memory_mb = match hub.load_memory_mb {
            Some(n) => n,
            None => match env(ENV_LOAD_MEMORY_MB) {
                Some(v) => v
                    .parse()
                    .map_err(|_| err(format!("{ENV_LOAD_MEMORY_MB}={v} is not a number")))?,
                None => DEFAULT_LOAD_MEMORY_MB,
            },
        };
        if load_memory_mb == 0 {
            return Err(err("load_memory_mb must be positive".into()));
        }
        let snapshots = match hub.snapshots {
            Some(b) => b,
            None => match env(ENV_SNAPSHOTS).as_deref() {
                None => true,
                Some("1" | "true" | "yes") => true,
                Some("0" | "false" | "no") => false,
                Some(v) => {
                    return Err(err(format!(
                        "{ENV_SNAPSHOTS}={v} is not a boolean (true or false)"
                    )));
                }
            },
        };

        let resolve = |p: String| {
            if Path::new(&p).is_absolute() {
                PathBuf::from(p)
            } else {
                base.join(p)
            }
        };
        let audit = AuditKeys::resolve(
            AuditKeys {
                key: hub.audit_key,
                key_file: hub.audit_key_file.map(resolve),
                witness: hub.audit_witness.map(resolve),
                witness_every: hub.audit_witness_every,
            },
            &state_dir,
            &pseudonym_key,
            !file.principals.is_empty(),
            &env,
        )
        .map_err(err)?;
        let server =
            ServerConfig::resolve(file.server.clone().unwrap_or_default(), &base, &env, &err)?;
        let policy = PolicyConfig::resolve(file.policy.clone().unwrap_or_default(), &err)?;
        let mut seen_principals = BTreeSet::new();
        for p in &file.principals {
            if !seen_principals.insert(p.id.clone()) {
                return Err(err(format!("principal '{}' is defined twice", p.id)));
            }
        }

        let mut sources = Vec::new();
        let mut names = BTreeSet::new();
        for (i, entry) in file.sources.into_iter().enumerate() {
            let get = |key: &str| entry.get(key).and_then(|v| v.as_str()).map(str::to_string);
            let name = get("name").ok_or_else(|| err(format!("sources[{i}] has no name")))?;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(err(format!(
                    "source name '{name}' may contain only ASCII letters, digits and _"
                )));
            }
            if !names.insert(name.clone()) {
                return Err(err(format!("source '{name}' is defined twice")));
            }
            let kind = get("type").ok_or_else(|| err(format!("source '{name}' has no type")))?;
            let mut options = entry;
            let on_error = match options.remove("on_error") {
                None => OnError::ServeStale,
                Some(v) => match v.as_str() {
                    Some("serve_stale") => OnError::ServeStale,
                    Some("refuse") => OnError::Refuse,
                    _ => {
                        return Err(err(format!(
                            "source '{name}': on_error = {v} is not one of \"serve_stale\", \"refuse\""
                        )));
                    }
                },
            };
            sources.push(SourceConfig {
                label: options
                    .get("label")
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                name,
                kind,
                on_error,
                options,
            });
        }

        let known_sources = || names.iter().cloned().collect::<Vec<_>>().join(", ");
        for m in &file.mappings {
            if !names.contains(&m.source) {
                return Err(err(format!(
                    "mapping {} names unknown source '{}' (sources: {})",
                    m.label(),
                    m.source,
                    known_sources()
                )));
            }
            if shared_table(&m.target).is_none() {
                return Err(err(format!(
                    "mapping {} names unknown shared table '{}' (tables: {})",
                    m.label(),
                    m.target,
                    shared_table_names().join(", ")
                )));
            }
        }
        let mut seen_tables = BTreeSet::new();
        for t in &file.tables {
            let Some(def) = shared_table(&t.name) else {
                return Err(err(format!(
                    "[[tables]] names unknown shared table '{}' (tables: {})",
                    t.name,
                    shared_table_names().join(", ")
                )));
            };
            if !seen_tables.insert(t.name.clone()) {
                return Err(err(format!("[[tables]] lists '{}' twice", t.name)));
            }
            for s in t
                .precedence
                .iter()
                .chain(t.column_precedence.values().flatten())
            {
                if !names.contains(s) {
                    return Err(err(format!(
                        "precedence of {} names unknown source '{s}' (sources: {})",
                        t.name,
                        known_sources()
                    )));
                }
            }
            for c in t.column_precedence.keys() {
                if def.column(c).is_none() {
                    return Err(err(format!(
                        "precedence names unknown column {}.{c}",
                        t.name
                    )));
                }
            }
        }

        Ok(Self {
            path: path.to_path_buf(),
            state_dir,
            pseudonym_key,
            batch_size,
            load_memory_mb,
            snapshots,
            audit_key: audit.key,
            audit_witness: audit.witness,
            audit_witness_every: audit.witness_every,
            principals: file.principals,
            sources,
            tables: file.tables,
            mappings: file.mappings,
            server,
            policy,
        })
    }

    /// Directory relative paths in the config resolve against.
    pub fn base_dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The precedence declared for a shared table (empty when none is).
    pub fn precedence(&self, table: &str) -> TablePrecedence {
        self.tables
            .iter()
            .find(|t| t.name == table)
            .cloned()
            .unwrap_or_else(|| TablePrecedence {
                name: table.to_string(),
                ..Default::default()
            })
    }
}

/// The audit keys of `[hub]` as written (paths resolved against the config's directory).
struct AuditKeys {
    key: Option<String>,
    key_file: Option<PathBuf>,
    witness: Option<PathBuf>,
    witness_every: Option<u64>,
}

/// The resolved audit keys.
struct ResolvedAudit {
    key: Option<String>,
    witness: Option<PathBuf>,
    witness_every: u64,
}

impl AuditKeys {
    /// The audit key and witness. Fails closed: a hub with principals needs a key of its
    /// own — not the pseudonym key, and not from a file in the state dir, where whoever can
    /// rewrite the log could read it.
    fn resolve(
        self,
        state_dir: &Path,
        pseudonym_key: &str,
        has_principals: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> std::result::Result<ResolvedAudit, String> {
        let outside_state = |what: &str, path: &Path| {
            if lies_inside(path, state_dir) {
                Err(format!(
                    "[hub] {what} = '{}' lies inside the state dir {}: keep it on another path \
                     (whoever can rewrite the state dir must not be able to read or rewrite it)",
                    path.display(),
                    state_dir.display()
                ))
            } else {
                Ok(())
            }
        };
        let key = match (self.key, self.key_file) {
            (Some(_), Some(_)) => {
                return Err(
                    "[hub] sets both audit_key and audit_key_file: set one of them".to_owned(),
                );
            }
            (Some(k), None) => Some(k),
            (None, Some(file)) => {
                outside_state("audit_key_file", &file)?;
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    format!(
                        "[hub] audit_key_file = '{}' cannot be read: {e}",
                        file.display()
                    )
                })?;
                Some(text.trim_end_matches(['\n', '\r']).to_owned())
            }
            (None, None) => env(ENV_AUDIT_KEY),
        };
        match &key {
            Some(k) if k.len() < 16 => {
                return Err("the audit key must be at least 16 characters".into());
            }
            Some(k) if k == pseudonym_key => {
                return Err(format!(
                    "the audit key is the pseudonym key: give the audit log a key of its own \
                     ([hub] audit_key_file, audit_key or {ENV_AUDIT_KEY})"
                ));
            }
            None if has_principals => {
                return Err(format!(
                    "no audit key: a hub with principals audits every query; set [hub] \
                     audit_key_file (a file outside the state dir), audit_key, or the \
                     environment variable {ENV_AUDIT_KEY}"
                ));
            }
            _ => {}
        }
        if let Some(w) = &self.witness {
            outside_state("audit_witness", w)?;
            if key.is_none() {
                return Err(format!(
                    "[hub] audit_witness needs an audit key: set [hub] audit_key_file, audit_key \
                     or {ENV_AUDIT_KEY}"
                ));
            }
        }
        let witness_every = self.witness_every.unwrap_or(DEFAULT_AUDIT_WITNESS_EVERY);
        if witness_every == 0 {
            return Err("[hub] audit_witness_every must be positive".into());
        }
        Ok(ResolvedAudit {
            key,
            witness: self.witness,
            witness_every,
        })
    }
}

/// Whether `path` is `dir` or lies under it, following symbolic links where the paths
/// exist (a key file reached through a link into the state dir lies inside it).
fn lies_inside(path: &Path, dir: &Path) -> bool {
    normalized(path).starts_with(normalized(dir))
}

/// The canonical path where it exists (or its parent does), else `..` and `.` resolved.
fn normalized(path: &Path) -> PathBuf {
    if let Ok(p) = path.canonicalize() {
        return p;
    }
    if let (Some(parent), Some(name)) = (path.parent(), path.file_name())
        && let Ok(p) = parent.canonicalize()
    {
        return p.join(name);
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[sources]]
name = "a"
type = "csv"
path = "a.csv"
"#;

    #[test]
    fn layers_defaults_env_file() {
        let p = Path::new("/etc/gridhub/gridhub.toml");
        let no_env = |_: &str| None;
        let missing = HubConfig::parse(p, MINIMAL, no_env).unwrap_err();
        assert!(missing.to_string().contains(ENV_PSEUDONYM_KEY), "{missing}");

        let env = |k: &str| match k {
            ENV_PSEUDONYM_KEY => Some("key-from-the-environment".to_string()),
            ENV_STATE_DIR => Some("/var/lib/gridhub".to_string()),
            _ => None,
        };
        let c = HubConfig::parse(p, MINIMAL, env).unwrap();
        assert_eq!(c.pseudonym_key, "key-from-the-environment");
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/gridhub"));
        assert_eq!(c.batch_size, DEFAULT_BATCH_SIZE);
        assert_eq!(c.load_memory_mb, DEFAULT_LOAD_MEMORY_MB);

        let file = format!(
            "[hub]\nstate_dir = \"state\"\npseudonym_key = \"key-from-the-file-123\"\n{MINIMAL}"
        );
        let c = HubConfig::parse(p, &file, env).unwrap();
        assert_eq!(c.pseudonym_key, "key-from-the-file-123");
        assert_eq!(c.state_dir, PathBuf::from("/etc/gridhub/state"));
    }

    #[test]
    fn rejects_unknown_names_with_the_known_ones() {
        let p = Path::new("x.toml");
        let env = |k: &str| (k == ENV_PSEUDONYM_KEY).then(|| "0123456789abcdef".to_string());
        let bad_target = format!(
            "{MINIMAL}\n[[mappings]]\nsource = \"a\"\ntable = \"a\"\ntarget = \"people\"\n[mappings.columns]\n"
        );
        let e = HubConfig::parse(p, &bad_target, env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("people") && e.contains("person"), "{e}");
        let bad_source = format!(
            "{MINIMAL}\n[[mappings]]\nsource = \"b\"\ntable = \"a\"\ntarget = \"person\"\n[mappings.columns]\n"
        );
        let e = HubConfig::parse(p, &bad_source, env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown source 'b'") && e.contains("sources: a"),
            "{e}"
        );
        let dup = format!("{MINIMAL}{MINIMAL}");
        assert!(HubConfig::parse(p, &dup, env).is_err());
        let policy = HubConfig::parse(
            p,
            &format!("[policy]\nemergency_max_hours = 12\n{MINIMAL}"),
            env,
        )
        .unwrap()
        .policy;
        assert_eq!(policy.emergency_max, chrono::Duration::hours(12));
        let default = HubConfig::parse(p, MINIMAL, env).unwrap().policy;
        assert_eq!(default.emergency_max, chrono::Duration::hours(72));
        let e = HubConfig::parse(
            p,
            &format!("[policy]\nemergency_max_hours = 0\n{MINIMAL}"),
            env,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("emergency_max_hours"), "{e}");
        let typo = "[hub]\nstate_dri = \"x\"\n";
        let e = HubConfig::parse(p, typo, env).unwrap_err().to_string();
        assert!(e.contains("state_dri"), "{e}");
    }

    const PRINCIPAL: &str = r#"
[[principals]]
id = "wu.audit"
name = "吴审"
roles = ["auditor"]
area = "4201"
"#;

    fn with_hub(hub: &str) -> String {
        format!("[hub]\nstate_dir = \"state\"\n{hub}\n{MINIMAL}{PRINCIPAL}")
    }

    #[test]
    fn audit_key_is_required_with_principals_and_never_the_pseudonym_key() {
        let p = Path::new("/etc/gridhub/gridhub.toml");
        let pseudonym = "pseudonym-key-0123456789";
        let env = |k: &str| (k == ENV_PSEUDONYM_KEY).then(|| pseudonym.to_string());
        // Principals and no audit key: refused, naming the key and the variable.
        let e = HubConfig::parse(p, &with_hub(""), env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("audit_key_file") && e.contains(ENV_AUDIT_KEY),
            "{e}"
        );
        // Without principals nothing is audited, and no key is needed.
        let c = HubConfig::parse(p, MINIMAL, env).unwrap();
        assert_eq!(c.audit_key, None);
        // The pseudonym key as audit key, inline or from the environment: refused.
        let same = with_hub(&format!("audit_key = \"{pseudonym}\""));
        let e = HubConfig::parse(p, &same, env).unwrap_err().to_string();
        assert!(e.contains("pseudonym key"), "{e}");
        let env_same =
            |k: &str| (k == ENV_PSEUDONYM_KEY || k == ENV_AUDIT_KEY).then(|| pseudonym.to_string());
        let e = HubConfig::parse(p, &with_hub(""), env_same)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pseudonym key"), "{e}");
        // A key of its own, from the environment.
        let env_own = |k: &str| match k {
            ENV_PSEUDONYM_KEY => Some(pseudonym.to_string()),
            ENV_AUDIT_KEY => Some("audit-key-from-the-environment".to_string()),
            _ => None,
        };
        let c = HubConfig::parse(p, &with_hub(""), env_own).unwrap();
        assert_eq!(
            c.audit_key.as_deref(),
            Some("audit-key-from-the-environment")
        );
        assert_eq!(c.audit_witness, None);
        assert_eq!(c.audit_witness_every, DEFAULT_AUDIT_WITNESS_EVERY);
    }

    #[test]
    fn audit_key_file_is_read_and_must_lie_outside_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gridhub.toml");
        std::fs::create_dir(dir.path().join("state")).unwrap();
        let env = |k: &str| (k == ENV_PSEUDONYM_KEY).then(|| "pseudonym-key-0123456789".into());
        std::fs::write(dir.path().join("audit.key"), "audit-key-from-a-file-0123\n").unwrap();
        let c = HubConfig::parse(&p, &with_hub("audit_key_file = \"audit.key\""), env).unwrap();
        assert_eq!(c.audit_key.as_deref(), Some("audit-key-from-a-file-0123"));

        // Inside the state dir, also through `..` or a symbolic link: refused before reading.
        std::fs::write(
            dir.path().join("state/audit.key"),
            "audit-key-from-a-file-0123",
        )
        .unwrap();
        for inside in [
            "state/audit.key",
            "./other/../state/audit.key",
            "state/missing.key",
        ] {
            let text = with_hub(&format!("audit_key_file = \"{inside}\""));
            let e = HubConfig::parse(&p, &text, env).unwrap_err().to_string();
            assert!(e.contains("inside the state dir"), "{inside}: {e}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("state"), dir.path().join("link")).unwrap();
            let text = with_hub("audit_key_file = \"link/audit.key\"");
            let e = HubConfig::parse(&p, &text, env).unwrap_err().to_string();
            assert!(e.contains("inside the state dir"), "{e}");
        }
        let missing = with_hub("audit_key_file = \"nowhere.key\"");
        let e = HubConfig::parse(&p, &missing, env).unwrap_err().to_string();
        assert!(
            e.contains("nowhere.key") && e.contains("cannot be read"),
            "{e}"
        );
        let both =
            with_hub("audit_key_file = \"audit.key\"\naudit_key = \"audit-key-inline-0123\"");
        let e = HubConfig::parse(&p, &both, env).unwrap_err().to_string();
        assert!(e.contains("both"), "{e}");
    }

    #[test]
    fn audit_witness_lies_outside_the_state_dir() {
        let p = Path::new("/etc/gridhub/gridhub.toml");
        let env = |k: &str| match k {
            ENV_PSEUDONYM_KEY => Some("pseudonym-key-0123456789".to_string()),
            ENV_AUDIT_KEY => Some("audit-key-0123456789".to_string()),
            _ => None,
        };
        let c = HubConfig::parse(
            p,
            &with_hub(
                "audit_witness = \"/mnt/witness/gridhub-audit.witness\"\naudit_witness_every = 7",
            ),
            env,
        )
        .unwrap();
        assert_eq!(
            c.audit_witness,
            Some(PathBuf::from("/mnt/witness/gridhub-audit.witness"))
        );
        assert_eq!(c.audit_witness_every, 7);
        let inside = with_hub("audit_witness = \"state/audit.witness\"");
        let e = HubConfig::parse(p, &inside, env).unwrap_err().to_string();
        assert!(
            e.contains("audit_witness") && e.contains("inside the state dir"),
            "{e}"
        );
        let zero = with_hub("audit_witness = \"/mnt/w\"\naudit_witness_every = 0");
        let e = HubConfig::parse(p, &zero, env).unwrap_err().to_string();
        assert!(e.contains("audit_witness_every"), "{e}");
    }
}
