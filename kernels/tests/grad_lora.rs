//! LoRA forward vs an f64 reference; LoRA backward (dA, dB, dx) vs f64 central finite
//! differences of `Σ r ⊙ (s·B(A x))`; the threaded products give the one-thread bits.

mod grad_common;
use grad_common::*;

use graft_kernels::cpu::ThreadPool;
use graft_kernels::grad::{available_isas, lora_backward_with, lora_forward_with, Isa, LoraShape};

/// f32 kernel vs f64 finite differences (FD error ~1e-9, so this is the kernel's f32 error).
const TOL: f64 = 1e-4;

fn fwd64(sh: LoraShape, x: &[f64], a: &[f64], b: &[f64], s: f64) -> Vec<f64> {
    let mut y = vec![0f64; sh.n_tok * sh.n_out];
    for t in 0..sh.n_tok {
        let u: Vec<f64> = (0..sh.rank)
            .map(|k| {
                (0..sh.n_in)
                    .map(|i| a[k * sh.n_in + i] * x[t * sh.n_in + i])
                    .sum()
            })
            .collect();
        for o in 0..sh.n_out {
            y[t * sh.n_out + o] = s * (0..sh.rank).map(|k| b[o * sh.rank + k] * u[k]).sum::<f64>();
        }
    }
    y
}

#[test]
fn lora_forward_and_backward_match_f64() {
    for isa in available_isas() {
        // rank 8: the AVX2 8-wide strip and the AVX-512 scalar tail; rank 16: full strips;
        // 13 tokens: the 6-token register block and its tail.
        for (n_tok, n_in, n_out, rank) in [(5, 24, 20, 8), (13, 70, 40, 16)] {
            let sh = LoraShape {
                n_tok,
                n_in,
                n_out,
                rank,
            };
            eprintln!("{isa:?} {sh:?}");
            case(isa, sh);
        }
    }
}

fn case(isa: Isa, sh: LoraShape) {
    let s = 2.0f32;
    let mut rng = Rng::new(3);
    let x = rng.vec(sh.n_tok * sh.n_in, 1.0);
    let a = rng.vec(sh.rank * sh.n_in, 0.5);
    let b = rng.vec(sh.n_out * sh.rank, 0.5);
    let r = to64(&rng.vec(sh.n_tok * sh.n_out, 1.0));
    let y0 = rng.vec(sh.n_tok * sh.n_out, 1.0);

    let mut u = vec![0f32; sh.n_tok * sh.rank];
    let mut y = y0.clone();
    let pool = ThreadPool::new(2).expect("thread pool");
    lora_forward_with(isa, sh, &x, &a, &b, s, &mut u, &mut y, &pool);
    let want: Vec<f64> = fwd64(sh, &to64(&x), &to64(&a), &to64(&b), 2.0)
        .iter()
        .zip(&y0)
        .map(|(w, &o)| w + f64::from(o))
        .collect();
    check("lora forward (y += ...)", &y, &want, 1e-6);

    let dy: Vec<f32> = r.iter().map(|&v| v as f32).collect();
    let mut da = vec![0f32; a.len()];
    let mut db = vec![0f32; b.len()];
    let mut dx = vec![0f32; x.len()];
    lora_backward_with(
        isa,
        sh,
        &x,
        &a,
        &b,
        s,
        &u,
        &dy,
        &mut da,
        &mut db,
        Some(&mut dx),
        &pool,
    );

    let (x6, a6, b6) = (to64(&x), to64(&a), to64(&b));
    let h = 1e-5;
    let ga = fd_grad(&a6, h, |p| dotr(&r, &fwd64(sh, &x6, p, &b6, 2.0)));
    let gb = fd_grad(&b6, h, |p| dotr(&r, &fwd64(sh, &x6, &a6, p, 2.0)));
    let gx = fd_grad(&x6, h, |p| dotr(&r, &fwd64(sh, p, &a6, &b6, 2.0)));
    check("lora dA vs FD", &da, &ga, TOL);
    check("lora dB vs FD", &db, &gb, TOL);
    check("lora dx vs FD", &dx, &gx, TOL);

    // Accumulation: a second call adds the same amount again; dx = None leaves dx alone.
    let mut da2 = da.clone();
    let mut db2 = db.clone();
    lora_backward_with(
        isa, sh, &x, &a, &b, s, &u, &dy, &mut da2, &mut db2, None, &pool,
    );
    let twice: Vec<f64> = ga.iter().map(|g| 2.0 * g).collect();
    check("lora dA accumulates", &da2, &twice, TOL);
}

