//! Special tokens, byte pieces and streaming decode on SmolLM2's tokenizer.

mod tok_common;

use tok_common::smollm;

#[test]
fn control_tokens_parse_only_with_parse_special() {
    let tok = smollm();
    let text = "<|im_start|>user\nHi<|im_end|>";
    let parsed = tok.encode(text, false, true);
    assert_eq!(parsed.first(), Some(&1));
    assert_eq!(parsed.last(), Some(&2));
    assert_eq!(parsed.iter().filter(|&&id| id < 17).count(), 2);
    // Without parse_special the markers are spelled out with ordinary tokens.
    let spelled = tok.encode(text, false, false);
    assert!(spelled.iter().all(|&id| id >= 17), "{spelled:?}");
    assert!(spelled.len() > parsed.len());
    // Both decode back to the same text.
    assert_eq!(tok.decode(&parsed), text);
    assert_eq!(tok.decode(&spelled), text);
    // Skipping special tokens drops the markers only.
    assert_eq!(tok.decode_skip_special(&parsed), "user\nHi");
}

#[test]
fn longest_special_token_wins_and_adjacent_ones_split() {
    let tok = smollm();
    assert_eq!(
        tok.encode("<|im_end|><|im_end|><|im_start|>", false, true),
        [2, 2, 1]
    );
    assert_eq!(tok.encode("<reponame>", false, true), [4]);
    assert_eq!(tok.encode("<repo_name>", false, true), [3]);
}

#[test]
fn add_special_follows_the_model() {
    let tok = smollm();
    // SmolLM2 sets add_bos_token = false: add_special adds nothing.
    assert_eq!(
        tok.encode("Hello", true, false),
        tok.encode("Hello", false, false)
    );
    assert!(tok.encode("", true, true).is_empty());
}

#[test]
fn byte_pieces_and_unicode_round_trip() {
    let tok = smollm();
    for text in [
        "naïve café",
        "日本語",
        "🦀🚀",
        "\u{200b}\u{00a0}x",
        "tab\tnew\nline\r\n",
        "\u{10FFFF}",
    ] {
        let ids = tok.encode(text, false, false);
        let bytes: Vec<u8> = ids.iter().flat_map(|&id| tok.token_to_piece(id)).collect();
        assert_eq!(bytes, text.as_bytes(), "pieces of {text:?}");
        assert_eq!(tok.decode(&ids), text);
    }
    // The crab is split across tokens whose pieces are not UTF-8 on their own.
    let crab = tok.encode("🦀", false, false);
    assert!(crab.len() > 1, "{crab:?}");
    assert!(std::str::from_utf8(&tok.token_to_piece(crab[0])).is_err());
    assert!(tok.token_to_piece(u32::MAX).is_empty());
}

#[test]
fn decode_stream_yields_only_whole_characters() {
    let tok = smollm();
    let text = "I love 🦀 Rust! 🚀🔥 👨‍👩‍👧 ok";
    let ids = tok.encode(text, false, false);
    let mut stream = tok.decode_stream(false);
    let mut out = String::new();
    let mut held_back = 0;
    for &id in &ids {
        let chunk = stream.step(id);
        if chunk.is_empty() && stream.has_pending() {
            held_back += 1;
        }
        assert!(
            !chunk.contains('\u{FFFD}'),
            "partial character leaked: {chunk:?}"
        );
        out.push_str(&chunk);
    }
    out.push_str(&stream.finish());
    assert_eq!(out, text);
    assert!(
        held_back > 0,
        "the emoji should have been split across tokens"
    );
}

#[test]
fn decode_stream_flushes_invalid_and_unfinished_bytes() {
    let tok = smollm();
    let crab = tok.encode("🦀", false, false);
    let mut stream = tok.decode_stream(false);
    // The first byte of the crab alone: held back, then flushed as U+FFFD at the end.
    assert_eq!(stream.step(crab[0]), "");
    assert_eq!(stream.finish(), "\u{FFFD}");
    // A continuation byte with no lead byte is invalid at once.
    let cont = (0..tok.vocab_size() as u32)
        .find(|&id| tok.token_to_piece(id) == [0x80])
        .expect("a token for byte 0x80");
    let mut stream = tok.decode_stream(false);
    assert_eq!(stream.step(cont), "\u{FFFD}");
    assert!(!stream.has_pending());
    // Control tokens appear unless skipped.
    assert_eq!(tok.decode_stream(false).step(2), "<|im_end|>");
    assert_eq!(tok.decode_stream(true).step(2), "");
}

#[test]
fn tokenizer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<graft_runtime::tokenizer::Tokenizer>();
    let tok = smollm();
    let want = tok.encode("threads share one tokenizer 123", false, false);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| s.spawn(|| tok.encode("threads share one tokenizer 123", false, false)))
            .collect();
        for h in handles {
            assert_eq!(h.join().expect("thread"), want);
        }
    });
}
