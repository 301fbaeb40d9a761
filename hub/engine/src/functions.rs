//! The functions a principal's governed session holds: an allow-list, not the operator's
//! registry.
//!
//! A function is allowed only if it cannot act as an oracle on values the principal may not
//! read: it computes from its arguments alone (which the policy views have already masked),
//! holds no key and reads no file or system state. gridhub's own functions say for
//! themselves whether a principal may call them ([`gridhub_normalize::principal_use`]); the
//! keyed pseudonymiser `gh_person_id` is the reason this list exists. DataFusion's built-ins
//! are listed here by name; anything not listed — a function a later DataFusion adds, table
//! functions (`generate_series`, `range`), amplifiers that build arrays of any length
//! (`array_repeat`, `range`), `version()` — is absent, and a query naming it fails to plan
//! ("Invalid function").
//!
//! Functions whose output can be far larger than their input (`repeat`, `lpad`, `rpad`,
//! `replace`, `regexp_replace`) are wrapped ([`AmplifierGuard`]): before one runs, the upper
//! bound of what it would produce is computed from its arguments, and beyond
//! [`MAX_FUNCTION_OUTPUT_BYTES`] it fails with "Resources exhausted" instead of asking the
//! allocator for terabytes (`lpad(name, 2000000000)` over a batch of 8,192 names), which would
//! abort the process before any memory pool could count it. What they do produce is counted
//! in the query's pool as it leaves ([`crate::stream`]).

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::{Result as DfResult, resources_err};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{
    AggregateUDF, ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, WindowUDF,
};

/// The most one call of an amplifying function may produce (one batch's values).
pub const MAX_FUNCTION_OUTPUT_BYTES: u64 = 64 << 20;

/// DataFusion scalar functions a principal may call (canonical names; aliases come along).
pub const SCALAR: &[&str] = &[
    // math
    "abs",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "cbrt",
    "ceil",
    "cos",
    "cosh",
    "cot",
    "degrees",
    "exp",
    "factorial",
    "floor",
    "gcd",
    "isnan",
    "iszero",
    "lcm",
    "ln",
    "log",
    "log10",
    "log2",
    "nanvl",
    "pi",
    "power",
    "radians",
    "random",
    "round",
    "signum",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "trunc",
    // conditional and core
    "coalesce",
    "nullif",
    "nvl",
    "nvl2",
    "greatest",
    "least",
    "arrow_cast",
    "arrow_typeof",
    "named_struct",
    "struct",
    "get_field",
    "overlay",
    // strings
    "ascii",
    "bit_length",
    "btrim",
    "character_length",
    "chr",
    "concat",
    "concat_ws",
    "contains",
    "ends_with",
    "find_in_set",
    "initcap",
    "left",
    "levenshtein",
    "lower",
    "lpad",
    "ltrim",
    "octet_length",
    "repeat",
    "replace",
    "reverse",
    "right",
    "rpad",
    "rtrim",
    "split_part",
    "starts_with",
    "strpos",
    "substr",
    "substr_index",
    "to_hex",
    "translate",
    "upper",
    "uuid",
    "encode",
    "decode",
    // regular expressions
    "regexp_like",
    "regexp_match",
    "regexp_replace",
    "regexp_count",
    "regexp_instr",
    // dates and times
    "current_date",
    "current_time",
    "now",
    "date_bin",
    "date_part",
    "date_trunc",
    "from_unixtime",
    "make_date",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_timestamp_seconds",
    "to_timestamp_millis",
    "to_timestamp_micros",
    "to_timestamp_nanos",
    "to_unixtime",
    "to_local_time",
    "make_time",
    "to_time",
    // unkeyed hashes of values the query can read
    "md5",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "digest",
    // arrays that cannot grow beyond their inputs
    "make_array",
    "array_length",
    "cardinality",
    "array_has",
    "array_has_all",
    "array_has_any",
    "array_element",
    "array_position",
    "array_to_string",
    "string_to_array",
    "array_distinct",
    "array_sort",
    "array_slice",
    "array_min",
    "array_max",
    "array_sum",
    "array_avg",
    "array_reverse",
    "empty",
];

/// DataFusion aggregate functions a principal may call. Aggregates see masked values only.
pub const AGGREGATE: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "median",
    "stddev",
    "stddev_pop",
    "var",
    "var_pop",
    "corr",
    "covar_samp",
    "covar_pop",
    "approx_distinct",
    "approx_median",
    "approx_percentile_cont",
    "percentile_cont",
    "array_agg",
    "string_agg",
    "first_value",
    "last_value",
    "nth_value",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bool_and",
    "bool_or",
    "grouping",
    "any_value",
    "regr_slope",
    "regr_intercept",
    "regr_count",
    "regr_r2",
    "regr_avgx",
    "regr_avgy",
    "regr_sxx",
    "regr_syy",
    "regr_sxy",
];

/// DataFusion window functions a principal may call.
pub const WINDOW: &[&str] = &[
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
];

/// Whether a principal may call the scalar function `name` (canonical name).
pub fn scalar_allowed(name: &str) -> bool {
    match gridhub_normalize::principal_use(name) {
        Some((allowed, _)) => allowed,
        None => SCALAR.contains(&name),
    }
}

/// Scalar, aggregate and window functions a principal may call.
pub(crate) type Allowed = (
    Vec<Arc<ScalarUDF>>,
    Vec<Arc<AggregateUDF>>,
    Vec<Arc<WindowUDF>>,
);

