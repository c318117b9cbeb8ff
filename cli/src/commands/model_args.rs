//! Flags shared by the model commands (llama.cpp's names) and the helpers behind them.

use anyhow::{bail, Context, Result};
use graft_runtime::lora::LoadedAdapter;
use graft_runtime::sampling::SamplerParams;
use graft_runtime::{DeviceKind, Model, ModelError, ModelParams};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Model file, device and threads.
#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// Path of the GGUF model.
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Device to run on: auto (the first hardware GPU that can hold the model, else the CPU;
    /// says on stderr which it chose and why), cpu, gpu (the first GPU adapter, software ones
    /// such as lavapipe included) or gpu:N (adapter N of `graft devices`); with the `cuda`
    /// feature cuda or cuda:N, which only reports what it finds (no CUDA backend yet).
    #[arg(long = "device", default_value = "auto", value_parser = parse_device)]
    pub device: DeviceKind,
    /// Compute threads (default: number of physical cores).
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// LoRA adapters.
    #[command(flatten)]
    pub lora: LoraArgs,
}

/// LoRA adapter flags (llama.cpp's names), shared by run, chat, perplexity and bench.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LoraArgs {
    /// LoRA adapter (GGUF or PEFT directory) applied at scale 1; repeatable.
    #[arg(long = "lora", value_name = "FILE")]
    pub lora: Vec<PathBuf>,
    /// LoRA adapter with its own scale; repeatable.
    #[arg(long = "lora-scaled", num_args = 2, value_names = ["FILE", "SCALE"])]
    pub lora_scaled: Vec<String>,
}

impl LoraArgs {
    /// The adapters and scales, in the order given (`--lora` first, then `--lora-scaled`).
    pub fn specs(&self) -> Result<Vec<(PathBuf, f32)>> {
        let mut out: Vec<(PathBuf, f32)> = self.lora.iter().map(|p| (p.clone(), 1.0)).collect();
        for pair in self.lora_scaled.chunks(2) {
            let [file, scale] = pair else {
                bail!("--lora-scaled needs FILE SCALE");
            };
            let s: f32 = scale
                .parse()
                .ok()
                .filter(|s: &f32| s.is_finite())
                .with_context(|| {
                    format!("--lora-scaled {file}: scale '{scale}' is not a number")
                })?;
            out.push((PathBuf::from(file), s));
        }
        Ok(out)
    }

    /// Loads (and validates) every adapter into the model's registry; returns the list for
    /// `Session::set_adapters`.
    pub fn load(&self, model: &Model) -> Result<Vec<(Arc<LoadedAdapter>, f32)>> {
        let mut out = Vec::new();
        for (path, scale) in self.specs()? {
            let id = model.load_adapter(&path)?;
            let a = model.adapters().get(id).with_context(|| {
                format!("adapter {} vanished from the registry", path.display())
            })?;
            out.push((a, scale));
        }
        Ok(out)
    }
}

impl ModelArgs {
    /// The thread count, checked.
    pub fn threads(&self) -> Result<usize> {
        match self.threads {
            Some(0) => bail!("-t/--threads must be at least 1"),
            Some(n) => Ok(n),
            None => Ok(physical_cores()),
        }
    }

    /// The model file's metadata and tokenizer only (the header is mapped and parsed, no
    /// weight is touched): commands build and check the prompt with these before paying for
    /// the model load, so a hostile chat template is refused in a few MB.
    pub fn tokenizer(
        &self,
    ) -> Result<(
        graft_quant::gguf::GgufFile,
        graft_runtime::tokenizer::Tokenizer,
    )> {
        if !self.model.is_file() {
            bail!("model file not found: {}", self.model.display());
        }
        let gguf = graft_quant::gguf::GgufFile::open(&self.model)
            .with_context(|| format!("cannot read {}", self.model.display()))?;
        // The architecture and hyperparameters first: a model graft cannot run is named as
        // such before anything else is read.
        graft_runtime::config::ModelConfig::from_gguf(&gguf)?;
        let tok = graft_runtime::tokenizer::Tokenizer::from_gguf(gguf.metadata())?;
        Ok((gguf, tok))
    }

