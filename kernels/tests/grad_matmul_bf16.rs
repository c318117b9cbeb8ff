//! The bf16 training matmuls (`matmul_fwd_bf16`, `matmul_t_bf16`): every format × every bf16
//! path this CPU has (emulated everywhere, AMX where present) × {1, 2, 3} threads, against the
//! f64 product of the same operands rounded to bf16 (so only the f32 sums differ: 1e-5
//! relative); each path gives the same bits on any number of threads; shapes cross the
//! 32-token and 32-row blocks, the 128-token items, the 64/256-column panels, the 1024-wide
//! reduction chunks and the 4 MiB ranges of packed panels;
//! weights at an odd byte offset, outputs pre-filled (overwritten by the forward, accumulated
//! into by the backward).

mod grad_common;
use grad_common::*;

use graft_kernels::grad::bf16::{round_f32, Bf16Path};
use graft_kernels::grad::{
    matmul_fwd_bf16_with, matmul_fwd_with, matmul_t_bf16_set, matmul_t_bf16_with, Isa,
};
use graft_quant::blocks::{dequantize, quantize};
use graft_quant::QuantType;

/// f32 sums of exact bf16 products against their f64 sum.
const TOL: f64 = 1e-5;

struct Case {
    ty: QuantType,
    rows: usize,
    cols: usize,
    n_tok: usize,
    seed: u64,
}

