//! The GGUF container, versions 2 and 3, little-endian.
//!
//! [`GgufFile::open`] memory-maps a file and parses its header, metadata and tensor infos with
//! bounded, checked reads (see [`GgufFile::from_bytes`]); tensors are handed out as
//! [`TensorView`]s borrowing the map, so nothing is copied at load.
//! [`GgufWriter`] writes the layout llama.cpp and gguf-py write: reading a llama.cpp file and
//! writing it back gives the same bytes.
//!
//! Layout: `"GGUF"`, u32 version, u64 tensor count, u64 metadata count; metadata entries
//! (u64-length key, u32 value type, value); tensor infos (u64-length name, u32 n_dims, n_dims ×
//! u64 dims in ggml order, u32 type, u64 offset relative to the data section); zero padding to
//! `general.alignment` (default 32); tensor data, each tensor padded to the alignment.

mod error;
mod metadata;
mod reader;
mod tensor;
mod value;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

pub use error::GgufError;
pub use metadata::Metadata;
pub use tensor::{TensorInfo, TensorView};
pub use value::{Array, Value};
pub use writer::GgufWriter;

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The metadata key holding the data alignment.
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// The alignment used when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: usize = 32;
/// The most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// The deepest nesting of arrays of arrays the reader accepts.
pub const MAX_ARRAY_DEPTH: usize = 16;

/// The bytes of a file: a read-only memory map, or an owned buffer.
#[derive(Debug)]
enum Storage {
    Mmap(Mapped),
    Owned(Vec<u8>),
}

/// A memory-mapped file, with what is needed to notice it changing underneath the map.
#[derive(Debug)]
struct Mapped {
    map: memmap2::Mmap,
    file: File,
    path: std::path::PathBuf,
    modified: Option<std::time::SystemTime>,
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => &m.map,
            Storage::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file: metadata and tensor infos parsed and validated, tensor data left in the
/// file's bytes (memory-mapped by [`GgufFile::open`]).
#[derive(Debug)]
pub struct GgufFile {
    storage: Storage,
    version: u32,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    index: HashMap<String, usize>,
    alignment: usize,
    data_offset: usize,
}

impl GgufFile {
    /// Memory-maps `path` read-only and parses it. Tensor data is not read: pages are touched
    /// only when a tensor's bytes are used.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref();
        let ioerr = |op: &'static str| {
            move |source| GgufError::Io {
                op,
                path: path.to_path_buf(),
                source,
            }
        };
        let file = File::open(path).map_err(ioerr("open"))?;
        let len = file.metadata().map_err(ioerr("stat"))?.len();
        if len == 0 {
            // Mapping an empty file is an error on some platforms; parse it as empty instead.
            return GgufFile::from_storage(Storage::Owned(Vec::new()));
        }
        // SAFETY: the map is read-only and private to this struct; its bytes are only read
        // through `&[u8]` slices that live no longer than `self`. The one hazard memmap2 cannot
        // rule out is another process truncating or rewriting the file while it is mapped;
        // graft's model files are written atomically (temp file + rename, see
        // `GgufWriter::write_file`), which replaces the directory entry instead of the mapped
        // inode, so a mapped file is never modified in place by graft.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(ioerr("memory-map"))?;
        let modified = file.metadata().ok().and_then(|m| m.modified().ok());
        GgufFile::from_storage(Storage::Mmap(Mapped {
            map,
            file,
            path: path.to_path_buf(),
            modified,
        }))
    }

    /// Checks that the mapped file is still the one that was mapped: not shrunk (reading a
    /// page past the new end raises SIGBUS, which kills the process) and not rewritten in
    /// place (its modification time moved: the map would show other weights). Replacing the
    /// file by renaming another over it is harmless (the map keeps the old inode) and passes.
    /// Cheap (one `fstat`): the runtime calls it before each forward pass, which turns a file
    /// truncated while an app holds the model into an error instead of a crash, except in
    /// the window of a truncation during the pass itself (see the README's Faults section).
    /// Files parsed from memory always pass.
    pub fn check_unchanged(&self) -> Result<(), GgufError> {
        let Storage::Mmap(m) = &self.storage else {
            return Ok(());
        };
        let meta = m.file.metadata().map_err(|source| GgufError::Io {
            op: "stat",
            path: m.path.clone(),
            source,
        })?;
        let changed = |what: String| GgufError::ChangedWhileMapped {
            path: m.path.clone(),
            what,
        };
        if meta.len() < m.map.len() as u64 {
            return Err(changed(format!(
                "it shrank from {} to {} bytes",
                m.map.len(),
                meta.len()
            )));
        }
        if meta.modified().ok() != m.modified {
            return Err(changed("it was rewritten in place".into()));
        }
        Ok(())
    }

    /// Parses a file held in memory, with exactly the checks of [`GgufFile::open`].
    ///
    /// Every count, string length, array length, dimension, offset and byte size is checked
    /// against the bytes remaining and against overflow before use; nothing is reserved for
    /// entries that cannot fit in the rest of the file. Errors name the field and its byte
    /// offset, key or tensor.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GgufFile, GgufError> {
        GgufFile::from_storage(Storage::Owned(bytes))
    }

    fn from_storage(storage: Storage) -> Result<GgufFile, GgufError> {
        let p = reader::parse(storage.bytes())?;
        Ok(GgufFile {
            storage,
            version: p.version,
            metadata: p.metadata,
            tensors: p.tensors,
            index: p.index,
            alignment: p.alignment,
            data_offset: p.data_offset,
        })
    }

    /// The GGUF version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The metadata, in file order.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The tensor infos, in file order.
    pub fn tensor_infos(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor called `name`, found in O(1).
    pub fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        let i = *self.index.get(name)?;
        self.tensors.get(i).map(|t| self.view(t))
    }

    /// All tensors, in file order.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = TensorView<'_>> + '_ {
        self.tensors.iter().map(|t| self.view(t))
    }

    fn view<'a>(&'a self, t: &'a TensorInfo) -> TensorView<'a> {
        // The parser checked data_offset + offset + n_bytes <= file length.
        let start = self.data_offset + t.offset as usize;
        let bytes = self
            .as_bytes()
            .get(start..start + t.n_bytes)
            .unwrap_or_default();
        TensorView {
            name: &t.name,
            ty: t.ty,
            shape: &t.shape,
            bytes,
        }
    }

    /// The data alignment: `general.alignment`, or 32 when absent.
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// Byte offset of the tensor data section (the file length for a file without tensors
    /// that ends without padding).
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// The whole file.
    pub fn as_bytes(&self) -> &[u8] {
        self.storage.bytes()
    }

    /// Whether the bytes are memory-mapped (as opposed to owned).
    pub fn is_mmapped(&self) -> bool {
        matches!(self.storage, Storage::Mmap(_))
    }
}
