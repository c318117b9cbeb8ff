//! `graft tokenize` through the built binary: ids equal llama.cpp's (the committed golden
//! file made by tools/llama-oracle) for every golden text; bad input is a clear error.

use std::process::{Command, Output};

use graft_quant::model_cache::test_model_path;
use serde_json::Value;

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("the graft binary runs: {e}"))
}

fn model() -> String {
    test_model_path()
        .unwrap_or_else(|msg| panic!("{msg}"))
        .to_string_lossy()
        .into_owned()
}

#[test]
fn ids_equal_llama_cpp_goldens() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../runtime/tests/data/llama/tokenizer_golden.json"
    );
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"));
    // The goldens were made with the model's add_bos setting and special-token parsing on,
    // which are `graft tokenize`'s defaults.
    assert_eq!(golden["parse_special"], Value::Bool(true));
    let cases = golden["cases"]
        .as_array()
        .unwrap_or_else(|| panic!("cases"));
    assert!(cases.len() >= 20);
    let m = model();
    for case in cases.iter().take(20) {
        let text = case["text"].as_str().unwrap_or_else(|| panic!("text"));
        if text.is_empty() {
            continue;
        }
        let out = graft(&["tokenize", "-m", &m, "-p", text, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got["ids"], case["ids"], "text {text:?}");
        assert_eq!(
            got["n_tokens"].as_u64(),
            case["ids"].as_array().map(|a| a.len() as u64)
        );
    }
}

#[test]
fn plain_and_pieces_output() {
    let m = model();
    let out = graft(&["tokenize", "-m", &m, "-p", "Hello, world!"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[19556, 28, 905, 17]"
    );
    let out = graft(&["tokenize", "-m", &m, "-p", "<|im_start|>user", "--pieces"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("-> \"<|im_start|>\""), "{text}");
    let out = graft(&[
        "tokenize",
        "-m",
        &m,
        "-p",
        "<|im_start|>",
        "--no-parse-special",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.matches(',').count() >= 2,
        "split into several tokens: {text}"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let m = model();
    for (args, needle) in [
        (
            vec!["tokenize", "-m", "/nonexistent.gguf", "-p", "x"],
            "cannot read",
        ),
        (vec!["tokenize", "-m", m.as_str()], "-p TEXT or -f FILE"),
        (
            vec!["tokenize", "-m", m.as_str(), "-f", "/nonexistent.txt"],
            "cannot read",
        ),
    ] {
        let out = graft(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"ok \xff\xfe").unwrap_or_else(|e| panic!("{e}"));
    let out = graft(&["tokenize", "-m", &m, "-f", &bad.to_string_lossy()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid UTF-8"));
}
