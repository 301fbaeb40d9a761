//! `gridhub catalog`: sources, shared tables and (with `--columns`) every column with its
//! tag, printed from the `gridhub.v1` catalog message — the same locally and remotely.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use gridhub_proto::v1 as pb;

use crate::backend::Backend;
use crate::error::Result;
use crate::output::{Format, render};

fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let schema = Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )?)
}

fn text<T>(items: &[T], f: impl Fn(&T) -> &str) -> ArrayRef {
    Arc::new(StringArray::from(
        items.iter().map(|i| Some(f(i))).collect::<Vec<_>>(),
    ))
}

fn empty_as_null<T>(items: &[T], f: impl Fn(&T) -> &str) -> ArrayRef {
    Arc::new(StringArray::from(
        items
            .iter()
            .map(|i| Some(f(i)).filter(|s| !s.is_empty()))
            .collect::<Vec<_>>(),
    ))
}

fn sources(s: &[pb::Source]) -> Result<RecordBatch> {
    batch(vec![
        ("source", text(s, |x| &x.name)),
        ("type", text(s, |x| &x.r#type)),
        ("label", empty_as_null(s, |x| &x.label)),
        ("health", text(s, |x| &x.health)),
        (
            "cached",
            Arc::new(BooleanArray::from(
                s.iter().map(|x| Some(x.cached)).collect::<Vec<_>>(),
            )),
        ),
        ("last_refresh", empty_as_null(s, |x| &x.last_refresh)),
        (
            "accepted",
            Arc::new(Int64Array::from(
                s.iter().map(|x| x.accepted).collect::<Vec<_>>(),
            )),
        ),
        (
            "rejected",
            Arc::new(Int64Array::from(
                s.iter().map(|x| x.rejected).collect::<Vec<_>>(),
            )),
        ),
        ("location", empty_as_null(s, |x| &x.location)),
    ])
}

fn tables(t: &[pb::SharedTable]) -> Result<RecordBatch> {
    batch(vec![
        ("shared_table", text(t, |x| &x.name)),
        ("label", empty_as_null(t, |x| &x.label)),
        ("key", text(t, |x| &x.key)),
        (
            "rows",
            Arc::new(Int64Array::from(
                t.iter().map(|x| x.rows).collect::<Vec<_>>(),
            )),
        ),
        ("sources", empty_as_null(t, |x| &x.sources)),
    ])
}

fn columns(c: &[pb::Column]) -> Result<RecordBatch> {
    batch(vec![
        ("table_name", text(c, |x| &x.table)),
        ("column_name", text(c, |x| &x.name)),
        ("data_type", text(c, |x| &x.data_type)),
        ("tag", text(c, |x| &x.tag)),
        ("label", empty_as_null(c, |x| &x.label)),
        (
            "is_key",
            Arc::new(BooleanArray::from(
                c.iter().map(|x| Some(x.is_key)).collect::<Vec<_>>(),
            )),
        ),
    ])
}

/// Print the catalog as the backend's caller is answered. JSON output is one object with a
/// key per section.
pub async fn show(
    backend: &Backend,
    format: Format,
    with_columns: bool,
    with_rejects: bool,
) -> Result<()> {
    let mut client = backend.client().catalog();
    let catalog = client
        .get_catalog(pb::GetCatalogRequest {})
        .await?
        .into_inner();
    let mut sections = vec![
        ("sources", sources(&catalog.sources)?),
        ("tables", tables(&catalog.tables)?),
    ];
    if with_columns {
        sections.push(("columns", columns(&catalog.columns)?));
    }
    if with_rejects {
        let r = client
            .list_rejects(pb::ListRejectsRequest {})
            .await?
            .into_inner()
            .counts;
        sections.push((
            "rejects",
            batch(vec![
                ("source", text(&r, |x| &x.source)),
                ("source_table", text(&r, |x| &x.source_table)),
                ("target_table", text(&r, |x| &x.target_table)),
                (
                    "rows",
                    Arc::new(Int64Array::from(
                        r.iter().map(|x| x.rows).collect::<Vec<_>>(),
                    )),
                ),
            ])?,
        ));
    }
    let mut rendered = Vec::new();
    for (name, b) in &sections {
        rendered.push((*name, render(std::slice::from_ref(b), format, None)?));
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
