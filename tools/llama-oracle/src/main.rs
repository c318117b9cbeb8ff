//! `llama-oracle`: llama.cpp (through llama-cpp-2) as graft's parity oracle.
//!
//! Every subcommand prints one JSON object on stdout, except `quantize-blocks` and
//! `dequantize-blocks`, which write raw bytes; llama.cpp's own logging is silenced unless
//! `--verbose` is given. See README.md for the subcommands and how tests use them.

mod bench;
mod chat;
mod engine;
mod generate;
mod logits;
mod perplexity;
mod quant;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

use engine::{default_threads, to_ids, Engine, LoraArgs};

#[derive(Parser)]
#[command(
    name = "llama-oracle",
    about = "llama.cpp as graft's parity oracle (JSON on stdout)"
)]
struct Cli {
    /// Let llama.cpp log to stderr.
    #[arg(long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Tokenize like llama.cpp does for prompts (BOS per model, special tokens parsed).
    Tokenize {
        /// GGUF model file.
        #[arg(short = 'm', long)]
        model: PathBuf,
        /// Text to tokenize.
        #[arg(long, group = "input")]
        text: Option<String>,
        /// File whose whole contents are tokenized.
        #[arg(long, group = "input")]
        file: Option<PathBuf>,
        /// JSON array of strings, each tokenized separately (one model load).
        #[arg(long, group = "input")]
        texts_json: Option<PathBuf>,
        /// Treat special-token text such as <|im_start|> as plain text.
        #[arg(long)]
        no_special: bool,
    },
    /// Greedy (argmax) generation.
    Generate {
        /// GGUF model file.
        #[arg(short = 'm', long)]
        model: PathBuf,
        /// Prompt (the user message with --chat).
        #[arg(short = 'p', long, group = "input")]
        prompt: Option<String>,
        /// JSON array of {"prompt": .., "chat": bool}, each generated separately (one model load).
        #[arg(long, group = "input")]
        prompts_json: Option<PathBuf>,
        /// Apply the model's chat template (one user message + generation prompt).
        #[arg(long)]
        chat: bool,
        /// For chat prompts: one of llama.cpp's built-in templates (gemma, chatml, llama3, ...)
        /// instead of the model's own (for models that carry none).
        #[arg(long)]
        chat_template: Option<String>,
        /// Maximum tokens to generate (stops early at end-of-generation).
        #[arg(short = 'n', long, default_value_t = 32)]
        n: usize,
        /// Threads.
        #[arg(short = 't', long, default_value_t = default_threads())]
        threads: i32,
        #[command(flatten)]
        lora: LoraArgs,
    },
    /// llama.cpp's `llama_chat_apply_template` on conversations: the prompt text each named
    /// template (a built-in name, or `model` for the model's own) renders.
    ChatTemplate {
        /// GGUF model file (only its own template is read; the weights are not used).
        #[arg(short = 'm', long)]
        model: PathBuf,
        /// Template: a llama.cpp built-in name (chatml, llama3, gemma, phi3, ...) or `model`;
        /// repeatable.
        #[arg(long = "template", required = true)]
        templates: Vec<String>,
        /// JSON array of {"messages": [{"role", "content"}], "add_generation_prompt": bool}.
        #[arg(long)]
        conversations_json: PathBuf,
    },
    /// Top-K logits, argmax and log-softmax at every position of a fixed id sequence.
    Logits {
        /// GGUF model file.
        #[arg(short = 'm', long)]
        model: PathBuf,
        /// JSON file: `[ids...]` or `{"ids":[...]}`.
        #[arg(long)]
        ids_file: PathBuf,
        /// How many of the largest logits to keep per position.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Threads.
        #[arg(short = 't', long, default_value_t = default_threads())]
        threads: i32,
        #[command(flatten)]
        lora: LoraArgs,
    },
    /// llama.cpp's perplexity (non-overlapping windows, second half scored).
    Perplexity {
        /// GGUF model file.
        #[arg(short = 'm', long)]
        model: PathBuf,
        /// Text file.
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// Window (context) size in tokens.
        #[arg(short = 'c', long, default_value_t = 512)]
        ctx: usize,
        /// Threads.
        #[arg(short = 't', long, default_value_t = default_threads())]
        threads: i32,
    },
    /// llama-bench style pp / tg throughput.
    Bench {
        /// GGUF model file.
        #[arg(short = 'm', long)]
        model: PathBuf,
        /// Prompt tokens (pp test; 0 to skip).
        #[arg(short = 'p', long, default_value_t = 128)]
        p: usize,
        /// Generated tokens after the prompt (tg test; 0 to skip).
        #[arg(short = 'n', long, default_value_t = 128)]
        n: usize,
        /// Threads.
        #[arg(short = 't', long, default_value_t = default_threads())]
        threads: i32,
        /// Timed repetitions (after one warm-up).
        #[arg(short = 'r', long, default_value_t = 5)]
        reps: usize,
    },
    /// Load a GGUF (e.g. one written by `graft quantize`) and generate; non-zero exit on failure.
    LoadCheck {
        /// GGUF model file.
        #[arg(short = 'm', long)]
        model: PathBuf,
        /// Prompt (raw, no chat template).
        #[arg(short = 'p', long, default_value = "The capital of France is")]
        prompt: String,
        /// Tokens to generate.
        #[arg(short = 'n', long, default_value_t = 8)]
        n: usize,
        /// Threads.
        #[arg(short = 't', long, default_value_t = default_threads())]
        threads: i32,
    },
    /// ggml_quantize_chunk (no imatrix): little-endian f32 on stdin → quantized blocks on stdout.
    /// Rows of 256 values when the length is a multiple of 256, else one row.
    QuantizeBlocks {
        /// q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k f16 bf16.
        #[arg(long = "type")]
        ty: String,
    },
    /// The type traits' to_float: quantized blocks on stdin → little-endian f32 on stdout.
    DequantizeBlocks {
        /// q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k f16 bf16.
        #[arg(long = "type")]
        ty: String,
    },
    /// llama_model_quantize (what llama-quantize runs), with its default parameters.
    Quantize {
        /// Input GGUF model.
        #[arg(short = 'm', long)]
        model: PathBuf,
        /// Output GGUF file.
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// llama-quantize's type names in lower case (f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k
        /// q3_k_s q3_k_m q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k; q4_k/q5_k = Q4_K_S/Q5_K_S), or a
        /// llama_ftype number.
        #[arg(long = "type")]
        ty: String,
        /// Allow requantizing already quantized tensors.
        #[arg(long)]
        allow_requantize: bool,
        /// Threads.
        #[arg(short = 't', long, default_value_t = default_threads())]
        threads: i32,
    },
}

