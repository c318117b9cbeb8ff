//! Prefill on AMX-INT8 tiles: the [`Isa::Amx`] kernel table, the AVX-512 table plus an
//! [`Int8Tiles`] GEMM for the 32-element formats ([`legacy`]: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
//! and the K-quants ([`kquants`]: Q4_K, Q5_K; [`q6_k`]: Q6_K's 16-element sub-blocks).
//!
//! Both run one `tdpbssd` per 32-element (sub-)block for a tile of 16 tokens × 16 weight rows:
//! exact int32 sums, the ones every other path forms, scaled into f32 accumulators with
//! AVX-512 (the scales differ per block, so each block's sums leave the tile unit). Only the f32
//! order of the scaled terms differs from the AVX-512 kernels (within 1e-6 of `Σ |w x|`, see
//! `kernels/tests/int8_tiles.rs`). Q2_K and Q3_K keep the AVX-512 kernels.

mod act_scales;
mod kquants;
mod legacy;
mod q6_k;
mod rows16;

use super::amx::Tiles;
use crate::cpu::isa::Isa;
use crate::cpu::table::{FormatKernels, Int8TileFn, Int8Tiles, Kernels};
use std::arch::x86_64::*;

/// The AMX kernel table: AVX-512's, with the int8 tile GEMMs.
pub(crate) static AMX: Kernels = {
    let t = super::avx512::TABLE;
    Kernels {
        isa: Isa::Amx,
        q4_0: with_tiles(
            t.q4_0,
            legacy::PB,
            legacy::pack_q4_0,
            legacy::tile_q8_0,
            act_scales::scales_q8_0,
        ),
        q4_1: with_tiles(
            t.q4_1,
            legacy::PB,
            legacy::pack_q4_1,
            legacy::tile_q8_1,
            act_scales::scales_q8_1,
        ),
        q5_0: with_tiles(
            t.q5_0,
            legacy::PB,
            legacy::pack_q5_0,
            legacy::tile_q8_0,
            act_scales::scales_q8_0,
        ),
        q5_1: with_tiles(
            t.q5_1,
            legacy::PB,
            legacy::pack_q5_1,
            legacy::tile_q8_1,
            act_scales::scales_q8_1,
        ),
        q8_0: with_tiles(
            t.q8_0,
            legacy::PB,
            legacy::pack_q8_0,
            legacy::tile_q8_0,
            act_scales::scales_q8_0,
        ),
        q4_k: with_tiles(
            t.q4_k,
            kquants::PB,
            kquants::pack_q4_k,
            kquants::tile,
            act_scales::scales_q8_k,
        ),
        q5_k: with_tiles(
            t.q5_k,
            kquants::PB,
            kquants::pack_q5_k,
            kquants::tile,
            act_scales::scales_q8_k,
        ),
        q6_k: with_tiles(
            t.q6_k,
            q6_k::PB,
            q6_k::pack,
            q6_k::tile,
            act_scales::scales_q8_k,
        ),
        ..t
    }
};

const fn with_tiles(
    fk: FormatKernels,
    panel_block_bytes: usize,
    pack: fn(&[u8], usize, usize, &mut [u8]),
    tile: Int8TileFn,
    scales: fn(&[u8], usize, usize, &mut [f32]),
) -> FormatKernels {
    FormatKernels {
        int8_tiles: Some(Int8Tiles {
            panel_block_bytes,
            pack,
            tile,
            scales,
        }),
        ..fk
    }
}

/// The kernel of one output tile: `(tiles, panel, blocks, act, arow, scales, out)`, `act`
/// pointing at the first of 16 activation rows `arow` apart, `scales` the group's, `out` its 16
/// rows. Unsafe: the tiles must be configured for the kernel's layout and every window valid.
type TileBody = unsafe fn(&Tiles, &[u8], usize, *const u8, usize, &[f32], &mut [[f32; 16]]);

/// How a tile kernel reads its operands.
struct TileShape {
    /// Panel bytes per weight block.
    panel_block_bytes: usize,
    /// Activation bytes per block (Q8_0 34, Q8_1 36, Q8_K 292).
    act_block_bytes: usize,
    /// Whether the kernel runs 16-element products ([`Tiles::configure_int8_k16`]) rather than
    /// 32-element ones ([`Tiles::configure_int8`]).
    k16: bool,
}

/// An [`Int8TileFn`] around `body`: checks the operands against `shape`, configures this
/// thread's tiles for it and runs `body` on every group of 16 activation rows.
#[allow(clippy::too_many_arguments)]
fn run_groups(
    shape: TileShape,
    body: TileBody,
    panel: &[u8],
    blocks: usize,
    act: &[u8],
    arow: usize,
    scales: &[f32],
    out: &mut [[f32; 16]],
) {
    let groups = out.len() / 16;
    assert!(
        out.len() == groups * 16
            && panel.len() >= blocks * shape.panel_block_bytes
            && arow >= blocks * shape.act_block_bytes
            && act.len() >= groups * 16 * arow
            && scales.len() >= groups * blocks * 32,
        "amx int8 tile: bad shape"
    );
    if groups == 0 || blocks == 0 {
        out.fill([0.0; 16]);
        return;
    }
    // SAFETY: only reachable through the AMX table, handed out after `Isa::Amx` was detected
    // (AMX-INT8 present and permitted, AVX-512 F/BW); the tiles are configured for this thread
    // in the layout `shape` names (released when `t` drops); every group's 16 activation rows,
    // the panel and the scales are inside the slices checked above.
    unsafe {
        let t = if shape.k16 {
            Tiles::configure_int8_k16()
        } else {
            Tiles::configure_int8()
        };
        for (i, o) in out.chunks_exact_mut(16).enumerate() {
            body(
                &t,
                panel,
                blocks,
                act.as_ptr().add(i * 16 * arow),
                arow,
                &scales[i * blocks * 32..],
                o,
            );
        }
    }
}

/// `acc[t] += (or -= where `sub`) sums[t] · v · da[t]` for the 16 rows of int32 sums at `cb`.
///
/// # Safety
/// `cb` is a 64-byte aligned 16 × 16 int32 tile; `da` points at 16 readable f32.
#[inline(always)]
unsafe fn fold(acc: &mut [__m512; 16], v: __m512, cb: *const i32, da: *const f32, sub: bool) {
    // SAFETY: the caller's windows; AVX-512F (the callers' target features).
    unsafe {
        for (t, a) in acc.iter_mut().enumerate() {
            let s = _mm512_cvtepi32_ps(_mm512_load_si512(cb.add(16 * t) as *const __m512i));
            let d = _mm512_set1_ps(*da.add(t));
            let sv = _mm512_mul_ps(s, v);
            *a = if sub {
                _mm512_fnmadd_ps(sv, d, *a)
            } else {
                _mm512_fmadd_ps(sv, d, *a)
            };
        }
    }
}

/// Three 16 × 16 int32 tiles for the kernels' stored sums (two (sub-)blocks' sums and the
/// K-quants' min sums), 64-byte aligned.
#[repr(C, align(64))]
struct Sums([i32; 768]);
