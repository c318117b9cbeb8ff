//! The four-row decode kernels (`vec_dot_r4`) are bit-identical to the single-row kernels
//! (`vec_dot`, which for Q4_1/Q8_0 round exactly as llama.cpp's): called directly on random rows
//! at any alignment, and through `matmul` for one token with ragged row counts (leftover rows go
//! through `vec_dot`), on every ISA this CPU has.

mod common;

use common::*;
use graft_kernels::cpu::{available_isas, kernels_for, matmul, ThreadPool};
use graft_quant::QuantType;

#[test]
fn four_row_kernels_equal_single_row_bitwise() {
    let mut r = rng(41);
    let mut checked = 0;
    for isa in available_isas() {
        let k = kernels_for(isa);
        for ty in FORMATS {
            let Some(fk) = k.format(ty) else { continue };
            let Some(r4) = fk.vec_dot_r4 else { continue };
            let bs = ty.block_size().max(fk.act.block());
            for cols in [bs, 3 * bs, 576, 1536].into_iter().filter(|c| c % bs == 0) {
                let row_bytes = cols / ty.block_size() * ty.type_size();
                for _ in 0..8 {
                    let (w, _) = weights(&mut r, ty, 4, cols);
                    let (wm, off) = misaligned(&w);
                    let wm = &wm[off..];
                    let x = randn(&mut r, cols, 1.0);
                    let mut act = vec![0u8; fk.act.row_bytes(cols)];
                    k.quantize_act(fk.act, &x, &mut act);
                    let (am, aoff) = misaligned(&act);
                    let am = &am[aoff..];
                    let want: Vec<f32> = (0..4)
                        .map(|i| (fk.vec_dot)(&w[i * row_bytes..(i + 1) * row_bytes], &act))
                        .collect();
                    let mut got = [0.0f32; 4];
                    r4(wm, row_bytes, am, &mut got);
                    assert_eq!(bits(&got), bits(&want), "{isa:?} {ty} cols {cols}");
                    checked += 1;
                }
            }
        }
    }
    eprintln!("{checked} four-row calls checked");
}

#[test]
fn decode_matmul_equals_per_row_kernel_bitwise() {
    let pools: Vec<ThreadPool> = [1, 2]
        .iter()
        .map(|&n| ThreadPool::new(n).expect("pool"))
        .collect();
    let mut r = rng(42);
    for isa in available_isas() {
        let k = kernels_for(isa);
        for ty in [QuantType::Q4_1, QuantType::Q8_0] {
            let Some(fk) = k.format(ty) else { continue };
            let cols = 576;
            let row_bytes = cols / ty.block_size() * ty.type_size();
            for rows in [1usize, 3, 4, 5, 6, 7, 8, 67, 130, 1027] {
                let (w, _) = weights(&mut r, ty, rows, cols);
                let x = randn(&mut r, cols, 1.0);
                let mut act = vec![0u8; fk.act.row_bytes(cols)];
                k.quantize_act(fk.act, &x, &mut act);
                let want: Vec<f32> = (0..rows)
                    .map(|i| (fk.vec_dot)(&w[i * row_bytes..(i + 1) * row_bytes], &act))
                    .collect();
                for pool in &pools {
                    let mut y = vec![0.0f32; rows];
                    matmul(k, pool, ty, &w, rows, cols, &x, 1, &mut y).expect("matmul");
                    assert_eq!(bits(&y), bits(&want), "{isa:?} {ty} rows {rows}");
                }
            }
        }
    }
}

/// The four-token prefill kernels (`vec_dot_x4`) are bit-identical to the single-row kernel
/// for each of the four activation rows: random rows at any alignment, activation rows at a
/// stride larger than one row, on every ISA this CPU has.
#[test]
fn four_token_kernels_equal_single_row_bitwise() {
    let mut r = rng(43);
    let mut checked = 0;
    for isa in available_isas() {
        let k = kernels_for(isa);
        for ty in FORMATS {
            let Some(fk) = k.format(ty) else { continue };
            let Some(x4) = fk.vec_dot_x4 else { continue };
            if fk.quantize_x4.is_some() {
                continue; // grouped: its own order, checked in q4k_group.rs
            }
            let bs = ty.block_size().max(fk.act.block());
            for cols in [bs, 3 * bs, 576, 1536].into_iter().filter(|c| c % bs == 0) {
                let arow = fk.act.row_bytes(cols);
                let stride = arow + fk.act.block_bytes();
                for _ in 0..8 {
                    let (w, _) = weights(&mut r, ty, 1, cols);
                    let (wm, off) = misaligned(&w);
                    let wm = &wm[off..];
                    let mut act = vec![0u8; 4 * stride];
                    for t in 0..4 {
                        let x = randn(&mut r, cols, 1.0);
                        k.quantize_act(fk.act, &x, &mut act[t * stride..t * stride + arow]);
                    }
                    let (am, aoff) = misaligned(&act);
                    let am = &am[aoff..];
                    let want: Vec<f32> = (0..4)
                        .map(|t| (fk.vec_dot)(&w, &act[t * stride..t * stride + arow]))
                        .collect();
                    let mut got = [0.0f32; 4];
                    x4(wm, am, stride, &mut got);
                    assert_eq!(bits(&got), bits(&want), "{isa:?} {ty} cols {cols}");
                    checked += 1;
                }
            }
        }
    }
    eprintln!("{checked} four-token calls checked");
}

