//! Helpers shared by graft's fuzz targets and by the seed generator (`examples/make_seeds.rs`):
//! splitting one fuzz input into several files, the tiny tokenizers built in code, the tiny
//! model the adapter and checkpoint targets validate against, and the tiny trainer setup.
//!
//! Everything here is built once per process (`OnceLock`), so a fuzz iteration pays only for
//! the code under test.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use graft_quant::gguf::{Array, Metadata};
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::{Model, ModelParams};

/// Splits `data` into `n` parts: each of the first `n - 1` parts is a little-endian `u16`
/// length followed by that many bytes (clamped to what is left); the last part is the rest.
/// Any input splits; [`join`] is the inverse for parts shorter than 64 KiB.
pub fn split(mut data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    for _ in 1..n {
        let len = match data {
            [a, b, rest @ ..] => {
                data = rest;
                usize::from(u16::from_le_bytes([*a, *b]))
            }
            _ => {
                data = &[];
                0
            }
        };
        let len = len.min(data.len());
        out.push(&data[..len]);
        data = &data[len..];
    }
    out.push(data);
    out
}

/// The input [`split`] cuts into `parts`.
///
/// # Panics
/// If a part other than the last is 64 KiB or longer (seeds are small).
pub fn join(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            let len = u16::try_from(p.len()).expect("seed part under 64 KiB");
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(p);
    }
    out
}

/// GPT-2's byte-to-character table (`bytes_to_unicode`): printable bytes stand for
/// themselves, the others for U+0100 onwards.
pub fn gpt2_byte_chars() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let printable = (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
        let cp = if printable {
            b as u32
        } else {
            let c = next;
            next += 1;
            c
        };
        *slot = char::from_u32(cp).unwrap_or('?');
    }
    table
}

/// Special tokens of the tiny vocabularies: (text, GGUF token type). 3 is control, 4 is
/// user-defined.
const SPECIALS: &[(&str, i32)] = &[
    ("<|endoftext|>", 3),
    ("<|im_start|>", 3),
    ("<|im_end|>", 3),
    ("<tool>", 4),
];

/// Words the tiny byte-level BPE vocabulary can merge into single tokens.
const BPE_WORDS: &[&str] = &[
    "Ġthe",
    "Ġa",
    "he",
    "llo",
    "hello",
    "Ġhello",
    "Ġworld",
    "in",
    "ing",
    "Ċ",
    "ĊĊ",
    "ĠĠ",
    "ĠĠĠĠ",
    "er",
    "Ġuser",
    "Ġassistant",
    "user",
    "assistant",
    "system",
    "'s",
    "Ġ'",
];

/// A tiny byte-level BPE vocabulary (`tokenizer.ggml.model = gpt2`) as GGUF metadata: the
/// special tokens, the 256 byte characters, then [`BPE_WORDS`] with the merges that build
/// them (left to right, one character at a time), and pre-tokenizer `pre`.
pub fn tiny_bpe_metadata(pre: &str) -> Metadata {
    let mut tokens: Vec<String> = SPECIALS.iter().map(|(t, _)| t.to_string()).collect();
    let mut types: Vec<i32> = SPECIALS.iter().map(|(_, ty)| *ty).collect();
    for c in gpt2_byte_chars() {
        tokens.push(c.to_string());
        types.push(1);
    }
    let mut merges = Vec::new();
    for w in BPE_WORDS {
        let chars: Vec<char> = w.chars().collect();
        let mut left: String = chars[0].to_string();
        for c in &chars[1..] {
            let joined = format!("{left}{c}");
            merges.push(format!("{left} {c}"));
            if !tokens.contains(&joined) {
                tokens.push(joined.clone());
                types.push(1);
            }
            left = joined;
        }
    }
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", "gpt2");
    md.insert("tokenizer.ggml.pre", pre);
    md.insert("tokenizer.ggml.tokens", Array::String(tokens));
    md.insert("tokenizer.ggml.token_type", Array::I32(types));
    md.insert("tokenizer.ggml.merges", Array::String(merges));
    md.insert("tokenizer.ggml.bos_token_id", 0u32);
    md.insert("tokenizer.ggml.eos_token_id", 2u32);
    md
}

/// Normal pieces of the tiny SentencePiece vocabulary, with scores.
const SPM_PIECES: &[(&str, f32)] = &[
    ("▁", -10.0),
    ("h", -10.0),
    ("e", -10.0),
    ("l", -10.0),
    ("o", -10.0),
    ("w", -10.0),
    ("r", -10.0),
    ("d", -10.0),
    ("a", -10.0),
    ("ll", -1.0),
    ("he", -2.0),
    ("llo", -1.5),
    ("hello", -3.0),
    ("▁hello", -0.5),
    ("or", -2.5),
    ("wor", -4.0),
    ("ld", -2.5),
    ("▁w", -3.5),
    ("▁wor", -5.0),
    ("world", -6.0),
    ("aa", -1.0),
    ("▁▁", -2.0),
];

