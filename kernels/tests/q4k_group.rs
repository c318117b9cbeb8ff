//! Q4_K's grouped product (llama.cpp's repacked x86 order, see `act_quant_x4`): every ISA's
//! four-token and tile kernels equal the scalar group definition bit for bit, matmul takes
//! the group path for whole groups of four tokens on every ISA, and the group quantizer keeps
//! llama.cpp's AVX2 sign rule.

mod common;

use common::*;
use graft_kernels::cpu::act_quant::quantize_row_q8_k;
use graft_kernels::cpu::act_quant_x4::{quantize_q8_k_x4, GROUP_BLOCK_BYTES, GROUP_QS};
use graft_kernels::cpu::{available_isas, kernels_for, matmul, Isa, ThreadPool};
use graft_quant::QuantType;

#[test]
fn group_kernels_equal_scalar_bitwise() {
    let mut r = rng(71);
    let scalar = kernels_for(Isa::Scalar).q4_k;
    let sx4 = scalar.vec_dot_x4.expect("scalar grouped kernel");
    for isa in available_isas() {
        let fk = kernels_for(isa).q4_k;
        let q4 = fk.quantize_x4.expect("Q4_K is grouped on every ISA");
        let x4 = fk
            .vec_dot_x4
            .expect("grouped formats have a four-token kernel");
        for cols in [256usize, 768, 1536] {
            let row_bytes = cols / 256 * 144;
            let arow = cols / 256 * 292;
            for _ in 0..6 {
                let (w, _) = weights(&mut r, QuantType::Q4_K, 4, cols);
                let x = randn(&mut r, 4 * cols, 1.0);
                let mut g = vec![0u8; 4 * arow];
                q4(&x, cols, &mut g);
                let mut want = [[0.0f32; 4]; 4];
                for (i, wi) in want.iter_mut().enumerate() {
                    sx4(&w[i * row_bytes..(i + 1) * row_bytes], &g, arow, wi);
                    let mut got = [0.0f32; 4];
                    x4(&w[i * row_bytes..(i + 1) * row_bytes], &g, arow, &mut got);
                    assert_eq!(bits(&got), bits(wi), "{isa:?} x4 cols {cols} row {i}");
                }
                if let Some(r4x4) = fk.vec_dot_r4x4 {
                    let (wm, off) = misaligned(&w);
                    let mut got = [[0.0f32; 4]; 4];
                    r4x4(&wm[off..], row_bytes, &g, arow, &mut got);
                    for i in 0..4 {
                        assert_eq!(
                            bits(&got[i]),
                            bits(&want[i]),
                            "{isa:?} r4x4 cols {cols} row {i}"
                        );
                    }
                }
            }
        }
    }
}

/// The 4 × 4 tile equals the scalar group definition and the ISA's own four-token kernel row
/// by row, bit for bit, for weights and activation groups at every byte offset modulo 64 and
/// with the four rows further apart than one row (a tile inside a larger matrix).
#[test]
fn tile_equals_scalar_and_x4_at_any_alignment() {
    let mut r = rng(74);
    let sx4 = kernels_for(Isa::Scalar)
        .q4_k
        .vec_dot_x4
        .expect("scalar grouped kernel");
    for isa in available_isas() {
        let fk = kernels_for(isa).q4_k;
        if isa == Isa::Avx512 {
            assert!(fk.vec_dot_r4x4.is_some(), "AVX-512 has the Q4_K tile");
        }
        let Some(r4x4) = fk.vec_dot_r4x4 else {
            continue;
        };
        let q4 = fk.quantize_x4.expect("Q4_K is grouped on every ISA");
        let x4 = fk.vec_dot_x4.expect("four-token kernel");
        for cols in [256usize, 512, 2304] {
            let row_bytes = cols / 256 * 144;
            let arow = cols / 256 * 292;
            for off in 0..64usize {
                // Eight rows; the tile takes rows `first..first + 4`.
                let (w, _) = weights(&mut r, QuantType::Q4_K, 8, cols);
                let scale = if off % 7 == 0 { 100.0 } else { 1.0 };
                let x = randn(&mut r, 4 * cols, scale);
                let mut g = vec![0u8; 4 * arow];
                q4(&x, cols, &mut g);
                let first = off % 5;
                let mut wm = vec![0u8; off + w.len()];
                wm[off..].copy_from_slice(&w);
                let aoff = (off * 13) % 64;
                let mut gm = vec![0u8; aoff + g.len()];
                gm[aoff..].copy_from_slice(&g);
                let wt = &wm[off + first * row_bytes..off + (first + 4) * row_bytes];
                let mut got = [[0.0f32; 4]; 4];
                r4x4(wt, row_bytes, &gm[aoff..], arow, &mut got);
                for (i, gi) in got.iter().enumerate() {
                    let wr = &w[(first + i) * row_bytes..(first + i + 1) * row_bytes];
                    let (mut want, mut via_x4) = ([0.0f32; 4], [0.0f32; 4]);
                    sx4(wr, &g, arow, &mut want);
                    x4(wr, &g, arow, &mut via_x4);
                    assert_eq!(
                        bits(gi),
                        bits(&want),
                        "{isa:?} cols {cols} off {off} row {i}"
                    );
                    assert_eq!(
                        bits(gi),
                        bits(&via_x4),
                        "{isa:?} cols {cols} off {off} row {i}"
                    );
                }
            }
        }
    }
}

