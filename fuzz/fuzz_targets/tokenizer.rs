//! Fuzzes the tokenizer (graft-runtime's `tokenizer`). The input is a flag byte and then bytes:
//! - bit 0 `parse_special`, bit 1 `add_special`: the rest, as UTF-8 text (lossily converted when
//!   it is not), is encoded by every tokenizer of `graft_fuzz::tokenizers()` (tiny byte-level BPE
//!   vocabularies under the smollm, qwen2, llama3, gpt-2 and default pre-tokenizers, a tiny
//!   SentencePiece vocabulary, and SmolLM2's real one when the model is cached). Ids must be in
//!   the vocabulary; `decode(encode(text))` must give the text back where the tokenizer promises
//!   it (byte-level BPE without `clean_spaces`, either `parse_special`, when every byte of the
//!   text has a byte token — SmolLM2 lacks 21; SentencePiece without
//!   special tokens and `▁` in the text); streaming decode must equal the lossy UTF-8 of the
//!   concatenated pieces.
//! - bit 2: the rest is little-endian `u32` token ids (some out of range), decoded every way.
//! - bit 3: the rest builds a hostile vocabulary (`Tokenizer::from_spec`: tokens are its lines,
//!   types, scores and merges derived from them), which must build or fail with an error, and
//!   which then encodes and decodes its own text.
//!
//! Nothing may panic.
#![no_main]

use graft_runtime::tokenizer::{Tokenizer, TokenizerSpec};
use libfuzzer_sys::fuzz_target;

fn stream_matches_pieces(tok: &Tokenizer, ids: &[u32], name: &str) {
    let mut stream = tok.decode_stream(false);
    let mut streamed = String::new();
    for &id in ids {
        streamed.push_str(&stream.step(id));
    }
    streamed.push_str(&stream.finish());
    let pieces: Vec<u8> = ids.iter().flat_map(|&id| tok.token_to_piece(id)).collect();
    assert_eq!(
        streamed,
        String::from_utf8_lossy(&pieces),
        "{name}: streaming decode differs from the pieces"
    );
    let mut skip = tok.decode_stream(true);
    for &id in ids {
        let _ = skip.step(id);
    }
    let _ = (skip.has_pending(), skip.finish());
}

fn decode_all(tok: &Tokenizer, ids: &[u32], name: &str) -> String {
    let text = tok.decode(ids);
    let _ = tok.decode_skip_special(ids);
    let _ = tok.decode_bytes(ids, false);
    stream_matches_pieces(tok, ids, name);
    for &id in ids.iter().take(64) {
        let _ = (tok.token_text(id), tok.is_eog(id), tok.is_control(id));
    }
    text
}

fn text_mode(text: &str, parse_special: bool, add_special: bool) {
    for t in graft_fuzz::tokenizers() {
        let tok = &t.tok;
        let ids = tok.encode(text, add_special, parse_special);
        let n = tok.vocab_size();
        assert!(
            ids.iter().all(|&id| (id as usize) < n),
            "{}: id outside the vocabulary",
            t.name
        );
        let back = decode_all(tok, &ids, t.name);
        if add_special {
            continue;
        }
        let promised = (t.round_trips && text.bytes().all(|b| t.has_byte[usize::from(b)]))
            || (t.spm && !parse_special && !text.contains('▁') && !text.contains("<tool>"));
        if promised {
            assert_eq!(back, text, "{}: decode(encode(text)) differs", t.name);
        }
    }
}

fn ids_mode(bytes: &[u8]) {
    let raw: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    for t in graft_fuzz::tokenizers() {
        let n = t.tok.vocab_size() as u32;
        // Mostly in range, a few just past the end, and the raw value when the top bit is set.
        let ids: Vec<u32> = raw
            .iter()
            .map(|&x| if x >> 31 == 1 { x } else { x % (n + 4) })
            .collect();
        decode_all(&t.tok, &ids, t.name);
    }
}

fn vocab_mode(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split('\n');
    let head = lines.next().unwrap_or_default();
    let tokens: Vec<String> = lines.take(512).map(str::to_string).collect();
    let b = |i: usize| head.as_bytes().get(i).copied().unwrap_or(0);
    let model = if b(0) & 1 == 0 { "gpt2" } else { "llama" };
    let pre = match b(0) >> 1 & 7 {
        0 => None,
        1 => Some("smollm"),
        2 => Some("llama3"),
        3 => Some("qwen2"),
        4 => Some("gpt-2"),
        5 => Some("default"),
        _ => Some(head),
    };
    let n = tokens.len();
    let types: Vec<i32> = tokens
        .iter()
        .map(|t| i32::from(t.bytes().next().unwrap_or(0) % 8))
        .collect();
    let scores: Vec<f32> = (0..n).map(|i| -(i as f32)).collect();
    let merges: Vec<String> = tokens
        .windows(2)
        .map(|w| format!("{} {}", w[0], w[1]))
        .collect();
    let id = |i: usize| (b(i) != 0).then(|| i64::from(b(i)) - 8);
    let spec = TokenizerSpec {
        model: model.to_string(),
        pre: pre.map(str::to_string),
        tokens,
        token_types: (b(0) & 16 == 0).then_some(types),
        scores: (b(0) & 32 == 0).then_some(scores),
        merges: (b(0) & 64 == 0).then_some(merges),
        bos_id: id(1),
        eos_id: id(2),
        eot_id: id(3),
        eom_id: id(4),
        unk_id: id(5),
        pad_id: id(6),
        add_bos: (b(7) & 1 == 1).then_some(b(7) & 2 == 2),
        add_eos: (b(7) & 4 == 4).then_some(b(7) & 8 == 8),
        add_space_prefix: (b(7) & 16 == 16).then_some(b(7) & 32 == 32),
    };
    let Ok(tok) = Tokenizer::from_spec(spec) else {
        return;
    };
    for (add, parse) in [(false, false), (true, true)] {
        let ids = tok.encode(&text, add, parse);
        assert!(ids.iter().all(|&id| (id as usize) < tok.vocab_size()));
        decode_all(&tok, &ids, "hostile vocabulary");
    }
    let _ = (tok.eog_ids(), tok.bos_id(), tok.eos_id(), tok.kind());
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    if flags & 8 != 0 {
        vocab_mode(rest);
    } else if flags & 4 != 0 {
        ids_mode(rest);
    } else {
        let text = String::from_utf8_lossy(rest);
        text_mode(&text, flags & 1 != 0, flags & 2 != 0);
    }
});
