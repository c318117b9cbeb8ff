//! Tensor descriptions (as stored in the file) and borrowed views of tensor data.

use crate::QuantType;

/// One tensor info from the file, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name.
    pub name: String,
    /// Its element type.
    pub ty: QuantType,
    /// Its shape in ggml order: `shape[0]` (`ne[0]`) is the row length, the fastest-varying.
    pub shape: Vec<u64>,
    /// Offset of its data relative to the start of the data section.
    pub offset: u64,
    /// Size of its data in bytes (`ty.tensor_bytes(n_elements)`).
    pub n_bytes: usize,
}

impl TensorInfo {
    /// Number of elements (product of the shape; 1 for a scalar).
    pub fn n_elements(&self) -> u64 {
        n_elements(&self.shape)
    }
}

/// A tensor whose data borrows the file's bytes (the mmap): nothing is copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorView<'a> {
    /// The tensor's name.
    pub name: &'a str,
    /// Its element type.
    pub ty: QuantType,
    /// Its shape in ggml order (`shape[0]` is the row length).
    pub shape: &'a [u64],
    /// Its data, exactly `ty.tensor_bytes(n_elements)` bytes.
    pub bytes: &'a [u8],
}

impl TensorView<'_> {
    /// Number of elements (product of the shape; 1 for a scalar).
    pub fn n_elements(&self) -> u64 {
        n_elements(self.shape)
    }

    /// Elements per row: `shape[0]` (1 for a scalar).
    pub fn row_len(&self) -> usize {
        self.shape
            .first()
            .map_or(1, |&n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Number of rows: the product of `shape[1..]`.
    pub fn n_rows(&self) -> usize {
        let rows = self
            .shape
            .iter()
            .skip(1)
            .fold(1u64, |a, &d| a.saturating_mul(d));
        usize::try_from(rows).unwrap_or(usize::MAX)
    }
}

/// Product of a shape (saturating; shapes from the reader or writer never overflow).
fn n_elements(shape: &[u64]) -> u64 {
    shape.iter().fold(1u64, |acc, &d| acc.saturating_mul(d))
}
