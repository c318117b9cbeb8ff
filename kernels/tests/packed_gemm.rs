//! The repacked prefill GEMMs (`FormatKernels::packed`) are bit-identical to the single-row
//! kernel for every (weight row, activation row) pair: pack, prepare and tile called directly
//! on random rows at any alignment, and through `matmul` for batches long enough to take the
//! packed path, with ragged row and token counts (leftover rows and tokens take the other
//! kernels), on one and two threads, on every ISA this CPU has.

mod common;

use common::*;
use graft_kernels::cpu::{available_isas, kernels_for, matmul, ThreadPool};

#[test]
fn packed_tiles_equal_single_row_bitwise() {
    let mut r = rng(45);
    let mut checked = 0;
    for isa in available_isas() {
        let k = kernels_for(isa);
        for ty in FORMATS {
            let Some(fk) = k.format(ty) else { continue };
            let Some(pg) = fk.packed else { continue };
            assert!(fk.vec_dot_x4.is_some(), "{isa:?} {ty}: packed without x4");
            let bs = ty.block_size().max(fk.act.block());
            for cols in [bs, 3 * bs, 576, 640, 1536]
                .into_iter()
                .filter(|c| c % bs == 0)
            {
                let blocks = cols / ty.block_size();
                let row_bytes = blocks * ty.type_size();
                let arow = fk.act.row_bytes(cols);
                let pbytes = cols / fk.act.block() * pg.prep_block_bytes;
                let stride = pbytes + 8;
                for _ in 0..8 {
                    let (w, _) = weights(&mut r, ty, 4, cols);
                    let (wm, off) = misaligned(&w);
                    let mut packed = vec![0u8; blocks * pg.packed_block_bytes + 1];
                    (pg.pack)(&wm[off..], row_bytes, &mut packed[1..]);
                    let mut act = vec![0u8; 4 * arow];
                    let mut prep = vec![0u8; 4 * stride + 1];
                    for t in 0..4 {
                        let x = randn(&mut r, cols, 1.0);
                        let a = &mut act[t * arow..(t + 1) * arow];
                        k.quantize_act(fk.act, &x, a);
                        (pg.prep)(a, &mut prep[1 + t * stride..][..pbytes]);
                    }
                    let mut got = [[0.0f32; 4]; 4];
                    (pg.tile)(&packed[1..], &prep[1..], stride, &mut got);
                    for (i, gi) in got.iter().enumerate() {
                        let want: Vec<f32> = (0..4)
                            .map(|t| {
                                (fk.vec_dot)(
                                    &w[i * row_bytes..(i + 1) * row_bytes],
                                    &act[t * arow..(t + 1) * arow],
                                )
                            })
                            .collect();
                        assert_eq!(bits(gi), bits(&want), "{isa:?} {ty} cols {cols} row {i}");
                    }
                    checked += 1;
                }
            }
            // Through matmul: packed groups, leftover rows (x4) and tokens (r4 / vec_dot),
            // tiles of several groups, on one and two threads. (On AMX, batches of 16+ tokens of
            // the 32-element formats take the int8 tiles instead: kernels/tests/int8_tiles.rs.)
            if fk.int8_tiles.is_some() {
                continue;
            }
            let cols = 640.max(bs) / bs * bs;
            let row_bytes = cols / ty.block_size() * ty.type_size();
            let arow = fk.act.row_bytes(cols);
            for (rows, n) in [(4usize, 16usize), (7, 19), (67, 21), (130, 36), (256, 64)] {
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
                for threads in [1, 2] {
                    let pool = ThreadPool::new(threads).expect("pool");
                    let mut y = vec![0.0f32; rows * n];
                    matmul(k, &pool, ty, &w, rows, cols, &x, n, &mut y).expect("matmul");
                    assert_eq!(bits(&y), bits(&want), "{isa:?} {ty} rows {rows} n {n}");
                }
            }
        }
    }
    eprintln!("{checked} packed tiles checked");
}
