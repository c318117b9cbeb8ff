//! Reading a [`TokenizerSpec`] out of GGUF metadata (`tokenizer.ggml.*`).

use graft_quant::gguf::{Array, Metadata, Value};

use super::{Tokenizer, TokenizerError, TokenizerSpec};

const MODEL: &str = "tokenizer.ggml.model";
const PRE: &str = "tokenizer.ggml.pre";
const TOKENS: &str = "tokenizer.ggml.tokens";
const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
const SCORES: &str = "tokenizer.ggml.scores";
const MERGES: &str = "tokenizer.ggml.merges";

fn wrong(key: &str, expected: &'static str, found: &Value) -> TokenizerError {
    let found = match found {
        Value::Array(a) => format!("array of {}", a.elem_type_name()),
        v => v.type_name().to_string(),
    };
    TokenizerError::WrongType {
        key: key.to_string(),
        expected,
        found,
    }
}

fn req<'m>(md: &'m Metadata, key: &str) -> Result<&'m Value, TokenizerError> {
    md.get(key).ok_or_else(|| TokenizerError::MissingKey {
        key: key.to_string(),
    })
}

fn string(md: &Metadata, key: &str) -> Result<Option<String>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| wrong(key, "string", v)),
    }
}

fn strings(md: &Metadata, key: &str) -> Result<Option<Vec<String>>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_array()
            .and_then(Array::as_strings)
            .map(|s| Some(s.to_vec()))
            .ok_or_else(|| wrong(key, "array of string", v)),
    }
}

fn id(md: &Metadata, key: &str) -> Result<Option<i64>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| wrong(key, "integer", v)),
    }
}

fn flag(md: &Metadata, key: &str) -> Result<Option<bool>, TokenizerError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| wrong(key, "bool", v)),
    }
}

impl TokenizerSpec {
    /// Reads the `tokenizer.ggml.*` keys of a GGUF file. `tokenizer.ggml.model` and
    /// `tokenizer.ggml.tokens` are required; the others are optional here and checked by
    /// [`Tokenizer::from_spec`].
    pub fn from_gguf(md: &Metadata) -> Result<TokenizerSpec, TokenizerError> {
        let model_v = req(md, MODEL)?;
        let model = model_v
            .as_str()
            .ok_or_else(|| wrong(MODEL, "string", model_v))?
            .to_string();
        let tokens_v = req(md, TOKENS)?;
        let tokens = tokens_v
            .as_array()
            .and_then(Array::as_strings)
            .ok_or_else(|| wrong(TOKENS, "array of string", tokens_v))?
            .to_vec();
        let token_types = match md.get(TOKEN_TYPE) {
            None => None,
            Some(v) => Some(
                v.as_array()
                    .and_then(Array::as_i32s)
                    .ok_or_else(|| wrong(TOKEN_TYPE, "array of i32", v))?
                    .to_vec(),
            ),
        };
        // llama.cpp accepts f32 or i32 scores.
        let scores = match md.get(SCORES) {
            None => None,
            Some(v) => {
                let a = v.as_array();
                let s = a.and_then(Array::as_f32s).map(<[f32]>::to_vec).or_else(|| {
                    a.and_then(Array::as_i32s)
                        .map(|s| s.iter().map(|&x| x as f32).collect())
                });
                Some(s.ok_or_else(|| wrong(SCORES, "array of f32", v))?)
            }
        };
        Ok(TokenizerSpec {
            model,
            pre: string(md, PRE)?,
            tokens,
            token_types,
            scores,
            merges: strings(md, MERGES)?,
            bos_id: id(md, "tokenizer.ggml.bos_token_id")?,
            eos_id: id(md, "tokenizer.ggml.eos_token_id")?,
            eot_id: id(md, "tokenizer.ggml.eot_token_id")?,
            eom_id: id(md, "tokenizer.ggml.eom_token_id")?,
            unk_id: id(md, "tokenizer.ggml.unknown_token_id")?,
            pad_id: id(md, "tokenizer.ggml.padding_token_id")?,
            add_bos: flag(md, "tokenizer.ggml.add_bos_token")?,
            add_eos: flag(md, "tokenizer.ggml.add_eos_token")?,
            add_space_prefix: flag(md, "tokenizer.ggml.add_space_prefix")?,
        })
    }
}

impl Tokenizer {
    /// Builds the tokenizer from a GGUF file's metadata alone.
    pub fn from_gguf(md: &Metadata) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_spec(TokenizerSpec::from_gguf(md)?)
    }
}
