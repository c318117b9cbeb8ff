//! Helpers shared by the GGUF integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Path of the real test model; panics with instructions when it is missing.
pub fn model_path() -> PathBuf {
    let dir = std::env::var_os("GRAFT_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/graft/models")
        });
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "test model {} is missing: run scripts/fetch-model.sh (or set GRAFT_MODELS)",
        p.display()
    );
    p
}

/// The whole real model file.
pub fn model_bytes() -> Vec<u8> {
    let p = model_path();
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}
