//! The writer: the layout llama.cpp and gguf-py write (header, metadata, tensor infos, padding
//! to the alignment, then each tensor's data padded to the alignment).

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use super::error::{GgufError, Result};
use super::metadata::Metadata;
use super::reader::{check_alignment, tensor_n_bytes};
use super::tensor::TensorInfo;
use super::value::{Array, Value};
use super::{GgufFile, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC};
use crate::QuantType;

/// Builds a GGUF file: metadata plus tensors (borrowed or owned bytes), written in the order
/// they were added, each at the next aligned offset.
#[derive(Debug)]
pub struct GgufWriter<'a> {
    version: u32,
    metadata: Metadata,
    alignment: usize,
    /// Each tensor's info and its bytes; `None` for a tensor declared with
    /// [`GgufWriter::declare_tensor`], whose bytes come at write time.
    tensors: Vec<(TensorInfo, Option<Cow<'a, [u8]>>)>,
    names: HashSet<String>,
    next_offset: u64,
}

impl<'a> GgufWriter<'a> {
    /// A writer with this metadata and data alignment (a nonzero power of two; llama.cpp's
    /// default is 32). If `metadata` has `general.alignment` it must equal `alignment`; if it
    /// has none and `alignment` is not the default, `general.alignment` (u32) is added.
    pub fn new(mut metadata: Metadata, alignment: usize) -> Result<GgufWriter<'a>> {
        let alignment = check_alignment(alignment as u64)?;
        match metadata.get(ALIGNMENT_KEY) {
            Some(v) => match v.as_u64() {
                Some(a) if a == alignment as u64 => {}
                Some(a) => {
                    return Err(GgufError::AlignmentMismatch {
                        alignment,
                        in_metadata: a,
                    })
                }
                None => {
                    return Err(GgufError::WrongType {
                        key: ALIGNMENT_KEY.to_owned(),
                        expected: "u32",
                        found: v.type_name(),
                    })
                }
            },
            None if alignment != DEFAULT_ALIGNMENT => {
                metadata.insert(ALIGNMENT_KEY, Value::U32(alignment as u32));
            }
            None => {}
        }
        Ok(GgufWriter {
            version: 3,
            metadata,
            alignment,
            tensors: Vec::new(),
            names: HashSet::new(),
            next_offset: 0,
        })
    }

    /// A writer holding `file`'s version, metadata and tensors (borrowed, in file order):
    /// writing it reproduces a file laid out the way llama.cpp lays files out.
    pub fn from_file(file: &'a GgufFile) -> Result<GgufWriter<'a>> {
        let mut w = GgufWriter::new(file.metadata().clone(), file.alignment())?;
        w.set_version(file.version())?;
        for t in file.tensors() {
            w.add_tensor(t.name, t.ty, t.shape, t.bytes)?;
        }
        Ok(w)
    }

    /// Sets the GGUF version written (2 or 3; the default is 3). The two differ only for
    /// big-endian files, which graft does not write.
    pub fn set_version(&mut self, version: u32) -> Result<()> {
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion { version });
        }
        self.version = version;
        Ok(())
    }

    /// The GGUF version written.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The metadata to be written.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The tensor infos added so far, with the offsets they will be written at.
    pub fn tensor_infos(&self) -> impl Iterator<Item = &TensorInfo> {
        self.tensors.iter().map(|(t, _)| t)
    }

    /// Adds a tensor. `shape` is in ggml order (`shape[0]` is the row length); `bytes` must be
    /// exactly `ty.tensor_bytes(n_elements)` long and may be borrowed (`&[u8]`) or owned
    /// (`Vec<u8>`).
    pub fn add_tensor(
        &mut self,
        name: impl Into<String>,
        ty: QuantType,
        shape: &[u64],
        bytes: impl Into<Cow<'a, [u8]>>,
    ) -> Result<()> {
        self.push(name.into(), ty, shape, Some(bytes.into()))
    }

    /// Declares a tensor without its bytes: its place in the file is fixed now, and
    /// [`GgufWriter::write_file_streamed`] asks for its bytes when it gets there, so a file
    /// larger than memory can be written tensor by tensor. [`GgufWriter::write_to`] and
    /// [`GgufWriter::write_file`] refuse a writer with declared tensors.
    pub fn declare_tensor(
        &mut self,
        name: impl Into<String>,
        ty: QuantType,
        shape: &[u64],
    ) -> Result<()> {
        self.push(name.into(), ty, shape, None)
    }

    fn push(
        &mut self,
        name: String,
        ty: QuantType,
        shape: &[u64],
        bytes: Option<Cow<'a, [u8]>>,
    ) -> Result<()> {
        if self.names.contains(&name) {
            return Err(GgufError::DuplicateTensorName { tensor: name });
        }
        let n_bytes = tensor_n_bytes(&name, ty, shape)?;
        if let Some(bytes) = &bytes {
            if bytes.len() != n_bytes {
                return Err(GgufError::WrongDataSize {
                    tensor: name,
                    ty,
                    shape: shape.to_vec(),
                    expected: n_bytes,
                    got: bytes.len(),
                });
            }
        }
        let offset = self.next_offset;
        let overflow = || GgufError::ShapeOverflow {
            tensor: name.clone(),
            shape: shape.to_vec(),
        };
        let next = offset
            .checked_add(n_bytes as u64)
            .and_then(|e| e.checked_next_multiple_of(self.alignment as u64))
            .ok_or_else(overflow)?;
        self.next_offset = next;
        self.names.insert(name.clone());
        let info = TensorInfo {
            name,
            ty,
            shape: shape.to_vec(),
            offset,
            n_bytes,
        };
        self.tensors.push((info, bytes));
        Ok(())
    }

    /// The size of the file this writer writes, in bytes: the padded header plus the data
    /// section.
    pub fn file_size(&self) -> u64 {
        self.header_bytes().len() as u64 + self.next_offset
    }

    /// Everything before the tensor data: header, metadata, tensor infos, padding.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut b = self.header_unpadded();
        let padded = b.len().next_multiple_of(self.alignment);
        b.resize(padded, 0);
        b
    }

    /// Header, metadata and tensor infos, without the padding that follows them.
    fn header_unpadded(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&GGUF_MAGIC);
        put_u32(&mut b, self.version);
        put_u64(&mut b, self.tensors.len() as u64);
        put_u64(&mut b, self.metadata.len() as u64);
        for (k, v) in self.metadata.iter() {
            put_str(&mut b, k);
            put_u32(&mut b, v.type_id());
            put_value(&mut b, v);
        }
        for (t, _) in &self.tensors {
            put_str(&mut b, &t.name);
            put_u32(&mut b, t.shape.len() as u32);
            for &d in &t.shape {
                put_u64(&mut b, d);
            }
            put_u32(&mut b, t.ty.id());
            put_u64(&mut b, t.offset);
        }
        b
    }

    /// Writes the whole file to `w`; returns the number of bytes written. A tensor declared
    /// without bytes ([`GgufWriter::declare_tensor`]) is an error
    /// ([`GgufError::MissingTensorData`]).
    pub fn write_to<W: Write>(&self, w: &mut W) -> Result<u64> {
        self.write_with(w, None, |t, _| {
            Err(GgufError::MissingTensorData {
                tensor: t.name.clone(),
            })
        })
    }

    /// [`GgufWriter::write_to`], with `fill` writing the bytes of each declared tensor (exactly
    /// `n_bytes` of them, checked) when its turn comes. I/O errors name `path` when given (the
    /// file being written), else the part being written.
    fn write_with<W: Write, E: From<GgufError>>(
        &self,
        w: &mut W,
        path: Option<&Path>,
        mut fill: impl FnMut(&TensorInfo, &mut dyn Write) -> Result<(), E>,
    ) -> Result<u64, E> {
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| match path {
                Some(path) => GgufError::Io {
                    op: "write",
                    path: path.to_path_buf(),
                    source,
                },
                None => GgufError::Write { what, source },
            }
        };
        // Padding is streamed, so memory use does not grow with the alignment.
        let header = self.header_unpadded();
        w.write_all(&header).map_err(io("header"))?;
        let pad =
            (header.len() as u64).next_multiple_of(self.alignment as u64) - header.len() as u64;
        write_zeros(w, pad).map_err(io("padding after the tensor infos"))?;
        let mut written = header.len() as u64 + pad;
        for (t, data) in &self.tensors {
            match data {
                Some(data) => {
                    w.write_all(data)
                        .map_err(io(&format!("data of tensor '{}'", t.name)))?;
                }
                None => {
                    let mut counted = Counted { inner: w, n: 0 };
                    fill(t, &mut counted)?;
                    if counted.n != t.n_bytes as u64 {
                        return Err(GgufError::WrongDataSize {
                            tensor: t.name.clone(),
                            ty: t.ty,
                            shape: t.shape.clone(),
                            expected: t.n_bytes,
                            got: counted.n as usize,
                        }
                        .into());
                    }
                }
            }
            written += t.n_bytes as u64;
            let pad = (t.n_bytes as u64).next_multiple_of(self.alignment as u64) - t.n_bytes as u64;
            write_zeros(w, pad).map_err(io(&format!("padding after tensor '{}'", t.name)))?;
            written += pad;
        }
        w.flush().map_err(io("flush"))?;
        Ok(written)
    }

    /// Writes the file atomically: to a temporary file in the same directory, flushed and
    /// fsynced, then renamed over `path` (and the directory fsynced, where supported).
    pub fn write_file(&self, path: impl AsRef<Path>) -> Result<()> {
        self.write_file_streamed(path, |t, _| {
            Err(GgufError::MissingTensorData {
                tensor: t.name.clone(),
            })
        })
        .map(|_| ())
    }

    /// [`GgufWriter::write_file`] for a writer with declared tensors: `fill` is called once per
    /// declared tensor, in file order, and writes exactly its `n_bytes` bytes (a different
    /// count is [`GgufError::WrongDataSize`]), so only what `fill` holds at a time is in memory.
    /// Atomic like `write_file`: on any error (from `fill` too) `path` is untouched. Returns the
    /// number of bytes written.
    pub fn write_file_streamed<E: From<GgufError>>(
        &self,
        path: impl AsRef<Path>,
        fill: impl FnMut(&TensorInfo, &mut dyn Write) -> Result<(), E>,
    ) -> Result<u64, E> {
        let path = path.as_ref();
        let mut n = 0;
        crate::atomic_write::write_file_with(
            path,
            |w| {
                n = self.write_with(w, Some(path), fill)?;
                Ok(())
            },
            |source| {
                E::from(GgufError::Io {
                    op: "write atomically",
                    path: path.to_path_buf(),
                    source,
                })
            },
        )?;
        Ok(n)
    }
}

