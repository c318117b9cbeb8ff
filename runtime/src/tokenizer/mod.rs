//! The tokenizer, built from a GGUF file's `tokenizer.ggml.*` metadata alone, with llama.cpp's
//! behaviour as the target: the same token ids for the same text.
//!
//! Two vocabulary models are read:
//! - `gpt2`: byte-level BPE with a pre-tokenizer chosen by `tokenizer.ggml.pre`
//!   ([`pretokenize`], [`bpe_gpt2`]);
//! - `llama`: SentencePiece BPE over scores, with `▁` for spaces and `<0xXX>` byte fallback
//!   ([`spm`]).
//!
//! Control and user-defined tokens (`<|im_start|>`, ...) are matched as whole tokens in the
//! text before any splitting: user-defined ones always, control ones when `parse_special` is
//! on. [`Tokenizer::decode`] and [`DecodeStream`] go the other way.

mod bpe_gpt2;
mod decode_stream;
mod eog;
mod gguf;
pub mod pretokenize;
mod spm;
mod unicode;

use std::collections::HashMap;

pub use decode_stream::DecodeStream;
pub use pretokenize::{PreTokenizer, PreTokenizerKind};

use bpe_gpt2::BpeGpt2;
use pretokenize::PreConfig;
use spm::Spm;

/// What can go wrong building a tokenizer from metadata.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A required metadata key is absent.
    #[error("tokenizer metadata key '{key}' is missing")]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata value of the wrong type.
    #[error("tokenizer metadata key '{key}' has type {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// What the tokenizer needs.
        expected: &'static str,
        /// What the file has.
        found: String,
    },
    /// `tokenizer.ggml.model` names a model graft does not implement.
    #[error(
        "tokenizer model '{model}' (tokenizer.ggml.model) is not supported: graft reads 'gpt2' \
         (byte-level BPE) and 'llama' (SentencePiece BPE)"
    )]
    UnsupportedModel {
        /// The model name.
        model: String,
    },
    /// `tokenizer.ggml.pre` names a pre-tokenizer graft does not implement.
    #[error(
        "pre-tokenizer '{name}' (tokenizer.ggml.pre) is not supported: graft implements \
         default, gpt-2, smollm, llama3/llama-bpe, qwen2 and their aliases"
    )]
    UnsupportedPreTokenizer {
        /// The pre-tokenizer name.
        name: String,
    },
    /// The vocabulary has no tokens.
    #[error("tokenizer.ggml.tokens is empty")]
    EmptyVocab,
    /// A per-token array shorter than the token list.
    #[error("'{key}' has {len} entries, but tokenizer.ggml.tokens has {n_tokens}")]
    LengthMismatch {
        /// The array's key.
        key: String,
        /// Its length.
        len: usize,
        /// The number of tokens.
        n_tokens: usize,
    },
    /// The same token text twice.
    #[error("duplicate token {token:?} in tokenizer.ggml.tokens: ids {first} and {second}")]
    DuplicateToken {
        /// The text.
        token: String,
        /// Its first id.
        first: u32,
        /// Its second id.
        second: u32,
    },
    /// A special token id outside the vocabulary.
    #[error("'{key}' = {id} is outside the vocabulary of {n_vocab} tokens")]
    TokenIdOutOfRange {
        /// The key.
        key: String,
        /// The id found.
        id: i64,
        /// The vocabulary size.
        n_vocab: usize,
    },
    /// `add_bos_token`/`add_eos_token` is on but the token is not known.
    #[error("'{flag}' is true, but '{key}' is not set")]
    MissingSpecialToken {
        /// The flag key.
        flag: &'static str,
        /// The id key.
        key: &'static str,
    },
    /// The BPE model refused the vocabulary and merges.
    #[error("cannot build the BPE model from tokenizer.ggml.tokens/merges: {message}")]
    Bpe {
        /// The `tokenizers` crate's message.
        message: String,
    },
    /// A built-in pre-tokenizer regex failed to compile (a bug in graft).
    #[error("pre-tokenizer regex {pattern:?} does not compile: {message}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// The engine's message.
        message: String,
    },
}

/// A token's type, as `tokenizer.ggml.token_type` stores it (llama.cpp's `llama_token_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    /// 0, or any value not listed here.
    Undefined,
    /// 1: an ordinary piece of text.
    Normal,
    /// 2: the unknown token.
    Unknown,
    /// 3: a control token (`<|im_start|>`, `</s>`): matched in text only with `parse_special`.
    Control,
    /// 4: a user-defined token: always matched in text as a whole.
    UserDefined,
    /// 5: an unused slot.
    Unused,
    /// 6: a byte token `<0xXX>`.
    Byte,
}

