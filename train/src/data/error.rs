//! Errors: what is wrong with one line ([`LineError`]) and what stops a load ([`DataError`]).

use std::path::PathBuf;

/// What is wrong with one JSONL line. Also used as the drop reason in a [`super::LoadReport`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineError {
    /// The line is not valid JSON.
    #[error("invalid JSON at column {column}: {message}")]
    BadJson {
        /// 1-based column (byte) reported by serde_json.
        column: usize,
        /// serde_json's message.
        message: String,
    },
    /// The line is JSON but not an object.
    #[error("expected a JSON object, found {found}")]
    NotObject {
        /// The JSON type found.
        found: &'static str,
    },
    /// The object's keys match none of the known example shapes.
    #[error("unrecognised example shape (keys: {keys}); expected one of: messages | instruction+output | prompt+completion | prompt+chosen+rejected | text")]
    UnknownShape {
        /// The keys found, comma-separated, sorted.
        keys: String,
    },
    /// A required field is missing.
    #[error("missing field `{field}`")]
    MissingField {
        /// Path of the field, e.g. `messages[2].content`.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}, found {found}")]
    WrongType {
        /// Path of the field.
        field: String,
        /// The expected type.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A message has a role other than system/user/assistant.
    #[error("field `{field}` has unknown role {role:?} (expected system, user or assistant)")]
    UnknownRole {
        /// Path of the role field.
        field: String,
        /// The role found.
        role: String,
    },
    /// A conversation has no assistant turn at all.
    #[error("conversation has no assistant turn")]
    NoAssistantTurn,
    /// A conversation's last turn is not the assistant's.
    #[error("conversation must end with an assistant turn, last turn is {last_role}")]
    NotEndingWithAssistant {
        /// The role of the last turn.
        last_role: String,
    },
    /// A preference pair's conversational `prompt` does not end with a user turn (the
    /// responses are the assistant's reply to it).
    #[error("conversational `prompt` must end with a user turn, last turn is {last_role}")]
    PromptNotEndingWithUser {
        /// The role of the prompt's last turn.
        last_role: String,
    },
    /// A preference pair's `chosen` or `rejected`, given as a list, holds more than one
    /// message.
    #[error("field `{field}` must hold exactly one assistant message, found {count} messages")]
    NotOneResponse {
        /// `chosen` or `rejected`.
        field: String,
        /// How many messages the list holds.
        count: usize,
    },
    /// A preference pair's `chosen` or `rejected` message is not the assistant's.
    #[error("field `{field}` must be \"assistant\", found {role:?}")]
    NotAssistantResponse {
        /// Path of the role field, e.g. `rejected[0].role`.
        field: String,
        /// The role found.
        role: String,
    },
    /// A preference pair's `chosen` and `rejected` are the same text (after trimming
    /// whitespace), so the pair prefers nothing.
    #[error("fields `chosen` and `rejected` are identical (after trimming whitespace)")]
    IdenticalResponses,
    /// A text field that must not be empty is empty (or only whitespace).
    #[error("field `{field}` is empty")]
    EmptyField {
        /// Path of the field.
        field: String,
    },
    /// The line is not valid UTF-8.
    #[error("invalid UTF-8 at byte {byte_offset} of the line")]
    InvalidUtf8 {
        /// 0-based byte offset of the first invalid byte within the line.
        byte_offset: usize,
    },
    /// The line is longer than the configured maximum; it was not parsed.
    #[error("line is {len} bytes, over the limit of {max} bytes (not parsed)")]
    LineTooLong {
        /// The line's length in bytes (without the newline).
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// The example has more tokens than allowed.
    #[error("example has {count} tokens, over the limit of {max}")]
    TooManyTokens {
        /// Tokens counted by the [`super::TokenCounter`].
        count: usize,
        /// The configured limit.
        max: usize,
    },
}

impl LineError {
    /// A short stable name for the kind of error, used to count drops per reason.
    pub fn reason(&self) -> &'static str {
        match self {
            LineError::BadJson { .. } => "bad_json",
            LineError::NotObject { .. } => "not_object",
            LineError::UnknownShape { .. } => "unknown_shape",
            LineError::MissingField { .. } => "missing_field",
            LineError::WrongType { .. } => "wrong_type",
            LineError::UnknownRole { .. } => "unknown_role",
            LineError::NoAssistantTurn => "no_assistant_turn",
            LineError::NotEndingWithAssistant { .. } => "not_ending_with_assistant",
            LineError::PromptNotEndingWithUser { .. } => "prompt_not_ending_with_user",
            LineError::NotOneResponse { .. } => "not_one_response",
            LineError::NotAssistantResponse { .. } => "not_assistant_response",
            LineError::IdenticalResponses => "identical_responses",
            LineError::EmptyField { .. } => "empty_field",
            LineError::InvalidUtf8 { .. } => "invalid_utf8",
            LineError::LineTooLong { .. } => "line_too_long",
            LineError::TooManyTokens { .. } => "too_many_tokens",
        }
    }
}

/// An error that stops loading, checking or splitting a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A bad line under the strict policy.
    #[error("{path}:{line}: {error}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        error: LineError,
    },
    /// Too much was dropped under the drop policy (or nothing is left); the message
    /// summarises the load report.
    #[error("{path}: refusing to train on this data: {summary}")]
    TooMuchDropped {
        /// The file.
        path: PathBuf,
        /// Human summary (counts per reason and the first dropped lines).
        summary: String,
    },
    /// Invalid options (ratios, thresholds, lengths).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The model's tokenizer or chat template could not be loaded, or rendering an example with
    /// them failed (e.g. a template that rejects the conversation).
    #[error("rendering examples with the model's chat template: {0}")]
    Render(String),
}