/// A tiny SentencePiece vocabulary (`tokenizer.ggml.model = llama`) as GGUF metadata:
/// `<unk>`, `<s>`, `</s>`, the 256 byte tokens `<0xXX>`, [`SPM_PIECES`], then the
/// user-defined `<tool>`.
pub fn tiny_spm_metadata() -> Metadata {
    let mut tokens = vec!["<unk>".to_string(), "<s>".to_string(), "</s>".to_string()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0f32; 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for (t, s) in SPM_PIECES {
        tokens.push(t.to_string());
        types.push(1);
        scores.push(*s);
    }
    tokens.push("<tool>".to_string());
    types.push(4);
    scores.push(0.0);
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", "llama");
    md.insert("tokenizer.ggml.tokens", Array::String(tokens));
    md.insert("tokenizer.ggml.token_type", Array::I32(types));
    md.insert("tokenizer.ggml.scores", Array::F32(scores));
    md.insert("tokenizer.ggml.bos_token_id", 1u32);
    md.insert("tokenizer.ggml.eos_token_id", 2u32);
    md.insert("tokenizer.ggml.unknown_token_id", 0u32);
    md
}

/// One tokenizer under test and what it promises.
pub struct FuzzTokenizer {
    /// What it is, for assertion messages.
    pub name: &'static str,
    /// The tokenizer.
    pub tok: Tokenizer,
    /// `decode(encode(text, false, parse_special)) == text` for every UTF-8 `text` with
    /// either `parse_special` (byte-level BPE whose pre-tokenizer keeps spaces as they are),
    /// as long as every byte of `text` has a token (see [`FuzzTokenizer::has_byte`]).
    pub round_trips: bool,
    /// Byte-level BPE: whether each byte's GPT-2 character is a token. A vocabulary can lack
    /// some (SmolLM2 has no token for 21 bytes, among them 0x04 and 0x06); their bytes are
    /// dropped when encoding, as llama.cpp drops them.
    pub has_byte: [bool; 256],
    /// SentencePiece: round-trips only without special tokens and without `▁` in the text
    /// (`▁` decodes to a space, and a space prefix follows every special token).
    pub spm: bool,
}

fn build(name: &'static str, md: &Metadata, round_trips: bool, spm: bool) -> FuzzTokenizer {
    match Tokenizer::from_gguf(md) {
        Ok(tok) => {
            let chars = gpt2_byte_chars();
            let has_byte = std::array::from_fn(|b| tok.token_id(&chars[b].to_string()).is_some());
            FuzzTokenizer {
                name,
                tok,
                round_trips,
                has_byte,
                spm,
            }
        }
        Err(e) => panic!("the tiny {name} vocabulary does not build: {e}"),
    }
}

/// The tokenizers every tokenizer input runs through, built once: tiny byte-level BPE
/// vocabularies under several pre-tokenizers, the tiny SentencePiece one, and SmolLM2's real
/// vocabulary when the test model is in the model cache (`scripts/fetch-model.sh`).
pub fn tokenizers() -> &'static [FuzzTokenizer] {
    static TOKS: OnceLock<Vec<FuzzTokenizer>> = OnceLock::new();
    TOKS.get_or_init(|| {
        let mut v = vec![
            build("bpe/smollm", &tiny_bpe_metadata("smollm"), true, false),
            build("bpe/qwen2", &tiny_bpe_metadata("qwen2"), true, false),
            build("bpe/llama3", &tiny_bpe_metadata("llama3"), false, false),
            build("bpe/gpt-2", &tiny_bpe_metadata("gpt-2"), false, false),
            build("bpe/default", &tiny_bpe_metadata("default"), false, false),
            build("spm", &tiny_spm_metadata(), false, true),
        ];
        let real = graft_quant::model_cache::models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
        if let Ok(file) = graft_quant::gguf::GgufFile::open(&real) {
            v.push(build("smollm2", file.metadata(), true, false));
        }
        v
    })
}

/// A scratch directory that lives as long as the process.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(
        || match tempfile::Builder::new().prefix("graft-fuzz-").tempdir() {
            Ok(d) => d,
            Err(e) => panic!("cannot create a scratch directory: {e}"),
        },
    )
    .path()
}

/// The tiny base model's file: testkit's default tiny llama (2 layers, d 64, vocab 61),
/// written once into [`scratch_dir`].
pub fn tiny_model_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = scratch_dir().join("tiny-llama.gguf");
        graft_testkit::TinyModel::default().write(&path);
        path
    })
}

/// The tiny base model, loaded once.
pub fn tiny_model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(
        || match Model::load(tiny_model_path(), ModelParams { threads: 1 }) {
            Ok(m) => m,
            Err(e) => panic!("the tiny model does not load: {e}"),
        },
    )
}

pub mod trainer;
