//! Prefill on AMX-INT8 tiles: the [`Isa::Amx`] kernel table, the AVX-512 table plus an
//! [`Int8Tiles`] GEMM for the 32-element formats ([`legacy`]: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
//! and the K-quants ([`kquants`]: Q4_K, Q5_K; [`q6_k`]: Q6_K's 16-element sub-blocks).
//!
//! Both run one `tdpbssd` per 32-element (sub-)block for a tile of 16 tokens × 16 weight rows:
//! exact int32 sums, the ones every other path forms, scaled into f32 accumulators with
//! AVX-512 (the scales differ per block, so each block's sums leave the tile unit). Only the f32
//! order of the scaled terms differs from the AVX-512 kernels (within 1e-6 of `Σ |w x|`, see
//! `kernels/tests/int8_tiles.rs`). Q2_K and Q3_K keep the AVX-512 kernels.

mod kquants;
mod legacy;
mod q6_k;

use crate::cpu::isa::Isa;
use crate::cpu::table::{FormatKernels, Int8TileFn, Int8Tiles, Kernels};

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
            legacy::scales_q8_0,
        ),
        q4_1: with_tiles(
            t.q4_1,
            legacy::PB,
            legacy::pack_q4_1,
            legacy::tile_q8_1,
            legacy::scales_q8_1,
        ),
        q5_0: with_tiles(
            t.q5_0,
            legacy::PB,
            legacy::pack_q5_0,
            legacy::tile_q8_0,
            legacy::scales_q8_0,
        ),
        q5_1: with_tiles(
            t.q5_1,
            legacy::PB,
            legacy::pack_q5_1,
            legacy::tile_q8_1,
            legacy::scales_q8_1,
        ),
        q8_0: with_tiles(
            t.q8_0,
            legacy::PB,
            legacy::pack_q8_0,
            legacy::tile_q8_0,
            legacy::scales_q8_0,
        ),
        q4_k: with_tiles(
            t.q4_k,
            kquants::PB,
            kquants::pack_q4_k,
            kquants::tile,
            kquants::scales,
        ),
        q5_k: with_tiles(
            t.q5_k,
            kquants::PB,
            kquants::pack_q5_k,
            kquants::tile,
            kquants::scales,
        ),
        q6_k: with_tiles(t.q6_k, q6_k::PB, q6_k::pack, q6_k::tile, kquants::scales),
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