/// Every output of one forward and backward (`u`, `y`, `dA`, `dB`, `dx`) on a pool of
/// `threads`.
fn run_on(isa: Isa, sh: LoraShape, threads: usize) -> [Vec<f32>; 5] {
    let pool = ThreadPool::new(threads).expect("thread pool");
    let mut rng = Rng::new(11);
    let x = rng.vec(sh.n_tok * sh.n_in, 1.0);
    let a = rng.vec(sh.rank * sh.n_in, 0.5);
    let b = rng.vec(sh.n_out * sh.rank, 0.5);
    let dy = rng.vec(sh.n_tok * sh.n_out, 1.0);
    let mut u = vec![0f32; sh.n_tok * sh.rank];
    let mut y = rng.vec(sh.n_tok * sh.n_out, 1.0);
    lora_forward_with(isa, sh, &x, &a, &b, 0.5, &mut u, &mut y, &pool);
    let (mut da, mut db) = (rng.vec(a.len(), 0.1), rng.vec(b.len(), 0.1));
    let mut dx = rng.vec(x.len(), 0.1);
    lora_backward_with(
        isa,
        sh,
        &x,
        &a,
        &b,
        0.5,
        &u,
        &dy,
        &mut da,
        &mut db,
        Some(&mut dx),
        &pool,
    );
    [u, y, da, db, dx]
}

#[test]
fn threaded_products_give_the_one_thread_bits() {
    // 200 tokens: the token products go in row blocks; 300 and 200 columns: dA and dB go in
    // 64-column blocks, the last one with the 16-wide strips and the scalar tail.
    let sh = LoraShape {
        n_tok: 200,
        n_in: 300,
        n_out: 200,
        rank: 16,
    };
    for isa in available_isas() {
        let one = run_on(isa, sh, 1);
        for threads in [2, 3] {
            let many = run_on(isa, sh, threads);
            for (name, (p, q)) in ["u", "y", "dA", "dB", "dx"]
                .iter()
                .zip(one.iter().zip(&many))
            {
                let same = p.iter().zip(q).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{isa:?} {name}: {threads} threads differ from one");
            }
        }
    }
}

/// `lora_project` (u alone, for the forward that adds `s·u·Bᵀ` in the base product's tiles)
/// gives `lora_forward`'s `u` bit for bit, on this CPU's path, on 1 and 2 threads.
#[test]
fn projection_alone_gives_the_forward_u() {
    use graft_kernels::grad::{isa::detect, lora_project};
    let sh = LoraShape {
        n_tok: 45,
        n_in: 200,
        n_out: 72,
        rank: 16,
    };
    let mut rng = Rng::new(77);
    let (x, a, b) = (
        rng.vec(sh.n_tok * sh.n_in, 1.0),
        rng.vec(sh.rank * sh.n_in, 0.3),
        rng.vec(sh.n_out * sh.rank, 0.3),
    );
    for threads in [1, 2] {
        let pool = ThreadPool::new(threads).expect("pool");
        let (mut u1, mut y) = (
            vec![0f32; sh.n_tok * sh.rank],
            vec![0f32; sh.n_tok * sh.n_out],
        );
        lora_forward_with(detect(), sh, &x, &a, &b, 2.0, &mut u1, &mut y, &pool);
        let mut u2 = vec![f32::NAN; sh.n_tok * sh.rank];
        lora_project(sh, &x, &a, &mut u2, &pool);
        assert!(
            u1.iter().zip(&u2).all(|(p, q)| p.to_bits() == q.to_bits()),
            "x{threads}: lora_project's u differs from lora_forward's"
        );
    }
}
