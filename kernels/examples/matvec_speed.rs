//! Times single-token matvec for the test model's hot shapes on every available ISA and reports
//! GB/s of weight bytes read:
//!
//! - Q4_1 576 → 1536 (an FFN up/gate projection of SmolLM2-135M), hot in cache and streamed
//!   from memory (cycling over ~100 MB of distinct copies, as decode does over the model);
//! - Q8_0 576 → 49152 (the tied output head, 28 MB: always streamed).
//!
//! Also a 64-token Q4_1 prefill-style product (decode attention: the `attention_speed`
//! example). Times are CPU time of the process (all threads),
//! so a busy shared machine inflates them less than wall time; both are printed. Run with
//! `cargo run --release -p graft-kernels --example matvec_speed [threads]`.

use graft_kernels::cpu::{available_isas, kernels_for, matmul, ThreadPool};
use graft_quant::QuantType;
use std::time::Instant;

/// CPU seconds used by this process so far (all threads).
fn cpu_time() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// Valid blocks: random codes with small finite f16 scales.
fn weights(ty: QuantType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let bs = ty.type_size();
    let mut w = pseudo_random_bytes(rows * cols / ty.block_size() * bs, seed);
    let scale = half::f16::from_f32(0.01).to_le_bytes();
    for b in w.chunks_exact_mut(bs) {
        b[..2].copy_from_slice(&scale);
        if ty == QuantType::Q4_1 {
            b[2..4].copy_from_slice(&half::f16::from_f32(-0.05).to_le_bytes());
        }
    }
    w
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1);
    let pool = ThreadPool::new(threads)?;
    println!("threads: {threads}");
    for isa in available_isas() {
        let k = kernels_for(isa);
        // (type, rows, cols, copies, tokens, label)
        let cases = [
            (QuantType::Q4_1, 1536, 576, 1, 1, "hot"),
            (QuantType::Q4_1, 1536, 576, 180, 1, "streamed"),
            (QuantType::Q8_0, 1536, 576, 1, 1, "hot"),
            (QuantType::Q8_0, 49152, 576, 4, 1, "streamed"),
            (QuantType::Q4_1, 1536, 576, 1, 64, "prefill"),
        ];
        for (ty, rows, cols, copies, n, label) in cases {
            let ws: Vec<Vec<u8>> = (0..copies)
                .map(|c| weights(ty, rows, cols, 7 + c as u64))
                .collect();
            let x: Vec<f32> = (0..cols * n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.02)
                .collect();
            let mut y = vec![0.0f32; rows * n];
            let bytes = ws[0].len();
            // Warm up, then run for ~0.5 s.
            for w in &ws {
                matmul(k, &pool, ty, w, rows, cols, &x, n, &mut y)?;
            }
            let mut iters = 0usize;
            let t0 = Instant::now();
            let c0 = cpu_time();
            while cpu_time() - c0 < 0.5 {
                for w in &ws {
                    matmul(k, &pool, ty, w, rows, cols, &x, n, &mut y)?;
                }
                iters += ws.len();
            }
            let wall = t0.elapsed().as_secs_f64() / iters as f64;
            let dt = (cpu_time() - c0) / iters as f64 / threads as f64;
            println!(
                "{isa:>7} {ty} {cols}->{rows} x{n} tok {label:>9}: {:8.1} us/call cpu ({:8.1} wall)  {:6.2} GB/s weights  {:7.1} GMAC/s",
                dt * 1e6,
                wall * 1e6,
                bytes as f64 / dt / 1e9,
                (rows * cols * n) as f64 / dt / 1e9
            );
        }
    }
    // All matmuls of one SmolLM2-135M decode step (30 layers of Q4_1 q/k/v/o/gate/up/down plus
    // the Q8_0 output head), each on its own weights: ~98 MB streamed per token.
    let k = kernels_for(graft_kernels::cpu::isa());
    let shapes: [(usize, usize); 7] = [
        (576, 576),
        (192, 576),
        (192, 576),
        (576, 576),
        (1536, 576),
        (1536, 576),
        (576, 1536),
    ];
    let mut layers = Vec::new();
    for l in 0..30u64 {
        for (i, &(rows, cols)) in shapes.iter().enumerate() {
            layers.push((
                rows,
                cols,
                weights(QuantType::Q4_1, rows, cols, 1000 + 10 * l + i as u64),
            ));
        }
    }
    let head = weights(QuantType::Q8_0, 49152, 576, 99);
    let x = vec![0.1f32; 1536];
    let mut y = vec![0.0f32; 49152];
    let step = |y: &mut [f32]| -> Result<(), graft_kernels::KernelError> {
        for (rows, cols, w) in &layers {
            matmul(
                k,
                &pool,
                QuantType::Q4_1,
                w,
                *rows,
                *cols,
                &x[..*cols],
                1,
                &mut y[..*rows],
            )?;
        }
        matmul(
            k,
            &pool,
            QuantType::Q8_0,
            &head,
            49152,
            576,
            &x[..576],
            1,
            y,
        )
    };
    step(&mut y)?;
    let (t0, c0) = (Instant::now(), cpu_time());
    let mut steps = 0;
    while t0.elapsed().as_secs_f64() < 2.0 {
        step(&mut y)?;
        steps += 1;
    }
    let wall = t0.elapsed().as_secs_f64() / steps as f64;
    let cpu = (cpu_time() - c0) / steps as f64;
    println!(
        "decode matmuls ({}): {:.2} ms/token wall, {:.2} ms cpu (all threads) -> {:.0} tok/s matmul-only (wall)",
        k.isa,
        wall * 1e3,
        cpu * 1e3,
        1.0 / wall
    );

    Ok(())
}
