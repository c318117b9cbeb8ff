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
    /// `{"prompt":..,"chosen":..,"rejected":..}`: a preference pair.
    Preference {
        /// The prompt (non-empty).
        prompt: String,
        /// The preferred response (non-empty).
        chosen: String,
        /// The rejected response (non-empty).
        rejected: String,
    },
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
            Ok(Example::Preference {
                prompt: req_str(obj, "prompt", true)?,
                chosen: req_str(obj, "chosen", true)?,
                rejected: req_str(obj, "rejected", true)?,
            })
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
    let arr = match obj.get("messages") {
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(LineError::WrongType {
                field: "messages".into(),
                expected: "an array",
                found: type_name(other),
            })
        }
        None => {
            return Err(LineError::MissingField {
                field: "messages".into(),
            })
        }
    };
    if arr.is_empty() {
        return Err(LineError::EmptyField {
            field: "messages".into(),
        });
    }
    let mut messages = Vec::with_capacity(arr.len());
    for (i, m) in arr.iter().enumerate() {
        let field = format!("messages[{i}]");
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
