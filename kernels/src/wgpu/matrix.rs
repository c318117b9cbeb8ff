//! A weight matrix on the GPU: its rows in one or more buffers, each within the device's
//! largest storage binding (a tensor bigger than a binding is split on row boundaries).

use super::context::{GpuBuf, GpuContext};
use super::error::GpuError;
use graft_quant::QuantType;

/// Rows `row0 .. row0 + rows` of a matrix, in one buffer.
#[derive(Debug)]
pub struct RowChunk {
    /// First row.
    pub row0: usize,
    /// Rows held.
    pub rows: usize,
    /// The rows' bytes, as in the file.
    pub buf: GpuBuf,
}

/// A `[rows × cols]` matrix in its block format on the GPU.
#[derive(Debug)]
pub struct GpuMatrix {
    /// Block format.
    pub ty: QuantType,
    /// Output features.
    pub rows: usize,
    /// Input features.
    pub cols: usize,
    /// Bytes of one row.
    pub row_bytes: usize,
    /// The rows, in order.
    pub chunks: Vec<RowChunk>,
}

impl GpuMatrix {
    /// Bytes on the device.
    pub fn device_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.buf.bytes()).sum()
    }
}

impl GpuContext {
    /// Uploads `bytes` (`rows` rows of `cols` elements of `ty`, as in a GGUF file) once,
    /// straight from the caller's memory (the mmap) into buffers created mapped.
    pub fn upload_matrix(
        &self,
        name: &str,
        ty: QuantType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<GpuMatrix, GpuError> {
        if !super::kernels::supports(ty) {
            return Err(GpuError::Unsupported(ty));
        }
        let row_bytes = bytes.len() / rows.max(1);
        if rows == 0 || row_bytes * rows != bytes.len() {
            return Err(GpuError::Limit(format!(
                "{name}: {} bytes are not {rows} equal rows",
                bytes.len()
            )));
        }
        // Rows per chunk: within the binding limit, leaving room for the 4-byte padding.
        let max = self.max_binding().saturating_sub(4) as usize;
        let per = (max / row_bytes.max(1)).min(rows);
        if per == 0 {
            return Err(GpuError::Limit(format!(
                "{name}: one row of {row_bytes} bytes is over the device's largest binding"
            )));
        }
        let mut chunks = Vec::new();
        let mut row0 = 0;
        while row0 < rows {
            let n = per.min(rows - row0);
            let part = &bytes[row0 * row_bytes..(row0 + n) * row_bytes];
            let buf = self.buffer_init(part, name)?;
            chunks.push(RowChunk { row0, rows: n, buf });
            row0 += n;
        }
        Ok(GpuMatrix {
            ty,
            rows,
            cols,
            row_bytes,
            chunks,
        })
    }
}
