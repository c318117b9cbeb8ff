//! matmul for every available ISA × weight format × shape, against the scalar kernels (same
//! activation quantization: tight) and the scalar kernels against an f64 dequantize-then-dot
//! oracle (loose: activations are rounded to 8 bits as ggml does).

mod common;

use common::run_matmul as run;
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
    assert!(matmul(k, &pool, QuantType::Q8_K, &w, 1, 256, &x, 1, &mut y).is_err());
    assert!(ThreadPool::new(0).is_err());
}

/// Oversubscribed pools (more threads than cores), many back-to-back small calls as in decode:
/// every call completes and matches the single-thread result bit for bit (rows are independent,
/// so the split must not change any value).
#[test]
fn oversubscribed_pool_is_exact_and_completes() {
    let mut r = rng(3);
    let k = kernels_for(*available_isas().last().expect("scalar is always available"));
    let (rows, cols) = (192, 576);
    let (w, _) = weights(&mut r, QuantType::Q4_1, rows, cols);
    let x = randn(&mut r, cols, 1.0);
    let one = ThreadPool::new(1).expect("pool");
    let mut want = vec![0.0f32; rows];
    matmul(k, &one, QuantType::Q4_1, &w, rows, cols, &x, 1, &mut want).expect("matmul");
    for n in [2usize, 5] {
        let pool = ThreadPool::new(n).expect("pool");
        for _ in 0..300 {
            let mut y = vec![f32::NAN; rows];
            matmul(k, &pool, QuantType::Q4_1, &w, rows, cols, &x, 1, &mut y).expect("matmul");
            assert_eq!(y, want, "{n} threads");
        }
    }
}

#[test]
fn for_each_chunk_covers_every_item_once() {
    use std::sync::atomic::{AtomicU32, Ordering};
    for n_threads in [1usize, 3] {
        let pool = ThreadPool::new(n_threads).expect("pool");
        for (n, chunk) in [(0usize, 4usize), (1, 4), (103, 7), (64, 64), (10, 0)] {
            let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
            pool.for_each_chunk(n, chunk, &|r| {
                for i in r {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                }
            });
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                "n {n} chunk {chunk}"
            );
        }
    }
}

/// A matmul issued from inside a pool job (nested use of the same pool) must not deadlock or
/// corrupt the outer job: it runs inline.
#[test]
fn nested_pool_use_runs_inline() {
    use std::sync::atomic::{AtomicU32, Ordering};
    let pool = ThreadPool::new(3).expect("pool");
    let mut r = rng(4);
    let k = kernels_for(Isa::Scalar);
    let (rows, cols) = (384, 256); // large enough to go through the pool
    let (w, _) = weights(&mut r, QuantType::Q8_0, rows, cols);
    let x = randn(&mut r, cols, 1.0);
    let mut want = vec![0.0f32; rows];
    matmul(k, &pool, QuantType::Q8_0, &w, rows, cols, &x, 1, &mut want).expect("matmul");
    let done = AtomicU32::new(0);
    pool.for_each_chunk(8, 1, &|_| {
        let mut y = vec![0.0f32; rows];
        matmul(k, &pool, QuantType::Q8_0, &w, rows, cols, &x, 1, &mut y).expect("matmul");
        assert_eq!(y, want);
        done.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(done.load(Ordering::Relaxed), 8);
}

/// Q4_1 and Q8_0 (SmolLM2's formats) and Q5_0, Q4_K, Q6_K (Gemma 3 270M Q4_K_M's) round
/// exactly as llama.cpp's x86 kernels on both x86 tables: AVX2 and AVX-512 (their four-row,
/// four-token and tile kernels included) agree bit for bit, whatever the thread count.
#[test]
fn x86_tables_agree_bit_for_bit_on_llama_formats() {
    let avail = available_isas();
    if !(avail.contains(&Isa::Avx2) && avail.contains(&Isa::Avx512)) {
        eprintln!("needs AVX2 and AVX-512: nothing to compare on this CPU");
        return;
    }
    let pools: Vec<ThreadPool> = [1, 2]
        .iter()
        .map(|&n| ThreadPool::new(n).expect("pool"))
        .collect();
    let mut r = rng(9);
    for ty in [
        QuantType::Q4_1,
        QuantType::Q8_0,
        QuantType::Q5_0,
        QuantType::Q4_K,
        QuantType::Q6_K,
    ] {
        for &cols in col_sizes(ty) {
            for (rows, n) in [(67usize, 1usize), (66, 1), (67, 5), (8, 4), (37, 17)] {
                let (w, _) = weights(&mut r, ty, rows, cols);
                let x = randn(&mut r, n * cols, 1.0);
                let want = run(Isa::Avx2, &pools[0], ty, &w, rows, cols, &x, n);
                for pool in &pools {
                    let got = run(Isa::Avx512, pool, ty, &w, rows, cols, &x, n);
                    assert_eq!(got, want, "{ty} rows {rows} cols {cols} n {n}");
                }
            }
        }
    }
}