impl TokenType {
    /// The type for a stored value.
    pub fn from_i32(v: i32) -> TokenType {
        match v {
            1 => TokenType::Normal,
            2 => TokenType::Unknown,
            3 => TokenType::Control,
            4 => TokenType::UserDefined,
            5 => TokenType::Unused,
            6 => TokenType::Byte,
            _ => TokenType::Undefined,
        }
    }
}

/// Which vocabulary model a tokenizer uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VocabKind {
    /// `gpt2`: byte-level BPE.
    BytePairGpt2,
    /// `llama`: SentencePiece BPE.
    SentencePiece,
}

/// Everything a tokenizer is built from: the `tokenizer.ggml.*` metadata, already read.
/// [`Tokenizer::from_gguf`] fills it from a GGUF file; tests and other formats fill it directly.
#[derive(Clone, Debug, Default)]
pub struct TokenizerSpec {
    /// `tokenizer.ggml.model`: `gpt2` or `llama`.
    pub model: String,
    /// `tokenizer.ggml.pre`, when present.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`: the text of every token, by id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token (all normal when absent).
    pub token_types: Option<Vec<i32>>,
    /// `tokenizer.ggml.scores`, one per token (SentencePiece merge priorities).
    pub scores: Option<Vec<f32>>,
    /// `tokenizer.ggml.merges`: `"left right"`, in rank order (byte-level BPE).
    pub merges: Option<Vec<String>>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<i64>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<i64>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot_id: Option<i64>,
    /// `tokenizer.ggml.eom_token_id`.
    pub eom_id: Option<i64>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unk_id: Option<i64>,
    /// `tokenizer.ggml.padding_token_id`.
    pub pad_id: Option<i64>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
}

// llama.cpp's token attributes, as bits (a token can gain CONTROL on top of its type).
const ATTR_NORMAL: u8 = 1;
const ATTR_UNKNOWN: u8 = 2;
const ATTR_CONTROL: u8 = 4;
const ATTR_USER_DEFINED: u8 = 8;
const ATTR_UNUSED: u8 = 16;
const ATTR_BYTE: u8 = 32;

fn attr_of(t: TokenType) -> u8 {
    match t {
        TokenType::Undefined => 0,
        TokenType::Normal => ATTR_NORMAL,
        TokenType::Unknown => ATTR_UNKNOWN,
        TokenType::Control => ATTR_CONTROL,
        TokenType::UserDefined => ATTR_USER_DEFINED,
        TokenType::Unused => ATTR_UNUSED,
        TokenType::Byte => ATTR_BYTE,
    }
}

#[derive(Debug)]
enum Model {
    Bpe(Box<BpeGpt2>),
    Spm(Box<Spm>),
}

/// A piece of prompt text after special tokens are cut out of it.
enum Fragment {
    Text(std::ops::Range<usize>),
    Token(u32),
}

/// A tokenizer: text to token ids and back, matching llama.cpp.
#[derive(Debug)]
pub struct Tokenizer {
    model: Model,
    tokens: Vec<String>,
    attrs: Vec<u8>,
    token_to_id: HashMap<String, u32>,
    scores: Vec<f32>,
    /// Each token's bytes when special tokens are rendered.
    pieces: Vec<Vec<u8>>,
    /// Control, user-defined and unknown tokens, longest text first.
    specials: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eom: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    eog: Vec<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    clean_spaces: bool,
}

