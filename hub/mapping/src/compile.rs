//! Compiling one mapping into DataFusion logical plans over the raw source table.
//!
//! The plan is two projections over the raw scan:
//!
//! 1. *values*: every shared column computed from the source row (origin → trim → normaliser
//!    or value map → cast to the shared type), plus the cleaned source value of every
//!    column that can fail, the row identifier and the raw row as JSON;
//! 2. *checks*: `__err`, the reasons the row is rejected (NULL when it is accepted).
//!
//! `accepted` filters `__err IS NULL` and keeps the shared columns; `rejects` keeps the
//! rest. Because both are plain projections and filters, DataFusion pushes a filter on a
//! shared column down through them into the source scan, and prunes the JSON of the raw row
//! from the accepted side.

use std::str::FromStr;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::execution::FunctionRegistry;
use datafusion::functions::expr_fn::{btrim, concat, concat_ws, nullif};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{ExprFunctionExt, ExprSchemable, cast, try_cast, when};
use datafusion::prelude::{DataFrame, Expr, SessionContext, lit};
use gridhub_catalog::TableDef;
use gridhub_catalog::model::{SOURCE_COLUMN, UPDATED_AT_COLUMN};
use gridhub_normalize::Normalizer;

use crate::config::{ColumnOrigin, ColumnSpec, MappingConfig};
use crate::error::{MappingError, Result};

/// Column a materialising connector adds: the row's line number in the original file.
const ROW_NUMBER_COLUMN: &str = "_row";
const ERR: &str = "__err";
const ROW_ID: &str = "__row_id";
const RAW: &str = "__raw";

/// A mapping compiled against its raw table.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    pub source: String,
    pub source_table: String,
    pub target: &'static TableDef,
    /// The shared `area_code` as an expression over the raw table's columns, when the
    /// mapping gives one: the jurisdiction of a raw row, for policies on raw tables.
    pub area_code: Option<Expr>,
    /// Each mapped shared column with the raw columns its value is computed from (the
    /// column references of its compiled expression).
    pub reads: Vec<ColumnRead>,
    /// Shared columns plus `__err`, `__row_id`, `__raw`.
    checked: DataFrame,
}

/// The raw columns one shared column of a mapping reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRead {
    /// The shared column.
    pub shared: &'static str,
    /// The raw columns its compiled expression references.
    pub raw: std::collections::BTreeSet<String>,
    /// The normaliser or value map applied, if any (`person_id`: pseudonymised).
    pub transform: Option<String>,
}

impl CompiledMapping {
    /// `source.table → target`.
    pub fn label(&self) -> String {
        format!(
            "{}.{} → {}",
            self.source, self.source_table, self.target.name
        )
    }

    /// The rows that passed every check, in the shared table's schema.
    pub fn accepted(&self) -> Result<DataFrame> {
        let columns: Vec<Expr> = self
            .target
            .columns
            .iter()
            .map(|c| col_ref(c.name))
            .collect();
        self.checked
            .clone()
            .filter(col_ref(ERR).is_null())
            .and_then(|df| df.select(columns))
            .map_err(|e| self.plan_error(e))
    }

    /// The rejected rows, in the `_rejects` schema (see [`rejects_columns`]).
    pub fn rejects(&self) -> Result<DataFrame> {
        self.checked
            .clone()
            .filter(col_ref(ERR).is_not_null())
            .and_then(|df| {
                df.select(vec![
                    lit(self.source.as_str()).alias("source"),
                    lit(self.source_table.as_str()).alias("source_table"),
                    lit(self.target.name).alias("target_table"),
                    col_ref(ROW_ID).alias("row_id"),
                    col_ref(ERR).alias("reason"),
                    col_ref(RAW).alias("raw"),
                ])
            })
            .map_err(|e| self.plan_error(e))
    }

