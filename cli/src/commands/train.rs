//! `graft train -m BASE --data train.jsonl [--val val.jsonl] -o adapter.gguf [...]`: trains a
//! LoRA adapter on the frozen GGUF base; the work is `graft_train::trainer`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use graft_runtime::{Device, DeviceKind, Model, ModelParams};
use graft_train::model::{Bf16Path, Precision};
use graft_train::trainer::{
    checkpoint, CheckpointPolicy, Control, Event, MaskPolicy, Observer, OptimizerKind, Progress,
    Schedule, StopReason, TestSpec, TrainConfig, TrainIo, TrainMethod, Trainer, DEFAULT_BETA,
    PREFERENCE_DEFAULT_RPO_ALPHA,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `graft train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The base model (GGUF; stays quantized and frozen).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// Training data (JSONL: messages, instruction/output, prompt/completion or text; with
    /// --method dpo|ipo: prompt/chosen/rejected pairs).
    #[arg(long)]
    data: PathBuf,
    /// What to optimize: sft (supervised fine-tuning), dpo (direct preference optimization
    /// on prompt/chosen/rejected pairs) or ipo. The preference methods use the starting
    /// model (the base, or --init-adapter) as the frozen reference policy.
    #[arg(long, default_value = "sft", value_parser = ["sft", "dpo", "ipo"])]
    method: String,
    /// DPO/IPO β: how far the adapter may move from the reference (higher: closer).
    #[arg(long, default_value_t = DEFAULT_BETA)]
    beta: f64,
    /// DPO label smoothing in [0, 0.5): the assumed share of pairs with flipped labels.
    #[arg(long = "label-smoothing", default_value_t = 0.0)]
    label_smoothing: f64,
    /// DPO/IPO: add this weight times the chosen responses' mean negative log-likelihood
    /// (RPO, TRL's rpo_alpha): keeps the chosen answers likely and the model from drifting
    /// on other text; 0 turns it off. [default: 1]
    #[arg(long = "rpo-alpha")]
    rpo_alpha: Option<f64>,
    /// Start from this adapter (GGUF or PEFT, e.g. an SFT adapter before DPO) instead of a
    /// fresh one; --rank and --targets must be its own.
    #[arg(long = "init-adapter", value_name = "ADAPTER")]
    init_adapter: Option<PathBuf>,
    /// Validation data (JSONL), evaluated every --eval-every steps and at the end.
    #[arg(long)]
    val: Option<PathBuf>,
    #[command(flatten)]
    template: super::model_args::TemplateArgs,
    /// The GGUF LoRA adapter to write; `<stem>.metrics.jsonl` and `<stem>.loss.svg` go beside
    /// it.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Also write the adapter in PEFT format into this directory.
    #[arg(long)]
    peft: Option<PathBuf>,
    /// LoRA rank.
    #[arg(long, default_value_t = 16)]
    rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    #[arg(long, default_value_t = 32.0)]
    alpha: f32,
    /// LoRA dropout.
    #[arg(long, default_value_t = 0.05)]
    dropout: f32,
    /// Base anchor weight: penalises what the adapter adds on the tokens the loss does not
    /// score (prompts), so the model drifts less on unrelated text; 0 turns it off.
    /// [default: 0 for sft, 0.5 for dpo and ipo]
    #[arg(long)]
    anchor: Option<f32>,
    /// Adapted projections, comma-separated.
    #[arg(long, default_value = "q,k,v,o,gate,up,down", value_delimiter = ',')]
    targets: Vec<String>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-4)]
    lr: f32,
    /// Epochs.
    #[arg(long, default_value_t = 2)]
    epochs: usize,
    /// Packed rows per micro-batch, or auto: with --grad-accum auto too, each optimizer step
    /// takes a number of examples chosen from the dataset size so the run has enough steps
    /// to learn (the plan printed says why).
    #[arg(long, default_value = "auto", value_parser = parse_auto)]
    batch: usize,
    /// Micro-batches per optimizer step, or auto (see --batch).
    #[arg(long = "grad-accum", default_value = "auto", value_parser = parse_auto)]
    grad_accum: usize,
    /// Tokens per packed row (longer examples are truncated).
    #[arg(long, default_value_t = 512)]
    seq: usize,
    /// Optimizer: adamw or adamw8bit.
    #[arg(long, default_value = "adamw8bit", value_parser = parse_optimizer)]
    optimizer: OptimizerKind,
    /// Activation checkpointing: off, layer, or N (every N layers).
    #[arg(long, default_value = "layer", value_parser = CheckpointPolicy::parse)]
    checkpointing: CheckpointPolicy,
    /// Warmup: a fraction of all steps (< 1) or a number of steps (>= 1).
    #[arg(long, default_value_t = 0.05)]
    warmup: f64,
    /// Learning-rate schedule after warmup: cosine, linear or constant.
    #[arg(long, default_value = "cosine", value_parser = parse_schedule)]
    schedule: Schedule,
    /// Decoupled weight decay.
    #[arg(long = "weight-decay", default_value_t = 0.0)]
    weight_decay: f32,
    /// Clip the global gradient norm to this.
    #[arg(long = "max-grad-norm", default_value_t = 1.0)]
    max_grad_norm: f32,
    /// Seed of the LoRA init, dropout and data order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Validation loss every N optimizer steps (default: each epoch end).
    #[arg(long = "eval-every")]
    eval_every: Option<u64>,
    /// Stop after K evaluations without a better validation loss; keep the best adapter.
    #[arg(long = "early-stopping")]
    early_stopping: Option<u32>,
    /// Write a checkpoint every N optimizer steps (into --checkpoint-dir, default
    /// `<output>.ckpt`).
    #[arg(long = "save-every")]
    save_every: Option<u64>,
    /// Checkpoint directory.
    #[arg(long = "checkpoint-dir")]
    checkpoint_dir: Option<PathBuf>,
    /// Resume from a checkpoint (a step-N directory, or a checkpoint directory: its newest).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Stop after N optimizer steps (the schedule still spans all epochs).
    #[arg(long = "max-steps")]
    max_steps: Option<u64>,
    /// Compute threads (default: number of physical cores).
    #[arg(short = 't', long = "threads")]
    threads: Option<usize>,
    /// Device to train on: cpu; with the `cuda` feature cuda or cuda:N, which for now only
    /// reports what it finds (the CUDA backend is not built yet).
    #[arg(long = "device", default_value = "cpu", value_parser = parse_train_device)]
    device: DeviceKind,
    /// Tokens the loss covers: completion (assistant / completion tokens) or all.
    #[arg(long = "loss-mask", default_value = "completion", value_parser = parse_mask)]
    loss_mask: MaskPolicy,
    /// Precision of the products with the frozen base: auto (bf16 where the CPU has AMX-BF16
    /// tiles, f32 elsewhere), f32, or bf16 (bf16 operands, f32 sums; without AMX it is
    /// emulated: same numbers, no faster).
    #[arg(long, default_value = "auto", value_parser = parse_precision)]
    precision: PrecisionArg,
    /// No progress bar (one line per step on stderr instead).
    #[arg(long = "no-progress")]
    no_progress: bool,
    /// A held-out test set: evaluate the base (and the --few-shot prompt baseline) before
    /// training and the adapter after, and print the report card (also written to the
    /// metrics file, the adapter's metadata and the model card).
    #[arg(long = "test", value_name = "FILE")]
    test: Option<PathBuf>,
    /// With --test: also measure the perplexity of this unrelated text (regression check).
    #[arg(long = "general", value_name = "FILE", requires = "test")]
    general: Option<PathBuf>,
    /// With --test: evaluate the base model prompted with K training examples as
    /// demonstrations (the prompt baseline the fine-tune has to beat).
    #[arg(long = "few-shot", value_name = "K", requires = "test")]
    few_shot: Option<usize>,
    /// With --test: the system prompt of the prompt baseline.
    #[arg(long = "system", value_name = "TEXT", requires = "test")]
    system: Option<String>,
}

/// `auto` (0) or a positive number.
fn parse_auto(s: &str) -> Result<usize, String> {
    match s {
        "auto" => Ok(0),
        n => match n.parse::<usize>() {
            Ok(v) if v > 0 => Ok(v),
            _ => Err(format!("expected auto or a positive number, got `{s}`")),
        },
    }
}

fn parse_optimizer(s: &str) -> Result<OptimizerKind, String> {
    match s {
        "adamw" => Ok(OptimizerKind::Adamw),
        "adamw8bit" | "adamw-8bit" => Ok(OptimizerKind::Adamw8bit),
        _ => Err(format!("expected adamw or adamw8bit, got `{s}`")),
    }
}

fn parse_schedule(s: &str) -> Result<Schedule, String> {
    match s {
        "cosine" => Ok(Schedule::Cosine),
        "linear" => Ok(Schedule::Linear),
        "constant" => Ok(Schedule::Constant),
        _ => Err(format!("expected cosine, linear or constant, got `{s}`")),
    }
}

fn parse_mask(s: &str) -> Result<MaskPolicy, String> {
    match s {
        "completion" => Ok(MaskPolicy::Completion),
        "all" => Ok(MaskPolicy::All),
        _ => Err(format!("expected completion or all, got `{s}`")),
    }
}

/// The progress bar (or plain lines when stderr is not a terminal or `--no-progress`).
struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    fn new(total: u64, plain: bool) -> Bar {
        let bar = if plain || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            None
        } else {
            let b = ProgressBar::new(total);
            let style =
                ProgressStyle::with_template("{bar:30} step {pos}/{len} | {msg} | ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style);
            b.enable_steady_tick(Duration::from_millis(500));
            Some(b)
        };
        Bar { bar }
    }

    fn line(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => eprintln!("{s}"),
        }
    }
}

impl Observer for Bar {
    fn on_step(&mut self, p: &Progress) -> Control {
        let val = p
            .val_loss
            .map(|v| format!(" | val {v:.4}"))
            .unwrap_or_default();
        let anchor = p
            .anchor
            .map(|a| format!(" | anchor {a:.4}"))
            .unwrap_or_default();
        let pref = p
            .preference
            .map(|m| format!(" | acc {:.2} margin {:.3}", m.accuracy, m.margin))
            .unwrap_or_default();
        let val_pref = p
            .val_preference
            .map(|m| format!(" | val acc {:.3} margin {:.3}", m.accuracy, m.margin))
            .unwrap_or_default();
        let msg = format!(
            "loss {:.4}{anchor}{pref}{val}{val_pref} | lr {:.2e} | {:.0} tok/s",
            p.loss, p.lr, p.tokens_per_sec
        );
        match &self.bar {
            Some(b) => {
                b.set_position(p.step);
                if p.val_loss.is_some() {
                    b.println(format!("step {}/{}: {msg}", p.step, p.total_steps));
                }
                b.set_message(msg);
            }
            None => eprintln!(
                "step {}/{}: {msg} | ETA {:.0} s",
                p.step, p.total_steps, p.eta_secs
            ),
        }
        Control::Continue
    }

    fn on_event(&mut self, e: &Event) {
        match e {
            Event::Info(s) => self.line(s),
            Event::Checkpoint(d) => self.line(&format!("checkpoint {}", d.display())),
            Event::Resumed(s) => self.line(&format!("resumed at step {s}")),
            Event::Warning(w) => self.line(&warning_text(w)),
        }
    }

    fn on_eval(&mut self, label: &str, phase: &str, done: usize, total: usize) -> Control {
        if let Some(b) = &self.bar {
            b.set_message(format!("test: {label}: {phase} {done}/{total}"));
        }
        Control::Continue
    }
}

/// A warning as printed: loud (bold yellow on a terminal), prefixed `WARNING:`.
fn warning_text(w: &str) -> String {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        format!("\x1b[1;33mWARNING:\x1b[0m {w}")
    } else {
        format!("WARNING: {w}")
    }
}

/// Parses `graft train --device`: the CPU, or a CUDA device (which cannot train yet).
fn parse_train_device(s: &str) -> Result<DeviceKind, String> {
    match super::model_args::parse_device(s)? {
        k @ (DeviceKind::Cpu | DeviceKind::Cuda(_)) => Ok(k),
        k => Err(format!(
            "graft train runs on the CPU (--device cpu){}; not on --device {k}",
            if cfg!(feature = "cuda") {
                " or names a CUDA device (cuda, cuda:N)"
            } else {
                ""
            }
        )),
    }
}

/// Runs `graft train`.
pub fn run(args: Args) -> Result<()> {
    let threads = args
        .threads
        .unwrap_or_else(super::model_args::physical_cores)
        .max(1);
    if args.device != DeviceKind::Cpu {
        // Opening a CUDA device says what was found and that there is no backend yet.
        let opened = Device::new(args.device, threads)
            .with_context(|| format!("cannot train on --device {}", args.device))?;
        anyhow::bail!(
            "cannot train on --device {}: the trainer runs on the CPU only for now ({} has no \
             training backend)",
            args.device,
            opened.name()
        );
    }
    let rpo_alpha = args.rpo_alpha.unwrap_or(PREFERENCE_DEFAULT_RPO_ALPHA);
    let method = match args.method.as_str() {
        "dpo" => TrainMethod::Dpo {
            beta: args.beta,
            label_smoothing: args.label_smoothing,
            rpo_alpha,
        },
        "ipo" => TrainMethod::Ipo {
            beta: args.beta,
            rpo_alpha,
        },
        _ => TrainMethod::Sft,
    };
    // Resuming with --precision auto continues in the checkpoint's precision (a checkpoint
    // from an f32 run resumes as f32 on an AMX host, whose auto is bf16).
    let precision = match (&args.resume, args.precision) {
        (Some(ck), PrecisionArg::Auto) => {
            checkpoint::config(ck)
                .with_context(|| format!("cannot read checkpoint {}", ck.display()))?
                .precision
        }
        _ => args.precision.resolve(),
    };
    let config = TrainConfig {
        rank: args.rank,
        alpha: args.alpha,
        dropout: args.dropout,
        anchor: args.anchor.unwrap_or_else(|| method.default_anchor()),
        targets: args.targets.clone(),
        lr: args.lr,
        epochs: args.epochs,
        batch: args.batch,
        grad_accum: args.grad_accum,
        seq: args.seq,
        optimizer: args.optimizer,
        checkpointing: args.checkpointing,
        warmup: args.warmup,
        seed: args.seed,
        schedule: args.schedule,
        weight_decay: args.weight_decay,
        max_grad_norm: args.max_grad_norm,
        eval_every: args.eval_every,
        early_stopping: args.early_stopping,
        save_every: args.save_every,
        max_steps: args.max_steps,
        loss_mask: args.loss_mask,
        threads,
        method,
        precision,
    };
    config.validate().context("bad training flags")?;
    let method_text = method_line(&config);
    let checkpoint_dir = args
        .checkpoint_dir
        .clone()
        .or_else(|| args.save_every.map(|_| args.output.with_extension("ckpt")));
    let test = match &args.test {
        None => None,
        Some(t) => Some(TestSpec {
            data: t.clone(),
            general: args.general.clone(),
            prompting: super::eval::prompting_from_args(
                args.few_shot,
                args.few_shot.map(|_| args.data.as_path()),
                args.system.as_deref(),
                args.seed,
            )?,
        }),
    };
    let io = TrainIo {
        test,
        chat_template: args.template.chat_template.clone(),
        data: args.data.clone(),
        val: args.val.clone(),
        out: args.output.clone(),
        peft: args.peft.clone(),
        checkpoint_dir,
        resume: args.resume.clone(),
        init_adapter: args.init_adapter.clone(),
    };
    let model = Model::load(&args.model, ModelParams { threads })
        .with_context(|| format!("cannot load base model {}", args.model.display()))?;
    let trainer = Trainer::new(&model, config, io).context("cannot start training")?;
    let td = trainer.train_data();
    let plan = *trainer.plan();
    eprintln!(
        "train {}: {} examples ({} duplicates removed, {} truncated to {} tokens, {} without a \
         scored token) -> {} rows, {} tokens, {} scored",
        td.path.display(),
        td.examples,
        td.report.exact_duplicates.len() + td.report.near_duplicates.len(),
        td.truncated,
        args.seq,
        td.unscored,
        td.rows.len(),
        td.tokens,
        td.scored
    );
    if let Some(v) = trainer.val_data() {
        eprintln!(
            "val {}: {} examples -> {} rows, {} scored tokens",
            v.path.display(),
            v.examples,
            v.rows.len(),
            v.scored
        );
    }
    let sched = trainer.schedule();
    eprintln!(
        "plan: {} epochs x {} steps ({} micro-batches of {} rows, {} per step) = {} steps; \
         running {} | lr {:e} peak, {} warmup steps, first step at {:.2e} | {} threads",
        plan.epochs,
        plan.steps_per_epoch,
        plan.micro_per_epoch,
        plan.batch,
        plan.grad_accum,
        plan.total_steps,
        plan.run_steps,
        sched.peak_lr,
        sched.warmup_steps(),
        sched.lr_at(0),
        threads
    );
    eprintln!("why: {}", trainer.plan_explanation());
    eprintln!(
        "{}",
        precision_line(args.precision, precision, args.resume.is_some())
    );
    if let Some(method) = &method_text {
        eprintln!("{method}");
    }
    let warnings: Vec<String> = trainer.warnings().to_vec();
    for w in &warnings {
        eprintln!("{}", warning_text(w));
    }
    let mut bar = Bar::new(plan.run_steps, args.no_progress);
    let out = trainer.run(&mut bar).context("training failed")?;
    if let Some(b) = &bar.bar {
        b.finish_and_clear();
    }
    let fmt_opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    println!(
        "{} after {} of {} steps{} in {:.1} s",
        match out.stop {
            StopReason::Completed => "done",
            StopReason::MaxSteps => "stopped (--max-steps)",
            StopReason::EarlyStopped => "stopped early (validation loss stopped improving)",
            StopReason::Cancelled => "cancelled",
        },
        out.steps,
        out.total_steps,
        out.resumed_from
            .map(|s| format!(" (resumed at step {s})"))
            .unwrap_or_default(),
        out.elapsed_secs
    );
    println!(
        "tokens/s {:.1} ({} tokens this run) | peak RSS {:.0} MB",
        out.tokens_per_sec, out.tokens, out.peak_rss_mb
    );
    println!(
        "final train loss {} | final val loss {} | best val loss {}",
        fmt_opt(out.final_train_loss),
        fmt_opt(out.final_val_loss),
        out.best_val
            .map_or("-".to_string(), |(v, s)| format!("{v:.4} (step {s})"))
    );
    if let Some(p) = &out.adapter {
        println!("adapter {}", p.display());
    }
    if let Some(p) = &out.peft {
        println!("peft {}", p.display());
    }
    if let (Some(m), Some(s)) = (&out.metrics_path, &out.svg_path) {
        println!("metrics {} | loss curve {}", m.display(), s.display());
    }
    if let Some(c) = &out.model_card {
        println!("model card {}", c.display());
    }
    if let Some(c) = &out.last_checkpoint {
        println!("last checkpoint {}", c.display());
    }
    if let Some(card) = &out.card {
        println!("\nreport card ({}):\n{}", card.test, card.table());
    }
    if !out.warnings.is_empty() {
        eprintln!();
        for w in &out.warnings {
            eprintln!("{}", warning_text(w));
        }
    }
    Ok(())
}

/// `--precision`: a fixed precision, or the fastest one this CPU runs well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrecisionArg {
    /// bf16 where the bf16 products run on AMX tiles, f32 elsewhere.
    Auto,
    /// The precision named.
    Fixed(Precision),
}

impl PrecisionArg {
    /// The precision this run uses.
    fn resolve(self) -> Precision {
        match self {
            PrecisionArg::Fixed(p) => p,
            PrecisionArg::Auto => Precision::fastest(),
        }
    }
}

fn parse_precision(s: &str) -> Result<PrecisionArg, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(PrecisionArg::Auto);
    }
    s.parse::<Precision>()
        .map(PrecisionArg::Fixed)
        .map_err(|e| format!("{e}, or auto"))
}

/// The line printed before a run: which precision, where it runs, and how to change it.
fn precision_line(arg: PrecisionArg, p: Precision, resumed: bool) -> String {
    let how = match (p, Bf16Path::detect()) {
        (Precision::F32, _) => "f32 products and sums".to_string(),
        (Precision::Bf16, path) => format!("bf16 products, f32 sums ({})", path.name()),
    };
    let why = match arg {
        PrecisionArg::Auto if resumed => " (auto: the checkpoint's)",
        PrecisionArg::Auto => {
            " (auto: bf16 only where AMX tiles run it; --precision f32|bf16 to choose)"
        }
        PrecisionArg::Fixed(_) => "",
    };
    format!("precision {p}: {how}{why}")
}

/// The preference method's settings, defaults included, for the lines printed before a run
/// (`None` for SFT).
fn method_line(config: &TrainConfig) -> Option<String> {
    let loss = match config.method {
        TrainMethod::Sft => return None,
        TrainMethod::Dpo {
            beta,
            label_smoothing,
            rpo_alpha,
        } => format!("dpo: beta {beta}, label smoothing {label_smoothing}, RPO weight {rpo_alpha}"),
        TrainMethod::Ipo { beta, rpo_alpha } => {
            format!("ipo: beta {beta}, RPO weight {rpo_alpha}")
        }
    };
    Some(format!(
        "{loss}, base anchor {} (--rpo-alpha 0 --anchor 0: the plain loss)",
        config.anchor
    ))
}
