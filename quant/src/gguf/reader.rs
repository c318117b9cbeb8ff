//! The bounded, checked parser: header, metadata, tensor infos.
//!
//! Every count, length, dimension, offset and size is checked against the bytes that remain and
//! against overflow before it is used. Vectors are reserved only after that check, and never for
//! more bytes than remain in the file, so a hostile header cannot make the parser allocate more
//! than the file's size in one allocation for data that is not actually there.
//!
//! One honest caveat: in memory a `String` costs 24 bytes plus its text, and a nested [`Array`]
//! 32 bytes, while in the file they take at least 8 and 12 bytes. An array of many (nearly)
//! empty strings that *is* in the file therefore needs a `Vec` of up to 3x the bytes it occupies
//! (real vocabularies, ~14 bytes per token, need about 1.7x their bytes, far below the file size).

use std::collections::HashMap;
use std::mem::size_of;

use super::error::{GgufError, Result};
use super::metadata::Metadata;
use super::tensor::TensorInfo;
use super::value::{min_encoded_size, type_id, Array, Value};
use super::{ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_ARRAY_DEPTH, MAX_DIMS};
use crate::QuantType;

/// Smallest encoding of one metadata entry: key length (8) + value type (4) + one byte.
const MIN_KV_SIZE: usize = 13;
/// Smallest encoding of one tensor info: name length (8) + n_dims (4) + type (4) + offset (8).
const MIN_TENSOR_INFO_SIZE: usize = 24;

/// Bytes of file budgeted per reserved hash-index slot: a hash table reserves up to about twice
/// its capacity in buckets, each a key `String` plus a `usize` and a control byte.
const HASH_SLOT_BUDGET: usize = 128;

/// A parsed, validated header.
pub(crate) struct Parsed {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    pub index: HashMap<String, usize>,
    pub alignment: usize,
    pub data_offset: usize,
}

