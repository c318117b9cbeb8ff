//! Times inference attention at SmolLM2-135M's shape (9 query heads, 3 KV heads, head_dim 64,
//! f16 cache read in place): one decode token at 256, 1024 and 4096 tokens of context, and a
//! 512-token prompt from an empty cache (the tiled path), on 1 and 2 threads. Each call reads
//! the next of 30 distinct caches (one per layer, as a forward pass does, so at long contexts
//! the cache comes from memory, not from L2). Prints the best wall time of 30 layers.
//!
//! `cargo run --release -p graft-kernels --example attention_speed`

use graft_kernels::attention::{attention, AttnParams, AttnScratch};
use graft_kernels::cpu::ThreadPool;
use half::f16;
use std::time::Instant;

fn main() {
    let (n_head, n_head_kv, hd) = (9, 3, 64);
    let max_ctx = 4096 + 512;
    let layers: Vec<(Vec<f16>, Vec<f16>)> = (0..30)
        .map(|l| {
            let mk = |s: usize| -> Vec<f16> {
                (0..max_ctx * n_head_kv * hd)
                    .map(|i| f16::from_f32((((i + s) * 7919) % 97) as f32 * 0.01 - 0.48))
                    .collect()
            };
            (mk(2 * l), mk(2 * l + 1))
        })
        .collect();
    let q: Vec<f32> = (0..512 * n_head * hd)
        .map(|i| ((i * 31) % 23) as f32 * 0.05 - 0.5)
        .collect();
    let mut out = vec![0.0f32; q.len()];
    let mut scratch = AttnScratch::default();
    for threads in [1, 2] {
        let pool = ThreadPool::new(threads).expect("pool");
        let cases = [(1usize, 255usize), (1, 1023), (1, 4095), (512, 0)];
        for (n, pos0) in cases {
            let p = AttnParams::new(n, pos0, n_head, n_head_kv, hd);
            let nq = n * n_head * hd;
            let mut best = f64::INFINITY;
            let t_end = Instant::now();
            while t_end.elapsed().as_secs_f64() < 1.0 {
                let t0 = Instant::now();
                for (k, v) in &layers {
                    attention(&pool, &p, &q[..nq], k, v, &mut out[..nq], &mut scratch);
                }
                best = best.min(t0.elapsed().as_secs_f64());
            }
            let what = if n == 1 {
                format!("decode at {} context", pos0 + 1)
            } else {
                format!("{n}-token prompt")
            };
            println!(
                "{threads} thread(s), {what}: {:.2} ms for 30 layers",
                best * 1e3
            );
        }
    }
}