impl Case {
    fn run(&self) {
        let Case {
            ty,
            rows,
            cols,
            n_tok,
            seed,
        } = *self;
        let mut rng = Rng::new(seed);
        let bytes = quantize(ty, &rng.vec(rows * cols, 1.0)).expect("quantize");
        let mut store = vec![0u8; bytes.len() + 1];
        store[1..].copy_from_slice(&bytes);
        let wb = &store[1..];
        let mut wd = vec![0f32; rows * cols];
        dequantize(ty, &bytes, &mut wd).expect("dequantize");
        let wr: Vec<f64> = wd.iter().map(|&v| f64::from(round_f32(v))).collect();
        let x = rng.vec(n_tok * cols, 1.0);
        let dy = rng.vec(n_tok * rows, 1.0);
        let (xr, dyr): (Vec<f64>, Vec<f64>) = (
            x.iter().map(|&v| f64::from(round_f32(v))).collect(),
            dy.iter().map(|&v| f64::from(round_f32(v))).collect(),
        );
        let dx0 = rng.vec(n_tok * cols, 1.0);
        let mut want_y = vec![0f64; n_tok * rows];
        let mut want_dx: Vec<f64> = to64(&dx0);
        for t in 0..n_tok {
            for r in 0..rows {
                want_y[t * rows + r] = (0..cols).map(|c| wr[r * cols + c] * xr[t * cols + c]).sum();
            }
            for c in 0..cols {
                want_dx[t * cols + c] += (0..rows)
                    .map(|r| wr[r * cols + c] * dyr[t * rows + r])
                    .sum::<f64>();
            }
        }
        let garbage = rng.vec(n_tok * rows, 100.0);
        for path in Bf16Path::available() {
            let mut first: Option<(Vec<f32>, Vec<f32>)> = None;
            for threads in [1, 2, 3] {
                let name = format!("{ty} {rows}x{cols} T={n_tok} {} x{threads}", path.name());
                let mut y = garbage.clone();
                matmul_fwd_bf16_with(path, ty, wb, rows, cols, &x, n_tok, &mut y, &pool(threads))
                    .expect("forward");
                check(&format!("{name} forward"), &y, &want_y, TOL);
                let mut dx = dx0.clone();
                matmul_t_bf16_with(
                    path,
                    ty,
                    wb,
                    rows,
                    cols,
                    &dy,
                    n_tok,
                    &mut dx,
                    &pool(threads),
                )
                .expect("backward");
                check(&format!("{name} backward"), &dx, &want_dx, TOL);
                if path == Bf16Path::detect() {
                    // The overwriting backward: the bits of accumulating into zeros, whatever
                    // the buffer held (NaN here).
                    let mut want = vec![0f32; n_tok * cols];
                    let p = pool(threads);
                    matmul_t_bf16_with(path, ty, wb, rows, cols, &dy, n_tok, &mut want, &p)
                        .expect("backward into zeros");
                    let mut set = vec![f32::NAN; n_tok * cols];
                    matmul_t_bf16_set(ty, wb, rows, cols, &dy, n_tok, &mut set, &p)
                        .expect("overwriting backward");
                    assert!(
                        set.iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{name}: the overwriting backward differs from accumulating into zeros"
                    );
                }
                match &first {
                    None => first = Some((y, dx)),
                    Some((y1, dx1)) => {
                        assert!(
                            y.iter().zip(y1).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{name}: forward differs from one thread's"
                        );
                        assert!(
                            dx.iter().zip(dx1).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{name}: backward differs from one thread's"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_format_every_bf16_path() {
    for (i, ty) in TILED_FORMATS.into_iter().enumerate() {
        // 150 rows: forward panels of 64, 64, 22 and 32-row blocks with a 22-row tail;
        // 45 tokens: a full 32-token block and a 13-token tail.
        let cols = match ty.block_size() {
            256 => 512,
            64 => 320,
            _ => 288,
        };
        Case {
            ty,
            rows: 150,
            cols,
            n_tok: 45,
            seed: 300 + i as u64,
        }
        .run();
    }
}

#[test]
fn reductions_longer_than_one_chunk() {
    // 1,280 columns (forward) and 1,100 rows (backward): two 1024-wide reduction chunks, the
    // second partial, odd in pairs of rows for the backward (1,100 = 34·32 + 12).
    Case {
        ty: QuantType::Q4_1,
        rows: 1100,
        cols: 1280,
        n_tok: 70,
        seed: 41,
    }
    .run();
    Case {
        ty: QuantType::Q4_K,
        rows: 33,
        cols: 2304,
        n_tok: 64,
        seed: 42,
    }
    .run();
}

#[test]
fn batches_of_several_token_items() {
    // 300 tokens: the AMX path's items of 128 tokens (128, 128 and a 44-token tail, its last
    // 32-token block partial), each item over every panel.
    Case {
        ty: QuantType::Q8_0,
        rows: 150,
        cols: 288,
        n_tok: 300,
        seed: 45,
    }
    .run();
}

#[test]
fn float_weights_with_ragged_tails() {
    // Odd reduction lengths: zero padding to the 32-wide chunks on both operands.
    Case {
        ty: QuantType::F32,
        rows: 19,
        cols: 75,
        n_tok: 9,
        seed: 43,
    }
    .run();
    Case {
        ty: QuantType::F16,
        rows: 67,
        cols: 301,
        n_tok: 33,
        seed: 44,
    }
    .run();
}

#[test]
fn bf16_stays_close_to_f32() {
    // Rounding both operands to 8-bit mantissas moves a length-576 dot product of unit-scale
    // values by ~2^-8 relative to its spread; 2% of the largest output bounds it loosely.
    let (rows, cols, n_tok) = (96, 576, 40);
    let mut rng = Rng::new(7);
    let bytes = quantize(QuantType::Q8_0, &rng.vec(rows * cols, 1.0)).expect("quantize");
    let x = rng.vec(n_tok * cols, 1.0);
    let mut f32y = vec![0f32; n_tok * rows];
    matmul_fwd_with(
        Isa::Scalar,
        QuantType::Q8_0,
        &bytes,
        rows,
        cols,
        &x,
        n_tok,
        &mut f32y,
        &pool(1),
    )
    .expect("f32");
    for path in Bf16Path::available() {
        let mut y = vec![0f32; n_tok * rows];
        matmul_fwd_bf16_with(
            path,
            QuantType::Q8_0,
            &bytes,
            rows,
            cols,
            &x,
            n_tok,
            &mut y,
            &pool(2),
        )
        .expect("bf16");
        let e = rel_err(&y, &to64(&f32y));
        println!("{}: bf16 vs f32 rel err {e:.3e}", path.name());
        assert!(e < 2e-2, "{}: bf16 vs f32 rel err {e}", path.name());
        assert!(
            e > 0.0,
            "bf16 rounding changed nothing: the path did not round"
        );
    }
}

/// A weight packed once ([`PackedBf16`]) gives the per-call packing's bits, forward and
/// backward, across partial panels, several 1024-row reduction chunks and 2 threads; a pack
/// for one product refuses the other; packs exist exactly where the AMX path runs.
#[test]
fn packed_weights_give_the_per_call_bits() {
    use graft_kernels::cpu::ThreadPool;
    use graft_kernels::grad::{matmul_fwd_bf16, matmul_t_bf16, GradError, PackedBf16, PackedFor};
    let pool = ThreadPool::new(2).expect("thread pool");
    for (ty, rows, cols, n_tok) in [
        (QuantType::Q8_0, 1100, 96, 45),
        (QuantType::Q4_1, 200, 2080, 33),
        (QuantType::Q4_K, 130, 512, 70),
    ] {
        let mut rng = Rng::new(5);
        let w = quantize(ty, &rng.vec(rows * cols, 1.0)).expect("quantize");
        let x = rng.vec(n_tok * cols, 1.0);
        let dy = rng.vec(n_tok * rows, 1.0);
        let fwd = PackedBf16::new(PackedFor::Forward, ty, &w, rows, cols, &pool).expect("pack");
        let bwd = PackedBf16::new(PackedFor::Backward, ty, &w, rows, cols, &pool).expect("pack");
        let (Some(fwd), Some(bwd)) = (fwd, bwd) else {
            assert!(
                !Bf16Path::Amx.is_available(),
                "{ty}: no pack although the AMX path is available"
            );
            continue;
        };
        assert_eq!(
            fwd.bytes(),
            PackedBf16::bytes_for(PackedFor::Forward, ty, rows, cols)
        );
        assert_eq!(
            bwd.bytes(),
            PackedBf16::bytes_for(PackedFor::Backward, ty, rows, cols)
        );
        let (mut y1, mut y2) = (vec![0f32; n_tok * rows], vec![1f32; n_tok * rows]);
        matmul_fwd_bf16(ty, &w, rows, cols, &x, n_tok, &mut y1, &pool).expect("fwd");
        fwd.matmul_fwd(&x, n_tok, &mut y2, &pool)
            .expect("packed fwd");
        assert!(
            y1.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{ty} forward"
        );
        let dx0 = rng.vec(n_tok * cols, 1.0);
        let (mut d1, mut d2) = (dx0.clone(), dx0);
        matmul_t_bf16(ty, &w, rows, cols, &dy, n_tok, &mut d1, &pool).expect("bwd");
        bwd.matmul_t(&dy, n_tok, &mut d2, &pool)
            .expect("packed bwd");
        assert!(
            d1.iter().zip(&d2).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{ty} backward"
        );
        let wrong = fwd.matmul_t(&dy, n_tok, &mut d2, &pool);
        assert!(
            matches!(wrong, Err(GradError::PackedForOther { .. })),
            "{wrong:?}"
        );
        let short = fwd.matmul_fwd(&x[1..], n_tok, &mut y2, &pool);
        assert!(matches!(short, Err(GradError::Shape { .. })), "{short:?}");
    }
}

/// The forward with an adapter term in the same tile pass (`matmul_fwd_bf16_lora`): `x·Wᵀ +
/// s·u·Bᵀ` against the f64 sum of the bf16-rounded products (`u` and `s·B` rounded as the
/// tiles take them), across panels and 128-token items, ranks 16 and 32 and a rank that
/// leaves most of the step zero, 1–3 threads with the same bits; AMX only (elsewhere it
/// declines and touches nothing).
#[test]
fn forward_with_a_lora_tail() {
    use graft_kernels::grad::{matmul_fwd_bf16_lora, LoraTail};
    for (rows, cols, n_tok, rank, seed) in [
        (150, 288, 45, 16, 50),
        (96, 1280, 300, 32, 51),
        (70, 64, 33, 3, 52),
    ] {
        let mut rng = Rng::new(seed);
        let ty = QuantType::Q4_1;
        let bytes = quantize(ty, &rng.vec(rows * cols, 1.0)).expect("quantize");
        let mut wd = vec![0f32; rows * cols];
        dequantize(ty, &bytes, &mut wd).expect("dequantize");
        let x = rng.vec(n_tok * cols, 1.0);
        let u = rng.vec(n_tok * rank, 1.0);
        let b = rng.vec(rows * rank, 0.5);
        let s = 2.0f32;
        let r64 = |v: f32| f64::from(round_f32(v));
        let mut want = vec![0f64; n_tok * rows];
        for t in 0..n_tok {
            for r in 0..rows {
                let base: f64 = (0..cols)
                    .map(|c| r64(wd[r * cols + c]) * r64(x[t * cols + c]))
                    .sum();
                let tail: f64 = (0..rank)
                    .map(|j| r64(u[t * rank + j]) * r64(s * b[r * rank + j]))
                    .sum();
                want[t * rows + r] = base + tail;
            }
        }
        let tail = LoraTail {
            u: &u,
            b: &b,
            rank,
            scale: s,
        };
        let mut first: Option<Vec<f32>> = None;
        for threads in [1, 2, 3] {
            let mut y = vec![f32::NAN; n_tok * rows];
            let fused = matmul_fwd_bf16_lora(
                ty,
                &bytes,
                rows,
                cols,
                &x,
                n_tok,
                &mut y,
                &tail,
                &pool(threads),
            )
            .expect("fused forward");
            if !fused {
                assert!(y.iter().all(|v| v.is_nan()), "declined but wrote");
                println!("bf16 products do not run on AMX here: the fused forward declines");
                return;
            }
            let name = format!("lora tail {rows}x{cols} T={n_tok} r={rank} x{threads}");
            check(&name, &y, &want, TOL);
            match &first {
                None => first = Some(y),
                Some(y1) => assert!(
                    y.iter().zip(y1).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{name}: differs from one thread's"
                ),
            }
        }
    }
}

/// The backward with the adapter's input gradient in the same tile pass
/// (`matmul_t_bf16_lora`): `dx (+)= dy·W + g·A` against the f64 sum of the bf16-rounded
/// products, accumulating and overwriting (NaN-filled), across 64/256-column panels, two
/// 1024-row reduction chunks and 128-token items; 1–3 threads with the same bits; AMX only.
#[test]
fn backward_with_a_lora_tail() {
    use graft_kernels::grad::matmul_t_bf16_lora;
    for (ty, rows, cols, n_tok, rank, seed) in [
        (QuantType::Q4_1, 150, 288, 45, 16, 60),
        (QuantType::Q8_0, 1100, 96, 300, 32, 61),
        (QuantType::Q4_K, 40, 512, 33, 5, 62),
    ] {
        let mut rng = Rng::new(seed);
        let bytes = quantize(ty, &rng.vec(rows * cols, 1.0)).expect("quantize");
        let mut wd = vec![0f32; rows * cols];
        dequantize(ty, &bytes, &mut wd).expect("dequantize");
        let dy = rng.vec(n_tok * rows, 1.0);
        let g = rng.vec(n_tok * rank, 1.0);
        let a = rng.vec(rank * cols, 0.5);
        let dx0 = rng.vec(n_tok * cols, 1.0);
        let r64 = |v: f32| f64::from(round_f32(v));
        let mut prod = vec![0f64; n_tok * cols];
        for t in 0..n_tok {
            for c in 0..cols {
                let base: f64 = (0..rows)
                    .map(|r| r64(wd[r * cols + c]) * r64(dy[t * rows + r]))
                    .sum();
                let tail: f64 = (0..rank)
                    .map(|j| r64(g[t * rank + j]) * r64(a[j * cols + c]))
                    .sum();
                prod[t * cols + c] = base + tail;
            }
        }
        let added: Vec<f64> = prod
            .iter()
            .zip(&dx0)
            .map(|(p, &d)| p + f64::from(d))
            .collect();
        for accumulate in [true, false] {
            let want = if accumulate { &added } else { &prod };
            let mut first: Option<Vec<f32>> = None;
            for threads in [1, 2, 3] {
                let mut dx = if accumulate {
                    dx0.clone()
                } else {
                    vec![f32::NAN; n_tok * cols]
                };
                let fused = matmul_t_bf16_lora(
                    ty,
                    &bytes,
                    rows,
                    cols,
                    &dy,
                    n_tok,
                    &mut dx,
                    accumulate,
                    &g,
                    &a,
                    rank,
                    &pool(threads),
                )
                .expect("fused backward");
                if !fused {
                    println!("bf16 products do not run on AMX here: the fused backward declines");
                    return;
                }
                let name = format!("{ty} lora tail backward {rows}x{cols} T={n_tok} r={rank} acc={accumulate} x{threads}");
                check(&name, &dx, want, TOL);
                match &first {
                    None => first = Some(dx),
                    Some(d1) => assert!(
                        dx.iter().zip(d1).all(|(p, q)| p.to_bits() == q.to_bits()),
                        "{name}: differs from one thread's"
                    ),
                }
            }
        }
    }
}

/// The forward that computes the adapter's `u = x·Aᵀ` in its own pass
/// (`matmul_fwd_bf16_lora_project`): `u` against the f64 sum of the rounded products, and `y`
/// equal bit for bit to `matmul_fwd_bf16_lora` given that `u`; across 128-token items and panel
/// splits (1–3 threads, one set of bits), ranks 16, 32 and 5, a 1024+-wide reduction; AMX only.
#[test]
fn forward_that_projects_its_lora_input() {
    use graft_kernels::grad::{matmul_fwd_bf16_lora, matmul_fwd_bf16_lora_project, LoraTail};
    for (rows, cols, n_tok, rank, seed) in [
        (150, 288, 45, 16, 70),
        (96, 1280, 300, 32, 71),
        (70, 64, 33, 5, 72),
    ] {
        let mut rng = Rng::new(seed);
        let ty = QuantType::Q4_1;
        let bytes = quantize(ty, &rng.vec(rows * cols, 1.0)).expect("quantize");
        let x = rng.vec(n_tok * cols, 1.0);
        let a = rng.vec(rank * cols, 0.5);
        let b = rng.vec(rows * rank, 0.5);
        let s = 2.0f32;
        let r64 = |v: f32| f64::from(round_f32(v));
        let mut want_u = vec![0f64; n_tok * rank];
        for t in 0..n_tok {
            for j in 0..rank {
                want_u[t * rank + j] = (0..cols)
                    .map(|c| r64(x[t * cols + c]) * r64(a[j * cols + c]))
                    .sum();
            }
        }
        let mut first: Option<(Vec<f32>, Vec<f32>)> = None;
        for threads in [1, 2, 3] {
            let p = pool(threads);
            let (mut y, mut u) = (vec![f32::NAN; n_tok * rows], vec![f32::NAN; n_tok * rank]);
            let fused = matmul_fwd_bf16_lora_project(
                ty, &bytes, rows, cols, &x, n_tok, &mut y, &a, &b, rank, s, &mut u, &p,
            )
            .expect("projecting forward");
            if !fused {
                assert!(y.iter().chain(&u).all(|v| v.is_nan()), "declined but wrote");
                println!("bf16 products do not run on AMX here: the projecting forward declines");
                return;
            }
            let name = format!("lora project {rows}x{cols} T={n_tok} r={rank} x{threads}");
            check(&name, &u, &want_u, TOL);
            let tail = LoraTail {
                u: &u,
                b: &b,
                rank,
                scale: s,
            };
            let mut y2 = vec![f32::NAN; n_tok * rows];
            assert!(
                matmul_fwd_bf16_lora(ty, &bytes, rows, cols, &x, n_tok, &mut y2, &tail, &p)
                    .expect("fused forward")
            );
            assert!(
                y.iter().zip(&y2).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{name}: y differs from the forward given that u"
            );
            match &first {
                None => first = Some((y, u)),
                Some((y1, u1)) => assert!(
                    y.iter()
                        .zip(y1)
                        .chain(u.iter().zip(u1))
                        .all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{name}: differs from one thread's"
                ),
            }
        }
    }
}

/// The backward that computes the adapter's `g = s·dy·B` in its own pass
/// (`matmul_t_bf16_lora_project`): `g` against the f64 sum of the rounded products (scaled),
/// and `dx` equal bit for bit to `matmul_t_bf16_lora` given that `g`, accumulating and
/// overwriting; 64/256-column panels, two 1024-row reduction chunks, 1–3 threads with one set
/// of bits; AMX only.
#[test]
fn backward_that_projects_its_lora_gradient() {
    use graft_kernels::grad::{matmul_t_bf16_lora, matmul_t_bf16_lora_project};
    for (ty, rows, cols, n_tok, rank, seed) in [
        (QuantType::Q4_1, 150, 288, 45, 16, 80),
        (QuantType::Q8_0, 1100, 96, 300, 32, 81),
        (QuantType::Q4_K, 40, 512, 33, 5, 82),
    ] {
        let mut rng = Rng::new(seed);
        let bytes = quantize(ty, &rng.vec(rows * cols, 1.0)).expect("quantize");
        let dy = rng.vec(n_tok * rows, 1.0);
        let a = rng.vec(rank * cols, 0.5);
        let b = rng.vec(rows * rank, 0.5);
        let dx0 = rng.vec(n_tok * cols, 1.0);
        let s = 1.5f32;
        let r64 = |v: f32| f64::from(round_f32(v));
        let mut want_g = vec![0f64; n_tok * rank];
        for t in 0..n_tok {
            for j in 0..rank {
                let sum: f64 = (0..rows)
                    .map(|o| r64(dy[t * rows + o]) * r64(b[o * rank + j]))
                    .sum();
                want_g[t * rank + j] = f64::from(s) * sum;
            }
        }
        for accumulate in [true, false] {
            let mut first: Option<(Vec<f32>, Vec<f32>)> = None;
            for threads in [1, 2, 3] {
                let p = pool(threads);
                let start = || {
                    if accumulate {
                        dx0.clone()
                    } else {
                        vec![f32::NAN; n_tok * cols]
                    }
                };
                let (mut dx, mut g) = (start(), vec![f32::NAN; n_tok * rank]);
                let fused = matmul_t_bf16_lora_project(
                    ty, &bytes, rows, cols, &dy, n_tok, &mut dx, accumulate, &a, &b, rank, s,
                    &mut g, &p,
                )
                .expect("projecting backward");
                if !fused {
                    assert!(g.iter().all(|v| v.is_nan()), "declined but wrote");
                    println!(
                        "bf16 products do not run on AMX here: the projecting backward declines"
                    );
                    return;
                }
                let name = format!("{ty} lora project backward {rows}x{cols} T={n_tok} r={rank} acc={accumulate} x{threads}");
                check(&name, &g, &want_g, TOL);
                let mut dx2 = start();
                assert!(matmul_t_bf16_lora(
                    ty, &bytes, rows, cols, &dy, n_tok, &mut dx2, accumulate, &g, &a, rank, &p,
                )
                .expect("fused backward"));
                assert!(
                    dx.iter().zip(&dx2).all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{name}: dx differs from the backward given that g"
                );
                match &first {
                    None => first = Some((dx, g)),
                    Some((d1, g1)) => assert!(
                        dx.iter()
                            .zip(d1)
                            .chain(g.iter().zip(g1))
                            .all(|(p, q)| p.to_bits() == q.to_bits()),
                        "{name}: differs from one thread's"
                    ),
                }
            }
        }
    }
}
