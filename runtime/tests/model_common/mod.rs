//! Shared helpers of the real-model tests: where the model is, the goldens.

#![allow(dead_code)]

use std::path::PathBuf;

/// The SmolLM2-135M-Instruct Q4_1 test model; panics with the fetch instruction if missing.
pub fn model_path() -> PathBuf {
    graft_quant::model_cache::test_model_path().unwrap_or_else(|msg| panic!("{msg}"))
}

/// A golden file from llama.cpp (tests/data/llama/NAME).
pub fn golden(name: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/llama")
        .join(name);
    let text = std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("golden {} missing: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("golden {}: {e}", p.display()))
}

/// Threads for tests: 2 (the machines have 2 cores).
pub const THREADS: usize = 2;
