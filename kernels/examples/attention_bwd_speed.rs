//! Times causal GQA attention forward + backward at SmolLM2-135M's shape (9 query heads,
//! 3 kv heads, head_dim 64) for T = 256 tokens, 1 and 2 threads, as one sequence and as two
//! packed sequences of 128; prints a hash of every output's bits (to compare builds).
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
    let segments: Vec<u32> = (0..sh.n_tok as u32).map(|t| t / 128).collect();
    for (threads, seg) in [(1, None), (2, None), (1, Some(&segments[..]))] {
        let pool = pool(threads);
        dq.fill(0.0);
        dk.fill(0.0);
        dv.fill(0.0);
        let (mut f, mut b) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..20 {
            let t0 = Instant::now();
            attention_forward(sh, &q, &k, &v, seg, &mut out, &mut lse, &pool);
            let t1 = Instant::now();
            attention_backward(
                sh, &q, &k, &v, seg, &out, &lse, &dout, &mut dq, &mut dk, &mut dv, &pool,
            );
            f = f.min((t1 - t0).as_secs_f64());
            b = b.min(t1.elapsed().as_secs_f64());
        }
        let hash = [&out, &lse, &dq, &dk, &dv]
            .iter()
            .flat_map(|v| v.iter())
            .fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
                (h ^ u64::from(x.to_bits())).wrapping_mul(0x100_0000_01b3)
            });
        println!(
            "attention T={} heads {}/{} hd {} threads={threads} {}: forward {:.2} ms, backward {:.2} ms, outputs {hash:016x}",
            sh.n_tok,
            sh.n_head,
            sh.n_kv,
            sh.head_dim,
            if seg.is_some() { "2 packed" } else { "1 sequence" },
            f * 1e3,
            b * 1e3
        );
    }
}

/// A thread pool of `n` threads for the kernels under test.
fn pool(n: usize) -> graft_kernels::cpu::ThreadPool {
    graft_kernels::cpu::ThreadPool::new(n).expect("thread pool")
}