/// The functions of `state` a principal may call: (scalar, aggregate, window).
pub(crate) fn allowed(state: &SessionState) -> Allowed {
    let mut scalar: Vec<_> = state
        .scalar_functions()
        .values()
        .filter(|f| scalar_allowed(f.name()))
        .map(|f| match Amplifier::of(f.name()) {
            Some(kind) => Arc::new(ScalarUDF::new_from_impl(AmplifierGuard {
                inner: f.as_ref().clone(),
                kind,
            })),
            None => f.clone(),
        })
        .collect();
    let mut aggregate: Vec<_> = state
        .aggregate_functions()
        .values()
        .filter(|f| AGGREGATE.contains(&f.name()))
        .cloned()
        .collect();
    let mut window: Vec<_> = state
        .window_functions()
        .values()
        .filter(|f| WINDOW.contains(&f.name()))
        .cloned()
        .collect();
    // The registries are keyed by name and alias: one entry per function.
    scalar.sort_by(|a, b| a.name().cmp(b.name()));
    scalar.dedup_by(|a, b| a.name() == b.name());
    aggregate.sort_by(|a, b| a.name().cmp(b.name()));
    aggregate.dedup_by(|a, b| a.name() == b.name());
    window.sort_by(|a, b| a.name().cmp(b.name()));
    window.dedup_by(|a, b| a.name() == b.name());
    (scalar, aggregate, window)
}

/// Functions whose output can be far larger than their input, and how to bound it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Amplifier {
    /// `repeat(s, n)`: len(s) × n.
    Repeat,
    /// `lpad(s, n [, fill])`, `rpad(…)`: n characters of up to 4 bytes.
    Pad,
    /// `replace(s, from, to)`: every position of s may match (an empty `from`).
    Replace,
    /// `regexp_replace(s, re, to [, flags])`: as replace, and `to` may copy the match (`$0`).
    RegexpReplace,
}

impl Amplifier {
    fn of(name: &str) -> Option<Self> {
        Some(match name {
            "repeat" => Self::Repeat,
            "lpad" | "rpad" => Self::Pad,
            "replace" => Self::Replace,
            "regexp_replace" => Self::RegexpReplace,
            _ => return None,
        })
    }

    /// Upper bound of the bytes a call would produce, from its arguments.
    fn bound(self, args: &[ColumnarValue], rows: usize) -> DfResult<u64> {
        let text = |i: usize| lengths(args.get(i), rows);
        let mut total: u64 = 0;
        match self {
            Self::Repeat => {
                let (s, n) = (text(0)?, integers(args.get(1), rows)?);
                for (s, n) in s.iter().zip(&n) {
                    total = total.saturating_add(s.saturating_mul((*n).max(0) as u64));
                }
            }
            Self::Pad => {
                let (s, n) = (text(0)?, integers(args.get(1), rows)?);
                for (s, n) in s.iter().zip(&n) {
                    total = total
                        .saturating_add(*s)
                        .saturating_add(((*n).max(0) as u64).saturating_mul(4));
                }
            }
            Self::Replace | Self::RegexpReplace => {
                let (s, to) = (text(0)?, text(2)?);
                for (s, to) in s.iter().zip(&to) {
                    // A match at every position (len + 1 of them), each written as `to`; a
                    // regex replacement may also copy the match (at most the whole text).
                    let per_match = if self == Self::RegexpReplace {
                        to.saturating_mul((*s).max(1))
                    } else {
                        *to
                    };
                    total = total
                        .saturating_add(*s)
                        .saturating_add(s.saturating_add(1).saturating_mul(per_match));
                }
            }
        }
        Ok(total)
    }
}

/// Byte length of each row's value (0 for NULL or a missing argument).
fn lengths(arg: Option<&ColumnarValue>, rows: usize) -> DfResult<Vec<u64>> {
    let Some(arg) = arg else {
        return Ok(vec![0; rows]);
    };
    let array = arg.to_array(rows)?;
    let array = datafusion::arrow::compute::cast(&array, &DataType::LargeUtf8)?;
    let strings = array.as_string::<i64>();
    Ok((0..rows)
        .map(|i| {
            if strings.is_null(i) {
                0
            } else {
                strings.value(i).len() as u64
            }
        })
        .collect())
}

/// Each row's integer argument (0 for NULL or a missing argument).
fn integers(arg: Option<&ColumnarValue>, rows: usize) -> DfResult<Vec<i64>> {
    let Some(arg) = arg else {
        return Ok(vec![0; rows]);
    };
    let array = arg.to_array(rows)?;
    let array = datafusion::arrow::compute::cast(&array, &DataType::Int64)?;
    let values = array.as_primitive::<Int64Type>();
    Ok((0..rows)
        .map(|i| {
            if values.is_null(i) {
                0
            } else {
                values.value(i)
            }
        })
        .collect())
}

/// An amplifying function as principals get it: refuses a call whose output bound passes
/// [`MAX_FUNCTION_OUTPUT_BYTES`], otherwise the function itself.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AmplifierGuard {
    inner: ScalarUDF,
    kind: Amplifier,
}

impl ScalarUDFImpl for AmplifierGuard {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        self.inner.inner().return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        // A call on scalars alone is evaluated once, for one row.
        let rows = if args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            1
        } else {
            args.number_rows
        };
        let bound = self.kind.bound(&args.args, rows)?;
        if bound > MAX_FUNCTION_OUTPUT_BYTES {
            return resources_err!(
                "{}() would produce up to {bound} bytes here, more than the {} one call may \
                 (gridhub bounds functions whose output can outgrow their input)",
                self.inner.name(),
                MAX_FUNCTION_OUTPUT_BYTES
            );
        }
        self.inner.inner().invoke_with_args(args)
    }
}