impl Tokenizer {
    /// Builds the tokenizer from already-read tokenizer metadata.
    pub fn from_spec(spec: TokenizerSpec) -> Result<Tokenizer, TokenizerError> {
        let n = spec.tokens.len();
        if n == 0 {
            return Err(TokenizerError::EmptyVocab);
        }
        let kind = match spec.model.as_str() {
            "gpt2" => VocabKind::BytePairGpt2,
            "llama" => VocabKind::SentencePiece,
            other => {
                return Err(TokenizerError::UnsupportedModel {
                    model: other.to_string(),
                })
            }
        };
        let check_len = |key: &str, len: usize| {
            if len < n {
                Err(TokenizerError::LengthMismatch {
                    key: key.to_string(),
                    len,
                    n_tokens: n,
                })
            } else {
                Ok(())
            }
        };
        if let Some(t) = &spec.token_types {
            check_len("tokenizer.ggml.token_type", t.len())?;
        }
        if let Some(s) = &spec.scores {
            check_len("tokenizer.ggml.scores", s.len())?;
        }

        let mut tokens = spec.tokens;
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in tokens.iter_mut().enumerate() {
            if t.is_empty() {
                *t = format!("[EMPTY_{i}]");
            }
            if let Some(first) = token_to_id.insert(t.clone(), i as u32) {
                return Err(TokenizerError::DuplicateToken {
                    token: t.clone(),
                    first,
                    second: i as u32,
                });
            }
        }
        let mut attrs: Vec<u8> = match &spec.token_types {
            Some(t) => t[..n]
                .iter()
                .map(|&v| attr_of(TokenType::from_i32(v)))
                .collect(),
            None => vec![ATTR_NORMAL; n],
        };
        let scores = spec.scores.map(|mut s| {
            s.truncate(n);
            s
        });

        // Defaults as in llama.cpp's llama_vocab::load, then the file's keys.
        let in_vocab = |id: i64| (0..n as i64).contains(&id).then_some(id as u32);
        let (mut bos, mut eos, mut unk, pre_cfg) = match kind {
            VocabKind::BytePairGpt2 => (
                in_vocab(11),
                in_vocab(11),
                None,
                PreConfig::for_name(spec.pre.as_deref())?,
            ),
            VocabKind::SentencePiece => (
                in_vocab(1),
                in_vocab(2),
                in_vocab(0),
                PreConfig {
                    kind: PreTokenizerKind::Default,
                    ignore_merges: false,
                    add_bos: true,
                    clean_spaces: false,
                },
            ),
        };
        let read_id = |key: &str, v: Option<i64>| -> Result<Option<u32>, TokenizerError> {
            match v {
                None => Ok(None),
                Some(id) => in_vocab(id)
                    .map(Some)
                    .ok_or(TokenizerError::TokenIdOutOfRange {
                        key: key.to_string(),
                        id,
                        n_vocab: n,
                    }),
            }
        };
        if let Some(id) = read_id("tokenizer.ggml.bos_token_id", spec.bos_id)? {
            bos = Some(id);
        }
        if let Some(id) = read_id("tokenizer.ggml.eos_token_id", spec.eos_id)? {
            eos = Some(id);
        }
        if let Some(id) = read_id("tokenizer.ggml.unknown_token_id", spec.unk_id)? {
            unk = Some(id);
        }
        let pad = read_id("tokenizer.ggml.padding_token_id", spec.pad_id)?;
        let add_bos = spec.add_bos.unwrap_or(pre_cfg.add_bos);
        let add_eos = spec.add_eos.unwrap_or(false);
        let add_space_prefix = spec
            .add_space_prefix
            .unwrap_or(kind == VocabKind::SentencePiece);
        if add_bos && bos.is_none() {
            return Err(TokenizerError::MissingSpecialToken {
                flag: "tokenizer.ggml.add_bos_token",
                key: "tokenizer.ggml.bos_token_id",
            });
        }
        if add_eos && eos.is_none() {
            return Err(TokenizerError::MissingSpecialToken {
                flag: "tokenizer.ggml.add_eos_token",
                key: "tokenizer.ggml.eos_token_id",
            });
        }

        // End-of-turn / end-of-generation tokens: tokens found by their text become control
        // tokens (as in llama.cpp); ids given by the file keep their type.
        let eot_from_file = read_id("tokenizer.ggml.eot_token_id", spec.eot_id)?;
        let eom_from_file = read_id("tokenizer.ggml.eom_token_id", spec.eom_id)?;
        let eog::EndTokens { eot, eom, eog } =
            eog::find_end_tokens(&token_to_id, &mut attrs, eos, eot_from_file, eom_from_file);

        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| attrs[i as usize] & (ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN) != 0)
            .collect();
        specials.sort_by(|&a, &b| tokens[b as usize].len().cmp(&tokens[a as usize].len()));

        let model = match kind {
            VocabKind::BytePairGpt2 => {
                let merges = spec.merges.ok_or_else(|| TokenizerError::MissingKey {
                    key: "tokenizer.ggml.merges".to_string(),
                })?;
                let pre = PreTokenizer::new(pre_cfg.kind)?;
                let bpe = BpeGpt2::new(&token_to_id, &merges, pre, pre_cfg.ignore_merges)?;
                Model::Bpe(Box::new(bpe))
            }
            VocabKind::SentencePiece => Model::Spm(Box::new(Spm::new(&token_to_id, unk))),
        };

