//! Chat templates: the model's own `tokenizer.chat_template` (Jinja), rendered with minijinja
//! the way Hugging Face's `apply_chat_template` renders it (`trim_blocks` and `lstrip_blocks`
//! on, Python string methods such as `.strip()` available, `raise_exception` for the
//! template's own errors); llama.cpp's built-in formats by name ([`BuiltinTemplate`]: `chatml`,
//! `llama3`, `gemma`, `phi3`, ...), rendered exactly as llama.cpp renders them; and a Jinja file
//! chosen by the user ([`ChatTemplate::from_name_or_file`], `--chat-template NAME|FILE`), for
//! the many GGUF files that carry no template.
//!
//! A template in a downloaded GGUF is code from a stranger, so every render is bounded: at most
//! [`TEMPLATE_FUEL`] template instructions, [`TEMPLATE_RECURSION`] levels of nesting,
//! [`MAX_RENDER_BYTES`] of output and [`RENDER_BUDGET_BYTES`] of text and values built on the
//! way (what renders is a guarded copy of the template that charges each value it builds:
//! `guard/`); past any of them the render stops with [`ChatTemplateError::Limit`] (a template
//! that loops forever or doubles a string is refused in well under a second).

mod builtin;
mod detect;
mod guard;

use std::path::{Path, PathBuf};

pub use builtin::BuiltinTemplate;
pub use guard::budget::RENDER_BUDGET_BYTES;

use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::tokenizer::Tokenizer;
use graft_quant::gguf::Metadata;

/// The metadata key that holds a GGUF model's chat template.
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, ...
    pub role: String,
    /// The text of the turn.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// What can go wrong with a chat template.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChatTemplateError {
    /// The model carries no template.
    #[error(
        "the model has no chat template ('{CHAT_TEMPLATE_KEY}' is missing): choose one with \
         --chat-template NAME|FILE (built-in names: {names}) or format the prompt yourself",
        names = BuiltinTemplate::names()
    )]
    Missing,
    /// `--chat-template` named neither a built-in template nor an existing file.
    #[error(
        "chat template '{spec}' is neither a built-in template ({names}) nor an existing file",
        names = BuiltinTemplate::names()
    )]
    Unknown {
        /// What was given.
        spec: String,
    },
    /// A template file could not be read.
    #[error("cannot read chat template file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A template file larger than [`MAX_TEMPLATE_FILE_BYTES`] or not UTF-8.
    #[error("chat template file {}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The template is not valid Jinja.
    #[error("the chat template does not parse: {0:#}")]
    Syntax(#[source] JinjaError),
    /// `tokenizer.chat_template` is there but is not a string.
    #[error("'{CHAT_TEMPLATE_KEY}' has type {found}, expected string")]
    WrongType {
        /// The type found.
        found: &'static str,
    },
    /// Rendering failed, or the template called `raise_exception`.
    #[error("rendering the chat template failed: {0:#}")]
    Render(#[source] JinjaError),
    /// The template uses something chat templates may not (loading other templates, a
    /// growing filter on a block).
    #[error("the chat template is refused: {0}")]
    Unsupported(String),
    /// The template ran past a bound (steps, nesting, output size or the bytes it builds): it
    /// is treated as hostile.
    #[error(
        "the chat template was stopped: {0} (graft bounds every render; pass another template \
         or format the prompt yourself)"
    )]
    Limit(String),
}

/// A parsed chat template, ready to render conversations: a Jinja template or one of
/// llama.cpp's built-in formats.
#[derive(Debug)]
pub struct ChatTemplate {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Jinja {
        env: Box<Environment<'static>>,
        bos_token: String,
        eos_token: String,
    },
    Builtin(BuiltinTemplate),
}

/// The largest template file [`ChatTemplate::from_name_or_file`] reads (real templates are a
/// few kB; the largest known ones, with tool-calling logic, are under 100 kB).
pub const MAX_TEMPLATE_FILE_BYTES: u64 = 1 << 20;

const TEMPLATE_NAME: &str = "chat";

/// Template instructions one render may execute (real chat templates need a few hundred per
/// message; this allows conversations of thousands of turns and stops a runaway loop within
/// tens of milliseconds).
pub const TEMPLATE_FUEL: u64 = 2_000_000;

/// Nesting depth (loops, ifs, macro calls) one render may reach.
pub const TEMPLATE_RECURSION: usize = 100;

/// Bytes one render may produce (a prompt this long is far past any model's context).
pub const MAX_RENDER_BYTES: usize = 4 << 20;

