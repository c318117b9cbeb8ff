//! Missing or invalid tokenizer metadata gives an error that names the key, never a panic.

use graft_quant::gguf::{Array, Metadata};
use graft_runtime::tokenizer::{Tokenizer, TokenizerError};

/// A small valid byte-level BPE vocabulary: the 256 byte characters, one merge.
fn base() -> Metadata {
    let table: Vec<String> = (0..=255u8)
        .map(|b| {
            let printable = (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || b >= 0xae;
            if printable {
                char::from(b).to_string()
            } else {
                // Mapped later; any distinct text will do for these tests.
                format!("<b{b}>")
            }
        })
        .collect();
    let mut tokens = table;
    tokens.push("ab".to_string());
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", "gpt2");
    md.insert("tokenizer.ggml.pre", "smollm");
    md.insert("tokenizer.ggml.tokens", Array::String(tokens));
    md.insert(
        "tokenizer.ggml.merges",
        Array::String(vec!["a b".to_string()]),
    );
    md
}

fn err(md: &Metadata) -> TokenizerError {
    match Tokenizer::from_gguf(md) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn the_base_vocabulary_builds() {
    let tok = Tokenizer::from_gguf(&base()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tok.encode("ab", false, false), [256]);
    assert_eq!(
        tok.encode("ba", false, false),
        [u32::from(b'b'), u32::from(b'a')]
    );
}

#[test]
fn missing_keys_are_named() {
    for key in [
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
    ] {
        let mut md = base();
        md.remove(key);
        let e = err(&md);
        assert!(
            matches!(&e, TokenizerError::MissingKey { key: k } if k == key),
            "{e:?}"
        );
        assert!(e.to_string().contains(key), "{e}");
    }
}

#[test]
fn wrong_types_are_named() {
    let cases: [(&str, graft_quant::gguf::Value); 4] = [
        ("tokenizer.ggml.model", 3u32.into()),
        ("tokenizer.ggml.tokens", Array::I32(vec![1, 2]).into()),
        (
            "tokenizer.ggml.token_type",
            Array::String(vec!["x".into()]).into(),
        ),
        ("tokenizer.ggml.add_bos_token", "yes".into()),
    ];
    for (key, value) in cases {
        let mut md = base();
        md.insert(key, value);
        let e = err(&md);
        assert!(
            matches!(&e, TokenizerError::WrongType { key: k, .. } if k == key),
            "{e:?}"
        );
        assert!(e.to_string().contains(key), "{e}");
    }
}

#[test]
fn unsupported_model_and_pre_tokenizer() {
    let mut md = base();
    md.insert("tokenizer.ggml.model", "t5");
    assert!(matches!(err(&md), TokenizerError::UnsupportedModel { model } if model == "t5"));
    let mut md = base();
    md.insert("tokenizer.ggml.pre", "tekken");
    let e = err(&md);
    assert!(matches!(&e, TokenizerError::UnsupportedPreTokenizer { name } if name == "tekken"));
    assert!(e.to_string().contains("tokenizer.ggml.pre"), "{e}");
}

#[test]
fn inconsistent_vocabularies() {
    let mut md = base();
    md.insert("tokenizer.ggml.tokens", Array::String(vec![]));
    assert!(matches!(err(&md), TokenizerError::EmptyVocab));

    let mut md = base();
    md.insert("tokenizer.ggml.token_type", Array::I32(vec![1; 10]));
    assert!(matches!(
        err(&md),
        TokenizerError::LengthMismatch {
            len: 10,
            n_tokens: 257,
            ..
        }
    ));

    let mut md = base();
    md.insert(
        "tokenizer.ggml.tokens",
        Array::String(vec!["a".into(), "b".into(), "a".into()]),
    );
    assert!(matches!(
        err(&md),
        TokenizerError::DuplicateToken {
            first: 0,
            second: 2,
            ..
        }
    ));

    let mut md = base();
    md.insert("tokenizer.ggml.eos_token_id", 999u32);
    let e = err(&md);
    assert!(matches!(
        e,
        TokenizerError::TokenIdOutOfRange {
            id: 999,
            n_vocab: 257,
            ..
        }
    ));

    let mut md = base();
    md.insert("tokenizer.ggml.add_bos_token", true);
    md.insert("tokenizer.ggml.bos_token_id", -1i32);
    assert!(matches!(
        err(&md),
        TokenizerError::TokenIdOutOfRange { id: -1, .. }
    ));
}

#[test]
fn add_bos_without_a_bos_token() {
    // SPM defaults BOS to id 1; with a one-token vocabulary there is none.
    let mut md = Metadata::new();
    md.insert("tokenizer.ggml.model", "llama");
    md.insert("tokenizer.ggml.tokens", Array::String(vec!["<unk>".into()]));
    assert!(matches!(
        err(&md),
        TokenizerError::MissingSpecialToken { .. }
    ));
    md.insert("tokenizer.ggml.add_bos_token", false);
    assert!(Tokenizer::from_gguf(&md).is_ok());
}
