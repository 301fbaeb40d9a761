//! The persisted catalog: an embedded SQLite database (`<state_dir>/catalog.db`).
//!
//! Writers replace whole groups of rows (one source's tables, all lineage, one load's
//! statistics) inside a transaction, so a reader never sees half a load.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, params};

use crate::model::shared_tables;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog store {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("catalog store {path}: cannot create directory: {source}")]
    Dir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// A configured source as last seen by the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub name: String,
    pub kind: String,
    pub label: Option<String>,
    pub location: String,
    /// `ok` or `broken: <reason>` with what is served of it.
    pub health: String,
    pub materialised: bool,
    /// Microseconds since the epoch (UTC) of the last cache rebuild, for materialised sources.
    pub last_refresh: Option<i64>,
    /// Microseconds since the epoch (UTC) of the last load (statistics computed).
    pub last_load: Option<i64>,
}

/// A raw table offered by a source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTableRecord {
    pub source: String,
    pub table: String,
    /// `name: type` pairs of the source's own schema.
    pub columns: Vec<(String, String)>,
    pub row_count: Option<u64>,
}

/// Which source column (or expression) feeds which shared column.
#[derive(Debug, Clone, PartialEq)]
pub struct LineageRecord {
    pub shared_table: String,
    pub shared_column: String,
    pub source: String,
    pub source_table: String,
    /// The source column, expression or constant, as configured.
    pub source_expr: String,
    /// The normaliser or value map applied, if any.
    pub transform: Option<String>,
}

/// Accepted and rejected rows of one mapping at the last load.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadStat {
    pub source: String,
    pub source_table: String,
    pub target_table: String,
    pub accepted: u64,
    pub rejected: u64,
    pub loaded_at: i64,
}

/// Rows of a shared table after merging all its sources.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedTableCount {
    pub table: String,
    pub rows: u64,
    pub sources: Vec<String>,
    pub loaded_at: i64,
}

/// The last failed refresh of a materialised source, kept until a refresh succeeds: its cache
/// still holds the data of the last good refresh, so without this record nothing would say
/// the source is behind.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshFailure {
    pub source: String,
    /// Why the refresh failed, as one sentence.
    pub reason: String,
    /// For schema drift: the columns missing and added (`missing: …; added: …`).
    pub drift: Option<String>,
    /// Microseconds since the epoch (UTC) of the first failure since the last good refresh.
    pub since: i64,
}

/// The catalog database.
#[derive(Debug)]
pub struct CatalogStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT, location TEXT NOT NULL,
    health TEXT NOT NULL, materialised INTEGER NOT NULL, last_refresh INTEGER, last_load INTEGER);
CREATE TABLE IF NOT EXISTS source_tables (
    source TEXT NOT NULL, name TEXT NOT NULL, columns TEXT NOT NULL, row_count INTEGER,
    PRIMARY KEY (source, name));
CREATE TABLE IF NOT EXISTS shared_columns (
    table_name TEXT NOT NULL, table_label TEXT NOT NULL, position INTEGER NOT NULL,
    name TEXT NOT NULL, data_type TEXT NOT NULL, tag TEXT NOT NULL, label TEXT NOT NULL,
    is_key INTEGER NOT NULL, PRIMARY KEY (table_name, name));
CREATE TABLE IF NOT EXISTS lineage (
    shared_table TEXT NOT NULL, shared_column TEXT NOT NULL, source TEXT NOT NULL,
    source_table TEXT NOT NULL, source_expr TEXT NOT NULL, transform TEXT);
CREATE TABLE IF NOT EXISTS load_stats (
    source TEXT NOT NULL, source_table TEXT NOT NULL, target_table TEXT NOT NULL,
    accepted INTEGER NOT NULL, rejected INTEGER NOT NULL, loaded_at INTEGER NOT NULL,
    PRIMARY KEY (source, source_table, target_table));