/// The 4 × 4 tile kernels (`vec_dot_r4x4`) are bit-identical to the single-row kernel for
/// every (weight row, activation row) pair: random rows at any alignment, activation rows at a
/// stride larger than one row, and through `matmul` for ragged row and token counts.
#[test]
fn tile_kernels_equal_single_row_bitwise() {
    let mut r = rng(44);
    let mut checked = 0;
    for isa in available_isas() {
        let k = kernels_for(isa);
        for ty in FORMATS {
            let Some(fk) = k.format(ty) else { continue };
            let Some(r4x4) = fk.vec_dot_r4x4 else {
                continue;
            };
            if fk.quantize_x4.is_some() {
                continue; // grouped: its own order, checked in q4k_group.rs
            }
            let bs = ty.block_size().max(fk.act.block());
            for cols in [bs, 3 * bs, 576, 640, 1536]
                .into_iter()
                .filter(|c| c % bs == 0)
            {
                let row_bytes = cols / ty.block_size() * ty.type_size();
                let arow = fk.act.row_bytes(cols);
                let stride = arow + fk.act.block_bytes();
                for _ in 0..8 {
                    let (w, _) = weights(&mut r, ty, 4, cols);
                    let (wm, off) = misaligned(&w);
                    let wm = &wm[off..];
                    let mut act = vec![0u8; 4 * stride];
                    for t in 0..4 {
                        let x = randn(&mut r, cols, 1.0);
                        k.quantize_act(fk.act, &x, &mut act[t * stride..t * stride + arow]);
                    }
                    let (am, aoff) = misaligned(&act);
                    let am = &am[aoff..];
                    let mut got = [[0.0f32; 4]; 4];
                    r4x4(wm, row_bytes, am, stride, &mut got);
                    for (i, gi) in got.iter().enumerate() {
                        let want: Vec<f32> = (0..4)
                            .map(|t| {
                                (fk.vec_dot)(
                                    &w[i * row_bytes..(i + 1) * row_bytes],
                                    &act[t * stride..t * stride + arow],
                                )
                            })
                            .collect();
                        assert_eq!(bits(gi), bits(&want), "{isa:?} {ty} cols {cols} row {i}");
                    }
                    checked += 1;
                }
            }
            // Through matmul: tiles, leftover rows (x4) and leftover tokens (r4 / vec_dot).
            let cols = 640.max(bs) / bs * bs;
            let row_bytes = cols / ty.block_size() * ty.type_size();
            let arow = fk.act.row_bytes(cols);
            let pool = ThreadPool::new(2).expect("pool");
            for (rows, n) in [(4usize, 4usize), (7, 9), (67, 13), (130, 8)] {
                let (w, _) = weights(&mut r, ty, rows, cols);
                let x = randn(&mut r, n * cols, 1.0);
                let mut act = vec![0u8; n * arow];
                for t in 0..n {
                    k.quantize_act(
                        fk.act,
                        &x[t * cols..(t + 1) * cols],
                        &mut act[t * arow..(t + 1) * arow],
                    );
                }
                let mut want = vec![0.0f32; rows * n];
                for t in 0..n {
                    for i in 0..rows {
                        want[t * rows + i] = (fk.vec_dot)(
                            &w[i * row_bytes..(i + 1) * row_bytes],
                            &act[t * arow..(t + 1) * arow],
                        );
                    }
                }
                let mut y = vec![0.0f32; rows * n];
                matmul(k, &pool, ty, &w, rows, cols, &x, n, &mut y).expect("matmul");
                assert_eq!(bits(&y), bits(&want), "{isa:?} {ty} rows {rows} n {n}");
            }
        }
    }
    eprintln!("{checked} tile calls checked");
}
