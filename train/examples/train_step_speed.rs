//! One LoRA training step (forward + backward) on the real test model: batch 4 × seq 256,
//! rank 16 on all seven projections, checkpointing off and on; prints tokens/s and the peak
//! RSS (VmHWM, reset between the two runs through /proc/self/clear_refs).
//!
//! `cargo run --release -p graft-train --example train_step_speed -- [threads] [steps]
//! [tiled|fast|exact] [both|off|layer]` (defaults: 1 thread, 1 step, the default base matmul,
//! both checkpointing settings).

use graft_runtime::{Model, ModelParams};
use graft_train::model::{
    BaseMatmul, Batch, Checkpointing, LoraConfig, LoraParams, TrainOptions, Trainable,
};
use std::time::Instant;

const BATCH: usize = 4;
const SEQ: usize = 256;

fn vm_hwm_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// User + system CPU seconds of this process so far (/proc/self/stat, 100 Hz ticks): on a
/// shared machine, CPU time shows the work done where wall time shows the wait too.
fn cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn reset_hwm() {
    // "5" resets the peak RSS counter (Linux ≥ 4.0); harmless where unsupported.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(Ok(1), |s| s.parse())?;
    let steps: usize = args.next().map_or(Ok(1), |s| s.parse())?;
    let base_matmul = match args.next().as_deref() {
        None => TrainOptions::default().base_matmul,
        Some("tiled") => BaseMatmul::Tiled,
        Some("fast") => BaseMatmul::Fast,
        Some("exact") => BaseMatmul::Exact,
        Some(other) => return Err(format!("unknown base matmul {other:?}").into()),
    };
    let ckpts: &[Checkpointing] = match args.next().as_deref() {
        None | Some("both") => &[Checkpointing::Off, Checkpointing::EveryLayer],
        Some("off") => &[Checkpointing::Off],
        Some("layer") => &[Checkpointing::EveryLayer],
        Some(other) => return Err(format!("unknown checkpointing {other:?}").into()),
    };
    let path = graft_quant::model_cache::test_model_path()?;
    let model = Model::load(&path, ModelParams { threads })?;
    let nv = model.config().n_vocab as u64;
    // Deterministic pseudo-random ids; every next token scored.
    let mut state = 0x1234_5678u64;
    let ids: Vec<u32> = (0..BATCH * SEQ)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % nv) as u32
        })
        .collect();
    let mut batch = Batch::single(&ids[..SEQ])?;
    batch.n_rows = BATCH;
    batch.ids = ids.clone();
    batch.targets = ids.iter().skip(1).copied().chain([0]).collect();
    batch.mask = (0..BATCH * SEQ).map(|i| i % SEQ != SEQ - 1).collect();
    batch.positions = (0..BATCH * SEQ).map(|i| i % SEQ).collect();
    batch.segments = vec![0; BATCH * SEQ];
    println!(
        "model {} | batch {BATCH} x seq {SEQ} | rank 16, all projections | {threads} thread(s) | base {base_matmul:?}",
        path.display()
    );
    for &ck in ckpts {
        reset_hwm();
        let lora = LoraParams::new(
            model.config(),
            LoraConfig {
                rank: 16,
                alpha: 32.0,
                ..LoraConfig::default()
            },
        )?;
        let opts = TrainOptions {
            threads,
            checkpointing: ck,
            base_matmul,
            ..TrainOptions::default()
        };
        let mut tr = Trainable::new(&model, lora, opts)?;
        let (mut t_fwd, mut t_bwd, mut loss) = (0.0, 0.0, 0.0);
        let (mut c_fwd, mut c_bwd) = (0.0, 0.0);
        for _ in 0..steps {
            let (t0, c0) = (Instant::now(), cpu_s());
            loss = tr.forward(&batch)?;
            let (t1, c1) = (Instant::now(), cpu_s());
            tr.backward()?;
            t_fwd += (t1 - t0).as_secs_f64();
            t_bwd += t1.elapsed().as_secs_f64();
            c_fwd += c1 - c0;
            c_bwd += cpu_s() - c1;
        }
        let toks = (steps * BATCH * SEQ) as f64;
        println!(
            "checkpointing {ck:?}: loss {loss:.4} | forward {:.2} s, backward {:.2} s per step | \
             {:.1} tok/s | CPU forward {:.2} s, backward {:.2} s | activations {:.0} MB | \
             peak RSS {:.0} MB",
            t_fwd / steps as f64,
            t_bwd / steps as f64,
            toks / (t_fwd + t_bwd),
            c_fwd / steps as f64,
            c_bwd / steps as f64,
            tr.activation_bytes() as f64 / 1e6,
            vm_hwm_mb()
        );
    }
    Ok(())
}
