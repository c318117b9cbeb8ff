//! NF4 weights (graft-native NormalFloat-4, `graft_quant::blocks::nf4`) on the CPU: the matrix
//! product, row dequantization (embedding lookups, training tiles) and the block scales.
//!
//! An NF4 tensor is not a sequence of self-contained blocks: all 4-bit codes come first (row
//! `r` of `cols` elements owns bytes `r·cols/2 ..`), then one 8-bit scale code per 64-weight
//! block, then an f32 `offset` and `step` per group of 256 blocks (groups span rows). So the
//! kernels take the whole tensor and decode a row's block scales (`offset + step · code`,
//! exactly the dequantizer's f32 arithmetic) before the row's dot products.
//!
//! Activations stay f32 (the table's `nf4` dot: a 16-entry level lookup per code, one FMA per
//! weight, one per block for the scale). Integer activations would need the levels rounded to
//! integers (as llama.cpp's IQ4_NL does with its int8 table), an error of its own on top of
//! NF4's; with f32 the product equals dequantize-then-dot up to float summation order. Decode
//! is bound by reading the 4.1-bit weights, not by the arithmetic, so f32 costs little there.

use super::table::Kernels;
use super::threadpool::ThreadPool;
use crate::KernelError;
use graft_quant::blocks::nf4::{nf4_tensor_bytes, NF4_BLOCK, NF4_GROUP_BLOCKS, NF4_LEVELS};
use graft_quant::QuantType;

/// Checks that `w` is exactly an NF4 tensor of `rows × cols` (`cols` whole 64-weight blocks).
pub fn check_nf4(
    what: &'static str,
    w: &[u8],
    rows: usize,
    cols: usize,
) -> Result<(), KernelError> {
    if !cols.is_multiple_of(NF4_BLOCK) {
        return Err(KernelError::BadCols {
            what,
            ty: QuantType::NF4,
            cols,
            block: NF4_BLOCK,
        });
    }
    let expected = nf4_tensor_bytes(rows * cols).unwrap_or(usize::MAX);
    if w.len() != expected {
        return Err(KernelError::BadLength {
            what,
            buffer: "w",
            got: w.len(),
            expected,
        });
    }
    Ok(())
}

/// The decoded scales of blocks `b0 .. b0 + out.len()` of the NF4 tensor `w` of `n`
/// elements (the tensor checked by [`check_nf4`]): `offset[g] + step[g] · code[b]`.
pub fn nf4_block_scales(w: &[u8], n: usize, b0: usize, out: &mut [f32]) {
    let n_blocks = n / NF4_BLOCK;
    let (codes, params) = w[n / 2..].split_at(n_blocks);
    let f32_at =
        |i: usize| f32::from_le_bytes([params[i], params[i + 1], params[i + 2], params[i + 3]]);
    for (i, o) in out.iter_mut().enumerate() {
        let b = b0 + i;
        let g = 8 * (b / NF4_GROUP_BLOCKS);
        *o = f32_at(g) + f32_at(g + 4) * f32::from(codes[b]);
    }
}

/// Dequantizes row `r` of the NF4 tensor `w` (`rows × cols`, checked by [`check_nf4`]),
/// columns `c0 .. c0 + dst.len()` (`c0` and `dst.len()` multiples of 64), into `dst`: bit for
/// bit `graft_quant`'s NF4 dequantizer.
pub fn nf4_dequantize_span(
    w: &[u8],
    rows: usize,
    cols: usize,
    r: usize,
    c0: usize,
    dst: &mut [f32],
) {
    let first = (r * cols + c0) / NF4_BLOCK;
    let mut scales = [0.0f32; 1];
    let codes = &w[(r * cols + c0) / 2..][..dst.len() / 2];
    for (k, (cb, ob)) in codes
        .chunks_exact(NF4_BLOCK / 2)
        .zip(dst.chunks_exact_mut(NF4_BLOCK))
        .enumerate()
    {
        nf4_block_scales(w, rows * cols, first + k, &mut scales);
        for (pair, &byte) in ob.chunks_exact_mut(2).zip(cb) {
            pair[0] = NF4_LEVELS[usize::from(byte & 0x0f)] * scales[0];
            pair[1] = NF4_LEVELS[usize::from(byte >> 4)] * scales[0];
        }
    }
}

/// `y[t · rows + r] = Σ_c W[r, c] · x[t · cols + c]` for an NF4 weight `w` (the whole tensor,
/// `rows × cols`), rows spread over `pool`; each row's block scales are decoded once and its
/// codes read once per token with the table's `nf4` dot.
#[allow(clippy::too_many_arguments)]
pub fn matmul_nf4(
    k: &Kernels,
    pool: &ThreadPool,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
) -> Result<(), KernelError> {
    check_nf4("matmul", w, rows, cols)?;
    for (buffer, got, expected) in [
        ("x", x.len(), n_tokens * cols),
        ("y", y.len(), n_tokens * rows),
    ] {
        if got != expected {
            return Err(KernelError::BadLength {
                what: "matmul",
                buffer,
                got,
                expected,
            });
        }
    }
    if rows == 0 || n_tokens == 0 {
        return Ok(());
    }
    let bpr = cols / NF4_BLOCK;
    let dot = k.nf4;
    // Row-major results (`yt[r · n + t]`), so threads own whole rows; transposed below.
    let mut yt = vec![0.0f32; rows * n_tokens];
    let chunk = if rows * cols * n_tokens < 1 << 16 {
        rows
    } else {
        rows.div_ceil(4 * pool.n_threads()).max(4)
    };
    pool.for_each_row_mut(
        &mut yt,
        n_tokens,
        chunk,
        || vec![0.0f32; bpr],
        |scales, r, out| {
            nf4_block_scales(w, rows * cols, r * bpr, scales);
            let codes = &w[r * cols / 2..(r + 1) * cols / 2];
            for (t, o) in out.iter_mut().enumerate() {
                *o = dot(codes, scales, &x[t * cols..(t + 1) * cols]);
            }
        },
    );
    for (r, yr) in yt.chunks_exact(n_tokens).enumerate() {
        for (t, &v) in yr.iter().enumerate() {
            y[t * rows + r] = v;
        }
    }
    Ok(())
}