impl ChatTemplate {
    /// Parses `source`; `bos_token`/`eos_token` are the texts the template may refer to.
    pub fn new(
        source: &str,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<ChatTemplate, ChatTemplateError> {
        let mut env = Environment::new();
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(ChatTemplateError::Syntax)?;
        // What renders is the guarded copy (same text, every value it builds charged to the
        // render's budget), compiled without whitespace rules: the parse applied them.
        let guarded = guard::guard(source, syntax).map_err(|e| match e {
            guard::GuardError::Syntax(e) => ChatTemplateError::Syntax(e),
            guard::GuardError::Unsupported(what) => ChatTemplateError::Unsupported(what),
        })?;
        env.set_syntax(guard::guarded_syntax().map_err(ChatTemplateError::Syntax)?);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_recursion_limit(TEMPLATE_RECURSION);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        guard::install(&mut env);
        env.add_template_owned(TEMPLATE_NAME, guarded)
            .map_err(ChatTemplateError::Syntax)?;
        Ok(ChatTemplate {
            kind: Kind::Jinja {
                env: Box::new(env),
                bos_token: bos_token.into(),
                eos_token: eos_token.into(),
            },
        })
    }

    /// One of llama.cpp's built-in formats.
    pub fn builtin(template: BuiltinTemplate) -> ChatTemplate {
        ChatTemplate {
            kind: Kind::Builtin(template),
        }
    }

    /// The built-in format this template is, if it is one.
    pub fn as_builtin(&self) -> Option<BuiltinTemplate> {
        match self.kind {
            Kind::Builtin(b) => Some(b),
            Kind::Jinja { .. } => None,
        }
    }

    /// The template a user chose (`--chat-template NAME|FILE`): a built-in name
    /// ([`BuiltinTemplate::names`]) first, else a Jinja file (at most
    /// [`MAX_TEMPLATE_FILE_BYTES`], UTF-8, rendered with the same bounds as a model's template),
    /// whose `bos_token`/`eos_token` are the tokenizer's.
    pub fn from_name_or_file(
        spec: &str,
        tokenizer: &Tokenizer,
    ) -> Result<ChatTemplate, ChatTemplateError> {
        if let Some(b) = BuiltinTemplate::from_name(spec) {
            return Ok(ChatTemplate::builtin(b));
        }
        let path = Path::new(spec);
        if spec.is_empty() || !path.exists() {
            return Err(ChatTemplateError::Unknown {
                spec: spec.to_string(),
            });
        }
        let source = read_template_file(path)?;
        ChatTemplate::new(
            &source,
            token_text(tokenizer, tokenizer.bos_id()),
            token_text(tokenizer, tokenizer.eos_id()),
        )
    }

    /// The template a command renders chats with: the user's choice (`choice`, see
    /// [`ChatTemplate::from_name_or_file`]) when given, else [`ChatTemplate::for_model`].
    pub fn select(
        md: &Metadata,
        tokenizer: &Tokenizer,
        jinja: bool,
        choice: Option<&str>,
    ) -> Result<ChatTemplate, ChatTemplateError> {
        match choice {
            Some(spec) => ChatTemplate::from_name_or_file(spec, tokenizer),
            None => ChatTemplate::for_model(md, tokenizer, jinja),
        }
    }

    /// The template of a model: `source` is its `tokenizer.chat_template` value, `None` when
    /// the key is absent (a clear [`ChatTemplateError::Missing`]).
    pub fn from_model(
        source: Option<&str>,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<ChatTemplate, ChatTemplateError> {
        match source {
            Some(s) => ChatTemplate::new(s, bos_token, eos_token),
            None => Err(ChatTemplateError::Missing),
        }
    }

    /// Plain ChatML, the way llama.cpp's built-in formatter writes it
    /// (`llama_chat_apply_template` without `--jinja`, used for every template it detects as
    /// ChatML): each message as `<|im_start|>{role}\n{content}<|im_end|>\n`, then
    /// `<|im_start|>assistant\n` for the generation prompt. Unlike rendering SmolLM2's own
    /// template, it adds no default system message; use it to reproduce llama.cpp's prompts.
    pub fn chatml() -> Result<ChatTemplate, ChatTemplateError> {
        Ok(ChatTemplate::builtin(BuiltinTemplate::ChatMl))
    }

    /// The template of a GGUF model, with BOS/EOS texts taken from its tokenizer (empty when
    /// the model has no such token).
    pub fn from_gguf(
        md: &Metadata,
        tokenizer: &Tokenizer,
    ) -> Result<ChatTemplate, ChatTemplateError> {
        let source = match md.get(CHAT_TEMPLATE_KEY) {
            None => None,
            Some(v) => Some(v.as_str().ok_or(ChatTemplateError::WrongType {
                found: v.type_name(),
            })?),
        };
        ChatTemplate::from_model(
            source,
            token_text(tokenizer, tokenizer.bos_id()),
            token_text(tokenizer, tokenizer.eos_id()),
        )
    }

    /// The template `graft run --chat` uses for a GGUF model, as llama.cpp picks it: without
    /// `jinja`, the built-in format llama.cpp's heuristics detect in the model's template
    /// (ChatML for SmolLM2's, `gemma` for Gemma's, `llama3`, `phi3`, ... see
    /// [`BuiltinTemplate::detect`]) when graft implements it; otherwise (or with `jinja`, as
    /// llama.cpp's `--jinja`) the model's own Jinja template.
    pub fn for_model(
        md: &Metadata,
        tokenizer: &Tokenizer,
        jinja: bool,
    ) -> Result<ChatTemplate, ChatTemplateError> {
        let detected = md
            .get(CHAT_TEMPLATE_KEY)
            .and_then(|v| v.as_str())
            .and_then(BuiltinTemplate::detect);
        match detected {
            Some(b) if !jinja => Ok(ChatTemplate::builtin(b)),
            _ => ChatTemplate::from_gguf(md, tokenizer),
        }
    }

    /// Renders `messages`; `add_generation_prompt` appends the opening of the assistant's turn.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ChatTemplateError> {
        let (env, bos_token, eos_token) = match &self.kind {
            Kind::Builtin(b) => {
                let text = b.render(messages, add_generation_prompt);
                if text.len() > MAX_RENDER_BYTES {
                    return Err(ChatTemplateError::Limit(format!(
                        "it rendered more than {MAX_RENDER_BYTES} bytes"
                    )));
                }
                return Ok(text);
            }
            Kind::Jinja {
                env,
                bos_token,
                eos_token,
            } => (env, bos_token, eos_token),
        };
        let tmpl = env
            .get_template(TEMPLATE_NAME)
            .map_err(ChatTemplateError::Render)?;
        let ctx = minijinja::context! {
            messages => Value::from(minijinja::value::Serde(messages)),
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token.as_str(),
            eos_token => eos_token.as_str(),
        };
        let mut out = CappedWriter::default();
        let budget = guard::budget::RenderBudget::start();
        let result = tmpl.render_captured_to(ctx, &mut out);
        let exceeded = budget.exceeded();
        drop(budget);
        match result {
            Ok(_) => String::from_utf8(out.buf)
                .map_err(|e| ChatTemplateError::Limit(format!("output is not UTF-8: {e}"))),
            Err(_) if exceeded => Err(ChatTemplateError::Limit(format!(
                "it built more than {RENDER_BUDGET_BYTES} bytes of text and values"
            ))),
            Err(_) if out.overflowed => Err(ChatTemplateError::Limit(format!(
                "it rendered more than {MAX_RENDER_BYTES} bytes"
            ))),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(ChatTemplateError::Limit(format!(
                "it ran more than {TEMPLATE_FUEL} instructions"
            ))),
            Err(e)
                if e.kind() == ErrorKind::InvalidOperation
                    && e.to_string().contains("recursion limit") =>
            {
                Err(ChatTemplateError::Limit(format!(
                    "it nested deeper than {TEMPLATE_RECURSION} levels"
                )))
            }
            Err(e) => Err(ChatTemplateError::Render(e)),
        }
    }
}

/// The text of token `id`, empty when there is none.
fn token_text(tokenizer: &Tokenizer, id: Option<u32>) -> String {
    id.and_then(|i| tokenizer.token_text(i))
        .unwrap_or("")
        .to_string()
}

/// A template file's text: at most [`MAX_TEMPLATE_FILE_BYTES`], UTF-8.
fn read_template_file(path: &Path) -> Result<String, ChatTemplateError> {
    use std::io::Read;
    let file_err = |source| ChatTemplateError::File {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(file_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_TEMPLATE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(file_err)?;
    if bytes.len() as u64 > MAX_TEMPLATE_FILE_BYTES {
        return Err(ChatTemplateError::BadFile {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_TEMPLATE_FILE_BYTES} bytes"),
        });
    }
    String::from_utf8(bytes).map_err(|e| ChatTemplateError::BadFile {
        path: path.to_path_buf(),
        reason: format!("not UTF-8 ({e})"),
    })
}

/// The render's output, refusing to grow past [`MAX_RENDER_BYTES`].
#[derive(Default)]
struct CappedWriter {
    buf: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > MAX_RENDER_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("chat template output limit"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `raise_exception(msg)`, which HF templates call to reject a conversation.
fn raise_exception(msg: String) -> Result<Value, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
}