/// A writer that counts the bytes that pass through it.
struct Counted<'w, W: Write> {
    inner: &'w mut W,
    n: u64,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn write_zeros<W: Write>(w: &mut W, mut n: u64) -> std::io::Result<()> {
    const ZEROS: [u8; 4096] = [0; 4096];
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        w.write_all(&ZEROS[..k])?;
        n -= k as u64;
    }
    Ok(())
}

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut Vec<u8>, v: u64) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    put_u64(b, s.len() as u64);
    b.extend_from_slice(s.as_bytes());
}

/// A value's bytes, after its type id.
fn put_value(b: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I8(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => b.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => b.push(u8::from(*x)),
        Value::String(s) => put_str(b, s),
        Value::Array(a) => put_array(b, a),
    }
}

/// An array: element type id, u64 length, elements.
fn put_array(b: &mut Vec<u8>, a: &Array) {
    put_u32(b, a.elem_type_id());
    put_u64(b, a.len() as u64);
    macro_rules! le {
        ($v:expr) => {
            for x in $v {
                b.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => b.extend_from_slice(v),
        Array::I8(v) => le!(v),
        Array::U16(v) => le!(v),
        Array::I16(v) => le!(v),
        Array::U32(v) => le!(v),
        Array::I32(v) => le!(v),
        Array::U64(v) => le!(v),
        Array::I64(v) => le!(v),
        Array::F32(v) => le!(v),
        Array::F64(v) => le!(v),
        Array::Bool(v) => b.extend(v.iter().map(|&x| u8::from(x))),
        Array::String(v) => {
            for s in v {
                put_str(b, s);
            }
        }
        Array::Array(v) => {
            for inner in v {
                put_array(b, inner);
            }
        }
    }
}
