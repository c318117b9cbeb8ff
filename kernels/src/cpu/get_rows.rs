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
    if ty == QuantType::NF4 {
        return get_rows_nf4(table, cols, ids, out);
    }
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
    gather(rows, cols, ids, out, |id, o| {
        dequantize_row(ty, &table[id * row_bytes..(id + 1) * row_bytes], o)
    })
}

/// Checks `out` (`ids.len() · cols` floats) and every id (below `rows`), then fills `out`'s row
/// `i` with `row(ids[i], ..)`: the part of [`get_rows`] every table layout shares.
fn gather(
    rows: usize,
    cols: usize,
    ids: &[u32],
    out: &mut [f32],
    mut row: impl FnMut(usize, &mut [f32]) -> Result<(), KernelError>,
) -> Result<(), KernelError> {
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
        row(id, o)?;
    }
    Ok(())
}

/// [`get_rows`] for an NF4 table (the whole tensor: its rows are not self-contained).
fn get_rows_nf4(
    table: &[u8],
    cols: usize,
    ids: &[u32],
    out: &mut [f32],
) -> Result<(), KernelError> {
    let bs = graft_quant::blocks::nf4::NF4_BLOCK;
    if cols == 0 || !cols.is_multiple_of(bs) {
        return Err(KernelError::BadCols {
            what: "get_rows",
            ty: QuantType::NF4,
            cols,
            block: bs,
        });
    }
    // The row count: the tensor's bytes grow with it, and `rows · (cols/2 + cols/64)` bytes
    // (codes and scale codes) is a lower bound, so count down from there.
    let bytes = |r: usize| QuantType::NF4.tensor_bytes((r * cols) as u64).unwrap_or(0);
    let mut rows = table.len() / (cols / 2 + cols / bs);
    while rows > 0 && bytes(rows) > table.len() {
        rows -= 1;
    }
    if bytes(rows) != table.len() {
        return Err(KernelError::BadLength {
            what: "get_rows",
            buffer: "table",
            got: table.len(),
            expected: bytes(rows),
        });
    }
    gather(rows, cols, ids, out, |id, o| {
        super::nf4::nf4_dequantize_span(table, rows, cols, id, 0, o);
        Ok(())
    })
}
