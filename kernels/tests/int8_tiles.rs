//! The AMX-INT8 prefill GEMM (`Isa::Amx`, [`graft_kernels::cpu::Int8Tiles`]) against the scalar
//! kernels (`vec_dot` of each row on per-row quantized activations) and the AVX-512 matmul, on the shapes its tiles make special: token counts around the
//! 16-token tile, partial 16-row panels, odd block counts, 1–3 threads.
//!
//! Tolerance: every block's integer sum is exact on both sides; the f32 results differ only in
//! how the per-block terms `sumi · d_w · d_a (+ m_w · s_a)` are rounded and summed (a tile
//! scales then accumulates per block with FMAs; the dot kernels multiply the scales first and
//! sum in other orders). That is at most a few ulps per block relative to `Σ |w x|`: with
//! ≤ 48 blocks, 2e-6 of `Σ |w x|` bounds it with room (measured: under 5e-7).

mod common;

use common::run_matmul as run;
use common::*;
use graft_kernels::cpu::matmul::INT8_TILES_MIN_TOKENS;
use graft_kernels::cpu::{available_isas, kernels_for, Isa, ThreadPool};
use graft_quant::QuantType;

const TOL: f64 = 2e-6;
/// Against a matmul whose activations were quantized by another (valid) rule: a code off by one
/// in a block moves a result by about `d_a · |w|`, ~1e-4 of `Σ |w x|` at worst here.
const TOL_GROUPED: f64 = 5e-4;

/// The formats with an int8 tile GEMM on AMX.
const TILE_FORMATS: [QuantType; 8] = [
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
];

/// The scalar kernels' `vec_dot` of every (row, token) on activations quantized row by row
/// (the quantizer the tiles use for every format).
fn per_row_scalar(
    ty: QuantType,
    w: &[u8],
    rows: usize,
    cols: usize,
    x: &[f32],
    n: usize,
) -> Vec<f32> {
    let k = kernels_for(Isa::Scalar);
    let fk = k.format(ty).expect("format");
    let arow = fk.act.row_bytes(cols);
    let row_bytes = w.len() / rows;
    let mut y = vec![0.0f32; rows * n];
    let mut a = vec![0u8; arow];
    for t in 0..n {
        k.quantize_act(fk.act, &x[t * cols..(t + 1) * cols], &mut a);
        for r in 0..rows {
            y[t * rows + r] = (fk.vec_dot)(&w[r * row_bytes..(r + 1) * row_bytes], &a);
        }
    }
    y
}

/// Where the CPU lists AMX-INT8/BF16 and AVX512-BF16, the AMX path must be detected (a failed
/// detection would otherwise skip every AMX test without a word); elsewhere it must not be.
#[test]
fn amx_detected_where_the_cpu_has_it() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or("");
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    // An aarch64 build run under qemu-user reads the x86 host's /proc/cpuinfo: only an x86_64
    // build can have the path.
    let cpu_has_amx = cfg!(target_arch = "x86_64")
        && [
            "amx_int8",
            "amx_bf16",
            "amx_tile",
            "avx512_bf16",
            "avx512f",
            "avx512bw",
        ]
        .iter()
        .all(|f| has(f))
        && ["avx512vl", "avx512_vnni"].iter().all(|f| has(f));
    assert_eq!(
        Isa::Amx.is_available(),
        cpu_has_amx,
        "/proc/cpuinfo {} AMX-INT8/BF16 and AVX512-BF16, detection says {}",
        if cpu_has_amx {
            "lists"
        } else {
            "does not list"
        },
        Isa::Amx.is_available()
    );
    if cpu_has_amx {
        assert_eq!(available_isas().last(), Some(&Isa::Amx));
        let k = kernels_for(Isa::Amx);
        for ty in TILE_FORMATS {
            assert!(k.format(ty).expect("format").int8_tiles.is_some(), "{ty}");
        }
    }
}

