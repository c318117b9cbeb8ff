//! Times `matmul_t` (dx += Wᵀ dy) for Q4_1 576×1536 and 1536×576 weights (SmolLM2's FFN
//! down and up/gate: 24 and 9 column panels), 576×576 (q, o) and 192×576 (k, v), and T tokens
//! (default 512) on every ISA path and 1/2 threads; prints GFLOP/s (2·rows·cols·T flops per
//! call, best of 10).
//!
//! `cargo run --release -p graft-kernels --example matmul_t_speed [-- T]`

use std::time::Instant;

use graft_kernels::grad::available_isas;
use graft_kernels::grad::matmul_t_with;
use graft_quant::QuantType;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n_tok: usize = std::env::args().nth(1).map_or(Ok(512), |s| s.parse())?;
    for (rows, cols) in [(576usize, 1536usize), (1536, 576), (576, 576), (192, 576)] {
        shape(rows, cols, n_tok)?;
    }
    Ok(())
}

fn shape(rows: usize, cols: usize, n_tok: usize) -> Result<(), Box<dyn std::error::Error>> {
    let mut seed = 0x1234_5678u32;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed as f32 / u32::MAX as f32) - 0.5
    };
    let w: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
    let wq = graft_quant::blocks::quantize(QuantType::Q4_1, &w)?;
    let dy: Vec<f32> = (0..n_tok * rows).map(|_| next()).collect();
    let mut dx = vec![0f32; n_tok * cols];
    let flops = 2.0 * (rows * cols * n_tok) as f64;
    for isa in available_isas() {
        for threads in [1, 2] {
            let pool = pool(threads);
            let mut best = f64::INFINITY;
            for _ in 0..10 {
                let t0 = Instant::now();
                matmul_t_with(
                    isa,
                    QuantType::Q4_1,
                    &wq,
                    rows,
                    cols,
                    &dy,
                    n_tok,
                    &mut dx,
                    &pool,
                )?;
                best = best.min(t0.elapsed().as_secs_f64());
            }
            println!(
                "Q4_1 {rows}x{cols} T={n_tok} {isa:?} threads={threads}: {:.2} ms, {:.1} GFLOP/s",
                best * 1e3,
                flops / best / 1e9
            );
        }
    }
    Ok(())
}

/// A thread pool of `n` threads for the kernels under test.
fn pool(n: usize) -> graft_kernels::cpu::ThreadPool {
    graft_kernels::cpu::ThreadPool::new(n).expect("thread pool")
}
