//! Times the training matmuls on the frozen base in f32 (the detected ISA) and bf16 (the
//! fastest bf16 path here: AMX or emulated), forward (`y = x·Wᵀ`) and backward
//! (`dx += dy·W`), for Q4_1 weights of SmolLM2's shapes (576×1536 and 1536×576: FFN up/gate and
//! down; 576×576: q, o; 192×576: k, v), T tokens (default 1024: batch 4 × 256), 1 and 2
//! threads; prints GFLOP/s (2·rows·cols·T flops per call, best of 10) and the bf16/f32 ratio.
//!
//! `cargo run --release -p graft-kernels --example matmul_bf16_speed [-- T]`

use std::time::Instant;

use graft_kernels::grad::{matmul_fwd, matmul_fwd_bf16, matmul_t, matmul_t_bf16, Bf16Path};
use graft_quant::QuantType;

type Op = fn(
    QuantType,
    &[u8],
    usize,
    usize,
    &[f32],
    usize,
    &mut [f32],
    &graft_kernels::cpu::ThreadPool,
) -> Result<(), graft_kernels::grad::GradError>;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n_tok: usize = std::env::args().nth(1).map_or(Ok(1024), |s| s.parse())?;
    println!(
        "bf16 path: {}; f32 ISA: {}",
        Bf16Path::detect().name(),
        graft_kernels::cpu::isa()
    );
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
    let x: Vec<f32> = (0..n_tok * cols.max(rows)).map(|_| next()).collect();
    let mut out = vec![0f32; n_tok * cols.max(rows)];
    let flops = 2.0 * (rows * cols * n_tok) as f64;
    let ops: [(&str, Op, Op, usize, usize); 2] = [
        ("forward", matmul_fwd, matmul_fwd_bf16, cols, rows),
        ("backward", matmul_t, matmul_t_bf16, rows, cols),
    ];
    for (name, f32op, bf16op, n_in, n_out) in ops {
        for threads in [1, 2] {
            let pool = graft_kernels::cpu::ThreadPool::new(threads)?;
            let mut time = |op: Op| -> Result<f64, Box<dyn std::error::Error>> {
                let mut best = f64::INFINITY;
                for _ in 0..10 {
                    let t0 = Instant::now();
                    op(
                        QuantType::Q4_1,
                        &wq,
                        rows,
                        cols,
                        &x[..n_tok * n_in],
                        n_tok,
                        &mut out[..n_tok * n_out],
                        &pool,
                    )?;
                    best = best.min(t0.elapsed().as_secs_f64());
                }
                Ok(best)
            };
            let (a, b) = (time(f32op)?, time(bf16op)?);
            println!(
                "Q4_1 {rows}x{cols} {name:8} T={n_tok} threads={threads}: f32 {:.2} ms {:.0} GFLOP/s, bf16 {:.2} ms {:.0} GFLOP/s ({:.2}x)",
                a * 1e3,
                flops / a / 1e9,
                b * 1e3,
                flops / b / 1e9,
                a / b
            );
        }
    }
    Ok(())
}
