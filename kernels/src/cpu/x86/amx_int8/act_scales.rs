//! The `scales` operand of the tile kernels ([`crate::cpu::table::Int8Tiles::scales`]): each
//! activation block's scale (and Q8_1's `s`) gathered 16 rows at a time into f32 lanes.

use super::rows16::Rows16;
use crate::cpu::table::ActFormat;
use std::arch::x86_64::*;

/// Q8_0 activations: per group of 16 rows and block, the rows' `d`.
pub(super) fn scales_q8_0(act: &[u8], arow: usize, blocks: usize, out: &mut [f32]) {
    scales(ActFormat::Q8_0, act, arow, blocks, out)
}

/// Q8_1 activations: per group of 16 rows and block, the rows' `d`, then their `s`.
pub(super) fn scales_q8_1(act: &[u8], arow: usize, blocks: usize, out: &mut [f32]) {
    scales(ActFormat::Q8_1, act, arow, blocks, out)
}

/// Q8_K activations: per group of 16 rows and super-block, the rows' `d`.
pub(super) fn scales_q8_k(act: &[u8], arow: usize, blocks: usize, out: &mut [f32]) {
    scales(ActFormat::Q8_K, act, arow, blocks, out)
}

fn scales(kind: ActFormat, act: &[u8], arow: usize, blocks: usize, out: &mut [f32]) {
    let groups = act.len() / (16 * arow).max(1);
    assert!(
        kind != ActFormat::F32
            && act.len() == groups * 16 * arow
            && arow >= blocks * kind.block_bytes()
            && out.len() == groups * blocks * 32
            && 16 * arow <= i32::MAX as usize,
        "amx int8 scales: bad shape"
    );
    // SAFETY: only reachable through the AMX table, handed out after detection (AVX-512 F
    // present); the shape was checked above.
    unsafe { scales_impl(kind, act, arow, blocks, groups, out) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn scales_impl(
    kind: ActFormat,
    act: &[u8],
    arow: usize,
    blocks: usize,
    groups: usize,
    out: &mut [f32],
) {
    let bb = kind.block_bytes();
    for g in 0..groups {
        // SAFETY: rows 16g..16g + 16 are inside `act` (checked by `scales`); each gather reads
        // the 4 bytes at a block's start (b·bb + 4 ≤ arow); the stores are block (g, b)'s 32
        // floats of `out`.
        unsafe {
            let rows = Rows16::new(act.as_ptr().add(16 * g * arow), arow, 16);
            for b in 0..blocks {
                let v = rows.dword(b * bb);
                let (d, s) = match kind {
                    // F32 activations have no block scale (excluded by `scales`).
                    ActFormat::Q8_K | ActFormat::F32 => {
                        (_mm512_castsi512_ps(v), _mm512_setzero_ps())
                    }
                    ActFormat::Q8_0 => (
                        _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)),
                        _mm512_setzero_ps(),
                    ),
                    ActFormat::Q8_1 => (
                        _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)),
                        _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(v))),
                    ),
                };
                let o = out.as_mut_ptr().add((g * blocks + b) * 32);
                _mm512_storeu_ps(o, d);
                _mm512_storeu_ps(o.add(16), s);
            }
        }
    }
}
