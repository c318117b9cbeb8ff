//! Times the matmul shapes of Gemma 3 270M Q4_K_M (d 640, FFN 2048, q 1024) for the formats
//! that model mixes: Q5_0 (q/k/gate/up), Q4_K and Q6_K (down/output/v), Q8_0 (v/output and
//! the 178 MB tied output head, decode only), for
//! 128-token prefill and single-token decode (streamed over ~64 MB of distinct copies, as
//! decode does over the model), on the best ISA and AVX2. Times are CPU time of the process,
//! so a busy shared machine inflates them less than wall time. Run with
//! `cargo run --release -p graft-kernels --example gemma_speed [threads]`.

use graft_kernels::cpu::{available_isas, kernels_for, matmul, Isa, ThreadPool};
use graft_quant::QuantType;

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

/// Random bytes with a small finite f16 scale at every f16 scale position of `ty`'s blocks.
fn weights(ty: QuantType, rows: usize, cols: usize, seed: u64) -> Vec<u8> {
    let bs = ty.type_size();
    let mut s = seed | 1;
    let mut w: Vec<u8> = (0..rows * cols / ty.block_size() * bs)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    let h = half::f16::from_f32(0.01).to_le_bytes();
    for b in w.chunks_exact_mut(bs) {
        match ty {
            QuantType::Q4_K => {
                b[..2].copy_from_slice(&h);
                b[2..4].copy_from_slice(&h);
            }
            QuantType::Q6_K => b[208..210].copy_from_slice(&h),
            _ => b[..2].copy_from_slice(&h),
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
    let best = graft_kernels::cpu::isa();
    let isas: Vec<Isa> = [best, Isa::Avx2]
        .into_iter()
        .filter(|i| available_isas().contains(i))
        .collect();
    for (i, &isa) in isas.iter().enumerate() {
        if i > 0 && isa == isas[0] {
            continue;
        }
        let k = kernels_for(isa);
        // (type, rows, cols, tokens)
        let cases = [
            (QuantType::Q5_0, 2048, 640, 128),
            (QuantType::Q4_K, 640, 2048, 128),
            (QuantType::Q6_K, 640, 2048, 128),
            (QuantType::Q8_0, 640, 1024, 128),
            (QuantType::Q5_0, 2048, 640, 1),
            (QuantType::Q4_K, 640, 2048, 1),
            (QuantType::Q6_K, 640, 2048, 1),
            (QuantType::Q8_0, 262144, 640, 1),
        ];
        for (ty, rows, cols, n) in cases {
            let one = rows * cols / ty.block_size() * ty.type_size();
            let copies = if n == 1 { ((64 << 20) / one).max(1) } else { 1 };
            let ws: Vec<Vec<u8>> = (0..copies)
                .map(|c| weights(ty, rows, cols, 7 + c as u64))
                .collect();
            let x: Vec<f32> = (0..cols * n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.02)
                .collect();
            let mut y = vec![0.0f32; rows * n];
            for w in &ws {
                matmul(k, &pool, ty, w, rows, cols, &x, n, &mut y)?;
            }
            let mut iters = 0usize;
            let c0 = cpu_time();
            while cpu_time() - c0 < 0.4 {
                for w in &ws {
                    matmul(k, &pool, ty, w, rows, cols, &x, n, &mut y)?;
                }
                iters += ws.len();
            }
            let dt = (cpu_time() - c0) / iters as f64 / threads as f64;
            println!(
                "{isa:>7} {ty:>5} {cols:>4}->{rows:<4} x{n:<3}: {:8.1} us/call  {:6.2} GB/s weights  {:6.1} GMAC/s",
                dt * 1e6,
                one as f64 / dt / 1e9,
                (rows * cols * n) as f64 / dt / 1e9
            );
        }
    }
    Ok(())
}
