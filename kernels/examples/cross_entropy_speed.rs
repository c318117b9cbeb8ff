//! Times the fused masked cross-entropy (loss + dlogits) for T = 512 tokens over SmolLM2's
//! 49,152-entry vocabulary, 1 and 2 threads.
//!
//! `cargo run --release -p graft-kernels --example cross_entropy_speed`

use std::time::Instant;

use graft_kernels::grad::cross_entropy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (n_tok, vocab) = (512usize, 49_152usize);
    let mut seed = 0x51ed_270bu32;
    let logits: Vec<f32> = (0..n_tok * vocab)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            (seed as f32 / u32::MAX as f32 - 0.5) * 20.0
        })
        .collect();
    let targets: Vec<u32> = (0..n_tok as u32).map(|t| t * 97 % vocab as u32).collect();
    let mask: Vec<bool> = (0..n_tok).map(|t| t % 4 != 0).collect();
    for threads in [1, 2] {
        let pool = pool(threads);
        let mut best = f64::INFINITY;
        let mut loss = 0.0;
        for _ in 0..5 {
            let mut g = logits.clone();
            let t0 = Instant::now();
            loss = cross_entropy(&mut g, vocab, &targets, &mask, &pool)?;
            best = best.min(t0.elapsed().as_secs_f64());
        }
        println!(
            "cross_entropy T={n_tok} V={vocab} threads={threads}: {:.1} ms (loss {loss:.4})",
            best * 1e3
        );
    }
    Ok(())
}

/// A thread pool of `n` threads for the kernels under test.
fn pool(n: usize) -> graft_kernels::cpu::ThreadPool {
    graft_kernels::cpu::ThreadPool::new(n).expect("thread pool")
}