#[test]
fn amx_tiles_match_scalar_and_avx512() {
    if !Isa::Amx.is_available() {
        eprintln!("no AMX on this CPU (amx_detected_where_the_cpu_has_it checks that is right)");
        return;
    }
    let pools: Vec<ThreadPool> = [1, 2, 3]
        .iter()
        .map(|&n| ThreadPool::new(n).expect("pool"))
        .collect();
    let mut r = rng(21);
    let mut worst = 0.0f64;
    for ty in TILE_FORMATS {
        let cols_list: &[usize] = if ty.block_size() == 256 {
            &[256, 512, 1536, 2816]
        } else {
            &[32, 64, 576, 608, 1536]
        };
        for &cols in cols_list {
            for (rows, n) in [
                (16usize, INT8_TILES_MIN_TOKENS),
                (37, 17),
                (1, 31),
                (64, 32),
                (33, 50),
                (192, 128),
                // More than the driver's 8 panels written together per chunk, a partial last.
                (600, 20),
            ] {
                let (w, deq) = weights(&mut r, ty, rows, cols);
                let (wbuf, off) = misaligned(&w);
                let wm = &wbuf[off..];
                let x = randn(&mut r, n * cols, 1.0);
                let (_, mag) = oracle(&deq, rows, cols, &x, n);
                let scalar = per_row_scalar(ty, &w, rows, cols, &x, n);
                let avx512 = run(Isa::Avx512, &pools[0], ty, &w, rows, cols, &x, n);
                // Q4_K's matmul quantizes tokens in groups of four with llama.cpp's grouped
                // Q8_K rule (the sign of a block's scale when +amax and -amax both occur, ties),
                // the tiles row by row with the per-row quantizer: a rare code differs by one.
                let tol_avx512 = if ty == QuantType::Q4_K {
                    TOL_GROUPED
                } else {
                    TOL
                };
                let first = run(Isa::Amx, &pools[0], ty, wm, rows, cols, &x, n);
                for pool in &pools {
                    let got = run(Isa::Amx, pool, ty, wm, rows, cols, &x, n);
                    assert_eq!(
                        bits(&got),
                        bits(&first),
                        "{ty} rows {rows} cols {cols} n {n}: {} threads changed bits",
                        pool.n_threads()
                    );
                }
                for (i, &g) in first.iter().enumerate() {
                    for (name, want, tol) in [
                        ("scalar", scalar[i], TOL),
                        ("avx512", avx512[i], tol_avx512),
                    ] {
                        let err = (g as f64 - want as f64).abs() / mag[i];
                        if tol == TOL {
                            worst = worst.max(err);
                        }
                        assert!(
                            err < tol,
                            "{ty} rows {rows} cols {cols} n {n}: elem {i} amx {g} {name} {want} rel err {err:e}"
                        );
                    }
                }
            }
        }
    }
    eprintln!("worst relative difference: {worst:e}");
}

/// Below [`INT8_TILES_MIN_TOKENS`] tokens the AMX table runs the AVX-512 kernels: bit-equal.
#[test]
fn short_batches_are_the_avx512_kernels() {
    if !Isa::Amx.is_available() {
        eprintln!("no AMX on this CPU (amx_detected_where_the_cpu_has_it checks that is right)");
        return;
    }
    let pool = ThreadPool::new(2).expect("pool");
    let mut r = rng(22);
    for ty in TILE_FORMATS {
        for n in [1usize, 4, INT8_TILES_MIN_TOKENS - 1] {
            let (rows, cols) = (67, 768);
            let (w, _) = weights(&mut r, ty, rows, cols);
            let x = randn(&mut r, n * cols, 1.0);
            assert_eq!(
                bits(&run(Isa::Amx, &pool, ty, &w, rows, cols, &x, n)),
                bits(&run(Isa::Avx512, &pool, ty, &w, rows, cols, &x, n)),
                "{ty} n {n}"
            );
        }
    }
}
