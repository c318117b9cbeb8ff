//! `generate`: greedy (argmax) decoding, optionally through the model's chat template.

use anyhow::{Context, Result};
use llama_cpp_2::model::{LlamaChatMessage, LlamaLoraAdapter};
use llama_cpp_2::token::LlamaToken;
use serde::Serialize;

use crate::engine::{apply_lora, argmax, decode, to_ids, Engine};

/// Result of a greedy generation.
#[derive(Serialize)]
pub struct Generation {
    /// The prompt as given (the user message when `chat` is set).
    pub prompt: String,
    /// Whether the chat template was applied.
    pub chat: bool,
    /// The exact prompt string fed to the tokenizer (after the chat template, if any).
    pub prompt_text: String,
    /// Prompt token ids.
    pub prompt_ids: Vec<i32>,
    /// Generated ids, including the end-of-generation token if one was produced.
    pub ids: Vec<i32>,
    /// Generated text (special tokens not rendered).
    pub text: String,
    /// True if generation stopped on an end-of-generation token.
    pub stopped_on_eog: bool,
    /// Per generated token: its logit minus the runner-up's. Small margins mark near-ties
    /// where another engine may legitimately pick a different token.
    pub margins: Vec<f32>,
}

/// Apply a chat template to one user message, with the generation prompt: `template` names one
/// of llama.cpp's built-in templates (`gemma`, `chatml`, ...), `None` takes the model's own.
pub fn chat_prompt(engine: &Engine, user: &str, template: Option<&str>) -> Result<String> {
    let tmpl = crate::chat::template(engine, template)?;
    let msg = LlamaChatMessage::new("user".to_string(), user.to_string())
        .context("chat message contains a NUL byte")?;
    engine
        .model
        .apply_chat_template(&tmpl, &[msg], true)
        .context("llama.cpp could not apply the chat template")
}

/// Greedy-generate up to `n` tokens after `prompt` (stops early on an end-of-generation token).
pub fn generate(
    engine: &mut Engine,
    prompt: &str,
    chat: bool,
    template: Option<&str>,
    n: usize,
    threads: i32,
    adapter: &mut Option<(LlamaLoraAdapter, f32)>,
) -> Result<Generation> {
    let prompt_text = if chat {
        chat_prompt(engine, prompt, template)?
    } else {
        prompt.to_string()
    };
    let prompt_tokens = engine.tokenize(&prompt_text, true);
    anyhow::ensure!(!prompt_tokens.is_empty(), "prompt tokenizes to nothing");
    let n_ctx = prompt_tokens.len() + n + 1;
    let mut ctx = engine.context(n_ctx, prompt_tokens.len().max(512), threads)?;
    apply_lora(&mut ctx, adapter)?;

    decode(&mut ctx, &prompt_tokens, 0, false)?;
    let mut out: Vec<LlamaToken> = Vec::with_capacity(n);
    let mut stopped_on_eog = false;
    let vocab = engine.model.vocab();
    let mut margins = Vec::with_capacity(n);
    for pos in prompt_tokens.len()..prompt_tokens.len() + n {
        let logits = ctx.get_logits_ith(-1);
        let best = argmax(logits);
        let runner_up = logits
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != best)
            .map(|(_, &v)| v)
            .fold(f32::NEG_INFINITY, f32::max);
        margins.push(logits[best] - runner_up);
        let next = LlamaToken::new(i32::try_from(best)?);
        out.push(next);
        if vocab.is_eog(next) {
            stopped_on_eog = true;
            break;
        }
        decode(&mut ctx, &[next], pos, false)?;
    }
    drop(ctx);
    Ok(Generation {
        prompt: prompt.to_string(),
        chat,
        text: engine.detokenize(&out, false),
        prompt_text,
        prompt_ids: to_ids(&prompt_tokens),
        ids: to_ids(&out),
        stopped_on_eog,
        margins,
    })
}

/// One entry of a `--prompts-json` file.
#[derive(serde::Deserialize)]
pub struct PromptSpec {
    /// Prompt text (user message when `chat`).
    pub prompt: String,
    /// Apply the chat template.
    #[serde(default)]
    pub chat: bool,
}

/// Output of `generate --prompts-json`.
#[derive(Serialize)]
pub struct GenerationSet {
    /// Maximum tokens generated per prompt.
    pub n: usize,
    /// One generation per prompt, in input order.
    pub cases: Vec<Generation>,
}

/// Read a JSON array of `{"prompt": .., "chat": bool}`.
pub fn read_prompts(path: &std::path::Path) -> Result<Vec<PromptSpec>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading prompts file {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "{} must be a JSON array of {{\"prompt\": string, \"chat\": bool}}",
            path.display()
        )
    })
}