/// A read position over the file's bytes. Invariant: `pos <= buf.len()`.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes; `what` names the field for the error.
    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8]> {
        let available = self.remaining();
        let slice = usize::try_from(n)
            .ok()
            .filter(|&n| n <= available)
            .and_then(|n| self.buf.get(self.pos..self.pos + n));
        match slice {
            Some(s) => {
                self.pos += s.len();
                Ok(s)
            }
            None => Err(GgufError::Truncated {
                what: what(),
                offset: self.pos,
                needed: n,
                available,
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A u64 count of entries that each take at least `min_size` bytes, checked to fit in the
    /// bytes that remain after it.
    fn count(&mut self, what: impl Fn() -> String, min_size: usize) -> Result<usize> {
        let offset = self.pos;
        let count = self.u64(&what)?;
        let available = self.remaining();
        let fits = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(min_size))
            .is_some_and(|bytes| bytes <= available);
        if !fits {
            return Err(GgufError::CountTooLarge {
                what: what(),
                offset,
                count,
                min_size,
                available,
            });
        }
        // `fits` implies the count is at most `available` (min_size >= 1) and fits in usize.
        Ok(count as usize)
    }

    /// A u64-length-prefixed UTF-8 string.
    fn string(&mut self, what: impl Fn() -> String) -> Result<String> {
        let len = self.u64(&what)?;
        let offset = self.pos;
        let bytes = self.take(len, &what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(source) => Err(GgufError::InvalidUtf8 {
                what: what(),
                offset,
                source,
            }),
        }
    }
}

/// Capacity to reserve for `n` entries of `T` when `remaining` file bytes are left: never more
/// bytes than remain (entries beyond that grow the vector as they are actually parsed).
fn capped_capacity<T>(n: usize, remaining: usize) -> usize {
    n.min(remaining / size_of::<T>().max(1))
}

/// Parses and validates everything before the tensor data.
pub(crate) fn parse(buf: &[u8]) -> Result<Parsed> {
    let mut cur = Cursor { buf, pos: 0 };
    let magic: [u8; 4] = cur.array(|| "magic".to_owned())?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version = cur.u32(|| "version".to_owned())?;
    if !(2..=3).contains(&version) {
        return Err(GgufError::UnsupportedVersion { version });
    }
    let n_tensors = cur.count(|| "tensor count".to_owned(), MIN_TENSOR_INFO_SIZE)?;
    let n_kv = cur.count(|| "metadata entry count".to_owned(), MIN_KV_SIZE)?;

    let mut metadata = Metadata::with_capacity(
        capped_capacity::<(String, Value)>(n_kv, cur.remaining()),
        capped_capacity::<[u8; HASH_SLOT_BUDGET]>(n_kv, cur.remaining()),
    );
    for i in 0..n_kv {
        let key_offset = cur.pos;
        let key = cur.string(|| format!("key of metadata entry {i}"))?;
        let value = read_value(&mut cur, &key)?;
        if let Err(key) = metadata.push_new(key, value) {
            return Err(GgufError::DuplicateKey {
                key,
                offset: key_offset,
            });
        }
    }
    let alignment = alignment_of(&metadata)?;

    // Re-check the tensor count against what is left after the metadata.
    if n_tensors.saturating_mul(MIN_TENSOR_INFO_SIZE) > cur.remaining() {
        return Err(GgufError::CountTooLarge {
            what: "tensor count (after the metadata)".to_owned(),
            offset: 8,
            count: n_tensors as u64,
            min_size: MIN_TENSOR_INFO_SIZE,
            available: cur.remaining(),
        });
    }
    let cap = capped_capacity::<TensorInfo>(n_tensors, cur.remaining());
    let mut tensors = Vec::with_capacity(cap);
    let mut index = HashMap::with_capacity(capped_capacity::<[u8; HASH_SLOT_BUDGET]>(
        cap,
        cur.remaining(),
    ));
    for i in 0..n_tensors {
        let info_offset = cur.pos;
        let info = read_tensor_info(&mut cur, i, alignment)?;
        if index.contains_key(&info.name) {
            return Err(GgufError::DuplicateTensor {
                tensor: info.name,
                offset: info_offset,
            });
        }
        index.insert(info.name.clone(), tensors.len());
        tensors.push(info);
    }

    let aligned = cur.pos.checked_next_multiple_of(alignment);
    let data_offset = match aligned {
        Some(d) if d <= buf.len() => d,
        // A file without tensors may end right after its infos, without padding.
        _ if tensors.is_empty() => buf.len(),
        _ => {
            return Err(GgufError::DataSectionOutOfBounds {
                data_offset: aligned.unwrap_or(usize::MAX),
                file_len: buf.len(),
            })
        }
    };
    check_data_bounds(&tensors, data_offset, buf.len())?;
    Ok(Parsed {
        version,
        metadata,
        tensors,
        index,
        alignment,
        data_offset,
    })
}

/// `general.alignment`, or the default; must be a nonzero power of two.
fn alignment_of(metadata: &Metadata) -> Result<usize> {
    let Some(v) = metadata.get(ALIGNMENT_KEY) else {
        return Ok(DEFAULT_ALIGNMENT);
    };
    let a = v.as_u64().ok_or_else(|| GgufError::WrongType {
        key: ALIGNMENT_KEY.to_owned(),
        expected: "u32",
        found: v.type_name(),
    })?;
    check_alignment(a)
}

/// Checks an alignment value: a nonzero power of two that fits in `u32`.
pub(crate) fn check_alignment(a: u64) -> Result<usize> {
    if a == 0 || !a.is_power_of_two() || a > u64::from(u32::MAX) {
        return Err(GgufError::BadAlignment { value: a });
    }
    Ok(a as usize)
}

fn read_value(cur: &mut Cursor<'_>, key: &str) -> Result<Value> {
    let ty_offset = cur.pos;
    let ty = cur.u32(|| format!("value type of key '{key}'"))?;
    let what = || format!("value of key '{key}'");
    Ok(match ty {
        type_id::U8 => Value::U8(u8::from_le_bytes(cur.array(what)?)),
        type_id::I8 => Value::I8(i8::from_le_bytes(cur.array(what)?)),
        type_id::U16 => Value::U16(u16::from_le_bytes(cur.array(what)?)),
        type_id::I16 => Value::I16(i16::from_le_bytes(cur.array(what)?)),
        type_id::U32 => Value::U32(u32::from_le_bytes(cur.array(what)?)),
        type_id::I32 => Value::I32(i32::from_le_bytes(cur.array(what)?)),
        type_id::U64 => Value::U64(u64::from_le_bytes(cur.array(what)?)),
        type_id::I64 => Value::I64(i64::from_le_bytes(cur.array(what)?)),
        type_id::F32 => Value::F32(f32::from_le_bytes(cur.array(what)?)),
        type_id::F64 => Value::F64(f64::from_le_bytes(cur.array(what)?)),
        type_id::BOOL => {
            let offset = cur.pos;
            let [b] = cur.array(what)?;
            Value::Bool(to_bool(b, key, offset)?)
        }
        type_id::STRING => Value::String(cur.string(what)?),
        type_id::ARRAY => Value::Array(read_array(cur, key, 0)?),
        _ => {
            return Err(GgufError::UnknownValueType {
                key: key.to_owned(),
                type_id: ty,
                offset: ty_offset,
            })
        }
    })
}

fn to_bool(b: u8, key: &str, offset: usize) -> Result<bool> {
    match b {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(GgufError::InvalidBool {
            key: key.to_owned(),
            value,
            offset,
        }),
    }
}

/// Decodes little-endian elements of `N` bytes (the slice length is a multiple of `N`).
fn le_vec<T, const N: usize>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            f(a)
        })
        .collect()
}

