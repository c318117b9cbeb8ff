//! Llama-style SentencePiece BPE (`tokenizer.ggml.model = llama`), as llama.cpp's
//! `llm_tokenizer_spm_session` does it: spaces become `▁`, the text starts as one symbol per
//! UTF-8 character, and the adjacent pair whose concatenation is the token with the highest
//! score merges first (leftmost first on equal scores) until no pair is a token. A symbol that
//! is not a token is written as byte tokens `<0xXX>`.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// The escaped space, U+2581.
pub(crate) const SPACE: char = '\u{2581}';

/// The SentencePiece model of one vocabulary.
#[derive(Debug)]
pub(crate) struct Spm {
    /// Token id of each byte: `<0xXX>`, else the one-byte token, else `unk`.
    byte_tokens: [Option<u32>; 256],
}

/// A candidate merge of the symbols `left` and `right`.
struct Bigram {
    left: usize,
    right: usize,
    score: f32,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Highest score first, then leftmost.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// One symbol: a byte range of the text, linked to its neighbours.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Spm {
    /// The model for a vocabulary (`token_to_id`), with `unk` for bytes that have no token.
    pub(crate) fn new(token_to_id: &HashMap<String, u32>, unk: Option<u32>) -> Spm {
        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            let hex = format!("<0x{b:02X}>");
            let single = (b < 0x80).then(|| (b as u8 as char).to_string());
            *slot = token_to_id
                .get(&hex)
                .or_else(|| single.as_ref().and_then(|s| token_to_id.get(s)))
                .copied()
                .or(unk);
        }
        Spm { byte_tokens }
    }

    /// Appends the tokens of `text` (already with `▁` for spaces) to `out`.
    pub(crate) fn tokenize(
        &self,
        text: &str,
        token_to_id: &HashMap<String, u32>,
        scores: &[f32],
        out: &mut Vec<u32>,
    ) {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (start, c) in text.char_indices() {
            let i = symbols.len();
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: i.checked_sub(1),
                next: (start + c.len_utf8() < text.len()).then_some(i + 1),
            });
        }
        let mut queue = BinaryHeap::new();
        let try_add = |queue: &mut BinaryHeap<Bigram>, symbols: &[Symbol], left, right| {
            let (Some(l), Some(r)) = (left, right) else {
                return;
            };
            let (a, b): (&Symbol, &Symbol) = (&symbols[l], &symbols[r]);
            let piece = &text[a.start..a.start + a.len + b.len];
            if let Some(&id) = token_to_id.get(piece) {
                let score = scores.get(id as usize).copied().unwrap_or(0.0);
                queue.push(Bigram {
                    left: l,
                    right: r,
                    score,
                    size: piece.len(),
                });
            }
        };
        for i in 1..symbols.len() {
            try_add(&mut queue, &symbols, Some(i - 1), Some(i));
        }
        while let Some(bg) = queue.pop() {
            let (l, r) = (symbols[bg.left], symbols[bg.right]);
            // Skip pairs outdated by an earlier merge.
            if l.len == 0 || r.len == 0 || l.len + r.len != bg.size {
                continue;
            }
            symbols[bg.left].len += r.len;
            symbols[bg.right].len = 0;
            symbols[bg.left].next = r.next;
            if let Some(n) = r.next {
                symbols[n].prev = Some(bg.left);
            }
            try_add(&mut queue, &symbols, l.prev, Some(bg.left));
            try_add(&mut queue, &symbols, Some(bg.left), symbols[bg.left].next);
        }
        let mut i = (!symbols.is_empty()).then_some(0);
        while let Some(idx) = i {
            let s = symbols[idx];
            let piece = &text[s.start..s.start + s.len];
            match token_to_id.get(piece) {
                Some(&id) => out.push(id),
                None => out.extend(piece.bytes().filter_map(|b| self.byte_tokens[b as usize])),
            }
            i = s.next;
        }
    }
}
