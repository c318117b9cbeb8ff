//! `graft chat`: interactive multi-turn chat on stdin, reusing the KV cache between turns.

use super::model_args::{chat_template, check_ctx, ModelArgs, SamplingArgs, TemplateArgs};
use anyhow::Result;
use graft_runtime::chat_template::ChatMessage;
use graft_runtime::generate::{generate, GenerateParams, StopReason};
use graft_runtime::{Session, SessionParams};
use std::io::{BufRead, Write};

/// Arguments of `graft chat`.
#[derive(clap::Args, Debug)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Most tokens per reply (-1 = until end of generation or a full context).
    #[arg(short = 'n', long = "n-predict", default_value_t = -1, allow_negative_numbers = true)]
    n_predict: i64,
    /// Context size in tokens.
    #[arg(short = 'c', long = "ctx-size", default_value_t = 4096)]
    ctx: usize,
    /// Render the model's own Jinja chat template (as llama.cpp's --jinja); by default the
    /// built-in format llama.cpp detects in it (ChatML, gemma, llama3, ...) is used, as
    /// llama.cpp does without --jinja.
    #[arg(long)]
    jinja: bool,
    #[command(flatten)]
    template: TemplateArgs,
    /// A system message to start the conversation with.
    #[arg(long = "system")]
    system: Option<String>,
}

/// Runs `graft chat`.
pub fn run(a: ChatArgs) -> Result<()> {
    let n_ctx = check_ctx(a.ctx)?;
    let sampler = a.sampling.params()?;
    // The template is chosen and tried on a first turn from the file's metadata before the
    // weights are loaded: a template that cannot render is refused at once, in a few MB.
    let (gguf, tok) = a.model.tokenizer()?;
    let tmpl = chat_template(gguf.metadata(), &tok, a.jinja, &a.template)?;
    let mut probe: Vec<ChatMessage> = a
        .system
        .iter()
        .map(|s| ChatMessage::new("system", s))
        .collect();
    probe.push(ChatMessage::new("user", "Hi"));
    tmpl.render(&probe, true)?;
    drop(gguf);
    let (model, _) = a.model.load()?;
    let mut session = Session::new(
        &model,
        SessionParams {
            n_ctx,
            ..SessionParams::default()
        },
    )?;
    session.set_adapters(&a.model.lora.load(&model)?)?;
    let params = GenerateParams {
        max_tokens: if a.n_predict < 0 {
            usize::MAX
        } else {
            a.n_predict as usize
        },
        stop: Vec::new(),
        sampler,
    };
    let start: Vec<ChatMessage> = a
        .system
        .iter()
        .map(|s| ChatMessage::new("system", s))
        .collect();
    let mut messages = start.clone();
    // Tokens whose keys/values are in the cache, in order.
    let mut cached: Vec<u32> = Vec::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut out = std::io::stdout();
    eprintln!("graft chat: type a message, /exit to quit, /reset to start over.");
    loop {
        eprint!("> ");
        let _ = std::io::stderr().flush();
        let Some(line) = lines.next() else { break };
        let line = line?;
        let msg = line.trim();
        if msg == "/exit" || msg == "/quit" {
            break;
        }
        if msg == "/reset" {
            messages = start.clone();
            continue;
        }
        if msg.is_empty() {
            continue;
        }
        messages.push(ChatMessage::new("user", msg));
        let prompt = tmpl.render(&messages, true)?;
        let ids = tok.encode(&prompt, true, true);
        if ids.len() >= n_ctx {
            eprintln!(
                "the conversation is {} tokens, the context {n_ctx}: starting over (raise -c)",
                ids.len()
            );
            messages = start.clone();
            messages.push(ChatMessage::new("user", msg));
            cached.clear();
            session.reset();
            continue;
        }
        // Reuse the cached prefix; evaluate only what changed (at least one token).
        let mut keep = cached.iter().zip(&ids).take_while(|(a, b)| a == b).count();
        keep = keep.min(ids.len() - 1);
        session.truncate(keep);
        cached.truncate(keep);
        let mut on_piece = |p: &str| {
            out.write_all(p.as_bytes())
                .and_then(|_| out.flush())
                .is_ok()
        };
        let g = generate(&mut session, &tok, &ids[keep..], &params, &mut on_piece)?;
        println!();
        cached.extend_from_slice(&ids[keep..]);
        cached.extend_from_slice(&g.ids[..g.decode_evals]);
        debug_assert_eq!(cached.len(), session.n_past());
        eprintln!(
            "[{} new prompt tokens {:.0} tok/s, {} generated {:.1} tok/s, context {}/{n_ctx}]",
            g.prompt_tokens,
            g.prefill_tok_s(),
            g.ids.len(),
            g.decode_tok_s(),
            session.n_past()
        );
        messages.push(ChatMessage::new("assistant", g.text.trim()));
        if g.stop_reason == StopReason::ContextFull {
            eprintln!("context full: starting over");
            messages = start.clone();
            cached.clear();
            session.reset();
        }
    }
    Ok(())
}
