//! The LoRA products in bf16 on AMX tiles (`lora_project_bf16`, `lora_backward_g_bf16`)
//! against the f64 sums of the same bf16-rounded operands (so only the f32 sums differ), on
//! shapes that cross the 64-token and 64-column items, the 32-wide reduction chunks (ragged
//! `n_in`, `n_out` and token counts), ranks below, at and above 16; 1–3 threads give the same
//! bits; gradients accumulate into what `dA`/`dB` held; `lora_backward_bf16` gives the same `dA`, `dB`
//! and adds `g·A` to `dx`. Where bf16 products do not run on AMX
//! tiles both decline and touch nothing.

mod grad_common;
use grad_common::*;

use graft_kernels::grad::bf16::round_f32;
use graft_kernels::grad::{lora_backward_bf16, lora_backward_g_bf16, lora_project_bf16, LoraShape};

/// f32 sums of exact bf16 products against their f64 sum.
const TOL: f64 = 1e-5;

fn r64(v: f32) -> f64 {
    f64::from(round_f32(v))
}

/// The four products of one shape, each checked and compared across thread counts.
fn case(n_tok: usize, n_in: usize, n_out: usize, rank: usize, seed: u64) {
    let sh = LoraShape {
        n_tok,
        n_in,
        n_out,
        rank,
    };
    let mut rng = Rng::new(seed);
    let x = rng.vec(n_tok * n_in, 1.0);
    let a = rng.vec(rank * n_in, 0.5);
    let b = rng.vec(n_out * rank, 0.5);
    let u_in = rng.vec(n_tok * rank, 1.0);
    let dy = rng.vec(n_tok * n_out, 1.0);
    let da0 = rng.vec(rank * n_in, 1.0);
    let db0 = rng.vec(n_out * rank, 1.0);
    let s = 1.5f32;

    // u = x Aᵀ.
    let mut want_u = vec![0f64; n_tok * rank];
    for t in 0..n_tok {
        for j in 0..rank {
            want_u[t * rank + j] = (0..n_in)
                .map(|c| r64(x[t * n_in + c]) * r64(a[j * n_in + c]))
                .sum();
        }
    }
    // g = s · dy B (f32 sums, then scaled); dA, dB from the kernel's own g, rounded.
    let mut want_g = vec![0f64; n_tok * rank];
    for t in 0..n_tok {
        for j in 0..rank {
            let sum: f64 = (0..n_out)
                .map(|o| r64(dy[t * n_out + o]) * r64(b[o * rank + j]))
                .sum();
            want_g[t * rank + j] = f64::from(s) * sum;
        }
    }

    let mut first: Option<[Vec<f32>; 4]> = None;
    for threads in [1, 2, 3] {
        let pool = pool(threads);
        let name = format!("T={n_tok} in={n_in} out={n_out} r={rank} x{threads}");
        let mut u = vec![f32::NAN; n_tok * rank];
        if !lora_project_bf16(sh, &x, &a, &mut u, &pool) {
            assert!(u.iter().all(|v| v.is_nan()), "declined but wrote");
            let (mut da, mut db, mut g) = (da0.clone(), db0.clone(), vec![f32::NAN; n_tok * rank]);
            assert!(!lora_backward_g_bf16(
                sh, &x, &b, s, &u_in, &dy, &mut da, &mut db, &mut g, &pool
            ));
            assert!(da == da0 && db == db0 && g.iter().all(|v| v.is_nan()));
            println!("bf16 products do not run on AMX here: the LoRA products decline");
            return;
        }
        check(&format!("u {name}"), &u, &want_u, TOL);

        let (mut da, mut db, mut g) = (da0.clone(), db0.clone(), vec![f32::NAN; n_tok * rank]);
        assert!(lora_backward_g_bf16(
            sh, &x, &b, s, &u_in, &dy, &mut da, &mut db, &mut g, &pool
        ));
        check(&format!("g {name}"), &g, &want_g, TOL);
        let mut want_da = vec![0f64; rank * n_in];
        for j in 0..rank {
            for c in 0..n_in {
                let sum: f64 = (0..n_tok)
                    .map(|t| r64(g[t * rank + j]) * r64(x[t * n_in + c]))
                    .sum();
                want_da[j * n_in + c] = f64::from(da0[j * n_in + c]) + sum;
            }
        }
        let mut want_db = vec![0f64; n_out * rank];
        for o in 0..n_out {
            for j in 0..rank {
                let sum: f64 = (0..n_tok)
                    .map(|t| r64(u_in[t * rank + j]) * r64(dy[t * n_out + o]))
                    .sum();
                want_db[o * rank + j] = f64::from(db0[o * rank + j]) + f64::from(s) * sum;
            }
        }
        // dA and dB are accumulated into values of size ~1: check the added part relative to
        // itself, not to what was there.
        let minus = |got: &[f32], base: &[f32]| -> Vec<f32> {
            got.iter().zip(base).map(|(g, b)| g - b).collect()
        };
        let less = |want: &[f64], base: &[f32]| -> Vec<f64> {
            want.iter()
                .zip(base)
                .map(|(w, &b)| w - f64::from(b))
                .collect()
        };
        check(
            &format!("dA {name}"),
            &minus(&da, &da0),
            &less(&want_da, &da0),
            TOL,
        );
        check(
            &format!("dB {name}"),
            &minus(&db, &db0),
            &less(&want_db, &db0),
            TOL,
        );
        // The whole backward: the same dA, dB, and dx += g·A in f32.
        let dx0 = vec![0.25f32; n_tok * n_in];
        let (mut da2, mut db2, mut dx) = (da0.clone(), db0.clone(), dx0.clone());
        assert!(lora_backward_bf16(
            sh,
            &x,
            &a,
            &b,
            s,
            &u_in,
            &dy,
            &mut da2,
            &mut db2,
            Some(&mut dx),
            &pool
        ));
        assert!(
            da2 == da && db2 == db,
            "{name}: lora_backward_bf16's dA/dB differ"
        );
        let mut want_dx = vec![0f64; n_tok * n_in];
        for t in 0..n_tok {
            for c in 0..n_in {
                let sum: f64 = (0..rank)
                    .map(|j| f64::from(g[t * rank + j]) * f64::from(a[j * n_in + c]))
                    .sum();
                want_dx[t * n_in + c] = sum;
            }
        }
        check(&format!("dx {name}"), &minus(&dx, &dx0), &want_dx, TOL);
        let got = [u, g, da, db];
        match &first {
            None => first = Some(got),
            Some(f) => {
                let same =
                    |p: &[f32], q: &[f32]| p.iter().zip(q).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    got.iter().zip(f).all(|(p, q)| same(p, q)),
                    "{name}: differs from one thread's"
                );
            }
        }
    }
}

/// The model's shapes (rank 16, 576/192/1536 features) on a short batch.
#[test]
fn model_shapes() {
    case(200, 576, 192, 16, 1);
    case(130, 1536, 576, 16, 2);
}

/// Ragged everything: token counts off the 32/64 grid, features off the 16/32/64 grid, ranks
/// 5 and 20 (one partial 16-block, and one full plus a partial).
#[test]
fn ragged_shapes() {
    case(45, 70, 33, 5, 3);
    case(97, 100, 130, 20, 4);
    case(1, 17, 3, 1, 5);
}
