//! Training benchmark table on the real test model: rank 16 on all seven projections, batch 4,
//! full optimizer steps (zero grads, forward, backward, optimizer update), for every
//! combination of sequence length, optimizer (AdamW / AdamW 8-bit), checkpointing (off / every
//! layer) and thread count. Each configuration runs in its own child process, so its peak RSS
//! (VmHWM: model pages touched + activations + optimizer state) is its own. Prints a markdown
//! table: tokens/s of the best step (wall and per CPU-second), peak RSS, optimizer state bytes.
//!
//! `cargo run --release -p graft-train --example train_bench -- [steps] [threads,..] [seqs,..]
//! [precisions,..]` (defaults: 2 steps, threads 1,2, seqs 256,512, precision f32; `f32,bf16`
//! adds the bf16 rows). `-- --child SEQ OPT CKPT THREADS STEPS PRECISION` runs one
//! configuration and prints one `RESULT` line (what the parent reads).

use graft_kernels::grad::Precision;
use graft_runtime::{Model, ModelParams};
use graft_train::model::{Checkpointing, LoraConfig, LoraParams, TrainOptions, Trainable};
use graft_train::optim::{AdamW, AdamW8bit, AdamWConfig, Optimizer};
use std::process::Command;
use std::time::Instant;

mod bench_support;
use bench_support::{cpu_s, random_batch, vm_hwm_mb};

const BATCH: usize = 4;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn child(
    seq: usize,
    opt: &str,
    ckpt: &str,
    threads: usize,
    steps: usize,
    precision: Precision,
) -> Res<()> {
    let path = graft_quant::model_cache::test_model_path()?;
    let model = Model::load(&path, ModelParams { threads })?;
    let b = random_batch(BATCH, seq, model.config().n_vocab as u64)?;
    let lora = LoraParams::new(
        model.config(),
        LoraConfig {
            rank: 16,
            alpha: 32.0,
            ..LoraConfig::default()
        },
    )?;
    let checkpointing = match ckpt {
        "off" => Checkpointing::Off,
        "layer" => Checkpointing::EveryLayer,
        other => return Err(format!("unknown checkpointing {other:?}").into()),
    };
    let opts = TrainOptions {
        threads,
        checkpointing,
        precision,
        ..TrainOptions::default()
    };
    let mut tr = Trainable::new(&model, lora, opts)?;
    let mut optim: Box<dyn Optimizer> = match opt {
        "adamw" => Box::new(AdamW::new(AdamWConfig::default())?),
        "adamw8bit" => Box::new(AdamW8bit::new(AdamWConfig::default())?),
        other => return Err(format!("unknown optimizer {other:?}").into()),
    };
    let (mut best_wall, mut best_cpu, mut loss) = (f64::INFINITY, f64::INFINITY, 0.0);
    for _ in 0..steps.max(1) {
        let (t0, c0) = (Instant::now(), cpu_s());
        tr.lora_mut()
            .tensors_mut()
            .iter_mut()
            .for_each(|t| t.zero_grad());
        loss = tr.forward(&b)?;
        tr.backward()?;
        optim.step(tr.lora_mut().tensors_mut(), 1e-4)?;
        best_wall = best_wall.min(t0.elapsed().as_secs_f64());
        best_cpu = best_cpu.min(cpu_s() - c0);
    }
    let toks = (BATCH * seq) as f64;
    println!(
        "RESULT {:.1} {:.1} {:.0} {} {loss:.4}",
        toks / best_wall,
        toks / best_cpu.max(0.01),
        vm_hwm_mb(),
        optim.state_bytes()
    );
    Ok(())
}

fn list(arg: Option<String>, default: &[usize]) -> Res<Vec<usize>> {
    match arg {
        None => Ok(default.to_vec()),
        Some(s) => s
            .split(',')
            .map(|v| v.trim().parse::<usize>().map_err(|e| e.into()))
            .collect(),
    }
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--child") {
        let mut next = || {
            args.next()
                .ok_or("--child needs SEQ OPT CKPT THREADS STEPS PRECISION")
        };
        let seq = next()?.parse()?;
        let opt = next()?;
        let ckpt = next()?;
        let threads = next()?.parse()?;
        let steps = next()?.parse()?;
        let precision = next()?.parse::<Precision>()?;
        return child(seq, &opt, &ckpt, threads, steps, precision);
    }
    let steps: usize = first.map_or(Ok(2), |s| s.parse())?;
    let threads = list(args.next(), &[1, 2])?;
    let seqs = list(args.next(), &[256, 512])?;
    let precisions = match args.next() {
        None => vec![Precision::F32],
        Some(s) => s
            .split(',')
            .map(|p| p.parse::<Precision>())
            .collect::<Result<Vec<_>, _>>()?,
    };
    let exe = std::env::current_exe()?;
    println!(
        "rank 16 on q,k,v,o,gate,up,down, batch {BATCH}, best of {steps} full optimizer steps; \
         one process per row"
    );
    println!();
    println!(
        "bf16 products run on: {}",
        graft_kernels::grad::Bf16Path::detect().name()
    );
    println!();
    println!(
        "| seq | precision | optimizer | checkpointing | threads | tok/s | tok/s per CPU-s | \
         peak RSS MB | optimizer state MB | loss |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (&seq, &prec) in seqs
        .iter()
        .flat_map(|s| precisions.iter().map(move |p| (s, p)))
    {
        for opt in ["adamw", "adamw8bit"] {
            for ckpt in ["off", "layer"] {
                for &t in &threads {
                    let out = Command::new(&exe)
                        .args(["--child", &seq.to_string(), opt, ckpt])
                        .args([t.to_string(), steps.to_string(), prec.to_string()])
                        .output()?;
                    let text = String::from_utf8_lossy(&out.stdout);
                    let Some(line) = text.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
                        return Err(format!(
                            "config seq {seq} {opt} {ckpt} {t} threads failed: {}",
                            String::from_utf8_lossy(&out.stderr)
                        )
                        .into());
                    };
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let [wall, cpu, rss, state, loss] = f[..] else {
                        return Err(format!("bad RESULT line {line:?}").into());
                    };
                    let state_mb = state.parse::<f64>().unwrap_or(f64::NAN) / 1e6;
                    println!(
                        "| {seq} | {prec} | {opt} | {ckpt} | {t} | {wall} | {cpu} | {rss} | \
                         {state_mb:.1} | {loss} |"
                    );
                }
            }
        }
    }
    Ok(())
}