#[derive(Serialize)]
struct TokenizeOut {
    ids: Vec<i32>,
    text: String,
    add_bos: bool,
    parse_special: bool,
}

#[derive(Serialize)]
struct TokenizeCase {
    text: String,
    ids: Vec<i32>,
    detok: String,
}

#[derive(Serialize)]
struct TokenizeSet {
    add_bos: bool,
    parse_special: bool,
    cases: Vec<TokenizeCase>,
}

#[derive(Serialize)]
struct LoadCheckOut {
    ok: bool,
    load_ms: f64,
    n_vocab: i32,
    n_layer: u32,
    n_params: u64,
    size_bytes: u64,
    prompt_ids: Vec<i32>,
    ids: Vec<i32>,
    text: String,
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value).context("writing JSON to stdout")?;
    writeln!(out).context("writing to stdout")?;
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let verbose = cli.verbose;
    match cli.cmd {
        Cmd::Tokenize {
            model,
            text,
            file,
            texts_json,
            no_special,
        } => {
            let engine = Engine::load(&model, verbose)?;
            if let Some(path) = texts_json {
                let raw = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let texts: Vec<String> = serde_json::from_str(&raw).with_context(|| {
                    format!("{} must be a JSON array of strings", path.display())
                })?;
                let cases = texts
                    .into_iter()
                    .map(|text| {
                        let tokens = engine.tokenize(&text, !no_special);
                        TokenizeCase {
                            ids: to_ids(&tokens),
                            detok: engine.detokenize(&tokens, true),
                            text,
                        }
                    })
                    .collect();
                return print_json(&TokenizeSet {
                    add_bos: engine.model.vocab().should_add_bos(),
                    parse_special: !no_special,
                    cases,
                });
            }
            let text = match (text, file) {
                (Some(t), _) => t,
                (None, Some(f)) => std::fs::read_to_string(&f)
                    .with_context(|| format!("reading {}", f.display()))?,
                (None, None) => anyhow::bail!("give --text, --file or --texts-json"),
            };
            let tokens = engine.tokenize(&text, !no_special);
            print_json(&TokenizeOut {
                text: engine.detokenize(&tokens, true),
                ids: to_ids(&tokens),
                add_bos: engine.model.vocab().should_add_bos(),
                parse_special: !no_special,
            })
        }
        Cmd::Generate {
            model,
            prompt,
            prompts_json,
            chat,
            chat_template,
            n,
            threads,
            lora,
        } => {
            let mut engine = Engine::load(&model, verbose)?;
            let mut adapter = engine.load_loras(&lora)?;
            if let Some(path) = prompts_json {
                let specs = generate::read_prompts(&path)?;
                let mut cases = Vec::with_capacity(specs.len());
                for s in &specs {
                    cases.push(generate::generate(
                        &mut engine,
                        &s.prompt,
                        s.chat,
                        chat_template.as_deref(),
                        n,
                        threads,
                        &mut adapter,
                    )?);
                }
                return print_json(&generate::GenerationSet { n, cases });
            }
            let prompt = prompt.context("give -p PROMPT or --prompts-json FILE")?;
            print_json(&generate::generate(
                &mut engine,
                &prompt,
                chat,
                chat_template.as_deref(),
                n,
                threads,
                &mut adapter,
            )?)
        }
        Cmd::ChatTemplate {
            model,
            templates,
            conversations_json,
        } => {
            let engine = Engine::load(&model, verbose)?;
            print_json(&chat::render_all(&engine, &templates, &conversations_json)?)
        }
        Cmd::Logits {
            model,
            ids_file,
            top,
            threads,
            lora,
        } => {
            anyhow::ensure!(top >= 1, "--top must be at least 1");
            let ids = logits::read_ids(&ids_file)?;
            let mut engine = Engine::load(&model, verbose)?;
            print_json(&logits::logits(&mut engine, &ids, top, threads, &lora)?)
        }
        Cmd::Perplexity {
            model,
            file,
            ctx,
            threads,
        } => {
            let engine = Engine::load(&model, verbose)?;
            print_json(&perplexity::perplexity(&engine, &file, ctx, threads)?)
        }
        Cmd::Bench {
            model,
            p,
            n,
            threads,
            reps,
        } => {
            let engine = Engine::load(&model, verbose)?;
            print_json(&bench::bench(&engine, p, n, threads, reps)?)
        }
        Cmd::LoadCheck {
            model,
            prompt,
            n,
            threads,
        } => {
            let mut engine = Engine::load(&model, verbose)?;
            let g = generate::generate(&mut engine, &prompt, false, None, n, threads, &mut None)?;
            anyhow::ensure!(!g.ids.is_empty(), "generated no tokens");
            print_json(&LoadCheckOut {
                ok: true,
                load_ms: engine.load_ms,
                n_vocab: engine.model.n_vocab(),
                n_layer: engine.model.n_layer(),
                n_params: engine.model.n_params(),
                size_bytes: engine.model.size(),
                prompt_ids: g.prompt_ids,
                ids: g.ids,
                text: g.text,
            })
        }
        Cmd::QuantizeBlocks { ty } => quant::quantize_blocks_cmd(&ty),
        Cmd::DequantizeBlocks { ty } => quant::dequantize_blocks_cmd(&ty),
        Cmd::Quantize {
            model,
            output,
            ty,
            allow_requantize,
            threads,
        } => print_json(&quant::quantize_model(
            &model,
            &output,
            &ty,
            allow_requantize,
            threads,
            verbose,
        )?),
    }
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llama-oracle: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