    /// Loads the model on `--device`; returns it with the load time in seconds. Under
    /// `--device auto` the device chosen, and why, is printed to stderr as one line.
    pub fn load(&self) -> Result<(Model, f64)> {
        let threads = self.threads()?;
        if !self.model.is_file() {
            bail!("model file not found: {}", self.model.display());
        }
        let t0 = Instant::now();
        let model = Model::load_on(&self.model, ModelParams { threads }, self.device).map_err(
            |e| match e {
                ModelError::Device(_) => {
                    anyhow::Error::new(e).context(format!("cannot run on --device {}", self.device))
                }
                e => e.into(),
            },
        )?;
        let load_s = t0.elapsed().as_secs_f64();
        if let Some(note) = model.device_note() {
            eprintln!("{}", one_line(note));
        }
        Ok((model, load_s))
    }
}

/// `text` on one line: every run of whitespace (line breaks included) becomes one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses `--device` (clap value parser).
pub fn parse_device(s: &str) -> Result<DeviceKind, String> {
    DeviceKind::parse(s).map_err(|e| e.to_string())
}

/// Sampling flags (llama.cpp's names and defaults).
#[derive(clap::Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Temperature (0 = greedy).
    #[arg(long = "temp", default_value_t = 0.8)]
    pub temp: f32,
    /// Top-k (0 = off).
    #[arg(long = "top-k", default_value_t = 40)]
    pub top_k: i32,
    /// Top-p (1 = off).
    #[arg(long = "top-p", default_value_t = 0.95)]
    pub top_p: f32,
    /// Min-p (0 = off).
    #[arg(long = "min-p", default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty (1 = off).
    #[arg(long = "repeat-penalty", default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Tokens the repetition penalty looks back at.
    #[arg(long = "repeat-last-n", default_value_t = 64)]
    pub repeat_last_n: usize,
    /// RNG seed (default: random).
    #[arg(long = "seed")]
    pub seed: Option<u64>,
}

impl SamplingArgs {
    /// The sampler parameters, checked.
    pub fn params(&self) -> Result<SamplerParams> {
        if !self.temp.is_finite() {
            bail!("--temp must be a number");
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            bail!("--top-p must be in [0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            bail!("--min-p must be in [0, 1]");
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            bail!("--repeat-penalty must be positive");
        }
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        Ok(SamplerParams {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            repeat_last_n: self.repeat_last_n,
            seed,
        })
    }
}

/// Checks a context size flag.
pub fn check_ctx(c: usize) -> Result<usize> {
    if c == 0 {
        bail!("-c/--ctx-size must be at least 1");
    }
    Ok(c)
}

/// Reads a text file that must be UTF-8.
pub fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not valid UTF-8 (first invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Physical cores of this machine (distinct core ids per package in /proc/cpuinfo), or the
/// logical CPU count where that is not available.
pub fn physical_cores() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        return logical;
    };
    let mut cores = std::collections::HashSet::new();
    let mut phys = String::new();
    for line in info.lines() {
        let mut kv = line.splitn(2, ':');
        let (k, v) = (
            kv.next().unwrap_or("").trim(),
            kv.next().unwrap_or("").trim(),
        );
        if k == "physical id" {
            phys = v.to_string();
        } else if k == "core id" {
            cores.insert((phys.clone(), v.to_string()));
        }
    }
    if cores.is_empty() {
        logical
    } else {
        cores.len().min(logical)
    }
}

/// `--chat-template NAME|FILE`, on every command that renders chats.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TemplateArgs {
    /// The chat template to render chats with, for models that carry none or to override
    /// theirs: one of llama.cpp's built-in names (chatml, llama2, llama2-sys, llama2-sys-bos,
    /// llama2-sys-strip, llama3, gemma, phi3, phi4, mistral-v7, mistral-v7-tekken, zephyr),
    /// rendered exactly as llama.cpp renders it, or a Jinja template file (bounded like a
    /// model's own). Default: the model's template.
    #[arg(long = "chat-template", value_name = "NAME|FILE")]
    pub chat_template: Option<String>,
}

impl TemplateArgs {
    /// The choice, if one was made.
    pub fn choice(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
}

/// The chat template as llama.cpp picks it: `--chat-template` when given; else, without
/// `jinja`, the built-in format llama.cpp detects in the model's template (ChatML for SmolLM2's,
/// no default system message; `gemma` for Gemma's); with `jinja`, or for templates llama.cpp
/// has no built-in for, the model's own Jinja template.
pub fn chat_template(
    md: &graft_quant::gguf::Metadata,
    tok: &graft_runtime::tokenizer::Tokenizer,
    jinja: bool,
    template: &TemplateArgs,
) -> Result<graft_runtime::chat_template::ChatTemplate> {
    graft_runtime::chat_template::ChatTemplate::select(md, tok, jinja, template.choice())
        .context("cannot choose the chat template")
}