fn read_array(cur: &mut Cursor<'_>, key: &str, depth: usize) -> Result<Array> {
    let ty_offset = cur.pos;
    if depth >= MAX_ARRAY_DEPTH {
        return Err(GgufError::NestingTooDeep {
            key: key.to_owned(),
            offset: ty_offset,
            max: MAX_ARRAY_DEPTH,
        });
    }
    let et = cur.u32(|| format!("array element type of key '{key}'"))?;
    let min = min_encoded_size(et).ok_or_else(|| GgufError::UnknownValueType {
        key: key.to_owned(),
        type_id: et,
        offset: ty_offset,
    })?;
    let n = cur.count(|| format!("array length of key '{key}'"), min)?;
    let what = || format!("array elements of key '{key}'");
    // Fixed-size elements: `count` checked n * min <= remaining, so this cannot overflow.
    let fixed = n as u64 * min as u64;
    Ok(match et {
        type_id::U8 => Array::U8(cur.take(fixed, what)?.to_vec()),
        type_id::I8 => Array::I8(le_vec(cur.take(fixed, what)?, i8::from_le_bytes)),
        type_id::U16 => Array::U16(le_vec(cur.take(fixed, what)?, u16::from_le_bytes)),
        type_id::I16 => Array::I16(le_vec(cur.take(fixed, what)?, i16::from_le_bytes)),
        type_id::U32 => Array::U32(le_vec(cur.take(fixed, what)?, u32::from_le_bytes)),
        type_id::I32 => Array::I32(le_vec(cur.take(fixed, what)?, i32::from_le_bytes)),
        type_id::U64 => Array::U64(le_vec(cur.take(fixed, what)?, u64::from_le_bytes)),
        type_id::I64 => Array::I64(le_vec(cur.take(fixed, what)?, i64::from_le_bytes)),
        type_id::F32 => Array::F32(le_vec(cur.take(fixed, what)?, f32::from_le_bytes)),
        type_id::F64 => Array::F64(le_vec(cur.take(fixed, what)?, f64::from_le_bytes)),
        type_id::BOOL => {
            let offset = cur.pos;
            let bytes = cur.take(fixed, what)?;
            let mut v = Vec::with_capacity(bytes.len());
            for (i, &b) in bytes.iter().enumerate() {
                v.push(to_bool(b, key, offset + i)?);
            }
            Array::Bool(v)
        }
        type_id::STRING => {
            // Check every length first (no allocation), so the vector is reserved exactly once,
            // for strings that are really there.
            let mut scan = Cursor {
                buf: cur.buf,
                pos: cur.pos,
            };
            for i in 0..n {
                let len = scan.u64(|| format!("length of string {i} of array key '{key}'"))?;
                scan.take(len, || format!("string {i} of array key '{key}'"))?;
            }
            let mut v = Vec::with_capacity(n);
            for i in 0..n {
                v.push(cur.string(|| format!("string {i} of array key '{key}'"))?);
            }
            Array::String(v)
        }
        // Only ARRAY is left: min_encoded_size refused every unknown id.
        _ => {
            let mut v = Vec::with_capacity(capped_capacity::<Array>(n, cur.remaining()));
            for _ in 0..n {
                v.push(read_array(cur, key, depth + 1)?);
            }
            Array::Array(v)
        }
    })
}

