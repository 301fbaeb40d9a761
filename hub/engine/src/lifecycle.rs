//! A hub ready to answer: opened and loaded on first use, refreshed and reopened over the
//! rebuilt caches, and its derived state (source caches, snapshots) discarded when the
//! sources it was built from were replaced.
//!
//! Derived state is what the hub can rebuild from the sources. The audit log, the policy
//! store, the token store and the catalog store are records, not derived state: nothing
//! here removes them.

use std::path::{Path, PathBuf};

use crate::hub::{LoadSummary, Progress, RefreshOutcome};
use crate::{EngineError, GovernedHub, Hub, HubConfig, Result};

/// Where the Parquet caches of materialised sources live, one directory per source.
pub fn cache_root(config: &HubConfig) -> PathBuf {
    config.state_dir.join("cache")
}

/// Remove the hub's derived state — the source caches and the snapshot sets — because the
/// sources were rewritten and what was derived from them is stale. Returns the directories
/// removed. The audit log, policy store, tokens and catalog store are kept.
pub fn discard_derived_state(config: &HubConfig) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for dir in [cache_root(config), crate::snapshot::root(config)] {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => removed.push(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(EngineError::Config {
                    path: config.path.display().to_string(),
                    message: format!("cannot remove the stale {}: {e}", dir.display()),
                });
            }
        }
    }
    Ok(removed)
}

impl Hub {
    /// Whether the hub has mappings but no load recorded yet.
    pub fn needs_load(&self) -> Result<bool> {
        Ok(!self.mappings().is_empty() && self.store().load_stats()?.is_empty())
    }

    /// Load when nothing is loaded yet, so the catalog and the shared tables are never
    /// empty on a first query. Returns the load's summary when it ran.
    pub async fn ensure_loaded(&self, progress: &dyn Progress) -> Result<Option<LoadSummary>> {
        if self.needs_load()? {
            Ok(Some(self.load(progress).await?))
        } else {
            Ok(None)
        }
    }
}

// Governed before loaded: the audit log is opened (and a new one anchored) before the state
// records a load, or a later open would take the log for one that was removed.
impl GovernedHub {
    /// Open and govern the hub whose config is at `path`, loaded ([`Hub::ensure_loaded`]).
    pub async fn open_loaded(path: &Path, progress: &dyn Progress) -> Result<GovernedHub> {
        let governed = GovernedHub::open_path(path).await?;
        governed.hub().ensure_loaded(progress).await?;
        Ok(governed)
    }

    /// Refresh the sources (all, or those in `only`), reopen the hub so every table is
    /// planned over the rebuilt caches, and load it. Returns the reopened, loaded hub and
    /// each source's outcome; a broken source is an outcome, not an error.
    pub async fn refresh_and_reload(
        path: &Path,
        only: &[String],
        progress: &dyn Progress,
    ) -> Result<(GovernedHub, Vec<RefreshOutcome>)> {
        let refreshed = {
            let governed = GovernedHub::open_loaded(path, progress).await?;
            governed.hub().refresh(only, progress).await?
        };
        let governed = GovernedHub::open_path(path).await?;
        governed.hub().load(progress).await?;
        Ok((governed, refreshed))
    }
}
