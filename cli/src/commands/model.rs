//! `graft model random --arch llama --size 1b|3b|8b|tiny --type T --tokenizer-from X.gguf -o
//! OUT.gguf [--seed N] [--dry-run]`: a Llama-3.x-shaped model with random weights and a real
//! tokenizer, for throughput and memory runs where no model can be downloaded. The work is
//! graft_quant::random_model's; this command parses, reports and shows progress.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use graft_quant::random_model::{LlamaSize, RandomModel};
use graft_quant::target;
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `graft model`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Write a model with Llama-3.x shapes, random weights and another model's tokenizer and
    /// chat template (for throughput and memory runs: it knows no language).
    Random(RandomArgs),
}

/// Arguments of `graft model random`.
#[derive(clap::Args, Debug)]
struct RandomArgs {
    /// Architecture (only llama for now).
    #[arg(long, default_value = "llama")]
    arch: String,
    /// Size: tiny (2 layers, width 256: tests), 1b (Llama 3.2 1B), 3b (Llama 3.2 3B) or 8b
    /// (Llama 3.1 8B).
    #[arg(long, value_parser = parse_size)]
    size: LlamaSize,
    /// File type, as `graft quantize --type` (q4_k, q4_k_m, q4_0, q8_0, nf4, f16, ...): every
    /// weight matrix gets the type graft quantize would give it from f32.
    #[arg(long = "type", short = 't', value_parser = target::parse_file_type)]
    ty: target::FileType,
    /// The GGUF file whose tokenizer and chat template are copied (its vocabulary size is the
    /// model's).
    #[arg(long = "tokenizer-from", value_name = "GGUF")]
    tokenizer_from: PathBuf,
    /// Output GGUF file (written atomically, streamed tensor by tensor).
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write nothing: print the file's header and tensor table as `graft inspect --json` would
    /// print them for the written file.
    #[arg(long)]
    dry_run: bool,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

fn parse_size(s: &str) -> Result<LlamaSize, String> {
    LlamaSize::from_name(s).ok_or_else(|| {
        format!(
            "unknown size '{s}'; expected one of: {}",
            LlamaSize::ALL.map(LlamaSize::name).join(", ")
        )
    })
}

/// Runs `graft model`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Random(a) => random(a),
    }
}

fn random(a: RandomArgs) -> Result<()> {
    if a.arch != "llama" {
        bail!(
            "--arch {}: graft model random writes llama models only",
            a.arch
        );
    }
    let model = RandomModel::new(a.size, a.ty, &a.tokenizer_from, a.seed).with_context(|| {
        format!(
            "cannot read the tokenizer of {}",
            a.tokenizer_from.display()
        )
    })?;
    let plan = model.plan()?;
    if a.dry_run {
        let header = super::inspect::Header {
            path: a.output.display().to_string(),
            version: plan.version(),
            md: plan.metadata(),
            tensors: plan.tensor_infos().collect(),
            data_offset: plan.header_bytes().len() as u64,
            file_size: plan.file_size(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&super::inspect::report_json(&header, false))?
        );
        return Ok(());
    }
    let total = plan.file_size();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.unwrap_or(0))
        .build()
        .context("cannot start the thread pool")?;
    let bar = if a.no_progress {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {elapsed} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    };
    let start = Instant::now();
    let report = pool
        .install(|| model.write(&a.output, |done, _| bar.set_position(done)))
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    bar.finish_and_clear();
    eprintln!(
        "wrote {}: random llama {} ({} layers, width {}, vocab {}), {} tensors, {:.3} B \
         parameters, {} ({:.2} GB) in {:.1} s",
        a.output.display(),
        a.size.name(),
        model.shape.n_layer,
        model.shape.n_embd,
        model.n_vocab,
        report.tensors,
        report.params as f64 / 1e9,
        a.ty,
        report.bytes as f64 / 1e9,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