    /// One row: `accepted`, `rejected` — both counted in a single scan of the source.
    pub fn counts(&self) -> Result<DataFrame> {
        let rejected = col_ref(ERR).is_not_null();
        let count_where = |predicate: Expr| count(lit(1)).filter(predicate).build();
        let accepted =
            count_where(Expr::Not(Box::new(rejected.clone()))).map_err(|e| self.plan_error(e))?;
        let rejected = count_where(rejected).map_err(|e| self.plan_error(e))?;
        self.checked
            .clone()
            .aggregate(
                vec![],
                vec![accepted.alias("accepted"), rejected.alias("rejected")],
            )
            .map_err(|e| self.plan_error(e))
    }

    fn plan_error(&self, source: datafusion::error::DataFusionError) -> MappingError {
        MappingError::Plan {
            mapping: self.label(),
            source: Box::new(source),
        }
    }
}

/// Names of the `_rejects` columns, in order.
pub fn rejects_columns() -> [&'static str; 6] {
    [
        "source",
        "source_table",
        "target_table",
        "row_id",
        "reason",
        "raw",
    ]
}

/// A column reference by exact name (source names may contain any character).
fn col_ref(name: &str) -> Expr {
    Expr::Column(Column::new_unqualified(name))
}

fn is_text(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn toml_literal(v: &toml::Value) -> std::result::Result<Expr, String> {
    match v {
        toml::Value::String(s) => Ok(lit(s.as_str())),
        toml::Value::Integer(i) => Ok(lit(*i)),
        toml::Value::Float(f) => Ok(lit(*f)),
        toml::Value::Boolean(b) => Ok(lit(*b)),
        other => Err(format!("unsupported constant {other}")),
    }
}

/// Builds the reason a value was rejected from the cleaned source value.
type ReasonFn = Box<dyn Fn(Expr) -> Expr>;

/// One shared column, compiled.
struct CompiledColumn {
    /// The final value, cast to the shared type.
    value: Expr,
    /// The cleaned source value (text), for the reject check; None when it cannot fail.
    raw: Option<Expr>,
    /// Why a non-empty source value gave no value, given `raw` as a column reference.
    reason: Option<ReasonFn>,
}

/// Compile `mapping` over the raw source table `raw`.
///
/// `ctx` provides the `gh_*` normaliser functions; `loaded_at` (µs since epoch, UTC) is the
/// `_updated_at` of every row when the mapping does not say otherwise.
pub fn compile(
    ctx: &SessionContext,
    raw: DataFrame,
    mapping: &MappingConfig,
    target: &'static TableDef,
    loaded_at: Option<i64>,
) -> Result<CompiledMapping> {
    let label = mapping.label();
    let bad = |column: &str, message: String| MappingError::BadSpec {
        mapping: label.clone(),
        column: column.to_string(),
        message,
    };
    let plan_err = |e: datafusion::error::DataFusionError| MappingError::Plan {
        mapping: label.clone(),
        source: Box::new(e),
    };

    for name in mapping.columns.keys() {
        if target.column(name).is_none() || name == SOURCE_COLUMN {
            return Err(MappingError::UnknownTargetColumn {
                mapping: label.clone(),
                table: target.name.to_string(),
                column: name.clone(),
                known: target
                    .data_columns()
                    .map(|c| c.name)
                    .chain([UPDATED_AT_COLUMN])
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    for key in target.key {
        if !mapping.columns.contains_key(*key) {
            return Err(bad(
                key,
                format!("the key column of {} must be mapped", target.name),
            ));
        }
    }

    let schema = raw.schema().clone();
    let mut values = Vec::new();
    let mut raws: Vec<(usize, Expr)> = Vec::new();
    let mut reasons: Vec<(usize, ReasonFn)> = Vec::new();
    let mut area_code = None;
    let mut reads = Vec::new();

    for (i, def) in target.columns.iter().enumerate() {
        let value = if def.name == SOURCE_COLUMN {
            lit(mapping.source.as_str())
        } else if let Some(spec) = mapping.columns.get(def.name) {
            let compiled = compile_column(ctx, &raw, &schema, spec, &def.data_type)
                .map_err(|m| bad(def.name, m))?;
            if let Some(r) = compiled.raw {
                raws.push((i, r));
            }
            if let Some(reason) = compiled.reason {
                reasons.push((i, reason));
            }
            if def.name == "area_code" {
                area_code = Some(compiled.value.clone());
            }
            reads.push(ColumnRead {
                shared: def.name,
                raw: compiled
                    .value
                    .column_refs()
                    .into_iter()
                    .map(|c| c.name.clone())
                    .collect(),
                transform: spec.transform(),
            });
            compiled.value
        } else if def.name == UPDATED_AT_COLUMN {
            lit(ScalarValue::TimestampMicrosecond(
                loaded_at,
                Some("UTC".into()),
            ))
        } else {
            lit(ScalarValue::try_from(&def.data_type).map_err(plan_err)?)
        };
        values.push(value.alias(def.name));
    }

    let raw_names: Vec<&str> = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| *n != ROW_NUMBER_COLUMN)
        .collect();
    let row_id = match &mapping.row_id {
        Some(c) => {
            check_column(&schema, c).map_err(|m| bad("row_id", m))?;
            cast(col_ref(c), DataType::Utf8)
        }
        None if schema.has_column_with_unqualified_name(ROW_NUMBER_COLUMN) => {
            cast(col_ref(ROW_NUMBER_COLUMN), DataType::Utf8)
        }
        None => lit(ScalarValue::Utf8(None)),
    };
    let json = ctx.udf("gh_json_object").map_err(plan_err)?;
    let raw_json = json.call(
        raw_names
            .iter()
            .flat_map(|n| [lit(*n), col_ref(n)])
            .collect(),
    );

    let mut first: Vec<Expr> = values;
    for (i, r) in &raws {
        first.push(r.clone().alias(format!("__raw_{i}")));
    }
    first.push(row_id.alias(ROW_ID));
    first.push(raw_json.alias(RAW));
    let valued = raw.select(first).map_err(plan_err)?;

    // Second projection: the reasons a row is rejected.
    let mut checks = Vec::new();
    for (i, reason) in &reasons {
        let def = &target.columns[*i];
        let raw_col = col_ref(&format!("__raw_{i}"));
        let value_col = col_ref(def.name);
        let why = concat(vec![
            lit(format!("{}: ", def.name)),
            reason(raw_col.clone()),
        ]);
        checks.push(
            when(raw_col.is_not_null().and(value_col.is_null()), why)
                .end()
                .map_err(plan_err)?,
        );
    }
    for key in target.key {
        // A key whose source value was present but invalid already has its reason.
        let mut missing = col_ref(key).is_null();
        if let Some((i, _)) = raws.iter().find(|(i, _)| target.columns[*i].name == *key) {
            missing = missing.and(col_ref(&format!("__raw_{i}")).is_null());
        }
        checks.push(
            when(missing, lit(format!("{key}: missing key value")))
                .end()
                .map_err(plan_err)?,
        );
    }
    let err = nullif(concat_ws(lit("; "), checks), lit(""));
    let mut second: Vec<Expr> = target.columns.iter().map(|c| col_ref(c.name)).collect();
    second.push(err.alias(ERR));
    second.push(col_ref(ROW_ID));
    second.push(col_ref(RAW));
    let checked = valued.select(second).map_err(plan_err)?;

    Ok(CompiledMapping {
        source: mapping.source.clone(),
        source_table: mapping.table.clone(),
        target,
        area_code,
        reads,
        checked,
    })
}

fn check_column(schema: &DFSchema, name: &str) -> std::result::Result<(), String> {
    if schema.has_column_with_unqualified_name(name) {
        Ok(())
    } else {
        Err(format!(
            "no source column '{name}' (columns: {})",
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

fn compile_column(
    ctx: &SessionContext,
    raw: &DataFrame,
    schema: &DFSchema,
    spec: &ColumnSpec,
    target_type: &DataType,
) -> std::result::Result<CompiledColumn, String> {
    let origin = spec.origin()?;
    let base = match origin {
        ColumnOrigin::Column(c) => {
            check_column(schema, c)?;
            col_ref(c)
        }
        ColumnOrigin::Sql(s) => raw
            .parse_sql_expr(s)
            .map_err(|e| format!("invalid sql `{s}`: {e}"))?,
        ColumnOrigin::Constant(v) => toml_literal(v)?,
    };
    let base_type = base
        .get_type(schema)
        .map_err(|e| format!("cannot type `{origin}`: {e}"))?;
    // A source column of the shared type with no rule passes through untouched, so a
    // filter on it reaches the source as it is (e.g. into SQLite's WHERE).
    let plain = spec.normalize.is_none() && spec.map.is_none();
    if plain && &base_type == target_type && matches!(origin, ColumnOrigin::Column(_)) {
        return Ok(CompiledColumn {
            value: base,
            raw: None,
            reason: None,
        });
    }
    // Otherwise empty text is no value: field exports write "" and "  " for missing cells.
    let cleaned = if is_text(&base_type) {
        nullif(btrim(vec![base]), lit(""))
    } else {
        base
    };
    let as_text = |e: Expr| {
        if is_text(&base_type) {
            e
        } else {
            cast(e, DataType::Utf8)
        }
    };
    let type_name = target_type.to_string();
    let cannot_read = move |raw: Expr| {
        concat(vec![
            lit("cannot read '"),
            cast(raw, DataType::Utf8),
            lit(format!("' as {type_name}")),
        ])
    };

    let (transformed, transformed_type, reason): (Expr, DataType, ReasonFn) =
        match (&spec.normalize, &spec.map) {
            (Some(_), Some(_)) => return Err("takes `normalize` or `map`, not both".into()),
            (Some(name), None) => {
                let normalizer = Normalizer::from_str(name).map_err(|e| e.to_string())?;
                let udf = ctx
                    .udf(normalizer.udf_name())
                    .map_err(|e| format!("normaliser {name} is not registered: {e}"))?;
                let check = ctx
                    .udf("gh_check")
                    .map_err(|e| format!("gh_check is not registered: {e}"))?;
                let name = name.clone();
                let fallback = cannot_read.clone();
                (
                    udf.call(vec![cleaned.clone()]),
                    normalizer.output_type(),
                    Box::new(move |raw: Expr| {
                        datafusion::functions::expr_fn::coalesce(vec![
                            check.call(vec![lit(name.as_str()), raw.clone()]),
                            fallback(raw),
                        ])
                    }),
                )
            }
            (None, Some(map)) => {
                let text = as_text(cleaned.clone());
                let mut entries = map.iter();
                let Some((k0, v0)) = entries.next() else {
                    return Err("`map` is empty".into());
                };
                let mut case = when(text.clone().eq(lit(k0.as_str())), toml_literal(v0)?);
                let mut value_type = toml_literal(v0)?
                    .get_type(schema)
                    .map_err(|e| e.to_string())?;
                for (k, v) in entries {
                    let v = toml_literal(v)?;
                    if v.get_type(schema).map_err(|e| e.to_string())? != value_type {
                        value_type = DataType::Utf8;
                    }
                    case = case.when(text.clone().eq(lit(k.as_str())), v);
                }
                let expr = case.end().map_err(|e| e.to_string())?;
                (
                    expr,
                    value_type,
                    Box::new(|raw: Expr| {
                        concat(vec![
                            lit("unknown value '"),
                            cast(raw, DataType::Utf8),
                            lit("'"),
                        ])
                    }),
                )
            }
            (None, None) => (cleaned.clone(), base_type.clone(), Box::new(cannot_read)),
        };

    let value = if &transformed_type == target_type {
        transformed
    } else if *target_type == DataType::Utf8 {
        cast(transformed, DataType::Utf8)
    } else {
        try_cast(transformed, target_type.clone())
    };
    let can_fail = spec.normalize.is_some()
        || spec.map.is_some()
        || (&base_type != target_type && *target_type != DataType::Utf8);
    Ok(CompiledColumn {
        value,
        raw: can_fail.then(|| as_text(cleaned)),
        reason: can_fail.then_some(reason),
    })
}
