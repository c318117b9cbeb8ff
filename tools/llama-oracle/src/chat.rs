//! `chat-template`: the prompt text llama.cpp's `llama_chat_apply_template` renders for given
//! conversations, with one of its built-in templates or the model's own.

use std::path::Path;

use anyhow::{Context, Result};
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;

/// One message of a conversation.
#[derive(Clone, Deserialize, Serialize)]
pub struct Message {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// The text.
    pub content: String,
}

/// One conversation of a `--conversations-json` file.
#[derive(Clone, Deserialize, Serialize)]
pub struct Conversation {
    /// The messages, in order.
    pub messages: Vec<Message>,
    /// Whether the opening of the assistant's turn is appended (`add_ass`).
    #[serde(default)]
    pub add_generation_prompt: bool,
}

/// A conversation and what the template rendered for it.
#[derive(Serialize)]
pub struct Rendered {
    /// The messages, as given.
    pub messages: Vec<Message>,
    /// As given.
    pub add_generation_prompt: bool,
    /// llama.cpp's output.
    pub text: String,
}

/// Every conversation rendered by one template.
#[derive(Serialize)]
pub struct TemplateRenders {
    /// The template's name as given (`model` for the model's own).
    pub template: String,
    /// One entry per conversation, in input order.
    pub cases: Vec<Rendered>,
}

/// Output of `chat-template`.
#[derive(Serialize)]
pub struct ChatTemplateOut {
    /// One entry per `--template`, in the order given.
    pub templates: Vec<TemplateRenders>,
}

/// The template called `name` (a llama.cpp built-in name; `None` or `model`: the model's own).
pub fn template(engine: &Engine, name: Option<&str>) -> Result<LlamaChatTemplate> {
    match name {
        None | Some("model") => engine
            .model
            .chat_template(None)
            .context("model has no chat template (tokenizer.chat_template)"),
        Some(n) => LlamaChatTemplate::new(n).context("template name contains a NUL byte"),
    }
}

/// Renders every conversation in `path` with every template in `names`.
pub fn render_all(engine: &Engine, names: &[String], path: &Path) -> Result<ChatTemplateOut> {
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("reading conversations file {}", path.display()))?;
    let convs: Vec<Conversation> = serde_json::from_str(&raw).with_context(|| {
        format!(
            "{} must be a JSON array of {{\"messages\": [{{\"role\", \"content\"}}], \
             \"add_generation_prompt\": bool}}",
            path.display()
        )
    })?;
    let mut templates = Vec::with_capacity(names.len());
    for name in names {
        let tmpl = template(engine, Some(name))?;
        let mut cases = Vec::with_capacity(convs.len());
        for (i, c) in convs.iter().enumerate() {
            let msgs = c
                .messages
                .iter()
                .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("conversation {i}: a message contains a NUL byte"))?;
            let text = engine
                .model
                .apply_chat_template(&tmpl, &msgs, c.add_generation_prompt)
                .with_context(|| {
                    format!("llama.cpp could not apply template '{name}' to conversation {i}")
                })?;
            cases.push(Rendered {
                messages: c.messages.clone(),
                add_generation_prompt: c.add_generation_prompt,
                text,
            });
        }
        templates.push(TemplateRenders {
            template: name.clone(),
            cases,
        });
    }
    Ok(ChatTemplateOut { templates })
}
