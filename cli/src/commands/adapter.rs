//! `graft adapter inspect|convert`: LoRA adapter files (llama.cpp GGUF LoRA, Hugging Face PEFT).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use graft_quant::gguf::GgufFile;
use graft_quant::QuantType;
use graft_runtime::adapter::info::{stored_info, StoredInfo};
use graft_runtime::adapter::{AdapterError, AdapterFormat, LoraAdapter, MetaValue};
use serde_json::{json, Value as Json};

use super::inspect::value_to_json;

/// Arguments of `graft adapter`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Show an adapter's format, architecture, alpha, ranks, targets, sizes and scales.
    Inspect(InspectArgs),
    /// Convert an adapter between PEFT and GGUF LoRA.
    Convert(ConvertArgs),
}

/// Arguments of `graft adapter inspect`.
#[derive(clap::Args)]
struct InspectArgs {
    /// The adapter: a GGUF LoRA file, a PEFT directory or its adapter_model.safetensors.
    adapter: PathBuf,
    /// Print one JSON object (with every tensor's rank, shape and scale).
    #[arg(long)]
    json: bool,
    /// List every adapted tensor in the text report.
    #[arg(long)]
    tensors: bool,
    /// Check the adapter against this base model (GGUF) and report OK or the error; also
    /// supplies the architecture and head counts a PEFT q/k adapter needs.
    #[arg(long)]
    base: Option<PathBuf>,
}

/// Arguments of `graft adapter convert`.
#[derive(clap::Args)]
struct ConvertArgs {
    /// The input adapter (GGUF LoRA file or PEFT directory / .safetensors).
    input: PathBuf,
    /// The output: a .gguf file, or a PEFT directory.
    output: PathBuf,
    /// Output format (default: gguf if OUT ends in .gguf, peft otherwise).
    #[arg(long, value_parser = parse_format)]
    to: Option<AdapterFormat>,
    /// Element type of the output tensors: f32, f16, bf16 (or q8_0 for GGUF). Default: the
    /// input's type when the output format can store it, else f32.
    #[arg(long = "type", short = 't', value_parser = parse_adapter_type)]
    ty: Option<QuantType>,
    /// Base model (GGUF): gives the architecture and head counts (needed for q/k pairs of a
    /// PEFT adapter) and validates the adapter before writing.
    #[arg(long)]
    base: Option<PathBuf>,
}

fn parse_format(s: &str) -> Result<AdapterFormat, String> {
    match s.to_ascii_lowercase().as_str() {
        "gguf" => Ok(AdapterFormat::Gguf),
        "peft" => Ok(AdapterFormat::Peft),
        _ => Err(format!(
            "unknown adapter format '{s}'; expected gguf or peft"
        )),
    }
}

fn parse_adapter_type(s: &str) -> Result<QuantType, String> {
    match QuantType::from_name(s) {
        Some(t @ (QuantType::F32 | QuantType::F16 | QuantType::BF16 | QuantType::Q8_0)) => Ok(t),
        _ => Err(format!(
            "unsupported adapter type '{s}'; expected f32, f16, bf16 or q8_0"
        )),
    }
}

/// Runs `graft adapter`.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        Sub::Inspect(a) => inspect(a),
        Sub::Convert(a) => convert(a),
    }
}

/// Adds "pass --base" to errors that only the base model's head counts would fix.
fn with_base_hint(e: AdapterError) -> anyhow::Error {
    match e {
        AdapterError::NeedsBaseModel(m) => {
            anyhow!("{m} — pass --base MODEL.gguf (the base model the adapter was trained on)")
        }
        other => other.into(),
    }
}

fn open_base(path: &Path) -> Result<GgufFile> {
    GgufFile::open(path).with_context(|| format!("cannot read base model {}", path.display()))
}

/// Loads an adapter, with the base model's architecture and head counts when given.
pub(crate) fn load(path: &Path, base: Option<&GgufFile>) -> Result<LoraAdapter> {
    let loaded = match base {
        Some(b) => LoraAdapter::load_with_base(path, b),
        None => LoraAdapter::load(path),
    };
    loaded
        .map_err(with_base_hint)
        .with_context(|| format!("cannot load adapter {}", path.display()))
}

