//! `graft run`: generate text from a prompt, streaming it to stdout.

use super::model_args::{
    chat_template, check_ctx, read_utf8, ModelArgs, SamplingArgs, TemplateArgs,
};
use anyhow::{bail, Result};
use graft_runtime::chat_template::ChatMessage;
use graft_runtime::generate::{generate, GenerateParams};
use graft_runtime::{Session, SessionParams};
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `graft run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// The prompt.
    #[arg(short = 'p', long = "prompt", conflicts_with = "file")]
    prompt: Option<String>,
    /// Read the prompt from this file (must be UTF-8).
    #[arg(short = 'f', long = "file")]
    file: Option<PathBuf>,
    /// Tokens to generate (-1 = until end of generation or a full context).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true)]
    n_predict: i64,
    /// Context size in tokens.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 4096)]
    ctx: usize,
    /// Wrap the prompt in the model's chat template as a user message.
    #[arg(long)]
    chat: bool,
    /// Render the model's own Jinja chat template (as llama.cpp's --jinja); by default the
    /// built-in format llama.cpp detects in it (ChatML, gemma, llama3, ...) is used, as
    /// llama.cpp does without --jinja.
    #[arg(long)]
    jinja: bool,
    #[command(flatten)]
    template: TemplateArgs,
    /// Stop when this string appears (repeatable).
    #[arg(long = "stop")]
    stop: Vec<String>,
    /// Print one JSON object (text, ids, prompt_tokens, prefill_tok_s, decode_tok_s) at the end
    /// instead of streaming.
    #[arg(long)]
    json: bool,
}

/// Runs `graft run`.
pub fn run(a: RunArgs) -> Result<()> {
    let n_ctx = check_ctx(a.ctx)?;
    let sampler = a.sampling.params()?;
    let prompt = match (&a.prompt, &a.file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => read_utf8(f)?,
        (None, None) => bail!("give a prompt with -p PROMPT or -f FILE"),
    };
    // The prompt is rendered from the file's metadata before the weights are loaded.
    let (gguf, tok) = a.model.tokenizer()?;
    let text = if a.chat {
        let tmpl = chat_template(gguf.metadata(), &tok, a.jinja, &a.template)?;
        tmpl.render(&[ChatMessage::new("user", &prompt)], true)?
    } else {
        prompt
    };
    drop(gguf);
    let (model, _load_s) = a.model.load()?;
    let ids = tok.encode(&text, true, true);
    if ids.is_empty() {
        bail!("the prompt is empty");
    }
    if ids.len() > n_ctx {
        bail!(
            "the prompt is {} tokens, longer than the context size {n_ctx} (raise -c)",
            ids.len()
        );
    }
    let max_tokens = if a.n_predict < 0 {
        usize::MAX
    } else {
        a.n_predict as usize
    };
    let mut session = Session::new(
        &model,
        SessionParams {
            n_ctx,
            ..SessionParams::default()
        },
    )?;
    session.set_adapters(&a.model.lora.load(&model)?)?;
    let params = GenerateParams {
        max_tokens,
        stop: a.stop.clone(),
        sampler,
    };
    let json = a.json;
    let mut out = std::io::stdout().lock();
    let mut on_piece = |p: &str| {
        if !json {
            // A closed stdout (e.g. `| head`) stops generation.
            return out
                .write_all(p.as_bytes())
                .and_then(|_| out.flush())
                .is_ok();
        }
        true
    };
    let g = generate(&mut session, &tok, &ids, &params, &mut on_piece)?;
    if json {
        let v = serde_json::json!({
            "text": g.text,
            "ids": g.ids,
            "prompt_tokens": g.prompt_tokens,
            "prefill_tok_s": g.prefill_tok_s(),
            "decode_tok_s": g.decode_tok_s(),
            "stop_reason": format!("{:?}", g.stop_reason),
        });
        println!("{v}");
    } else {
        println!();
        eprintln!(
            "\nprompt: {} tokens, {:.1} tok/s | generated: {} tokens, {:.1} tok/s | stop: {:?}",
            g.prompt_tokens,
            g.prefill_tok_s(),
            g.ids.len(),
            g.decode_tok_s(),
            g.stop_reason
        );
    }
    Ok(())
}
