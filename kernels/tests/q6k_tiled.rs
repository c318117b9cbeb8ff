//! Q6_K: every x86 kernel equals the scalar definitions bit for bit, both the plain product
//! (llama.cpp's AVX2 `ggml_vec_dot_q6_K_q8_K` lane order) and the tiled one (its x86
//! `ggml-cpu/tiled` matmul, which takes every batch of `TILED_MIN_BATCH` tokens or more for
//! the K-quants it does not repack), and matmul takes the tiled one for exactly those batches.

mod common;

use common::*;
use graft_kernels::cpu::act_quant::quantize_row_q8_k;
use graft_kernels::cpu::{
    available_isas, kernels_for, matmul, ActFormat, Isa, ThreadPool, TILED_MIN_BATCH,
};
use graft_quant::QuantType;

#[test]
fn kernels_equal_scalar_bitwise() {
    let mut r = rng(83);
    let (sdot, _) = kernels_for(Isa::Scalar)
        .q6_k
        .tiled
        .expect("the scalar table defines the tiled Q6_K product");
    for isa in available_isas() {
        let Some((dot, dot_x4)) = kernels_for(isa).q6_k.tiled else {
            continue;
        };
        for cols in [256usize, 1024, 2048] {
            let arow = cols / 256 * 292;
            for _ in 0..6 {
                let (w, _) = weights(&mut r, QuantType::Q6_K, 1, cols);
                let x = randn(&mut r, 4 * cols, 1.0);
                let mut a = vec![0u8; 4 * arow];
                for (xr, ar) in x.chunks_exact(cols).zip(a.chunks_exact_mut(arow)) {
                    quantize_row_q8_k(xr, ar);
                }
                let want: Vec<f32> = (0..4)
                    .map(|t| sdot(&w, &a[t * arow..(t + 1) * arow]))
                    .collect();
                let got: Vec<f32> = (0..4)
                    .map(|t| dot(&w, &a[t * arow..(t + 1) * arow]))
                    .collect();
                assert_eq!(bits(&got), bits(&want), "{isa:?} tiled cols {cols}");
                let mut got4 = [0.0f32; 4];
                dot_x4(&w, &a, arow, &mut got4);
                assert_eq!(bits(&got4), bits(&want), "{isa:?} tiled x4 cols {cols}");
                // And the plain (`vec_dot`) Q6_K product, llama.cpp's AVX2 lane order.
                let plain = kernels_for(Isa::Scalar).q6_k.vec_dot;
                let fk = kernels_for(isa).q6_k;
                for t in 0..4 {
                    let at = &a[t * arow..(t + 1) * arow];
                    let want = plain(&w, at);
                    assert_eq!(
                        (fk.vec_dot)(&w, at).to_bits(),
                        want.to_bits(),
                        "{isa:?} vec_dot cols {cols} row {t}"
                    );
                }
            }
        }
    }
}

#[test]
fn matmul_takes_the_tiled_product_from_the_minimum_batch_on() {
    let mut r = rng(84);
    let (rows, cols) = (12usize, 512usize);
    let arow = cols / 256 * 292;
    let (w, _) = weights(&mut r, QuantType::Q6_K, rows, cols);
    let pool = ThreadPool::new(2).expect("pool");
    for isa in available_isas() {
        let fk = kernels_for(isa).q6_k;
        for n in [TILED_MIN_BATCH - 1, TILED_MIN_BATCH, 11] {
            let x = randn(&mut r, n * cols, 1.0);
            let mut got = vec![0.0f32; rows * n];
            matmul(
                kernels_for(isa),
                &pool,
                QuantType::Q6_K,
                &w,
                rows,
                cols,
                &x,
                n,
                &mut got,
            )
            .expect("matmul");
            let dot = match fk.tiled {
                Some((tiled, _)) if n >= TILED_MIN_BATCH => tiled,
                _ => fk.vec_dot,
            };
            let mut a = vec![0u8; arow];
            for t in 0..n {
                kernels_for(isa).quantize_act(
                    ActFormat::Q8_K,
                    &x[t * cols..(t + 1) * cols],
                    &mut a,
                );
                for i in 0..rows {
                    let want = dot(&w[i * (cols / 256 * 210)..(i + 1) * (cols / 256 * 210)], &a);
                    assert_eq!(
                        got[t * rows + i].to_bits(),
                        want.to_bits(),
                        "{isa:?} n {n} token {t} row {i}"
                    );
                }
            }
        }
    }
}