CREATE TABLE IF NOT EXISTS refresh_failures (
    source TEXT PRIMARY KEY, reason TEXT NOT NULL, drift TEXT, since INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS shared_counts (
    table_name TEXT PRIMARY KEY, rows INTEGER NOT NULL, sources TEXT NOT NULL,
    loaded_at INTEGER NOT NULL);
";

impl CatalogStore {
    /// Open (creating if needed) the catalog database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| CatalogError::Dir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| CatalogError::Store {
            path: path.display().to_string(),
            source,
        })?;
        let store = Self {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        };
        store.with(|c| {
            c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
            c.execute_batch(SCHEMA)
        })?;
        store.write_shared_columns()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|source| CatalogError::Store {
            path: self.path.display().to_string(),
            source,
        })
    }

    /// The compiled-in shared-table model, persisted so external tools can read it too.
    fn write_shared_columns(&self) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM shared_columns", [])?;
            {
                let mut ins = tx.prepare(
                    "INSERT INTO shared_columns VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for t in shared_tables() {
                    for (i, col) in t.columns.iter().enumerate() {
                        ins.execute(params![
                            t.name,
                            t.label,
                            i as i64,
                            col.name,
                            col.data_type.to_string(),
                            col.tag.as_str(),
                            col.label,
                            t.key.contains(&col.name),
                        ])?;
                    }
                }
            }
            tx.commit()
        })
    }

    pub fn upsert_source(&self, s: &SourceRecord) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO sources VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(name) DO UPDATE SET kind = ?2, label = ?3, location = ?4,
                   health = ?5, materialised = ?6,
                   last_refresh = COALESCE(?7, last_refresh),
                   last_load = COALESCE(?8, last_load)",
                params![
                    s.name,
                    s.kind,
                    s.label,
                    s.location,
                    s.health,
                    s.materialised,
                    s.last_refresh,
                    s.last_load
                ],
            )
            .map(|_| ())
        })
    }

    /// Forget sources that are no longer configured.
    pub fn retain_sources(&self, names: &[String]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            let existing: Vec<String> = {
                let mut st = tx.prepare("SELECT name FROM sources")?;
                st.query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            };
            for name in existing.iter().filter(|n| !names.contains(n)) {
                tx.execute("DELETE FROM sources WHERE name = ?1", [name])?;
                tx.execute("DELETE FROM source_tables WHERE source = ?1", [name])?;
                tx.execute("DELETE FROM load_stats WHERE source = ?1", [name])?;
                tx.execute("DELETE FROM refresh_failures WHERE source = ?1", [name])?;
            }
            tx.commit()
        })
    }

    pub fn sources(&self) -> Result<Vec<SourceRecord>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT name, kind, label, location, health, materialised, last_refresh, last_load
                 FROM sources ORDER BY name",
            )?;
            st.query_map([], |r| {
                Ok(SourceRecord {
                    name: r.get(0)?,
                    kind: r.get(1)?,
                    label: r.get(2)?,
                    location: r.get(3)?,
                    health: r.get(4)?,
                    materialised: r.get(5)?,
                    last_refresh: r.get(6)?,
                    last_load: r.get(7)?,
                })
            })?
            .collect()
        })
    }

    /// Record that a refresh of `f.source` failed (an earlier failure keeps its `since`).
    pub fn record_refresh_failure(&self, f: &RefreshFailure) -> Result<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO refresh_failures VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(source) DO UPDATE SET reason = ?2, drift = ?3",
                params![f.source, f.reason, f.drift, f.since],
            )
            .map(|_| ())
        })
    }

    /// Forget the failed refresh of a source (its refresh succeeded).
    pub fn clear_refresh_failure(&self, source: &str) -> Result<()> {
        self.with(|c| {
            c.execute("DELETE FROM refresh_failures WHERE source = ?1", [source])
                .map(|_| ())
        })
    }

    /// Sources whose last refresh failed.
    pub fn refresh_failures(&self) -> Result<Vec<RefreshFailure>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT source, reason, drift, since FROM refresh_failures ORDER BY source",
            )?;
            st.query_map([], |r| {
                Ok(RefreshFailure {
                    source: r.get(0)?,
                    reason: r.get(1)?,
                    drift: r.get(2)?,
                    since: r.get(3)?,
                })
            })?
            .collect()
        })
    }

    /// Replace the recorded tables of one source.
    pub fn replace_source_tables(&self, source: &str, tables: &[SourceTableRecord]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM source_tables WHERE source = ?1", [source])?;
            {
                let mut ins = tx.prepare("INSERT INTO source_tables VALUES (?1, ?2, ?3, ?4)")?;
                for t in tables {
                    let cols = t
                        .columns
                        .iter()
                        .map(|(n, ty)| format!("{n}: {ty}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    ins.execute(params![
                        t.source,
                        t.table,
                        cols,
                        t.row_count.map(|n| n as i64)
                    ])?;
                }
            }
            tx.commit()
        })
    }

    pub fn source_tables(&self) -> Result<Vec<SourceTableRecord>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT source, name, columns, row_count FROM source_tables ORDER BY source, name",
            )?;
            st.query_map([], |r| {
                let cols: String = r.get(2)?;
                let row_count: Option<i64> = r.get(3)?;
                Ok(SourceTableRecord {
                    source: r.get(0)?,
                    table: r.get(1)?,
                    columns: cols
                        .split(", ")
                        .filter(|s| !s.is_empty())
                        .map(|s| match s.split_once(": ") {
                            Some((n, t)) => (n.to_string(), t.to_string()),
                            None => (s.to_string(), String::new()),
                        })
                        .collect(),
                    row_count: row_count.map(|n| n as u64),
                })
            })?
            .collect()
        })
    }

    pub fn replace_lineage(&self, rows: &[LineageRecord]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM lineage", [])?;
            {
                let mut ins = tx.prepare("INSERT INTO lineage VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
                for l in rows {
                    ins.execute(params![
                        l.shared_table,
                        l.shared_column,
                        l.source,
                        l.source_table,
                        l.source_expr,
                        l.transform
                    ])?;
                }
            }
            tx.commit()
        })
    }

    pub fn lineage(&self) -> Result<Vec<LineageRecord>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT shared_table, shared_column, source, source_table, source_expr, transform
                 FROM lineage ORDER BY rowid",
            )?;
            st.query_map([], |r| {
                Ok(LineageRecord {
                    shared_table: r.get(0)?,
                    shared_column: r.get(1)?,
                    source: r.get(2)?,
                    source_table: r.get(3)?,
                    source_expr: r.get(4)?,
                    transform: r.get(5)?,
                })
            })?
            .collect()
        })
    }

    /// Replace all load statistics and shared-table counts with one load's results.
    pub fn replace_load(&self, stats: &[LoadStat], counts: &[SharedTableCount]) -> Result<()> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM load_stats", [])?;
            tx.execute("DELETE FROM shared_counts", [])?;
            {
                let mut ins =
                    tx.prepare("INSERT INTO load_stats VALUES (?1, ?2, ?3, ?4, ?5, ?6)")?;
                for s in stats {
                    ins.execute(params![
                        s.source,
                        s.source_table,
                        s.target_table,
                        s.accepted as i64,
                        s.rejected as i64,
                        s.loaded_at
                    ])?;
                }
                let mut ins = tx.prepare("INSERT INTO shared_counts VALUES (?1, ?2, ?3, ?4)")?;
                for s in counts {
                    ins.execute(params![
                        s.table,
                        s.rows as i64,
                        s.sources.join(","),
                        s.loaded_at
                    ])?;
                }
            }
            tx.commit()
        })
    }

    pub fn load_stats(&self) -> Result<Vec<LoadStat>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT source, source_table, target_table, accepted, rejected, loaded_at
                 FROM load_stats ORDER BY source, source_table, target_table",
            )?;
            st.query_map([], |r| {
                Ok(LoadStat {
                    source: r.get(0)?,
                    source_table: r.get(1)?,
                    target_table: r.get(2)?,
                    accepted: r.get::<_, i64>(3)? as u64,
                    rejected: r.get::<_, i64>(4)? as u64,
                    loaded_at: r.get(5)?,
                })
            })?
            .collect()
        })
    }

    pub fn shared_counts(&self) -> Result<Vec<SharedTableCount>> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT table_name, rows, sources, loaded_at FROM shared_counts ORDER BY table_name",
            )?;
            st.query_map([], |r| {
                let sources: String = r.get(2)?;
                Ok(SharedTableCount {
                    table: r.get(0)?,
                    rows: r.get::<_, i64>(1)? as u64,
                    sources: sources
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                    loaded_at: r.get(3)?,
                })
            })?
            .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_failure_keeps_its_first_time_until_cleared() {
        let dir = tempfile_dir("failures");
        let store = CatalogStore::open(&dir.join("catalog.db")).unwrap();
        let failure = |reason: &str, since| RefreshFailure {
            source: "property_a".into(),
            reason: reason.into(),
            drift: Some("missing: 证件号码".into()),
            since,
        };
        store.record_refresh_failure(&failure("first", 10)).unwrap();
        store
            .record_refresh_failure(&failure("second", 20))
            .unwrap();
        assert_eq!(store.refresh_failures().unwrap(), [failure("second", 10)]);
        store.clear_refresh_failure("property_a").unwrap();
        assert!(store.refresh_failures().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir(what: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("gridhub-catalog-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn survives_reopen() {
        let dir = std::env::temp_dir().join(format!("gridhub-catalog-{}", std::process::id()));
        let path = dir.join("catalog.db");
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = CatalogStore::open(&path).unwrap();
            store
                .upsert_source(&SourceRecord {
                    name: "a".into(),
                    kind: "csv".into(),
                    label: Some("物业A".into()),
                    location: "/x.csv".into(),
                    health: "ok".into(),
                    materialised: true,
                    last_refresh: Some(5),
                    last_load: None,
                })
                .unwrap();
            store
                .replace_source_tables(
                    "a",
                    &[SourceTableRecord {
                        source: "a".into(),
                        table: "住户".into(),
                        columns: vec![("姓名".into(), "Utf8".into())],
                        row_count: Some(3),
                    }],
                )
                .unwrap();
            store
                .replace_load(
                    &[LoadStat {
                        source: "a".into(),
                        source_table: "住户".into(),
                        target_table: "person".into(),
                        accepted: 2,
                        rejected: 1,
                        loaded_at: 7,
                    }],
                    &[],
                )
                .unwrap();
        }
        let store = CatalogStore::open(&path).unwrap();
        let sources = store.sources().unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].label.as_deref(), Some("物业A"));
        // A later upsert without a refresh time keeps the recorded one.
        let mut s = sources[0].clone();
        s.last_refresh = None;
        store.upsert_source(&s).unwrap();
        assert_eq!(store.sources().unwrap()[0].last_refresh, Some(5));
        assert_eq!(store.source_tables().unwrap()[0].columns[0].0, "姓名");
        assert_eq!(store.load_stats().unwrap()[0].rejected, 1);
        store.retain_sources(&[]).unwrap();
        assert!(store.sources().unwrap().is_empty());
        assert!(store.load_stats().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
