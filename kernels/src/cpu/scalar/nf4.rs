//! Scalar NF4 dot product (graft-native NormalFloat-4, see `graft_quant::blocks::nf4`) with
//! f32 activations: each 4-bit code indexes the 16 NormalFloat levels, the block's sum is
//! scaled once by the block's decoded scale.

use super::kquants_low::hsum_float_8;
use graft_quant::blocks::nf4::{NF4_BLOCK, NF4_LEVELS};

/// `Σ_b scale[b] · Σ_{i in block b} NF4_LEVELS[code_i] · x_i` over the 64-weight blocks of one
/// row: `codes` holds the row's `x.len() / 2` code bytes (element `2i` in the low nibble of
/// byte `i`, `2i + 1` in the high one), `scales` its `x.len() / 64` decoded block scales.
///
/// The float order is the one every ISA's NF4 kernel keeps (so all of them agree bit for bit):
/// eight lanes, lane `k` of block `b` accumulating `fma(level, x, ·)` over the block's elements
/// `8v + k` (`v` = 0..8) from zero, then `acc[k] = fma(scale[b], block[k], acc[k])`, and
/// llama.cpp's `hsum_float_8` over the lanes at the end.
pub(crate) fn dot_nf4(codes: &[u8], scales: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    for ((cb, &s), xb) in codes
        .chunks_exact(NF4_BLOCK / 2)
        .zip(scales)
        .zip(x.chunks_exact(NF4_BLOCK))
    {
        let mut blk = [0.0f32; 8];
        for (e, &xv) in xb.iter().enumerate() {
            let c = (cb[e / 2] >> (4 * (e % 2))) & 0xF;
            blk[e % 8] = NF4_LEVELS[c as usize].mul_add(xv, blk[e % 8]);
        }
        for (a, b) in acc.iter_mut().zip(blk) {
            *a = s.mul_add(b, *a);
        }
    }
    hsum_float_8(&acc)
}
