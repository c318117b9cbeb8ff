//! The example shapes and their parsing/validation from a JSON value.

use serde_json::{Map, Value};

use super::LineError;

/// Who speaks a chat turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// System prompt.
    System,
    /// The user.
    User,
    /// The model; the trainable turns.
    Assistant,
}

impl Role {
    /// The role's name as written in JSONL.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said (non-empty).
    pub content: String,
}

/// One training example, in one of the supported JSONL shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Example {
    /// `{"messages":[{"role":..,"content":..},..]}`; ends with an assistant turn.
    Messages(Vec<Message>),
    /// `{"instruction":..,"input":..(optional),"output":..}`.
    Instruction {
        /// The instruction (non-empty).
        instruction: String,
        /// Optional extra input (may be absent or empty).
        input: Option<String>,
        /// The target output (non-empty).
        output: String,
    },
    /// `{"prompt":..,"completion":..}`.
    PromptCompletion {
        /// The prompt (may be empty).
        prompt: String,
        /// The completion (non-empty).
        completion: String,
    },
    /// `{"text":..}`: all tokens are trainable.
    Text(String),
    /// `{"prompt":..,"chosen":..,"rejected":..}`: a preference pair, in TRL's standard form
    /// (three strings, raw text) or its conversational form (`prompt` a list of messages
    /// ending with a user turn, `chosen`/`rejected` each a string or a one-element list
    /// `[{"role":"assistant","content":..}]`).
    Preference {
        /// The prompt (non-empty): raw text or a conversation.
        prompt: PreferencePrompt,
        /// The preferred response (non-empty); for a conversational pair, the content of the
        /// assistant's reply.
        chosen: String,
        /// The rejected response (non-empty, not equal to `chosen` after trimming).
        rejected: String,
    },
}

/// The prompt of a preference pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreferencePrompt {
    /// Raw text, rendered without the chat template (TRL's standard form).
    Text(String),
    /// A conversation (system/user/assistant turns, ending with a user turn), rendered with
    /// the model's chat template; the responses are the assistant's next turn (TRL's
    /// conversational form).
    Chat(Vec<Message>),
}

impl PreferencePrompt {
    /// Whether this is the conversational form.
    pub fn is_chat(&self) -> bool {
        matches!(self, PreferencePrompt::Chat(_))
    }

    /// The text a user would type last: the raw prompt, or the content of the last user turn
    /// of the conversation (empty when there is none).
    pub fn last_user_text(&self) -> &str {
        match self {
            PreferencePrompt::Text(t) => t,
            PreferencePrompt::Chat(msgs) => msgs
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map_or("", |m| m.content.as_str()),
        }
    }
}

impl Example {
    /// Short name of the shape: `messages`, `instruction`, `prompt_completion`, `text`,
    /// `preference`.
    pub fn shape(&self) -> &'static str {
        match self {
            Example::Messages(_) => "messages",
            Example::Instruction { .. } => "instruction",
            Example::PromptCompletion { .. } => "prompt_completion",
            Example::Text(_) => "text",
            Example::Preference { .. } => "preference",
        }
    }

    /// Parse and validate one example from a JSON value. Extra keys are ignored.
    pub fn from_json(value: &Value) -> Result<Example, LineError> {
        let obj = value.as_object().ok_or(LineError::NotObject {
            found: type_name(value),
        })?;
        if obj.contains_key("messages") {
            parse_messages(obj)
        } else if obj.contains_key("chosen") || obj.contains_key("rejected") {
            parse_preference(obj)
        } else if obj.contains_key("instruction") {
            let input = match obj.get("input") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    return Err(LineError::WrongType {
                        field: "input".into(),
                        expected: "a string",
                        found: type_name(other),
                    })
                }
            };
            Ok(Example::Instruction {
                instruction: req_str(obj, "instruction", true)?,
                input,
                output: req_str(obj, "output", true)?,
            })
        } else if obj.contains_key("prompt") || obj.contains_key("completion") {
            Ok(Example::PromptCompletion {
                prompt: req_str(obj, "prompt", false)?,
                completion: req_str(obj, "completion", true)?,
            })
        } else if obj.contains_key("text") {
            Ok(Example::Text(req_str(obj, "text", true)?))
        } else {
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            Err(LineError::UnknownShape {
                keys: if keys.is_empty() {
                    "none".into()
                } else {
                    keys.join(", ")
                },
            })
        }
    }
}

fn parse_messages(obj: &Map<String, Value>) -> Result<Example, LineError> {
    let messages = match obj.get("messages") {
        Some(v) => parse_message_list(v, "messages")?,
        None => {
            return Err(LineError::MissingField {
                field: "messages".into(),
            })
        }
    };
    if !messages.iter().any(|m| m.role == Role::Assistant) {
        return Err(LineError::NoAssistantTurn);
    }
    if let Some(last) = messages.last() {
        if last.role != Role::Assistant {
            return Err(LineError::NotEndingWithAssistant {
                last_role: last.role.as_str().into(),
            });
        }
    }
    Ok(Example::Messages(messages))
}

