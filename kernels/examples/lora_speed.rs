//! Times the LoRA products (r = 16) of a training step's shapes — T = 1024 tokens, 576 → 1536
//! (gate/up) and 1536 → 576 (down) — on `threads` threads, in f32 and in bf16 (AMX tiles, where
//! present): the forward's `u = x·Aᵀ` (`lora_project`) and the backward's `g`, `dA`, `dB`
//! (`lora_backward_g`); prints the best of 30 runs and GFLOP/s (`u`: 2·T·r·n_in; backward:
//! 2·T·r·(n_in + 2·n_out)).
//!
//! `cargo run --release -p graft-kernels --example lora_speed [threads]`

use std::time::Instant;

use graft_kernels::cpu::ThreadPool;
use graft_kernels::grad::{
    lora_backward_g, lora_backward_g_bf16, lora_project, lora_project_bf16, LoraShape,
};

/// Best of 30 runs of `f`, in seconds.
fn best(mut f: impl FnMut()) -> f64 {
    (0..30)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1);
    let pool = ThreadPool::new(threads)?;
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
    for (n_in, n_out) in [(576, 1536), (1536, 576)] {
        let sh = LoraShape {
            n_tok: 1024,
            n_in,
            n_out,
            rank: 16,
        };
        let (x, a, b) = (
            vec(sh.n_tok * n_in),
            vec(sh.rank * n_in),
            vec(n_out * sh.rank),
        );
        let (u, dy) = (vec(sh.n_tok * sh.rank), vec(sh.n_tok * n_out));
        let mut uo = vec![0f32; sh.n_tok * sh.rank];
        let (mut da, mut db, mut g) = (
            vec![0f32; a.len()],
            vec![0f32; b.len()],
            vec![0f32; sh.n_tok * sh.rank],
        );
        let fu = 2.0 * (sh.n_tok * sh.rank * n_in) as f64;
        let fb = 2.0 * (sh.n_tok * sh.rank * (n_in + 2 * n_out)) as f64;
        let p32 = best(|| lora_project(sh, &x, &a, &mut uo, &pool));
        let b32 = best(|| {
            lora_backward_g(
                sh, &x, &a, &b, 2.0, &u, &dy, &mut da, &mut db, &mut g, &pool,
            )
        });
        print!(
            "r=16 {n_in}->{n_out} T=1024 x{threads}: f32 u {:.3} ms ({:.0} GFLOP/s), backward {:.3} ms ({:.0} GFLOP/s)",
            p32 * 1e3,
            fu / p32 / 1e9,
            b32 * 1e3,
            fb / b32 / 1e9
        );
        let mut ok = true;
        let p16 = best(|| ok &= lora_project_bf16(sh, &x, &a, &mut uo, &pool));
        let b16 = best(|| {
            ok &= lora_backward_g_bf16(sh, &x, &b, 2.0, &u, &dy, &mut da, &mut db, &mut g, &pool)
        });
        if ok {
            println!(
                " | bf16 u {:.3} ms ({:.0} GFLOP/s), backward {:.3} ms ({:.0} GFLOP/s)",
                p16 * 1e3,
                fu / p16 / 1e9,
                b16 * 1e3,
                fb / b16 / 1e9
            );
        } else {
            println!(" | bf16: no AMX tiles here");
        }
    }
    Ok(())
}