fn format_name(f: AdapterFormat) -> &'static str {
    match f {
        AdapterFormat::Gguf => "GGUF LoRA",
        AdapterFormat::Peft => "PEFT",
    }
}

/// `blk.3.attn_q.weight` → `attn_q`; `token_embd.weight` → `token_embd`.
fn module_of(name: &str) -> String {
    let s = name.strip_suffix(".weight").unwrap_or(name);
    match s.strip_prefix("blk.") {
        Some(rest) => rest
            .split_once('.')
            .map_or(rest.to_string(), |(_, m)| m.to_string()),
        None => s.to_string(),
    }
}

fn meta_json(v: &MetaValue) -> Json {
    match v {
        MetaValue::Gguf(v) => value_to_json(v, true),
        MetaValue::Json(j) => j.clone(),
    }
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes `text` to stdout; a closed pipe (`| head`) is not an error.
fn print_stdout(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

fn inspect(args: InspectArgs) -> Result<()> {
    let stored: StoredInfo = stored_info(&args.adapter)
        .with_context(|| format!("cannot read adapter {}", args.adapter.display()))?;
    let base = args.base.as_deref().map(open_base).transpose()?;
    let adapter = load(&args.adapter, base.as_ref())?;
    let check = base
        .as_ref()
        .map(|b| adapter.validate_against(b).map_err(|e| e.to_string()));

    let ranks: BTreeSet<usize> = adapter.tensors.values().map(|p| p.rank).collect();
    let mut modules: Vec<String> = Vec::new();
    for name in adapter.tensors.keys() {
        let m = module_of(name);
        if !modules.contains(&m) {
            modules.push(m);
        }
    }
    let n_params: u64 = adapter
        .tensors
        .values()
        .map(|p| (p.rank * (p.n_in + p.n_out)) as u64)
        .sum();
    let scales: BTreeSet<String> = adapter
        .tensors
        .values()
        .map(|p| p.effective_scale(1.0).to_string())
        .collect();

    let mut out = String::new();
    if args.json {
        let tensors: Vec<Json> = adapter
            .tensors
            .iter()
            .map(|(name, p)| {
                json!({"name": name, "rank": p.rank, "n_in": p.n_in, "n_out": p.n_out,
                       "scale": p.effective_scale(1.0)})
            })
            .collect();
        let metadata: BTreeMap<&str, Json> = adapter
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), meta_json(v)))
            .collect();
        let mut j = json!({
            "path": args.adapter.display().to_string(),
            "format": match stored.format { AdapterFormat::Gguf => "gguf", AdapterFormat::Peft => "peft" },
            "architecture": adapter.arch,
            "alpha": adapter.alpha,
            "ranks": ranks,
            "target_modules": modules,
            "n_pairs": adapter.tensors.len(),
            "n_file_tensors": stored.n_file_tensors,
            "dtypes": stored.dtypes,
            "n_params": n_params,
            "bytes": stored.bytes,
            "tensors": tensors,
            "metadata": metadata,
        });
        if let (Some(check), Some(path)) = (&check, &args.base) {
            j["base"] = json!({
                "path": path.display().to_string(),
                "ok": check.is_ok(),
                "error": check.as_ref().err(),
            });
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&j)?)?;
    } else {
        writeln!(out, "adapter:       {}", args.adapter.display())?;
        writeln!(out, "format:        {}", format_name(stored.format))?;
        writeln!(
            out,
            "architecture:  {}",
            adapter.arch.as_deref().unwrap_or("(not recorded)")
        )?;
        writeln!(
            out,
            "alpha:         {}",
            adapter
                .alpha
                .map_or("(none)".to_string(), |a| a.to_string())
        )?;
        writeln!(out, "rank:          {}", join(&ranks))?;
        writeln!(out, "targets:       {}", join(&modules))?;
        writeln!(
            out,
            "tensors:       {} pairs ({} tensors in the file)",
            adapter.tensors.len(),
            stored.n_file_tensors
        )?;
        writeln!(
            out,
            "dtype:         {}",
            join(stored.dtypes.iter().map(|(t, n)| format!("{t} ×{n}")))
        )?;
        writeln!(out, "parameters:    {n_params}")?;
        writeln!(
            out,
            "size:          {} bytes ({:.2} MB)",
            stored.bytes,
            stored.bytes as f64 / 1e6
        )?;
        writeln!(
            out,
            "scale:         {} (alpha / r; × the user's scale)",
            join(&scales)
        )?;
        for (k, v) in &adapter.metadata {
            writeln!(out, "meta:          {k} = {}", meta_json(v))?;
        }
        if args.tensors {
            for (name, p) in &adapter.tensors {
                writeln!(
                    out,
                    "  {name:<32} rank {:>3}  {:>6} -> {:<6} scale {}",
                    p.rank,
                    p.n_in,
                    p.n_out,
                    p.effective_scale(1.0)
                )?;
            }
        }
        if let (Some(Ok(())), Some(path)) = (&check, &args.base) {
            writeln!(out, "base:          OK, fits {}", path.display())?;
        }
    }
    print_stdout(&out)?;
    match (check, &args.base) {
        (Some(Err(e)), Some(path)) => Err(anyhow!(
            "adapter {} does not fit base model {}: {e}",
            args.adapter.display(),
            path.display()
        )),
        _ => Ok(()),
    }
}

