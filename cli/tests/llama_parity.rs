//! Parity with llama.cpp: files graft writes must load and generate in llama.cpp.
//!
//! These tests need the llama.cpp oracle (tools/llama-oracle, which builds llama.cpp from the
//! `llama-cpp-2` crate): they are `#[ignore]`d in the default run and executed by
//! `scripts/test.sh --parity` (and CI), which builds the oracle and sets `GRAFT_LLAMA_ORACLE`.
//! Run by hand with:
//! `GRAFT_LLAMA_ORACLE=tools/llama-oracle/target/release/llama-oracle cargo test -p graft-cli --test llama_parity -- --ignored`

use std::path::PathBuf;
use std::process::Command;

use graft_quant::model_cache::test_model_path;
use serde_json::Value;

fn oracle() -> PathBuf {
    let path = std::env::var_os("GRAFT_LLAMA_ORACLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "GRAFT_LLAMA_ORACLE is not set: build the oracle with `cargo build --release \
             --manifest-path tools/llama-oracle/Cargo.toml` and point GRAFT_LLAMA_ORACLE at \
             tools/llama-oracle/target/release/llama-oracle (scripts/test.sh --parity does both)"
            )
        });
    assert!(
        path.is_file(),
        "GRAFT_LLAMA_ORACLE={} is not a file",
        path.display()
    );
    path
}

fn model() -> PathBuf {
    test_model_path().unwrap_or_else(|msg| panic!("{msg}"))
}

/// Quantizes the test model to `ty` with `graft quantize`, then has llama.cpp load and run it.
/// `expect_paris`: whether the type keeps enough quality for the 135M model to still complete
/// "The capital of France is" with Paris (requantizing its Q4_1 weights to Q4_0 does not: the
/// second rounding costs too much on a model this small, in llama.cpp's own quantizer too).
fn quantized_output_runs_in_llama_cpp(ty: &str, expect_paris: bool) {
    let oracle = oracle();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join(format!("smollm2-{ty}.gguf"));
    let status = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["quantize", "--allow-requantize", "--type", ty])
        .arg(model())
        .arg(&out)
        .status()
        .expect("graft runs");
    assert!(status.success(), "graft quantize --type {ty} failed");

    let run = Command::new(oracle)
        .args(["load-check", "-n", "12", "-p", "The capital of France is"])
        .arg("-m")
        .arg(&out)
        .output()
        .expect("llama-oracle runs");
    assert!(
        run.status.success(),
        "llama.cpp could not load/run graft's {ty} output: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let j: Value = serde_json::from_slice(&run.stdout).expect("load-check prints JSON");
    assert_eq!(j["ok"], true);
    assert_eq!(j["n_layer"], 30);
    let text = j["text"].as_str().unwrap_or_default();
    let ids = j["ids"].as_array().map_or(0, Vec::len);
    assert!(
        ids > 0,
        "llama.cpp generated nothing from graft's {ty} file"
    );
    eprintln!("llama.cpp on graft's {ty} file: {text:?}");
    // A working model continues this prompt with Paris; a corrupt file produces noise.
    if expect_paris {
        assert!(
            text.contains("Paris"),
            "llama.cpp's continuation on the {ty} file: {text:?}"
        );
    }
}

#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn q4_0_output_runs_in_llama_cpp() {
    quantized_output_runs_in_llama_cpp("q4_0", false);
}

#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn q4_k_output_runs_in_llama_cpp() {
    quantized_output_runs_in_llama_cpp("q4_k", true);
}

#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn q8_0_output_runs_in_llama_cpp() {
    quantized_output_runs_in_llama_cpp("q8_0", true);
}

#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn f16_output_runs_in_llama_cpp() {
    quantized_output_runs_in_llama_cpp("f16", true);
}
