//! Embedding lookup: dequantize selected rows of a (quantized) table.

use super::dequant::dequantize_row;
use crate::KernelError;
use graft_quant::QuantType;

/// `out[i * cols ..][..cols] = dequantize(row ids[i] of table)`. `table` holds rows of `cols`
/// elements of type `ty` back to back (GGUF layout, ne0 = cols), `out.len() = ids.len() * cols`.
pub fn get_rows(
    ty: QuantType,
    table: &[u8],
    cols: usize,
    ids: &[u32],
    out: &mut [f32],
) -> Result<(), KernelError> {
    let bs = ty.block_size();
    if cols == 0 || !cols.is_multiple_of(bs) {
        return Err(KernelError::BadCols {
            what: "get_rows",
            ty,
            cols,
            block: bs,
        });
    }
    let row_bytes = cols / bs * ty.type_size();
    let rows = table.len() / row_bytes;
    if !table.len().is_multiple_of(row_bytes) {
        return Err(KernelError::BadLength {
            what: "get_rows",
            buffer: "table",
            got: table.len(),
            expected: rows * row_bytes,
        });
    }
    if out.len() != ids.len() * cols {
        return Err(KernelError::BadLength {
            what: "get_rows",
            buffer: "out",
            got: out.len(),
            expected: ids.len() * cols,
        });
    }
    for (&id, o) in ids.iter().zip(out.chunks_exact_mut(cols)) {
        let id = id as usize;
        if id >= rows {
            return Err(KernelError::BadRow {
                what: "get_rows",
                id,
                rows,
            });
        }
        dequantize_row(ty, &table[id * row_bytes..(id + 1) * row_bytes], o)?;
    }
    Ok(())
}
