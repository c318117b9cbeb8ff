//! Parity with llama.cpp on SmolLM2-135M-Instruct: every golden text encodes to llama.cpp's
//! ids and decodes back to llama.cpp's detokenized text; GPL-3 as a whole gives the same 7,639
//! ids. Goldens: runtime/tests/data/llama/*.json (tools/llama-oracle, llama.cpp via
//! llama-cpp-2 0.1.160).

mod tok_common;

use std::time::Instant;

use tok_common::{golden, golden_mismatches, ids, smollm};

#[test]
fn every_golden_text_matches_llama_cpp() {
    let tok = smollm();
    let g = golden("tokenizer_golden.json");
    assert_eq!(g["add_bos"], false);
    let parse_special = g["parse_special"].as_bool().expect("parse_special flag");
    let cases = g["cases"].as_array().expect("cases");
    assert!(
        cases.len() >= 60,
        "expected the full golden set, got {}",
        cases.len()
    );
    let failures = golden_mismatches(tok, cases, false, parse_special);
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
fn gpl3_matches_llama_cpp_and_is_fast() {
    let tok = smollm();
    let g = golden("tokenizer_gpl3.json");
    let path = g["file"].as_str().expect("file");
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path} is needed for this test (Debian base-files): {e}"));
    let want = ids(&g["ids"]);
    assert_eq!(want.len(), 7639);
    // Warm the thread's BPE cache once, then time a run on the warm cache and one cold.
    let t0 = Instant::now();
    let got = tok.encode(&text, false, true);
    let first = t0.elapsed();
    let t1 = Instant::now();
    let again = tok.encode(&text, false, true);
    let warm = t1.elapsed();
    println!(
        "GPL-3 ({} bytes) -> {} tokens: first run {:.1} ms, second {:.1} ms",
        text.len(),
        got.len(),
        first.as_secs_f64() * 1e3,
        warm.as_secs_f64() * 1e3
    );
    assert_eq!(got, again);
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
    assert_eq!(
        tok.decode(&got),
        text,
        "GPL-3 does not decode back to itself"
    );
    // Generous for a loaded 2-core machine in a debug-profile (opt-level 2) test build.
    assert!(first.as_millis() < 1000, "tokenizing GPL-3 took {first:?}");
}

/// Runs of spaces before a digit: llama.cpp's `smollm` pre-tokenizer keeps the run whole
/// (the digit split ends the piece first), where HF's pipeline splits off a lone " ".
#[test]
fn whitespace_runs_before_digits_stay_whole() {
    let tok = smollm();
    let pieces = |text: &str| -> Vec<String> {
        tok.encode(text, false, false)
            .iter()
            .map(|&id| String::from_utf8_lossy(&tok.token_to_piece(id)).into_owned())
            .collect()
    };
    assert_eq!(pieces("x  1"), ["x", "  ", "1"]);
    assert_eq!(pieces("x   12"), ["x", "   ", "1", "2"]);
    assert_eq!(pieces("     7"), ["     ", "7"]);
    assert_eq!(
        pieces("price:    42 dollars"),
        ["price", ":", "    ", "4", "2", " dollars"]
    );
    // Before a letter the last space still goes with the word.
    assert_eq!(pieces("x   y"), ["x", "  ", " y"]);
}

#[test]
fn vocabulary_facts() {
    let tok = smollm();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    assert_eq!(tok.eot_id(), Some(2), "<|im_end|> ends a turn");
    assert_eq!(tok.pad_id(), Some(2));
    assert!(!tok.add_bos());
    assert!(
        tok.is_eog(2) && tok.is_eog(0),
        "<|im_end|> and <|endoftext|> end generation"
    );
    assert!(!tok.is_eog(1), "<|im_start|> does not");
    // llama.cpp takes <reponame> for the FIM repo token, and FIM tokens end generation.
    assert_eq!(tok.eog_ids(), [0, 2, 4]);
    assert_eq!(tok.token_text(1), Some("<|im_start|>"));
    assert_eq!(tok.token_id("<|im_end|>"), Some(2));
}