/// A non-empty array of `{"role":..,"content":..}` objects (non-empty content); errors name
/// `field[i].role` / `field[i].content`.
fn parse_message_list(value: &Value, field: &str) -> Result<Vec<Message>, LineError> {
    let arr = match value {
        Value::Array(a) => a,
        other => {
            return Err(LineError::WrongType {
                field: field.into(),
                expected: "an array",
                found: type_name(other),
            })
        }
    };
    if arr.is_empty() {
        return Err(LineError::EmptyField {
            field: field.into(),
        });
    }
    let mut messages = Vec::with_capacity(arr.len());
    for (i, m) in arr.iter().enumerate() {
        let field = format!("{field}[{i}]");
        let mo = m.as_object().ok_or_else(|| LineError::WrongType {
            field: field.clone(),
            expected: "an object",
            found: type_name(m),
        })?;
        let role_field = format!("{field}.role");
        let role_s = match mo.get("role") {
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(LineError::WrongType {
                    field: role_field,
                    expected: "a string",
                    found: type_name(other),
                })
            }
            None => return Err(LineError::MissingField { field: role_field }),
        };
        let role = match role_s.as_str() {
            "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => {
                return Err(LineError::UnknownRole {
                    field: role_field,
                    role: role_s.clone(),
                })
            }
        };
        let content = req_str(mo, "content", true).map_err(|e| prefix_field(e, &field))?;
        messages.push(Message { role, content });
    }
    Ok(messages)
}

/// A preference pair: `prompt` (string or conversation ending with a user turn), `chosen` and
/// `rejected` (strings, or one assistant message each when the prompt is a conversation),
/// the two responses different after trimming.
fn parse_preference(obj: &Map<String, Value>) -> Result<Example, LineError> {
    let prompt = match obj.get("prompt") {
        None => {
            return Err(LineError::MissingField {
                field: "prompt".into(),
            })
        }
        Some(Value::String(_)) => PreferencePrompt::Text(req_str(obj, "prompt", true)?),
        Some(v @ Value::Array(_)) => {
            let msgs = parse_message_list(v, "prompt")?;
            if let Some(last) = msgs.last() {
                if last.role != Role::User {
                    return Err(LineError::PromptNotEndingWithUser {
                        last_role: last.role.as_str().into(),
                    });
                }
            }
            PreferencePrompt::Chat(msgs)
        }
        Some(other) => {
            return Err(LineError::WrongType {
                field: "prompt".into(),
                expected: "a string or an array of messages",
                found: type_name(other),
            })
        }
    };
    let chosen = parse_response(obj, "chosen", prompt.is_chat())?;
    let rejected = parse_response(obj, "rejected", prompt.is_chat())?;
    if chosen.trim() == rejected.trim() {
        return Err(LineError::IdenticalResponses);
    }
    Ok(Example::Preference {
        prompt,
        chosen,
        rejected,
    })
}

/// One response of a preference pair: a non-empty string, or (when the prompt is a
/// conversation) a one-element list holding an assistant message.
fn parse_response(
    obj: &Map<String, Value>,
    key: &str,
    chat_prompt: bool,
) -> Result<String, LineError> {
    match obj.get(key) {
        Some(v @ Value::Array(items)) if chat_prompt => {
            if items.len() > 1 {
                return Err(LineError::NotOneResponse {
                    field: key.into(),
                    count: items.len(),
                });
            }
            let mut msgs = parse_message_list(v, key)?;
            match msgs.pop() {
                Some(m) if m.role == Role::Assistant => Ok(m.content),
                Some(m) => Err(LineError::NotAssistantResponse {
                    field: format!("{key}[0].role"),
                    role: m.role.as_str().into(),
                }),
                None => Err(LineError::EmptyField { field: key.into() }),
            }
        }
        Some(Value::Array(_)) => Err(LineError::WrongType {
            field: key.into(),
            expected: "a string when `prompt` is a string",
            found: "an array",
        }),
        Some(other @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_)))
            if chat_prompt =>
        {
            Err(LineError::WrongType {
                field: key.into(),
                expected: "a string or a one-element array of messages",
                found: type_name(other),
            })
        }
        _ => req_str(obj, key, true),
    }
}

fn prefix_field(e: LineError, prefix: &str) -> LineError {
    match e {
        LineError::MissingField { field } => LineError::MissingField {
            field: format!("{prefix}.{field}"),
        },
        LineError::WrongType {
            field,
            expected,
            found,
        } => LineError::WrongType {
            field: format!("{prefix}.{field}"),
            expected,
            found,
        },
        LineError::EmptyField { field } => LineError::EmptyField {
            field: format!("{prefix}.{field}"),
        },
        other => other,
    }
}

/// A required string field; `non_empty` rejects empty or whitespace-only strings.
fn req_str(obj: &Map<String, Value>, key: &str, non_empty: bool) -> Result<String, LineError> {
    match obj.get(key) {
        Some(Value::String(s)) => {
            if non_empty && s.trim().is_empty() {
                Err(LineError::EmptyField { field: key.into() })
            } else {
                Ok(s.clone())
            }
        }
        Some(other) => Err(LineError::WrongType {
            field: key.into(),
            expected: "a string",
            found: type_name(other),
        }),
        None => Err(LineError::MissingField { field: key.into() }),
    }
}

/// The JSON type name of a value, for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