        let mut tok = Tokenizer {
            model,
            tokens,
            attrs,
            token_to_id,
            scores: scores.unwrap_or_else(|| vec![0.0; n]),
            pieces: Vec::new(),
            specials,
            bos,
            eos,
            eot,
            eom,
            unk,
            pad,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
            clean_spaces: pre_cfg.clean_spaces,
        };
        tok.pieces = (0..n as u32).map(|id| tok.render_piece(id)).collect();
        Ok(tok)
    }

    /// The bytes of token `id` with special tokens rendered (llama.cpp's `token_to_piece`
    /// with `special = true`).
    fn render_piece(&self, id: u32) -> Vec<u8> {
        let attr = self.attrs[id as usize];
        let text = &self.tokens[id as usize];
        if attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED) != 0 {
            return text.as_bytes().to_vec();
        }
        if attr & ATTR_NORMAL != 0 {
            return match &self.model {
                Model::Bpe(bpe) => bpe.decode_text(text),
                Model::Spm(_) => text.replace(spm::SPACE, " ").into_bytes(),
            };
        }
        if attr & ATTR_BYTE != 0 {
            // `<0xXX>`: the byte XX.
            if let Some(b) = text.get(3..5).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                return vec![b];
            }
        }
        Vec::new()
    }

    /// The kind of vocabulary.
    pub fn kind(&self) -> VocabKind {
        match self.model {
            Model::Bpe(_) => VocabKind::BytePairGpt2,
            Model::Spm(_) => VocabKind::SentencePiece,
        }
    }

    /// The number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    /// The beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The end-of-turn token (from the file, else found by text such as `<|im_end|>`).
    pub fn eot_id(&self) -> Option<u32> {
        self.eot
    }

    /// The end-of-message token.
    pub fn eom_id(&self) -> Option<u32> {
        self.eom
    }

    /// The unknown token.
    pub fn unk_id(&self) -> Option<u32> {
        self.unk
    }

    /// The padding token.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    /// Whether `encode(.., add_special = true, ..)` puts BOS first.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// The BOS id put in front of each text (or perplexity window): `bos_id` when the model
    /// adds one, else `None`.
    pub fn added_bos(&self) -> Option<u32> {
        if self.add_bos() {
            self.bos_id()
        } else {
            None
        }
    }

    /// Whether `encode(.., add_special = true, ..)` puts EOS last.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether generation should stop at `id` (EOS, EOT, `<|im_end|>`, `<|endoftext|>`, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.binary_search(&id).is_ok()
    }

    /// The end-of-generation tokens, sorted.
    pub fn eog_ids(&self) -> &[u32] {
        &self.eog
    }

    /// Whether `id` is a control token (rendered by [`Tokenizer::decode`], left out by
    /// [`Tokenizer::decode_skip_special`]).
    pub fn is_control(&self, id: u32) -> bool {
        self.attrs
            .get(id as usize)
            .is_some_and(|a| a & ATTR_CONTROL != 0)
    }

    /// The stored text of token `id` (`Ġthe`, `▁the`, `<|im_start|>`), if it exists.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of the token whose stored text is `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }

    /// Token ids for `text`. `add_special` adds BOS/EOS as the model asks
    /// (`tokenizer.ggml.add_bos_token`/`add_eos_token`); `parse_special` turns the text of
    /// control tokens (`<|im_start|>`) into those tokens instead of spelling it out.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let fragments = self.partition(text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        match &self.model {
            Model::Bpe(bpe) => {
                for f in &fragments {
                    match f {
                        Fragment::Text(r) => bpe.tokenize(&text[r.clone()], &mut out),
                        Fragment::Token(id) => out.push(*id),
                    }
                }
            }
            Model::Spm(spm) => {
                let mut prev_special = true;
                for f in &fragments {
                    match f {
                        Fragment::Text(r) => {
                            let mut s = String::with_capacity(r.len() + 4);
                            if self.add_space_prefix && prev_special {
                                s.push(spm::SPACE);
                            }
                            s.extend(text[r.clone()].chars().map(|c| {
                                if c == ' ' {
                                    spm::SPACE
                                } else {
                                    c
                                }
                            }));
                            spm.tokenize(&s, &self.token_to_id, &self.scores, &mut out);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(*id);
                            prev_special = true;
                        }
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    /// Cuts special tokens out of `text` (llama.cpp's `tokenizer_st_partition`): longest token
    /// text first, every occurrence, in the text left between earlier cuts.
    fn partition(&self, text: &str, parse_special: bool) -> Vec<Fragment> {
        let mut frags = Vec::new();
        if text.is_empty() {
            return frags;
        }
        frags.push(Fragment::Text(0..text.len()));
        for &id in &self.specials {
            let attr = self.attrs[id as usize];
            if !parse_special && attr & (ATTR_CONTROL | ATTR_UNKNOWN) != 0 {
                continue;
            }
            let needle = self.tokens[id as usize].as_str();
            if !text.contains(needle) {
                continue;
            }
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Fragment::Text(r) = f else {
                    next.push(f);
                    continue;
                };
                let mut start = r.start;
                while let Some(pos) = text[start..r.end].find(needle) {
                    let m = start + pos;
                    if m > start {
                        next.push(Fragment::Text(start..m));
                    }
                    next.push(Fragment::Token(id));
                    start = m + needle.len();
                }
                if start < r.end {
                    next.push(Fragment::Text(start..r.end));
                }
            }
            frags = next;
        }
        frags
    }

    /// The raw bytes of token `id`, special tokens spelled out (`<|im_end|>`); empty for an id
    /// outside the vocabulary. A piece can be part of a UTF-8 character.
    pub fn token_to_piece(&self, id: u32) -> Vec<u8> {
        self.piece_bytes(id, true).to_vec()
    }

    /// The bytes of `id`; control and unknown tokens are empty unless `special`.
    fn piece_bytes(&self, id: u32, special: bool) -> &[u8] {
        let Some(piece) = self.pieces.get(id as usize) else {
            return &[];
        };
        if !special && self.attrs[id as usize] & (ATTR_CONTROL | ATTR_UNKNOWN) != 0 {
            return &[];
        }
        piece
    }

    /// The text of `ids`, special tokens spelled out, as llama.cpp's `detokenize` with
    /// `special = true` (including its leading-space removal for SentencePiece and its
    /// `clean_spaces` rules for the vocabularies that ask for them). Invalid UTF-8 becomes
    /// U+FFFD; ids outside the vocabulary add nothing.
    pub fn decode(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids, true)).into_owned()
    }

    /// Like [`Tokenizer::decode`] with control and unknown tokens left out.
    pub fn decode_skip_special(&self, ids: &[u32]) -> String {
        String::from_utf8_lossy(&self.decode_bytes(ids, false)).into_owned()
    }

    /// The bytes of `ids`, before UTF-8 validation.
    pub fn decode_bytes(&self, ids: &[u32], special: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        let mut remove_space = self.add_space_prefix;
        for &id in ids {
            let mut piece = self.piece_bytes(id, special);
            if remove_space {
                if let Some(rest) = piece.strip_prefix(b" ") {
                    piece = rest;
                }
                remove_space = false;
            }
            out.extend_from_slice(piece);
        }
        if self.clean_spaces {
            clean_spaces(&mut out);
        }
        out
    }

    /// A streaming decoder over this tokenizer; `skip_special` leaves control tokens out.
    pub fn decode_stream(&self, skip_special: bool) -> DecodeStream<'_> {
        DecodeStream::new(self, skip_special)
    }
}

