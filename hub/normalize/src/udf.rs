//! DataFusion scalar UDFs over the normalisers.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, PrimitiveArray, PrimitiveBuilder, StringArray,
    StringArrayType, StringBuilder,
};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Field, FieldRef, Float32Type, Float64Type,
    TimestampMicrosecondType,
};
use chrono::NaiveDate;
use datafusion::common::{Result as DfResult, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::prelude::SessionContext;

use crate::error::NormError;
use crate::id::{HmacSha256, new_mac, pseudonym_hex, resident_id_core, today_beijing};
use crate::normalizer::Normalizer;
use crate::{datetime, text};

/// The pseudonym key. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key(Arc<[u8]>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(<{} bytes redacted>)", self.0.len())
    }
}

/// Per-batch state shared by the kernels.
struct Ctx {
    today: NaiveDate,
    mac: HmacSha256,
}

impl Ctx {
    fn new(key: &Key) -> Self {
        Ctx {
            today: today_beijing(),
            mac: new_mac(&key.0),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Input handling

/// Any array as a string array. Utf8, LargeUtf8 and Utf8View are used as they are; floats
/// are printed without a spurious `.0` when integral (`43891.0` → `43891`, so a phone or
/// admin code read as a number still works); everything else goes through arrow's cast.
fn as_text(a: &ArrayRef) -> DfResult<ArrayRef> {
    Ok(match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Arc::clone(a),
        DataType::Float64 => float_text(a.as_primitive::<Float64Type>().iter(), 2f64.powi(53)),
        DataType::Float32 => float_text(a.as_primitive::<Float32Type>().iter(), 2f32.powi(24)),
        DataType::Float16 => as_text(&arrow::compute::cast(a, &DataType::Float32)?)?,
        _ => arrow::compute::cast(a, &DataType::Utf8)?,
    })
}

trait Float: Copy + fmt::Display + PartialOrd {
    fn integral(self, limit: Self) -> Option<i64>;
}

impl Float for f64 {
    fn integral(self, limit: f64) -> Option<i64> {
        (self.is_finite() && self.fract() == 0.0 && self.abs() < limit).then_some(self as i64)
    }
}

impl Float for f32 {
    fn integral(self, limit: f32) -> Option<i64> {
        (self.is_finite() && self.fract() == 0.0 && self.abs() < limit).then_some(self as i64)
    }
}

fn float_text<F: Float>(values: impl ExactSizeIterator<Item = Option<F>>, limit: F) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(values.len(), values.len() * 12);
    for v in values {
        match v {
            None => b.append_null(),
            Some(v) => {
                // Writing into a String builder cannot fail.
                let _ = match v.integral(limit) {
                    Some(i) => write!(b, "{i}"),
                    None => write!(b, "{v}"),
                };
                b.append_value("");
            }
        }
    }
    Arc::new(b.finish())
}

/// Calls `f` once per row of a string array (Utf8, LargeUtf8 or Utf8View).
fn for_each_str(a: &ArrayRef, mut f: impl FnMut(Option<&str>)) {
    fn each<'a, A: StringArrayType<'a>>(a: A, f: &mut impl FnMut(Option<&'a str>)) {
        match a.logical_nulls() {
            None => (0..a.len()).for_each(|i| f(Some(a.value(i)))),
            Some(nulls) => (0..a.len()).for_each(|i| {
                f(if nulls.is_null(i) {
                    None
                } else {
                    Some(a.value(i))
                })
            }),
        }
    }
    match a.data_type() {
        DataType::Utf8 => each(a.as_string::<i32>(), &mut f),
        DataType::LargeUtf8 => each(a.as_string::<i64>(), &mut f),
        DataType::Utf8View => each(a.as_string_view(), &mut f),
        other => unreachable!("as_text returned {other}"),
    }
}

/// Bytes of string data in a string array (capacity hint).
fn text_bytes(a: &ArrayRef) -> usize {
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().values().len(),
        DataType::LargeUtf8 => a.as_string::<i64>().values().len(),
        _ => a.len() * 16,
    }
}

/// Runs `f` on one argument, array or scalar, returning the same shape.
fn map_columnar(
    arg: ColumnarValue,
    f: impl FnOnce(&ArrayRef) -> DfResult<ArrayRef>,
) -> DfResult<ColumnarValue> {
    match arg {
        ColumnarValue::Array(a) => Ok(ColumnarValue::Array(f(&a)?)),
        ColumnarValue::Scalar(s) => {
            let out = f(&s.to_array_of_size(1)?)?;
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Output kernels

/// Utf8 output; `f` appends the value to the builder (without finishing the row) or fails.
fn utf8_kernel(
    text: &ArrayRef,
    bytes: usize,
    mut f: impl FnMut(&str, &mut StringBuilder) -> Result<(), NormError>,
) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(text.len(), bytes);
    for_each_str(text, |v| match v {
        Some(s) if f(s, &mut b).is_ok() => b.append_value(""),
        _ => b.append_null(),
    });
    Arc::new(b.finish())
}

fn primitive_kernel<T: ArrowPrimitiveType>(
    text: &ArrayRef,
    mut f: impl FnMut(&str) -> Result<T::Native, NormError>,
) -> PrimitiveArray<T> {
    let mut b = PrimitiveBuilder::<T>::with_capacity(text.len());
    for_each_str(text, |v| b.append_option(v.and_then(|s| f(s).ok())));
    b.finish()
}

fn normalize_array(kind: Normalizer, ctx: &Ctx, input: &ArrayRef) -> DfResult<ArrayRef> {
    let text = as_text(input)?;
    let n = text.len();
    let out: ArrayRef = match kind {
        Normalizer::ResidentId => utf8_kernel(&text, n * 18, |s, b| {
            let id = resident_id_core(s, ctx.today)?;
            b.write_str(std::str::from_utf8(&id).expect("ASCII"))
                .expect("infallible");
            Ok(())
        }),
        Normalizer::PersonId => utf8_kernel(&text, n * 32, |s, b| {
            let id = resident_id_core(s, ctx.today)?;
            let hex = pseudonym_hex(&ctx.mac, &id);
            b.write_str(std::str::from_utf8(&hex).expect("ASCII"))
                .expect("infallible");
            Ok(())
        }),
        Normalizer::Name => {
            let mut scratch = String::new();
            utf8_kernel(&text, text_bytes(&text), |s, b| {
                scratch.clear();
                text::name_into(s, &mut scratch)?;
                b.write_str(&scratch).expect("infallible");
                Ok(())
            })
        }
        Normalizer::Phone => utf8_kernel(&text, n * 12, |s, b| {
            let p = text::phone_core(s)?;
            b.write_str(p.as_str()).expect("infallible");
            Ok(())
        }),
        Normalizer::AdminCode => utf8_kernel(&text, n * 12, |s, b| {
            let c = text::admin_code_core(s)?;
            b.write_str(c.as_str()).expect("infallible");
            Ok(())
        }),
        Normalizer::Trim => utf8_kernel(&text, text_bytes(&text), |s, b| {
            b.write_str(text::trim_core(s)?).expect("infallible");
            Ok(())
        }),
        Normalizer::Date => Arc::new(primitive_kernel::<Date32Type>(&text, datetime::date32)),
        Normalizer::Timestamp => Arc::new(
            primitive_kernel::<TimestampMicrosecondType>(&text, datetime::timestamp)
                .with_timezone("UTC"),
        ),
        Normalizer::Bool => {
            let mut b = BooleanBuilder::with_capacity(n);
            for_each_str(&text, |v| {
                b.append_option(v.and_then(|s| text::boolean(s).ok()))
            });
            Arc::new(b.finish())
        }
    };
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// gh_<normaliser>

/// `gh_<normaliser>(x)`: the normalised value, NULL when `x` is NULL, empty or invalid.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NormalizeUdf {
    kind: Normalizer,
    /// Only set for `person_id`, so the other UDFs compare equal whatever the key.
    key: Key,
    signature: Signature,
}

impl ScalarUDFImpl for NormalizeUdf {
    fn name(&self) -> &str {
        self.kind.udf_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.kind.output_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Ok([arg]) = <[ColumnarValue; 1]>::try_from(args.args) else {
            return exec_err!("{} takes exactly one argument", self.name());
        };
        let ctx = Ctx::new(&self.key);
        map_columnar(arg, |a| normalize_array(self.kind, &ctx, a))
    }
}

// ---------------------------------------------------------------------------------------
// gh_check

/// `gh_check('normaliser', x)`: why `x` is invalid, NULL when valid, empty or NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckUdf {
    key: Key,
    signature: Signature,
}

fn literal_str(v: Option<&ScalarValue>) -> Option<&str> {
    v.and_then(ScalarValue::try_as_str).flatten()
}

fn normalizer_arg(v: Option<&ScalarValue>) -> DfResult<Normalizer> {
    match literal_str(v) {
        Some(name) => name
            .parse::<Normalizer>()
            .or_else(|e| plan_err!("gh_check: {e}")),
        None => plan_err!("gh_check: the first argument must be a literal normaliser name"),
    }
}

impl ScalarUDFImpl for CheckUdf {
    fn name(&self) -> &str {
        "gh_check"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        normalizer_arg(args.scalar_arguments.first().copied().flatten())?;
        Ok(Arc::new(Field::new(self.name(), DataType::Utf8, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Ok([which, arg]) = <[ColumnarValue; 2]>::try_from(args.args) else {
            return exec_err!("gh_check takes two arguments: a normaliser name and a value");
        };
        let kind = match &which {
            ColumnarValue::Scalar(s) => normalizer_arg(Some(s))?,
            ColumnarValue::Array(_) => {
                return exec_err!("gh_check: the first argument must be a literal normaliser name");
            }
        };
        let today = today_beijing();
        map_columnar(arg, |a| {
            let text = as_text(a)?;
            let mut b = StringBuilder::with_capacity(text.len(), 0);
            for_each_str(&text, |v| match v.map(|s| kind.validate(s, today)) {
                Some(Err(e)) if e != NormError::Empty => {
                    write!(b, "{e}").expect("infallible");
                    b.append_value("");
                }
                _ => b.append_null(),
            });
            Ok(Arc::new(b.finish()))
        })
    }
}

// ---------------------------------------------------------------------------------------
// gh_json_object

/// `gh_json_object('name1', v1, 'name2', v2, …)`: a JSON object of the values as text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonObjectUdf {
    signature: Signature,
}

/// Writes `s` as a JSON string literal.
fn write_json_str(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    let mut start = 0;
    for (i, byte) in s.bytes().enumerate() {
        let esc = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.write_str(&s[start..i])?;
        if esc.is_empty() {
            write!(out, "\\u{byte:04x}")?;
        } else {
            out.write_str(esc)?;
        }
        start = i + 1;
    }
    out.write_str(&s[start..])?;
    out.write_char('"')
}

fn json_names(scalars: &[Option<&ScalarValue>]) -> DfResult<Vec<String>> {
    if scalars.is_empty() || !scalars.len().is_multiple_of(2) {
        return plan_err!("gh_json_object takes name/value pairs: 'name1', v1, 'name2', v2, …");
    }
    scalars
        .iter()
        .step_by(2)
        .map(|v| match literal_str(*v) {
            Some(name) => {
                let mut key = String::with_capacity(name.len() + 3);
                write_json_str(&mut key, name).expect("infallible");
                key.push(':');
                Ok(key)
            }
            None => plan_err!("gh_json_object: every name must be a literal string"),
        })
        .collect()
}

impl ScalarUDFImpl for JsonObjectUdf {
    fn name(&self) -> &str {
        "gh_json_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        json_names(args.scalar_arguments)?;
        Ok(Arc::new(Field::new(self.name(), DataType::Utf8, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let mut scalars = Vec::with_capacity(args.args.len());
        for a in &args.args {
            scalars.push(match a {
                ColumnarValue::Scalar(s) => Some(s),
                ColumnarValue::Array(_) => None,
            });
        }
        let keys = json_names(&scalars)?;
        let all_scalar = scalars.iter().all(Option::is_some);
        let rows = if all_scalar { 1 } else { args.number_rows };
        let mut values: Vec<StringArray> = Vec::with_capacity(keys.len());
        for v in args.args.iter().skip(1).step_by(2) {
            let text = as_text(&v.to_array_of_size(rows)?)?;
            let utf8 = arrow::compute::cast(&text, &DataType::Utf8)?;
            values.push(utf8.as_string::<i32>().clone());
        }
        let bytes: usize = keys.iter().map(|k| k.len() + 8).sum::<usize>() * rows
            + values.iter().map(|v| v.values().len()).sum::<usize>();
        let mut b = StringBuilder::with_capacity(rows, bytes);
        for row in 0..rows {
            b.write_char('{').expect("infallible");
            for (i, (key, v)) in keys.iter().zip(&values).enumerate() {
                if i > 0 {
                    b.write_char(',').expect("infallible");
                }
                b.write_str(key).expect("infallible");
                if v.is_null(row) {
                    b.write_str("null").expect("infallible");
                } else {
                    write_json_str(&mut b, v.value(row)).expect("infallible");
                }
            }
            b.append_value("}");
        }
        let out: ArrayRef = Arc::new(b.finish());
        Ok(if all_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?)
        } else {
            ColumnarValue::Array(out)
        })
    }
}

// ---------------------------------------------------------------------------------------
// Public constructors

/// The UDF `gh_<normaliser>(x)` for one normaliser (`key` is used by `gh_person_id` only).
///
/// It takes one argument of any type (text, integers, floats, dates, timestamps, NULL),
/// casts it to text and returns the normalised value of type [`Normalizer::output_type`],
/// or NULL when the value is NULL, empty or invalid.
pub fn normalizer_udf(n: Normalizer, key: &[u8]) -> ScalarUDF {
    let key = if n == Normalizer::PersonId {
        key
    } else {
        &[][..]
    };
    ScalarUDF::new_from_impl(NormalizeUdf {
        kind: n,
        key: Key(Arc::from(key)),
        signature: Signature::any(1, Volatility::Immutable),
    })
}

/// The UDF `gh_check('normaliser', x) -> Utf8`: the reason `x` is invalid, or NULL when
/// it is valid, empty or NULL. The name must be a literal; an unknown name is a planning
/// error listing the known ones.
pub fn check_udf(key: &[u8]) -> ScalarUDF {
    ScalarUDF::new_from_impl(CheckUdf {
        key: Key(Arc::from(key)),
        signature: Signature::any(2, Volatility::Immutable),
    })
}

/// The UDF `gh_json_object('name1', v1, 'name2', v2, …) -> Utf8`: a JSON object whose
/// values are the arguments cast to text (`null` for NULL). Names must be literals. Used
/// to keep the raw values of rejected rows.
pub fn json_object_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(JsonObjectUdf {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

/// Every UDF of this crate: the nine `gh_<normaliser>`, `gh_check` and `gh_json_object`.
pub fn udfs(pseudonym_key: &[u8]) -> Vec<ScalarUDF> {
    Normalizer::ALL
        .into_iter()
        .map(|n| normalizer_udf(n, pseudonym_key))
        .chain([check_udf(pseudonym_key), json_object_udf()])
        .collect()
}

/// Whether a principal's governed session may call the gridhub function `name`, and why
/// (None: not a gridhub function). Every function [`register_all`] registers has an answer;
/// the engine builds principals' sessions from it.
pub fn principal_use(name: &str) -> Option<(bool, &'static str)> {
    let normaliser = name
        .strip_prefix("gh_")
        .and_then(|n| Normalizer::ALL.into_iter().find(|k| k.name() == n));
    Some(match (name, normaliser) {
        (_, Some(Normalizer::PersonId)) => (
            false,
            "keyed with the pseudonym key: gh_person_id(candidate) = person_id tests guesses \
             of a masked ID number against the clear pseudonym, an oracle on hidden values",
        ),
        (_, Some(_)) => (
            true,
            "unkeyed and pure: it sees only values the query could already read",
        ),
        ("gh_check", _) => (
            false,
            "carries the pseudonym key (it checks person_id values); principals do not \
             validate source data, so least power leaves it out",
        ),
        ("gh_json_object", _) => (
            false,
            "internal to the mappings (the raw values of rejected rows); not needed by queries",
        ),
        ("gh_mask_id_number" | "gh_mask_name" | "gh_mask_phone" | "gh_mask_birth_date", _) => (
            true,
            "a mask of a value the query can read reveals nothing the value does not",
        ),
        ("gh_mask_place", _) => (
            true,
            "maps an area code the query can read to its community's public name",
        ),
        _ => return None,
    })
}

/// Registers [`udfs`] with a session.
pub fn register_all(ctx: &SessionContext, pseudonym_key: &[u8]) {
    for udf in udfs(pseudonym_key)
        .into_iter()
        .chain(crate::mask::mask_udfs())
    {
        ctx.register_udf(udf);
    }
}
