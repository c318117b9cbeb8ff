//! Typed JSON for GGUF metadata values, so a PEFT export can carry a GGUF adapter's metadata
//! (in the safetensors header) and give it back with the exact GGUF types.
//!
//! Encoding: a scalar is `{"<type>": value}` (`u8`, `i8`, `u16`, `i16`, `u32`, `i32`, `u64`,
//! `i64`, `f32`, `f64`, `bool`, `str`); an array is `{"arr_<type>": [values]}`, and an array of
//! arrays is `{"arr_arr": [encoded arrays]}`.

use graft_quant::gguf::{Array, Value};
use serde_json::{json, Value as Json};

/// Encodes a GGUF value, or `None` for non-finite floats (JSON has none).
pub fn to_json(v: &Value) -> Option<Json> {
    let finite = |f: f64| f.is_finite().then_some(f);
    Some(match v {
        Value::U8(x) => json!({ "u8": x }),
        Value::I8(x) => json!({ "i8": x }),
        Value::U16(x) => json!({ "u16": x }),
        Value::I16(x) => json!({ "i16": x }),
        Value::U32(x) => json!({ "u32": x }),
        Value::I32(x) => json!({ "i32": x }),
        Value::U64(x) => json!({ "u64": x }),
        Value::I64(x) => json!({ "i64": x }),
        Value::F32(x) => json!({ "f32": finite(*x as f64)? }),
        Value::F64(x) => json!({ "f64": finite(*x)? }),
        Value::Bool(x) => json!({ "bool": x }),
        Value::String(x) => json!({ "str": x }),
        Value::Array(a) => array_to_json(a)?,
    })
}

fn array_to_json(a: &Array) -> Option<Json> {
    Some(match a {
        Array::U8(x) => json!({ "arr_u8": x }),
        Array::I8(x) => json!({ "arr_i8": x }),
        Array::U16(x) => json!({ "arr_u16": x }),
        Array::I16(x) => json!({ "arr_i16": x }),
        Array::U32(x) => json!({ "arr_u32": x }),
        Array::I32(x) => json!({ "arr_i32": x }),
        Array::U64(x) => json!({ "arr_u64": x }),
        Array::I64(x) => json!({ "arr_i64": x }),
        Array::F32(x) => {
            if x.iter().any(|f| !f.is_finite()) {
                return None;
            }
            json!({ "arr_f32": x })
        }
        Array::F64(x) => {
            if x.iter().any(|f| !f.is_finite()) {
                return None;
            }
            json!({ "arr_f64": x })
        }
        Array::Bool(x) => json!({ "arr_bool": x }),
        Array::String(x) => json!({ "arr_str": x }),
        Array::Array(x) => {
            let items = x.iter().map(array_to_json).collect::<Option<Vec<_>>>()?;
            json!({ "arr_arr": items })
        }
    })
}

fn vec_of<T>(v: &Json, f: impl Fn(&Json) -> Option<T>) -> Option<Vec<T>> {
    v.as_array()?.iter().map(f).collect()
}

fn int<T: TryFrom<i128>>(v: &Json) -> Option<T> {
    let i: i128 = match (v.as_i64(), v.as_u64()) {
        (Some(i), _) => i as i128,
        (None, Some(u)) => u as i128,
        _ => return None,
    };
    T::try_from(i).ok()
}

/// Decodes what [`to_json`] produced, or `None` if `j` is not such a value.
pub fn from_json(j: &Json) -> Option<Value> {
    let obj = j.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (tag, v) = obj.iter().next()?;
    Some(match tag.as_str() {
        "u8" => Value::U8(int(v)?),
        "i8" => Value::I8(int(v)?),
        "u16" => Value::U16(int(v)?),
        "i16" => Value::I16(int(v)?),
        "u32" => Value::U32(int(v)?),
        "i32" => Value::I32(int(v)?),
        "u64" => Value::U64(int(v)?),
        "i64" => Value::I64(int(v)?),
        "f32" => Value::F32(v.as_f64()? as f32),
        "f64" => Value::F64(v.as_f64()?),
        "bool" => Value::Bool(v.as_bool()?),
        "str" => Value::String(v.as_str()?.to_string()),
        _ => Value::Array(array_from_json(j)?),
    })
}

fn array_from_json(j: &Json) -> Option<Array> {
    let obj = j.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let (tag, v) = obj.iter().next()?;
    Some(match tag.as_str() {
        "arr_u8" => Array::U8(vec_of(v, int)?),
        "arr_i8" => Array::I8(vec_of(v, int)?),
        "arr_u16" => Array::U16(vec_of(v, int)?),
        "arr_i16" => Array::I16(vec_of(v, int)?),
        "arr_u32" => Array::U32(vec_of(v, int)?),
        "arr_i32" => Array::I32(vec_of(v, int)?),
        "arr_u64" => Array::U64(vec_of(v, int)?),
        "arr_i64" => Array::I64(vec_of(v, int)?),
        "arr_f32" => Array::F32(vec_of(v, |x| x.as_f64().map(|f| f as f32))?),
        "arr_f64" => Array::F64(vec_of(v, Json::as_f64)?),
        "arr_bool" => Array::Bool(vec_of(v, Json::as_bool)?),
        "arr_str" => Array::String(vec_of(v, |x| x.as_str().map(str::to_string))?),
        "arr_arr" => Array::Array(vec_of(v, array_from_json)?),
        _ => return None,
    })
}
