//! `graft merge -m BASE --lora A [--lora-scaled B SCALE] -o OUT.gguf [--type T]`: a standalone
//! model with adapters folded in (`W' = W + Σ s_i · B_i A_i`); the work is
//! `graft_runtime::adapter::merge`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use graft_quant::gguf::GgufFile;
use graft_quant::{target, QuantType};
use graft_runtime::adapter::{merge_to_file, LoraAdapter, MergeItem};

/// Arguments of `graft merge`.
#[derive(clap::Args)]
pub struct Args {
    /// The base model (GGUF).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// An adapter to fold in at scale 1 (GGUF LoRA or PEFT); repeatable.
    #[arg(long)]
    lora: Vec<PathBuf>,
    /// An adapter and its scale (`--lora-scaled FILE 0.5`); repeatable.
    #[arg(long, num_args = 2, value_names = ["FILE", "SCALE"])]
    lora_scaled: Vec<String>,
    /// Output GGUF file (written atomically).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Type of every adapted weight (llama-quantize's rules and fallbacks): q4_0, q4_1, q5_0,
    /// q5_1, q8_0, q4_k, q5_k, q6_k, f16, f32. Default: each adapted tensor keeps its type.
    #[arg(long = "type", short = 't', value_parser = target::parse_model_target)]
    ty: Option<QuantType>,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// Runs `graft merge`.
pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let mut specs: Vec<(PathBuf, f32)> = args.lora.iter().map(|p| (p.clone(), 1.0)).collect();
    for pair in args.lora_scaled.chunks(2) {
        let [file, scale] = pair else {
            bail!("--lora-scaled needs a file and a scale");
        };
        let s: f32 = scale
            .parse()
            .ok()
            .filter(|s: &f32| s.is_finite())
            .with_context(|| format!("--lora-scaled {file} {scale}: the scale is not a number"))?;
        specs.push((PathBuf::from(file), s));
    }
    if specs.is_empty() {
        bail!("nothing to merge: give at least one --lora FILE or --lora-scaled FILE SCALE");
    }
    let base = GgufFile::open(&args.model)
        .with_context(|| format!("cannot read base model {}", args.model.display()))?;
    let adapters: Vec<LoraAdapter> = specs
        .iter()
        .map(|(p, _)| super::adapter::load(p, Some(&base)))
        .collect::<Result<_>>()?;
    let labels: Vec<String> = specs.iter().map(|(p, _)| p.display().to_string()).collect();
    let items: Vec<MergeItem<'_>> = adapters
        .iter()
        .zip(&specs)
        .zip(&labels)
        .map(|((adapter, (_, scale)), label)| MergeItem {
            adapter,
            scale: *scale,
            label,
        })
        .collect();

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("cannot start the merge thread pool")?;
    let summary = pool
        .install(|| merge_to_file(&base, &items, args.ty, &args.output))
        .with_context(|| format!("cannot merge into {}", args.output.display()))?;
    let types: Vec<String> = {
        let mut counts = std::collections::BTreeMap::<QuantType, usize>::new();
        summary
            .types
            .values()
            .for_each(|t| *counts.entry(*t).or_default() += 1);
        counts.iter().map(|(t, n)| format!("{t} ×{n}")).collect()
    };
    eprintln!(
        "merged {} adapter(s) into {} of {} tensors ({} recomputed: {}): {:.1} MB -> {:.1} MB \
         in {:.1} s; wrote {}",
        items.len(),
        summary.n_adapted,
        summary.n_tensors,
        summary.n_rewritten,
        if types.is_empty() {
            "none".to_string()
        } else {
            types.join(", ")
        },
        summary.bytes_in as f64 / 1e6,
        summary.bytes_out as f64 / 1e6,
        start.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}