/// The output format: `--to`, else from OUT's name (`.gguf` → GGUF; else a PEFT directory).
fn output_format(to: Option<AdapterFormat>, out: &Path) -> Result<AdapterFormat> {
    if let Some(f) = to {
        return Ok(f);
    }
    match out.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("gguf") => Ok(AdapterFormat::Gguf),
        Some(e) if e.eq_ignore_ascii_case("safetensors") => bail!(
            "{}: a PEFT adapter is written as a directory (adapter_config.json + \
             adapter_model.safetensors); give the directory, or --to",
            out.display()
        ),
        _ => Ok(AdapterFormat::Peft),
    }
}

/// The input's element type when the output format can store it, else f32.
fn default_type(stored: &StoredInfo, to: AdapterFormat) -> QuantType {
    let single = (stored.dtypes.len() == 1)
        .then(|| {
            stored
                .dtypes
                .keys()
                .next()
                .and_then(|k| QuantType::from_name(k))
        })
        .flatten();
    match (single, to) {
        (Some(t @ (QuantType::F32 | QuantType::F16 | QuantType::BF16)), _) => t,
        (Some(QuantType::Q8_0), AdapterFormat::Gguf) => QuantType::Q8_0,
        _ => QuantType::F32,
    }
}

fn convert(args: ConvertArgs) -> Result<()> {
    let to = output_format(args.to, &args.output)?;
    let stored = stored_info(&args.input)
        .with_context(|| format!("cannot read adapter {}", args.input.display()))?;
    let ty = args.ty.unwrap_or_else(|| default_type(&stored, to));
    if to == AdapterFormat::Peft && ty == QuantType::Q8_0 {
        bail!("PEFT tensors can be f32, f16 or bf16, not q8_0");
    }
    let base = args.base.as_deref().map(open_base).transpose()?;
    let adapter = graft_runtime::adapter::convert(&args.input, &args.output, to, ty, base.as_ref())
        .map_err(with_base_hint)
        .with_context(|| {
            format!(
                "cannot convert {} to {}",
                args.input.display(),
                args.output.display()
            )
        })?;
    eprintln!(
        "converted {} pairs: {} ({}) -> {} ({}, {}){}",
        adapter.tensors.len(),
        args.input.display(),
        format_name(stored.format),
        args.output.display(),
        format_name(to),
        ty,
        if base.is_some() {
            "; fits the base model"
        } else {
            ""
        }
    );
    Ok(())
}
