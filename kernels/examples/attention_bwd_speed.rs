//! Times causal GQA attention forward + backward at SmolLM2-135M's shape (9 query heads,
//! 3 kv heads, head_dim 64) for T = 256 tokens, 1 and 2 threads.
//!
//! `cargo run --release -p graft-kernels --example attention_bwd_speed`

use std::time::Instant;

use graft_kernels::grad::{attention_backward, attention_forward, AttnShape};

fn main() {
    let sh = AttnShape {
        n_tok: 256,
        n_head: 9,
        n_kv: 3,
        head_dim: 64,
        scale: None,
        window: None,
    };
    let mut seed = 0x9e37_79b9u32;
    let mut vec = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed as f32 / u32::MAX as f32) - 0.5
            })
            .collect()
    };
    let nq = sh.n_tok * sh.n_head * sh.head_dim;
    let nk = sh.n_tok * sh.n_kv * sh.head_dim;
    let (q, k, v, dout) = (vec(nq), vec(nk), vec(nk), vec(nq));
    let mut out = vec![0f32; nq];
    let mut lse = vec![0f32; sh.n_tok * sh.n_head];
    let (mut dq, mut dk, mut dv) = (vec![0f32; nq], vec![0f32; nk], vec![0f32; nk]);
    for threads in [1, 2] {
        let pool = pool(threads);
        let (mut f, mut b) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..20 {
            let t0 = Instant::now();
            attention_forward(sh, &q, &k, &v, None, &mut out, &mut lse, &pool);
            let t1 = Instant::now();
            attention_backward(
                sh, &q, &k, &v, None, &out, &lse, &dout, &mut dq, &mut dk, &mut dv, &pool,
            );
            f = f.min((t1 - t0).as_secs_f64());
            b = b.min(t1.elapsed().as_secs_f64());
        }
        println!(
            "attention T={} heads {}/{} hd {} threads={threads}: forward {:.2} ms, backward {:.2} ms",
            sh.n_tok,
            sh.n_head,
            sh.n_kv,
            sh.head_dim,
            f * 1e3,
            b * 1e3
        );
    }
}

/// A thread pool of `n` threads for the kernels under test.
fn pool(n: usize) -> graft_kernels::cpu::ThreadPool {
    graft_kernels::cpu::ThreadPool::new(n).expect("thread pool")
}