/// llama.cpp's `clean_spaces` passes on decoded text: no space before `?!.,`, none around a
/// lone apostrophe, none before `'s`, `'m`, `'re`, `'ve`.
fn clean_spaces(t: &mut Vec<u8>) {
    // Pass 1: " ?", " !", " .", " ,".
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && matches!(x, b'?' | b'!' | b'.' | b',') {
            total -= 1;
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
    // Pass 2: " ' " -> "'".
    let n = t.len();
    let mut total = usize::from(n > 0);
    let mut i = 1;
    while i < n {
        let x = t[i];
        if x == b'\'' && i + 1 < n && t[i - 1] == b' ' && t[i + 1] == b' ' {
            total -= 1;
            i += 1;
            t[i] = 0;
        }
        t[total] = x;
        total += 1;
        i += 1;
    }
    t.truncate(total);
    // Pass 3: " 's", " 'm", " 're", " 've".
    let n = t.len();
    let mut total = usize::from(n > 0);
    for i in 1..n {
        let x = t[i];
        if t[i - 1] == b' ' && x == b'\'' && i + 1 < n {
            let x1 = t[i + 1];
            let two = i + 2 < n && matches!((x1, t[i + 2]), (b'r', b'e') | (b'v', b'e'));
            if matches!(x1, b's' | b'm') || two {
                total -= 1;
            }
        }
        t[total] = x;
        total += 1;
    }
    t.truncate(total);
}

#[cfg(test)]
mod tests {
    use super::clean_spaces;

    fn clean(s: &str) -> String {
        let mut v = s.as_bytes().to_vec();
        clean_spaces(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }

    #[test]
    fn clean_spaces_like_llama_cpp() {
        assert_eq!(clean("Hi , you ! ok ."), "Hi, you! ok.");
        assert_eq!(clean("a ' b"), "a'b");
        assert_eq!(clean("it 's we 're I 'll"), "it's we're I 'll");
    }
}
