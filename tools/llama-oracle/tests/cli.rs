//! End-to-end checks of the oracle binary against facts measured with llama.cpp on the test model.

use std::path::PathBuf;
use std::process::Command;

fn model() -> PathBuf {
    let dir = std::env::var_os("GRAFT_MODELS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/graft/models")))
        .unwrap_or_else(|| PathBuf::from(".cache/graft/models"));
    let path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "test model {} missing: run scripts/fetch-model.sh",
        path.display()
    );
    path
}

fn oracle(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_llama-oracle"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running llama-oracle: {e}"));
    assert!(
        out.status.success(),
        "llama-oracle {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}"))
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap_or_else(|| panic!("not an id: {x}")))
        .collect()
}

#[test]
fn chat_greedy_france_matches_llama_cpp_fact() {
    let m = model();
    let m = m.to_str().unwrap_or_else(|| panic!("non-UTF-8 model path"));
    let g = oracle(&[
        "generate",
        "-m",
        m,
        "-p",
        "What is the capital of France?",
        "--chat",
        "-n",
        "16",
    ]);
    assert_eq!(ids(&g["ids"]), vec![504, 3575, 282, 4649, 314, 7042, 30, 2]);
    assert_eq!(g["text"], "The capital of France is Paris.");
    assert_eq!(ids(&g["prompt_ids"]).len(), 16);
    assert_eq!(g["stopped_on_eog"], true);
}

#[test]
fn special_tokens_parsed_only_when_asked() {
    let m = model();
    let m = m.to_str().unwrap_or_else(|| panic!("non-UTF-8 model path"));
    let text = "<|im_start|>user";
    let with = ids(&oracle(&["tokenize", "-m", m, "--text", text])["ids"]);
    let without = ids(&oracle(&["tokenize", "-m", m, "--text", text, "--no-special"])["ids"]);
    assert_eq!(with, vec![1, 4093], "<|im_start|> is id 1, no BOS added");
    assert!(
        without.len() > 2 && !without.contains(&1),
        "plain-text form: {without:?}"
    );
}

#[test]
fn load_check_rejects_a_non_gguf_file() {
    let bad = std::env::temp_dir().join(format!("llama-oracle-bad-{}.gguf", std::process::id()));
    std::fs::write(&bad, b"not a gguf file at all").unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_llama-oracle"))
        .args(["load-check", "-m"])
        .arg(&bad)
        .output()
        .unwrap_or_else(|e| panic!("running llama-oracle: {e}"));
    let _ = std::fs::remove_file(&bad);
    assert!(!out.status.success(), "a garbage file must not load");
    assert!(String::from_utf8_lossy(&out.stderr).contains("failed to load"));
}