/// Through matmul, every ISA gives the scalar table's floats exactly, for ragged row and token
/// counts (groups of four, leftover tokens, leftover rows) and any thread count.
#[test]
fn matmul_is_bit_identical_across_isas() {
    let mut r = rng(72);
    let pools: Vec<ThreadPool> = [1, 2]
        .iter()
        .map(|&n| ThreadPool::new(n).expect("pool"))
        .collect();
    for (rows, cols, n) in [
        (8usize, 256usize, 4usize),
        (13, 512, 9),
        (64, 640 / 128 * 256, 7),
        (6, 256, 1),
        // Ragged row counts around the 4-row tile: 1..3 rows left over, fewer rows than a
        // tile, and more rows than one L1 tile of rows.
        (5, 256, 8),
        (3, 512, 4),
        (18, 768, 12),
        (71, 2304, 5),
        (131, 256, 16),
    ] {
        let (w, _) = weights(&mut r, QuantType::Q4_K, rows, cols);
        let x = randn(&mut r, n * cols, 1.0);
        let mut want = vec![0.0f32; rows * n];
        matmul(
            kernels_for(Isa::Scalar),
            &pools[0],
            QuantType::Q4_K,
            &w,
            rows,
            cols,
            &x,
            n,
            &mut want,
        )
        .expect("matmul");
        for isa in available_isas() {
            // AMX takes batches of 16+ tokens on int8 tiles, which sum in another f32 order
            // (kernels/tests/int8_tiles.rs).
            let tiles = kernels_for(isa).q4_k.int8_tiles.is_some();
            if tiles && n >= graft_kernels::cpu::matmul::INT8_TILES_MIN_TOKENS {
                continue;
            }
            for pool in &pools {
                let mut got = vec![0.0f32; rows * n];
                matmul(
                    kernels_for(isa),
                    pool,
                    QuantType::Q4_K,
                    &w,
                    rows,
                    cols,
                    &x,
                    n,
                    &mut got,
                )
                .expect("matmul");
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "{isa:?} rows {rows} cols {cols} n {n}"
                );
            }
        }
    }
}

/// The group quantizer's codes equal the per-row Q8_K's except where a block holds both
/// `+amax` and `-amax`: then `+amax` maps to -127 (llama.cpp's AVX2 rule), where the per-row
/// quantizer follows the first of the two.
#[test]
fn group_quantizer_sign_rule() {
    let mut r = rng(73);
    let cols = 512;
    let mut x = randn(&mut r, 4 * cols, 1.0);
    // Row 1, block 0: -3 first, then +3. Row 2, block 1: only -5.
    x[cols + 3] = -3.0;
    x[cols + 100] = 3.0;
    x[2 * cols + 256 + 7] = -5.0;
    let mut g = vec![0u8; 4 * cols / 256 * 292];
    quantize_q8_k_x4(&x, cols, &mut g);
    for t in 0..4 {
        let mut row = vec![0u8; cols / 256 * 292];
        quantize_row_q8_k(&x[t * cols..(t + 1) * cols], &mut row);
        for b in 0..cols / 256 {
            let gb = &g[b * GROUP_BLOCK_BYTES..];
            let d = f32::from_le_bytes(gb[4 * t..4 * t + 4].try_into().expect("4 bytes"));
            let rd = f32::from_le_bytes(row[292 * b..292 * b + 4].try_into().expect("4 bytes"));
            let flipped = t == 1 && b == 0;
            assert_eq!(d, if flipped { -rd } else { rd }, "row {t} block {b} d");
            for e in 0..256 {
                let q = gb[GROUP_QS + 16 * (e / 4) + 4 * t + e % 4] as i8;
                let rq = row[292 * b + 4 + e] as i8;
                if !flipped {
                    assert_eq!(q, rq, "row {t} block {b} elem {e}");
                }
            }
            if flipped {
                assert_eq!(gb[GROUP_QS + 16 * 25 + 4 * t] as i8, -127); // element 100: +3
                assert_eq!(gb[GROUP_QS + 4 * t + 3] as i8, 127); // element 3: -3
            }
        }
    }
}
