//! Test helpers: contexts over temporary directories and SQL over a provider.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionContext;
use gridhub_connector::{Connector, ConnectorContext, ConnectorError};
use tempfile::TempDir;

/// A temporary config directory with a cache directory inside.
pub struct Env {
    pub dir: TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn base(&self) -> &Path {
        self.dir.path()
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A context for source `name` with options parsed from TOML.
    pub fn ctx(&self, name: &str, options: &str) -> ConnectorContext {
        ConnectorContext {
            source_name: name.to_string(),
            base_dir: self.base().to_path_buf(),
            cache_dir: self.cache_dir(),
            cache_check: None,
            options: toml::from_str(options).expect("valid TOML options"),
        }
    }

    /// Builds a connector through the built-in registry.
    pub fn build(&self, kind: &str, name: &str, options: &str) -> Arc<dyn Connector> {
        gridhub_connectors::builtin_registry()
            .build(kind, self.ctx(name, options))
            .unwrap_or_else(|e| panic!("build {kind} source {name}: {e}"))
    }

    /// Builds a connector whose rebuilt caches must pass `check` (as the hub's mapping check).
    pub fn build_checked(
        &self,
        kind: &str,
        name: &str,
        options: &str,
        check: gridhub_connector::CacheCheck,
    ) -> Arc<dyn Connector> {
        let mut ctx = self.ctx(name, options);
        ctx.cache_check = Some(check);
        gridhub_connectors::builtin_registry()
            .build(kind, ctx)
            .unwrap_or_else(|e| panic!("build {kind} source {name}: {e}"))
    }

    /// Files in the cache directory, sorted (temporary files included).
    pub fn cache_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.cache_dir())
            .map(|it| {
                it.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    pub fn build_err(&self, kind: &str, name: &str, options: &str) -> ConnectorError {
        match gridhub_connectors::builtin_registry().build(kind, self.ctx(name, options)) {
            Ok(c) => panic!("expected an error, built {c:?}"),
            Err(e) => e,
        }
    }
}

pub fn session(provider: Arc<dyn TableProvider>) -> SessionContext {
    let ctx = SessionContext::new();
    ctx.register_table("t", provider).expect("register");
    ctx
}

/// Runs `sql` against the provider registered as `t`; every value rendered as text.
pub async fn query(provider: Arc<dyn TableProvider>, sql: &str) -> Vec<Vec<Option<String>>> {
    let ctx = session(provider);
    let batches = ctx
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("plan {sql}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("run {sql}: {e}"));
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8).expect("cast to text"))
            .collect();
        for r in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| {
                        let s = c.as_string::<i32>();
                        (!s.is_null(r)).then(|| s.value(r).to_string())
                    })
                    .collect(),
            );
        }
    }
    rows
}

/// The physical plan of `sql` against the provider registered as `t`.
pub async fn physical_plan(provider: Arc<dyn TableProvider>, sql: &str) -> String {
    let ctx = session(provider);
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let text = displayable(plan.as_ref()).indent(true).to_string();
    println!("{sql}\n{text}");
    text
}

/// Shorthand for expected rows.
pub fn rows(expected: &[&[Option<&str>]]) -> Vec<Vec<Option<String>>> {
    expected
        .iter()
        .map(|r| r.iter().map(|v| v.map(str::to_string)).collect())
        .collect()
}

pub fn field_names(provider: &Arc<dyn TableProvider>) -> Vec<String> {
    provider
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

pub fn field_types(provider: &Arc<dyn TableProvider>) -> Vec<DataType> {
    provider
        .schema()
        .fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect()
}
