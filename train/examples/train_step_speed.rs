//! One LoRA training step (forward + backward) on the real test model: batch 4 × seq 256,
//! rank 16 on all seven projections, checkpointing off and on; prints tokens/s and the peak
//! RSS (VmHWM, reset between the two runs through /proc/self/clear_refs).
//!
//! `cargo run --release -p graft-train --example train_step_speed -- [threads] [steps]
//! [tiled|fast|exact] [both|off|layer] [f32|bf16]` (defaults: 1 thread, 1 step, the default
//! base matmul, both checkpointing settings, f32).

use graft_kernels::grad::Precision;
use graft_runtime::{Model, ModelParams};
use graft_train::model::{
    BaseMatmul, Checkpointing, LoraConfig, LoraParams, TrainOptions, Trainable,
};
use std::time::Instant;

mod bench_support;
use bench_support::{cpu_s, random_batch, vm_hwm_mb};

const BATCH: usize = 4;
const SEQ: usize = 256;

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
    let precision: Precision = args.next().map_or(Ok(Precision::F32), |s| s.parse())?;
    let path = graft_quant::model_cache::test_model_path()?;
    let model = Model::load(&path, ModelParams { threads })?;
    let nv = model.config().n_vocab as u64;
    // Deterministic pseudo-random ids; every next token scored.
    let batch = random_batch(BATCH, SEQ, nv)?;
    println!(
        "model {} | batch {BATCH} x seq {SEQ} | rank 16, all projections | {threads} thread(s) | base {base_matmul:?} | {precision} on {}",
        path.display(),
        graft_kernels::grad::Bf16Path::detect().name()
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
            precision,
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
