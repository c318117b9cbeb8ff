//! Shared helpers of the tokenizer tests: the test model's tokenizer and the llama.cpp goldens.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use graft_quant::gguf::GgufFile;
use graft_runtime::tokenizer::Tokenizer;

/// The test model, or a panic saying how to fetch it.
pub fn model_path() -> PathBuf {
    let dir = std::env::var_os("GRAFT_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(".cache/graft/models")
        });
    let path = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "test model {} is missing: run scripts/fetch-model.sh (or set GRAFT_MODELS)",
        path.display()
    );
    path
}

/// The test model's GGUF file, opened once.
pub fn gguf() -> &'static GgufFile {
    static FILE: OnceLock<GgufFile> = OnceLock::new();
    FILE.get_or_init(|| match GgufFile::open(model_path()) {
        Ok(f) => f,
        Err(e) => panic!("cannot open the test model: {e}"),
    })
}

/// SmolLM2's tokenizer, built once from the GGUF metadata.
pub fn smollm() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| match Tokenizer::from_gguf(gguf().metadata()) {
        Ok(t) => t,
        Err(e) => panic!("cannot build the tokenizer: {e}"),
    })
}

/// A file under runtime/tests/data/llama, parsed as JSON.
pub fn golden(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/llama")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read golden {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// A JSON array of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("ids array")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("id is an integer")).expect("id fits u32"))
        .collect()
}