fn read_tensor_info(cur: &mut Cursor<'_>, i: usize, alignment: usize) -> Result<TensorInfo> {
    let name = cur.string(|| format!("name of tensor {i}"))?;
    let dims_offset = cur.pos;
    let n_dims = cur.u32(|| format!("n_dims of tensor '{name}'"))?;
    if n_dims as usize > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            tensor: name,
            n_dims: n_dims.into(),
            offset: dims_offset,
            max: MAX_DIMS,
        });
    }
    let mut shape = Vec::with_capacity(n_dims as usize);
    for d in 0..n_dims {
        shape.push(cur.u64(|| format!("dimension {d} of tensor '{name}'"))?);
    }
    let type_offset = cur.pos;
    let type_id = cur.u32(|| format!("type of tensor '{name}'"))?;
    let Some(ty) = QuantType::from_id(type_id) else {
        return Err(GgufError::UnknownTensorType {
            tensor: name,
            type_id,
            offset: type_offset,
        });
    };
    let offset = cur.u64(|| format!("data offset of tensor '{name}'"))?;
    let n_bytes = tensor_n_bytes(&name, ty, &shape)?;
    if !offset.is_multiple_of(alignment as u64) {
        return Err(GgufError::MisalignedOffset {
            tensor: name,
            offset,
            alignment,
        });
    }
    Ok(TensorInfo {
        name,
        ty,
        shape,
        offset,
        n_bytes,
    })
}

/// Validates a shape for `ty` and returns the tensor's size in bytes: at most [`MAX_DIMS`]
/// dimensions, element count (and the product of the nonzero dimensions) within `i64` (as
/// ggml requires), row length a whole number of
/// blocks, byte size within `usize`.
pub(crate) fn tensor_n_bytes(name: &str, ty: QuantType, shape: &[u64]) -> Result<usize> {
    if shape.len() > MAX_DIMS {
        return Err(GgufError::TooManyDims {
            tensor: name.to_owned(),
            n_dims: shape.len() as u64,
            offset: 0,
            max: MAX_DIMS,
        });
    }
    let overflow = || GgufError::ShapeOverflow {
        tensor: name.to_owned(),
        shape: shape.to_vec(),
    };
    // The product of the nonzero dimensions must fit too: with a zero dimension the element
    // count is 0, but the row count (product of shape[1..]) must still be representable.
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d.max(1)))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(overflow)?;
    let n_elements: u64 = shape.iter().product();
    let row_len = shape.first().copied().unwrap_or(1);
    let block_size = ty.block_size();
    if !row_len.is_multiple_of(block_size as u64) {
        return Err(GgufError::RowNotBlockMultiple {
            tensor: name.to_owned(),
            ty,
            row_len,
            block_size,
        });
    }
    ty.tensor_bytes(n_elements).ok_or_else(overflow)
}

/// Checks every tensor's data lies inside the file and no two tensors overlap.
fn check_data_bounds(tensors: &[TensorInfo], data_offset: usize, file_len: usize) -> Result<()> {
    let data_len = (file_len - data_offset) as u64;
    for t in tensors {
        let end = t.offset.checked_add(t.n_bytes as u64);
        if end.is_none_or(|e| e > data_len) {
            return Err(GgufError::DataOutOfBounds {
                tensor: t.name.clone(),
                offset: t.offset,
                data_offset,
                n_bytes: t.n_bytes,
                file_len,
            });
        }
    }
    // All ends fit in the file now, so offset + n_bytes cannot overflow below.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| (tensors[i].offset, tensors[i].n_bytes));
    let mut furthest: Option<&TensorInfo> = None;
    for &i in &order {
        let t = &tensors[i];
        let end = t.offset + t.n_bytes as u64;
        if let Some(f) = furthest {
            let f_end = f.offset + f.n_bytes as u64;
            if t.offset < f_end && t.n_bytes > 0 {
                return Err(GgufError::TensorOverlap {
                    tensor: t.name.clone(),
                    start: t.offset,
                    end,
                    other: f.name.clone(),
                    other_start: f.offset,
                    other_end: f_end,
                });
            }
            if end <= f_end {
                continue;
            }
        }
        furthest = Some(t);
    }
    Ok(())
}
