//! GPT-2-style byte-level BPE (`tokenizer.ggml.model = gpt2`): graft's pre-tokenizer splits the
//! text into words, each word's bytes are mapped to GPT-2's printable stand-ins, and the merges
//! run in the `tokenizers` crate's BPE model (lowest merge rank first, leftmost first on ties,
//! exactly llama.cpp's `llm_tokenizer_bpe_session`).

use std::collections::HashMap;

use tokenizers::models::bpe::BPE;
use tokenizers::Model;

use super::pretokenize::PreTokenizer;
use super::unicode::byte_to_char_table;
use super::TokenizerError;

/// The byte-level BPE model of one vocabulary.
pub(crate) struct BpeGpt2 {
    pre: PreTokenizer,
    bpe: BPE,
    byte_char: [char; 256],
    /// Reverse of `byte_char`, for decoding token text back to bytes.
    char_byte: HashMap<char, u8>,
}

impl std::fmt::Debug for BpeGpt2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpeGpt2")
            .field("pre", &self.pre.kind())
            .finish_non_exhaustive()
    }
}

impl BpeGpt2 {
    /// Builds the model from the vocabulary (`token_to_id`) and the merges in rank order, each
    /// `"left right"`. A merge whose halves or result are not tokens can never produce a token
    /// and is dropped; a repeated merge keeps its first (best) rank, as llama.cpp does.
    pub(crate) fn new(
        token_to_id: &HashMap<String, u32>,
        merges: &[String],
        pre: PreTokenizer,
        ignore_merges: bool,
    ) -> Result<BpeGpt2, TokenizerError> {
        let mut seen = std::collections::HashSet::with_capacity(merges.len());
        let mut pairs = Vec::with_capacity(merges.len());
        let mut joined = String::new();
        for m in merges {
            // llama.cpp splits at the first space after the first byte.
            let Some(pos) = m.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                continue;
            };
            let (a, b) = (&m[..pos], &m[pos + 1..]);
            let (Some(&ia), Some(&ib)) = (token_to_id.get(a), token_to_id.get(b)) else {
                continue;
            };
            joined.clear();
            joined.push_str(a);
            joined.push_str(b);
            if token_to_id.contains_key(joined.as_str()) && seen.insert((ia, ib)) {
                pairs.push((a.to_string(), b.to_string()));
            }
        }
        let vocab: tokenizers::models::bpe::Vocab =
            token_to_id.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, pairs)
            .ignore_merges(ignore_merges)
            .build()
            .map_err(|e| TokenizerError::Bpe {
                message: e.to_string(),
            })?;
        let byte_char = byte_to_char_table();
        let char_byte = byte_char
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Ok(BpeGpt2 {
            pre,
            bpe,
            byte_char,
            char_byte,
        })
    }

    /// Appends the tokens of `text` (no special tokens inside) to `out`.
    pub(crate) fn tokenize(&self, text: &str, out: &mut Vec<u32>) {
        let mut word = String::new();
        for range in self.pre.split(text) {
            word.clear();
            word.extend(
                text.as_bytes()[range]
                    .iter()
                    .map(|&b| self.byte_char[b as usize]),
            );
            // The BPE model only fails on a vocabulary without the byte characters; llama.cpp
            // then drops what it cannot find, and so does this.
            if let Ok(tokens) = self.bpe.tokenize(&word) {
                out.extend(tokens.iter().map(|t| t.id));
            }
        }
    }

    /// The bytes a normal token stands for: each character of its text mapped back through
    /// GPT-2's table. A character outside the table is written the way llama.cpp's
    /// `llama_decode_text` writes it (`[UNK_BYTE_0x..]`).
    pub(crate) fn decode_text(&self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        for c in text.chars() {
            match self.char_byte.get(&c) {
                Some(&b) => out.push(b),
                None => {
                    out.extend_from_slice(b"[UNK_BYTE_0x");
                    let mut buf = [0u8; 4];
                    for byte in c.encode_utf8(&mut buf).bytes() {
                        out.extend_from_slice(format!("{byte:02x}").as_bytes());
                    }
                    out.extend_from_slice(text.as_bytes());
                    out.push(b']');
                }
            }
        }
        out
    }
}
