//! The connector API of gridhub: one trait every source implements, the context a
//! connector is built with, a registry of connector kinds by name, and one error enum.
//!
//! A connector turns one configured *source* (a file, a workbook, a database) into
//! DataFusion table providers, one per source table, under the source's own schema.
//! The hub maps those raw tables into the shared tables; connectors know nothing about
//! the mapping, the catalog or the server, so connector crates depend only on this one.
//!
//! Sources that DataFusion can read in place (Parquet, UTF-8 CSV, SQLite) are queried in
//! place, so filters and projections reach the source scan. Sources it cannot read in
//! place (GBK text, xlsx workbooks) are *materialised* into a Parquet cache under the
//! context's cache directory; [`Connector::refresh`] rebuilds that cache explicitly. A
//! rebuilt cache replaces the previous one only once it is complete and accepted by the
//! context's [`CacheCheck`] (the hub checks that its mappings still fit).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;

/// Name of the column a materialising connector adds to every table: the 1-based line or
/// row number in the original file, as a user sees it in a spreadsheet (header = row 1).
pub const ROW_NUMBER_COLUMN: &str = "_row";

/// Errors of connectors. Every variant names the source it happened in.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("source '{source_name}': unknown connector type '{kind}' (known types: {known})")]
    UnknownKind {
        source_name: String,
        kind: String,
        known: String,
    },
    #[error("source '{source_name}': invalid options: {message}")]
    InvalidOptions {
        source_name: String,
        message: String,
    },
    #[error("source '{source_name}': table '{table}' not found (tables: {known})")]
    UnknownTable {
        source_name: String,
        table: String,
        known: String,
    },
    #[error("source '{source_name}': cannot read {path}: {message}")]
    Io {
        source_name: String,
        path: String,
        message: String,
    },
    #[error("source '{source_name}': {message}")]
    Source {
        source_name: String,
        message: String,
    },
}

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// Whether a source answers, checked by [`Connector::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    Unavailable(String),
}

impl Health {
    pub fn is_ok(&self) -> bool {
        matches!(self, Health::Ok)
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Ok => f.write_str("ok"),
            Health::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

/// What a refresh of a materialised source did, per table.
#[derive(Debug, Clone, Default)]
pub struct RefreshReport {
    /// (table, rows written to the cache)
    pub tables: Vec<(String, u64)>,
}

/// Decides whether a rebuilt table may replace its materialised cache: called with the table
/// name and the schema of the rebuilt table before anything is renamed into place. `Err` says
/// why not (e.g. a column the mapping reads is missing), and the previous cache is kept.
#[derive(Clone)]
pub struct CacheCheck(Arc<CheckFn>);

/// The function behind a [`CacheCheck`].
type CheckFn = dyn Fn(&str, &SchemaRef) -> std::result::Result<(), String> + Send + Sync;

impl CacheCheck {
    pub fn new(
        check: impl Fn(&str, &SchemaRef) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(check))
    }

    /// Whether `table` rebuilt with `schema` may replace its cache.
    pub fn check(&self, table: &str, schema: &SchemaRef) -> std::result::Result<(), String> {
        (self.0)(table, schema)
    }
}

impl fmt::Debug for CacheCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CacheCheck")
    }
}

/// Everything a connector factory gets to build one source.
#[derive(Debug, Clone)]
pub struct ConnectorContext {
    /// The source's name as configured; raw tables appear under schema `src_<name>`.
    pub source_name: String,
    /// Directory relative paths in the options are resolved against (the config file's).
    pub base_dir: PathBuf,
    /// Directory this source may keep a materialised cache in (created on demand).
    pub cache_dir: PathBuf,
    /// The source's options from the hub config: everything in its `[[sources]]` entry.
    pub options: toml::Table,
    /// Checks every rebuilt cache table before it replaces the previous one (none: any
    /// readable table is accepted).
    pub cache_check: Option<CacheCheck>,
}

impl ConnectorContext {
    /// Resolve a path from the options against the config file's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// Deserialize the options into a connector's own option struct.
    pub fn parse_options<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(toml::Value::Table(self.options.clone())).map_err(|e| {
            ConnectorError::InvalidOptions {
                source_name: self.source_name.clone(),
                message: e.to_string(),
            }
        })
    }

    pub fn io_error(&self, path: &Path, err: impl fmt::Display) -> ConnectorError {
        ConnectorError::Io {
            source_name: self.source_name.clone(),
            path: path.display().to_string(),
            message: err.to_string(),
        }
    }

    /// Whether a rebuilt table may replace its cache ([`ConnectorContext::cache_check`]).
    pub fn check_cache(&self, table: &str, schema: &SchemaRef) -> std::result::Result<(), String> {
        match &self.cache_check {
            Some(check) => check.check(table, schema),
            None => Ok(()),
        }
    }

    pub fn error(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::Source {
            source_name: self.source_name.clone(),
            message: message.into(),
        }
    }
}

/// One configured source.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug {
    /// The connector kind, as written in `type = "..."`.
    fn kind(&self) -> &'static str;

    /// Human-readable location (path, URL without credentials).
    fn location(&self) -> String;

    /// Names of the tables this source offers, in a stable order.
    async fn discover(&self) -> Result<Vec<String>>;

    /// A table provider for one source table. Its schema is the source's own schema.
    async fn table(&self, name: &str) -> Result<Arc<dyn TableProvider>>;

    /// Whether the source can be reached and read now.
    async fn health(&self) -> Health;

    /// True when tables are served from a local materialised cache.
    fn is_materialised(&self) -> bool {
        false
    }

    /// Rebuild the materialised cache from the source (no-op for in-place sources). Every
    /// table is rebuilt into a temporary file and checked (readable to the end, accepted by
    /// [`ConnectorContext::cache_check`]); only when all of them are does any replace its
    /// cache, so a failed refresh leaves the previous cache as it was.
    async fn refresh(&self) -> Result<RefreshReport> {
        Ok(RefreshReport::default())
    }

    /// When the cache was last rebuilt, if the source is materialised and cached.
    fn last_refresh(&self) -> Option<std::time::SystemTime> {
        None
    }
}

/// Builds connectors of one kind.
pub trait ConnectorFactory: Send + Sync {
    /// The kind name used in config (`type = "csv"`).
    fn kind(&self) -> &'static str;
    fn build(&self, ctx: ConnectorContext) -> Result<Arc<dyn Connector>>;
}

/// Connector kinds by name.
#[derive(Default, Clone)]
pub struct ConnectorRegistry {
    factories: BTreeMap<&'static str, Arc<dyn ConnectorFactory>>,
}

impl ConnectorRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn register(&mut self, factory: Arc<dyn ConnectorFactory>) {
        self.factories.insert(factory.kind(), factory);
    }

    pub fn kinds(&self) -> Vec<&'static str> {
        self.factories.keys().copied().collect()
    }

    /// Build the connector for a source of the given kind.
    pub fn build(&self, kind: &str, ctx: ConnectorContext) -> Result<Arc<dyn Connector>> {
        match self.factories.get(kind) {
            Some(factory) => factory.build(ctx),
            None => Err(ConnectorError::UnknownKind {
                source_name: ctx.source_name,
                kind: kind.to_string(),
                known: self.kinds().join(", "),
            }),
        }
    }
}

impl fmt::Debug for ConnectorRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorRegistry")
            .field("kinds", &self.kinds())
            .finish()
    }
}
