//! `gridhub catalog`: the catalog, printed from the `system.*` tables.

use gridhub_engine::Hub;

use crate::output::{Format, render};

const SOURCES: &str = "
SELECT s.name AS source, s.type, s.label, s.health,
       s.materialised AS cached, s.last_refresh,
       sum(l.accepted) AS accepted, sum(l.rejected) AS rejected, s.location
FROM system.sources s LEFT JOIN system.loads l ON l.source = s.name
GROUP BY s.name, s.type, s.label, s.health, s.materialised, s.last_refresh, s.location
ORDER BY s.name";

const TABLES: &str = "
SELECT name AS shared_table, label, key, rows, sources FROM system.tables ORDER BY name";

const COLUMNS: &str = "
SELECT table_name, name AS column_name, data_type, tag, label, is_key
FROM system.columns ORDER BY table_name, position";

/// Print the catalog. JSON output is one object with a key per section.
pub async fn show(hub: &Hub, format: Format, columns: bool) -> Result<(), String> {
    let mut sections = vec![("sources", SOURCES), ("tables", TABLES)];
    if columns {
        sections.push(("columns", COLUMNS));
    }
    let mut rendered = Vec::new();
    for (name, sql) in &sections {
        let batches = hub.query(sql).await.map_err(|e| e.to_string())?;
        rendered.push((*name, render(&batches, format, None)?));
    }
    let text = match format {
        Format::Json => format!(
            "{{{}}}\n",
            rendered
                .iter()
                .map(|(n, r)| format!("\"{n}\": {}", r.trim_end()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => rendered
            .iter()
            .map(|(n, r)| format!("{n}\n{r}"))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    crate::print(&text)
}
