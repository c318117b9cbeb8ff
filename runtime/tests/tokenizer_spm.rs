//! The llama-style SentencePiece path on a tiny vocabulary built here as GGUF metadata, with
//! segmentations derived by hand from llama.cpp's algorithm (highest score merges first,
//! leftmost on ties, `▁` for spaces, a space prefix, `<0xXX>` byte fallback).

use graft_quant::gguf::{Array, Metadata};
use graft_runtime::tokenizer::{Tokenizer, VocabKind};

/// Normal tokens and scores.
const NORMAL: &[(&str, f32)] = &[
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
];

/// 0 `<unk>`, 1 `<s>`, 2 `</s>`, 3..=258 the bytes, then [`NORMAL`], then `<tool>`.
fn metadata() -> Metadata {
    let mut tokens = vec!["<unk>".to_string(), "<s>".to_string(), "</s>".to_string()];
    let mut types = vec![2, 3, 3];
    let mut scores = vec![0.0f32; 3];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(6);
        scores.push(0.0);
    }
    for (t, s) in NORMAL {
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

fn tokenizer() -> Tokenizer {
    match Tokenizer::from_gguf(&metadata()) {
        Ok(t) => t,
        Err(e) => panic!("tiny SPM vocabulary: {e}"),
    }
}

fn id(tok: &Tokenizer, text: &str) -> u32 {
    tok.token_id(text)
        .unwrap_or_else(|| panic!("no token {text:?}"))
}

fn byte(b: u8) -> u32 {
    3 + u32::from(b)
}

#[test]
fn defaults_of_a_llama_vocabulary() {
    let tok = tokenizer();
    assert_eq!(tok.kind(), VocabKind::SentencePiece);
    assert!(
        tok.add_bos(),
        "llama vocabularies add BOS unless the file says otherwise"
    );
    assert!(!tok.add_eos());
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.unk_id()),
        (Some(1), Some(2), Some(0))
    );
    assert!(tok.is_eog(2));
}

#[test]
fn merges_by_score_with_space_prefix() {
    let tok = tokenizer();
    // "▁hello▁world": ll (-1) -> llo (-1.5) -> he (-2) -> or, ld (-2.5, left first) ->
    // hello (-3) -> ▁hello (-0.5) -> ▁w (-3.5) -> [wor is stale] -> ▁wor (-5); "▁world" is no
    // token, so the result is ▁hello ▁wor ld.
    let want = vec![1, id(&tok, "▁hello"), id(&tok, "▁wor"), id(&tok, "ld")];
    assert_eq!(tok.encode("hello world", true, false), want);
    assert_eq!(tok.encode("hello world", false, false), want[1..]);
    assert_eq!(tok.decode(&want[1..]), "hello world");
    // llama.cpp strips the prefix space from the first piece only; after BOS it stays.
    assert_eq!(tok.decode(&want), "<s> hello world");
    assert_eq!(tok.decode_skip_special(&want), " hello world");
}

#[test]
fn equal_scores_merge_leftmost_first() {
    let tok = tokenizer();
    // "▁aaa": the pairs (a,a) at 1-2 and 2-3 tie; the left one merges.
    assert_eq!(
        tok.encode("aaa", false, false),
        [id(&tok, "▁"), id(&tok, "aa"), id(&tok, "a")]
    );
}

#[test]
fn unknown_characters_fall_back_to_bytes() {
    let tok = tokenizer();
    // "é" has no token: its UTF-8 bytes C3 A9 become <0xC3> <0xA9>.
    assert_eq!(
        tok.encode("hé", false, false),
        [id(&tok, "▁"), id(&tok, "h"), byte(0xC3), byte(0xA9)]
    );
    assert_eq!(tok.decode(&tok.encode("hé", false, false)), "hé");
    assert_eq!(tok.token_to_piece(byte(0xC3)), [0xC3]);
}

#[test]
fn special_and_user_defined_tokens() {
    let tok = tokenizer();
    // Control tokens only with parse_special; the text after one gets the space prefix.
    assert_eq!(tok.encode("<s>hello", false, true), [1, id(&tok, "▁hello")]);
    assert_eq!(
        tok.encode("<s>hello", false, false),
        [
            id(&tok, "▁"),
            byte(b'<'),
            byte(b's'),
            byte(b'>'),
            id(&tok, "hello")
        ]
    );
    // User-defined tokens are matched even without parse_special.
    let tool = id(&tok, "<tool>");
    let want = [id(&tok, "▁hello"), tool, id(&tok, "▁wor"), id(&tok, "ld")];
    assert_eq!(tok.encode("hello<tool>world", false, false), want);
    assert_eq!(tok.decode(&want), "hello<tool> world");
}

#[test]
fn add_space_prefix_false_is_honoured() {
    let mut md = metadata();
    md.insert("tokenizer.ggml.add_space_prefix", false);
    let tok = Tokenizer::from_gguf(&md).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tok.encode("hello", false, false), [id(&tok, "hello")]);
    assert_eq!(tok.decode(&[id(&tok, "▁hello")]), " hello");
}
