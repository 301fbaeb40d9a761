//! The `parquet` connector.
//!
//! Options (besides the common `name`, `type`, `label`): `path` (one file; the table is named
//! after the file stem) or `tables = { name = "file.parquet", … }`.
//!
//! Files are queried in place through DataFusion's Parquet listing table with the schema
//! stored in the file; filters are pushed into the scan (row-group/page pruning and
//! row-level filtering while decoding) and projections read only the needed columns.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use ::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use async_trait::async_trait;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::datasource::listing::ListingOptions;
use gridhub_connector::{Connector, ConnectorContext, Health, Result};
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::common::{
    FileTables, blocking, check_readable_file, connector_factory, file_tables, parquet_format,
    single_file_listing_table,
};

/// The connector kind name.
pub const KIND: &str = "parquet";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParquetOptions {
    #[serde(default, rename = "name")]
    _name: Option<IgnoredAny>,
    #[serde(default, rename = "type")]
    _type: Option<IgnoredAny>,
    #[serde(default, rename = "label")]
    _label: Option<IgnoredAny>,
    path: Option<String>,
    tables: Option<BTreeMap<String, String>>,
}

connector_factory!(ParquetFactory, ParquetConnector);

/// A Parquet source: one table per file, read in place.
#[derive(Debug)]
pub struct ParquetConnector {
    ctx: ConnectorContext,
    tables: FileTables,
}

impl ParquetConnector {
    /// Parses the options of `ctx`.
    pub fn new(ctx: ConnectorContext) -> Result<Self> {
        let options: ParquetOptions = ctx.parse_options()?;
        let tables = file_tables(&ctx, options.path.as_deref(), options.tables.as_ref())?;
        Ok(Self { ctx, tables })
    }
}

/// The Arrow schema stored in a Parquet file (without file-level metadata).
fn file_schema(path: &Path) -> std::result::Result<SchemaRef, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
        .map_err(|e| format!("not a readable Parquet file: {e}"))?;
    Ok(Arc::new(Schema::new(meta.schema().fields().clone())))
}

#[async_trait]
impl Connector for ParquetConnector {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn location(&self) -> String {
        self.tables.location()
    }

    async fn discover(&self) -> Result<Vec<String>> {
        Ok(self.tables.names())
    }

    async fn table(&self, name: &str) -> Result<Arc<dyn TableProvider>> {
        let path = self.tables.file_of(&self.ctx, name)?.to_path_buf();
        let ctx = self.ctx.clone();
        let owned = path.clone();
        let schema = blocking(&self.ctx, move || {
            check_readable_file(&ctx, &owned)?;
            file_schema(&owned).map_err(|e| ctx.io_error(&owned, e))
        })
        .await?;
        single_file_listing_table(
            &path,
            ListingOptions::new(Arc::new(parquet_format())),
            schema,
        )
        .map_err(|e| self.ctx.io_error(&path, e))
    }

    async fn health(&self) -> Health {
        let health = self.tables.health(&self.ctx);
        if !health.is_ok() {
            return health;
        }
        for (_, path) in self.tables.iter() {
            if let Err(e) = file_schema(path) {
                return Health::Unavailable(self.ctx.io_error(path, e).to_string());
            }
        }
        Health::Ok
    }
}
