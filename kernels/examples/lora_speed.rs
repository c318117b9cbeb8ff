//! Times LoRA forward and backward (r = 16) for a 576 → 1536 projection and T = 512 tokens on
//! `threads` threads; prints GFLOP/s (forward 2·T·r·(n_in+n_out), backward
//! 2·T·r·(2·n_in + 2·n_out)).
//!
//! `cargo run --release -p graft-kernels --example lora_speed [threads]`

use std::time::Instant;

use graft_kernels::cpu::ThreadPool;
use graft_kernels::grad::{lora_backward, lora_forward, LoraShape};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1);
    let pool = ThreadPool::new(threads)?;
    let sh = LoraShape {
        n_tok: 512,
        n_in: 576,
        n_out: 1536,
        rank: 16,
    };
    let mut seed = 0x2545_f491u32;
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
    let (x, a, b) = (
        vec(sh.n_tok * sh.n_in),
        vec(sh.rank * sh.n_in),
        vec(sh.n_out * sh.rank),
    );
    let dy = vec(sh.n_tok * sh.n_out);
    let mut u = vec![0f32; sh.n_tok * sh.rank];
    let mut y = vec![0f32; sh.n_tok * sh.n_out];
    let (mut da, mut db, mut dx) = (
        vec![0f32; a.len()],
        vec![0f32; b.len()],
        vec![0f32; x.len()],
    );
    let (mut f, mut g) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..50 {
        let t0 = Instant::now();
        lora_forward(sh, &x, &a, &b, 2.0, &mut u, &mut y, &pool);
        let t1 = Instant::now();
        lora_backward(
            sh,
            &x,
            &a,
            &b,
            2.0,
            &u,
            &dy,
            &mut da,
            &mut db,
            Some(&mut dx),
            &pool,
        );
        f = f.min((t1 - t0).as_secs_f64());
        g = g.min(t1.elapsed().as_secs_f64());
    }
    let base = 2.0 * (sh.n_tok * sh.rank) as f64;
    let ff = base * (sh.n_in + sh.n_out) as f64;
    let fb = base * 2.0 * (sh.n_in + sh.n_out) as f64;
    println!(
        "lora r={} {}->{} T={} threads={threads}: forward {:.2} ms ({:.1} GFLOP/s), backward {:.2} ms ({:.1} GFLOP/s)",
        sh.rank,
        sh.n_in,
        sh.n_out,
        sh.n_tok,
        f * 1e3,
        ff / f / 1e9,
        g * 1e3,
        fb / g / 1e9
    );
    Ok(())
}
