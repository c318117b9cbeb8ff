//! The one error type of the GGUF reader and writer.

use std::io;
use std::path::PathBuf;
use std::str::Utf8Error;

use crate::QuantType;

/// Everything that can go wrong reading or writing a GGUF file. Every variant names what was
/// being read and where: a byte offset into the file, a metadata key or a tensor name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    /// Opening, mapping, writing or renaming a file failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done ("open", "map", "write", ...).
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A memory-mapped file was truncated or rewritten in place while mapped.
    #[error("{path} changed while graft had it mapped ({what}); reload the model")]
    ChangedWhileMapped {
        /// The file.
        path: PathBuf,
        /// What changed.
        what: String,
    },
    /// Writing to a caller-supplied writer failed.
    #[error("writing GGUF {what} failed: {source}")]
    Write {
        /// The part being written (header, metadata, tensor name, ...).
        what: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The file does not start with the bytes `GGUF`.
    #[error("not a GGUF file: bytes 0..4 are {found:02x?}, expected \"GGUF\" (47 47 55 46)")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// A version other than 2 or 3.
    #[error("unsupported GGUF version {version} at byte 4 (graft reads and writes v2 and v3)")]
    UnsupportedVersion {
        /// The version found (or requested, for the writer).
        version: u32,
    },
    /// The file ends before a field does.
    #[error(
        "truncated file: {what} at byte {offset} needs {needed} bytes, only {available} remain"
    )]
    Truncated {
        /// The field being read.
        what: String,
        /// Byte offset of the field.
        offset: usize,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the file from `offset`.
        available: usize,
    },
    /// A count or length that cannot fit in the rest of the file.
    #[error(
        "{what} at byte {offset} is {count}, but {count} entries of at least {min_size} bytes \
         each cannot fit in the {available} bytes remaining"
    )]
    CountTooLarge {
        /// The count being read (tensor count, key count, array length, ...).
        what: String,
        /// Byte offset of the count.
        offset: usize,
        /// The count found.
        count: u64,
        /// The smallest possible encoding of one entry, in bytes.
        min_size: usize,
        /// Bytes left in the file after the count.
        available: usize,
    },
    /// A string that is not valid UTF-8.
    #[error("{what} at byte {offset} is not valid UTF-8: {source}")]
    InvalidUtf8 {
        /// The string being read.
        what: String,
        /// Byte offset of the string's bytes.
        offset: usize,
        /// Where the UTF-8 went wrong.
        #[source]
        source: Utf8Error,
    },
    /// A metadata value type id outside 0..=12.
    #[error("metadata key '{key}': unknown value type id {type_id} at byte {offset}")]
    UnknownValueType {
        /// The key whose value (or array element type) is unknown.
        key: String,
        /// The type id found.
        type_id: u32,
        /// Byte offset of the type id.
        offset: usize,
    },
    /// A bool stored as a byte other than 0 or 1.
    #[error("metadata key '{key}': bool byte {value} at byte {offset} is neither 0 nor 1")]
    InvalidBool {
        /// The key.
        key: String,
        /// The byte found.
        value: u8,
        /// Its byte offset.
        offset: usize,
    },
    /// Arrays of arrays nested deeper than the reader allows.
    #[error("metadata key '{key}': arrays nested deeper than {max} levels at byte {offset}")]
    NestingTooDeep {
        /// The key.
        key: String,
        /// Byte offset of the too-deep array.
        offset: usize,
        /// The deepest nesting allowed.
        max: usize,
    },
    /// The same metadata key twice.
    #[error("duplicate metadata key '{key}' at byte {offset}")]
    DuplicateKey {
        /// The key.
        key: String,
        /// Byte offset of the second occurrence.
        offset: usize,
    },
    /// `general.alignment` that is zero or not a power of two.
    #[error("general.alignment is {value}: it must be a nonzero power of two")]
    BadAlignment {
        /// The alignment found or requested.
        value: u64,
    },
    /// The writer's alignment disagrees with the `general.alignment` in its metadata.
    #[error("writer alignment {alignment} disagrees with general.alignment = {in_metadata}")]
    AlignmentMismatch {
        /// The alignment passed to the writer.
        alignment: usize,
        /// The value in the metadata.
        in_metadata: u64,
    },
    /// A metadata key that is required but absent.
    #[error("metadata key '{key}' is missing")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata value of the wrong type.
    #[error("metadata key '{key}' has type {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// The type asked for.
        expected: &'static str,
        /// The type found (see [`crate::gguf::Value::type_name`]).
        found: &'static str,
    },
    /// A tensor with more dimensions than ggml allows.
    #[error("tensor '{tensor}': {n_dims} dimensions at byte {offset}, at most {max} allowed")]
    TooManyDims {
        /// The tensor.
        tensor: String,
        /// The dimension count found.
        n_dims: u64,
        /// Byte offset of the count (0 for the writer).
        offset: usize,
        /// ggml's maximum (4).
        max: usize,
    },
    /// A tensor type id graft does not know.
    #[error("tensor '{tensor}': unknown tensor type id {type_id} at byte {offset}")]
    UnknownTensorType {
        /// The tensor.
        tensor: String,
        /// The type id found.
        type_id: u32,
        /// Byte offset of the type id.
        offset: usize,
    },
    /// A shape whose element count or byte size overflows.
    #[error("tensor '{tensor}': shape {shape:?} overflows (too many elements or bytes)")]
    ShapeOverflow {
        /// The tensor.
        tensor: String,
        /// The shape, ggml order.
        shape: Vec<u64>,
    },
    /// A row length (`ne[0]`) that is not a whole number of blocks.
    #[error(
        "tensor '{tensor}': row length {row_len} is not a multiple of the {ty} block size \
         {block_size}"
    )]
    RowNotBlockMultiple {
        /// The tensor.
        tensor: String,
        /// Its type.
        ty: QuantType,
        /// `shape[0]`.
        row_len: u64,
        /// The type's block size.
        block_size: usize,
    },
    /// A tensor offset not a multiple of the alignment.
    #[error(
        "tensor '{tensor}': data offset {offset} (relative to the data section) is not a \
         multiple of the alignment {alignment}"
    )]
    MisalignedOffset {
        /// The tensor.
        tensor: String,
        /// Its offset relative to the data section.
        offset: u64,
        /// The file's alignment.
        alignment: usize,
    },
    /// Tensor data that does not lie inside the file.
    #[error(
        "tensor '{tensor}': data at offset {offset} (+ data section at byte {data_offset}) with \
         {n_bytes} bytes lies outside the file ({file_len} bytes)"
    )]
    DataOutOfBounds {
        /// The tensor.
        tensor: String,
        /// Its offset relative to the data section.
        offset: u64,
        /// Start of the data section.
        data_offset: usize,
        /// Its size in bytes.
        n_bytes: usize,
        /// The file size.
        file_len: usize,
    },
    /// The (aligned) start of the data section lies past the end of the file.
    #[error(
        "the tensor data section starts at byte {data_offset}, past the end of the file \
         ({file_len} bytes)"
    )]
    DataSectionOutOfBounds {
        /// Aligned start of the data section.
        data_offset: usize,
        /// The file size.
        file_len: usize,
    },
    /// Two tensors whose data overlap.
    #[error(
        "tensor '{tensor}' (data bytes {start}..{end}) overlaps tensor '{other}' (data bytes \
         {other_start}..{other_end}), offsets relative to the data section"
    )]
    TensorOverlap {
        /// The later tensor.
        tensor: String,
        /// Its start.
        start: u64,
        /// Its end.
        end: u64,
        /// The tensor it overlaps.
        other: String,
        /// That tensor's start.
        other_start: u64,
        /// That tensor's end.
        other_end: u64,
    },
    /// The same tensor name twice in a file.
    #[error("duplicate tensor name '{tensor}' at byte {offset}")]
    DuplicateTensor {
        /// The name.
        tensor: String,
        /// Byte offset of the second tensor info.
        offset: usize,
    },
    /// The same tensor name added twice to a writer.
    #[error("tensor '{tensor}' was already added to this writer")]
    DuplicateTensorName {
        /// The name.
        tensor: String,
    },
    /// A tensor declared without its bytes (`GgufWriter::declare_tensor`) written by a writer
    /// that has no way to get them (`write_to`, `write_file`: use `write_file_streamed`).
    #[error("tensor '{tensor}' was declared without its data; write it with write_file_streamed")]
    MissingTensorData {
        /// The tensor.
        tensor: String,
    },
    /// Tensor data of the wrong size given to the writer.
    #[error(
        "tensor '{tensor}': {got} data bytes given, {ty} with shape {shape:?} needs {expected}"
    )]
    WrongDataSize {
        /// The tensor.
        tensor: String,
        /// Its type.
        ty: QuantType,
        /// Its shape.
        shape: Vec<u64>,
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
}

/// Shorthand for results of this module.
pub type Result<T, E = GgufError> = std::result::Result<T, E>;
