//! matmul for every available ISA × weight format × shape, against the scalar kernels (same
//! activation quantization: tight) and the scalar kernels against an f64 dequantize-then-dot
//! oracle (loose: activations are rounded to 8 bits as ggml does).

mod common;

use common::*;
use graft_kernels::cpu::{available_isas, kernels_for, matmul, Isa, ThreadPool};
use graft_quant::QuantType;

/// Relative to sum |w x|: SIMD vs scalar on identical activation codes (float order only,
/// plus rare half-way rounding differences in SIMD activation quantizers).
const TOL_SAME: f64 = 1e-4;
/// Relative to sum |w x|: scalar (Q8 activations) vs the f64 oracle on unrounded x.
const TOL_Q8: f64 = 1e-2;
/// F32/F16 weights use f32 activations: only float rounding.
const TOL_FLOAT: f64 = 1e-5;

fn col_sizes(ty: QuantType) -> &'static [usize] {
    if ty.block_size() == 256 {
        &[256, 512, 1536]
    } else {
        &[256, 576, 608, 1536] // 608: an odd block count (tail paths)
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    isa: Isa,
    pool: &ThreadPool,
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let mut y = vec![f32::NAN; rows * n];
    matmul(kernels_for(isa), pool, ty, w, rows, cols, x, n, &mut y).expect("matmul");
    y
}

#[test]
fn scalar_matches_f64_oracle() {
    let pool = ThreadPool::new(1).expect("pool");
    let mut r = rng(1);
    for ty in FORMATS {
        for &cols in col_sizes(ty) {
            let rows = 13;
            let n = 3;
            let (w, deq) = weights(&mut r, ty, rows, cols);
            let x = randn(&mut r, n * cols, 1.0);
            let (want, mag) = oracle(&deq, rows, cols, &x, n);
            let got = run(Isa::Scalar, &pool, ty, &w, rows, cols, &x, n);
            let tol = if ty.is_quantized() { TOL_Q8 } else { TOL_FLOAT };
            for i in 0..got.len() {
                let err = (got[i] as f64 - want[i]).abs() / mag[i];
                assert!(
                    err < tol,
                    "{ty} cols {cols} elem {i}: scalar {} oracle {} rel err {err:e} > {tol:e}",
                    got[i],
                    want[i]
                );
            }
        }
    }
}

#[test]
fn every_isa_matches_scalar() {
    let pools: Vec<ThreadPool> = [1, 2, 3]
        .iter()
        .map(|&n| ThreadPool::new(n).expect("pool"))
        .collect();
    let mut r = rng(2);
    for isa in available_isas() {
        assert_eq!(kernels_for(isa).isa, isa);
        for ty in FORMATS {
            for &cols in col_sizes(ty) {
                for (rows, n) in [(67usize, 1usize), (67, 3), (37, 17), (4, 4)] {
                    let (w, deq) = weights(&mut r, ty, rows, cols);
                    let (wbuf, off) = misaligned(&w);
                    let wm = &wbuf[off..];
                    let x = randn(&mut r, n * cols, 1.0);
                    let (_, mag) = oracle(&deq, rows, cols, &x, n);
                    let want = run(Isa::Scalar, &pools[0], ty, &w, rows, cols, &x, n);
                    for pool in &pools {
                        let got = run(isa, pool, ty, wm, rows, cols, &x, n);
                        for i in 0..got.len() {
                            let err = (got[i] as f64 - want[i] as f64).abs() / mag[i];
                            assert!(
                                err < TOL_SAME,
                                "{isa} {ty} rows {rows} cols {cols} n {n} threads {}: elem {i} got {} scalar {} rel err {err:e}",
                                pool.n_threads(),
                                got[i],
                                want[i]
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn rejects_bad_shapes() {
    let pool = ThreadPool::new(1).expect("pool");
    let k = kernels_for(Isa::Scalar);
    let w = vec![0u8; 20 * 2];
    let x = vec![0.0f32; 64];
    let mut y = vec![0.0f32; 1];
    assert!(matmul(k, &pool, QuantType::Q4_1, &w, 1, 64, &x, 1, &mut y).is_ok());
    assert!(matmul(k, &pool, QuantType::Q4_1, &w, 1, 48, &x[..48], 1, &mut y).is_err());
    assert!(matmul(k, &pool, QuantType::Q4_1, &w[..39], 1, 64, &x, 1, &mut y).is_err());
    assert!(matmul(k, &pool, QuantType::Q4_1, &w, 1, 64, &x, 1, &mut []).is_err());
    assert!(matmul(k, &pool, QuantType::Q2_K, &w, 1, 64, &x, 1, &mut y).is_err());
    assert!(ThreadPool::new(0).is_err());
}
