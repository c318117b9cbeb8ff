//! Parity with llama.cpp on Gemma 3 270M's SentencePiece tokenizer (`tokenizer.ggml.model =
//! llama`, byte fallback, `add_space_prefix` false, `<bos>` added): every golden text (the 65
//! of the SmolLM2 set plus 15 Gemma ones: `<start_of_turn>`/`<end_of_turn>`, user-defined
//! whitespace and HTML tokens, ...) encodes to llama.cpp's ids and decodes back to its
//! detokenized text; GPL-3 as a whole gives the same ids.
//!
//! Goldens: runtime/tests/data/gemma3/*.json, made by `scripts/gen-gemma-goldens.sh` with
//! tools/llama-oracle (llama.cpp via llama-cpp-2 =0.1.160). The model comes from
//! `scripts/fetch-model.sh gemma3-270m`; without it these tests fail saying so.

mod tok_common;

use tok_common::{data, gemma, gemma_gguf, golden_mismatches, ids};

#[test]
fn gemma_metadata_is_what_the_tokenizer_expects() {
    let md = gemma_gguf().metadata();
    let s = |k: &str| md.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let b = |k: &str| md.get(k).and_then(|v| v.as_bool());
    assert_eq!(s("general.architecture").as_deref(), Some("gemma3"));
    assert_eq!(s("tokenizer.ggml.model").as_deref(), Some("llama"));
    assert_eq!(b("tokenizer.ggml.add_space_prefix"), Some(false));
    assert_eq!(b("tokenizer.ggml.add_bos_token"), Some(true));
    assert!(
        md.get("tokenizer.chat_template").is_none(),
        "the 270M base file carries no chat template (use --chat-template gemma)"
    );
}

#[test]
fn every_golden_text_matches_llama_cpp() {
    let tok = gemma();
    let g = data("gemma3/tokenizer_golden.json");
    assert_eq!(g["add_bos"], true, "Gemma adds <bos>");
    let parse_special = g["parse_special"].as_bool().expect("parse_special flag");
    let cases = g["cases"].as_array().expect("cases");
    assert!(
        cases.len() >= 80,
        "expected the 65 shared + 15 Gemma texts, got {}",
        cases.len()
    );
    let failures = golden_mismatches(tok, cases, true, parse_special);
    println!(
        "{} of {} golden texts match llama.cpp",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn gpl3_matches_llama_cpp() {
    let tok = gemma();
    let g = data("gemma3/tokenizer_gpl3.json");
    let path = g["file"].as_str().expect("file");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path} is needed for this test (Debian base-files): {e}"));
    let want = ids(&g["ids"]);
    assert_eq!(Some(want.len() as u64), g["count"].as_u64());
    let got = tok.encode(&text, true, true);
    if got != want {
        let at = got
            .iter()
            .zip(&want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let lo = at.saturating_sub(3);
        panic!(
            "GPL-3: {} tokens vs llama.cpp's {}; first difference at {at}: graft {:?} llama.cpp {:?}",
            got.len(),
            want.len(),
            &got[lo..(at + 4).min(got.len())],
            &want[lo..(at + 4).min(want.len())]
        );
    }
    // Decoding drops nothing but the leading <bos> (rendered as text with specials on).
    assert_eq!(tok.decode_skip_special(&got), text);
}

#[test]
fn bos_and_special_turn_tokens() {
    let tok = gemma();
    assert_eq!(tok.vocab_size(), 262_144);
    assert_eq!(tok.bos_id(), Some(2));
    assert_eq!(tok.token_text(2), Some("<bos>"));
    assert!(tok.add_bos() && !tok.add_eos());
    let start = tok.token_id("<start_of_turn>").expect("<start_of_turn>");
    let end = tok.token_id("<end_of_turn>").expect("<end_of_turn>");
    assert_eq!((start, end), (105, 106));
    // add_special puts <bos> first, once; without it nothing is added.
    assert_eq!(tok.encode("Hi", true, true).first(), Some(&2));
    assert_eq!(
        tok.encode("Hi", false, true).first(),
        tok.encode("Hi", true, true).get(1)
    );
    assert_eq!(tok.encode("", true, true), [2]);
    assert!(tok.encode("", false, true).is_empty());
    // The turn markers are single control tokens only when special text is parsed.
    let text = "<start_of_turn>user\nHi<end_of_turn>\n";
    let parsed = tok.encode(text, false, true);
    assert_eq!(parsed.first(), Some(&start));
    assert!(parsed.contains(&end));
    let spelled = tok.encode(text, false, false);
    assert!(
        !spelled.contains(&start) && !spelled.contains(&end),
        "{spelled:?}"
    );
    assert_eq!(tok.decode(&spelled), text);
    assert!(tok.is_control(start) && tok.is_control(end));
    assert_eq!(tok.decode_skip_special(&parsed), "user\nHi\n");
}

/// llama.cpp 0.1.160's end-of-generation set for this vocabulary: `<eos>` (the file's EOS),
/// `<end_of_turn>` (found by text, the EOT) and `</s>` (a user-defined token in Gemma's
/// vocabulary that llama.cpp's text list turns into a control token), as its load log prints.
#[test]
fn end_of_generation_tokens_are_llama_cpps() {
    let tok = gemma();
    assert_eq!(tok.eos_id(), Some(1));
    assert_eq!(tok.eot_id(), Some(106), "<end_of_turn> ends a turn");
    assert_eq!(tok.eog_ids(), [1, 106, 212]);
    assert_eq!(tok.token_text(212), Some("</s>"));
    assert!(tok.is_eog(106) && tok.is_eog(1));
    assert!(!tok.is_eog(105), "<start_of_turn> does not end generation");
    assert!(!tok.is_eog(2), "<bos> does not");
}

/// The chat prompts llama.cpp generated from (built-in `gemma` template: the file carries
/// none): graft's `gemma` template renders the same text and the tokenizer gives the same ids,
/// `<bos>` first. Goldens: runtime/tests/data/gemma3/greedy_golden.json.
#[test]
fn gemma_chat_prompts_tokenize_to_llama_cpps_prompt_ids() {
    use graft_runtime::chat_template::{BuiltinTemplate, ChatMessage, ChatTemplate};
    let tok = gemma();
    let g = data("gemma3/greedy_golden.json");
    assert_eq!(g["chat_template"], "gemma");
    let template = ChatTemplate::builtin(BuiltinTemplate::Gemma);
    let mut chats = 0;
    for case in g["cases"].as_array().expect("cases") {
        let prompt = case["prompt"].as_str().expect("prompt");
        let text = if case["chat"].as_bool().expect("chat flag") {
            chats += 1;
            template
                .render(&[ChatMessage::new("user", prompt)], true)
                .unwrap_or_else(|e| panic!("{e}"))
        } else {
            prompt.to_string()
        };
        assert_eq!(text, case["prompt_text"].as_str().expect("prompt_text"));
        let want = ids(&case["prompt_ids"]);
        assert_eq!(tok.encode(&text, true, true), want, "prompt {prompt:?}");
        assert_eq!(want[0], 2, "<bos> first");
    }
    assert_eq!(chats, 5);
}
