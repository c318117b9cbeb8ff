//! `--lora` / `--lora-scaled` on the CLI with a real adapter on the real model.

#[path = "../../runtime/tests/adapter_support/mod.rs"]
mod adapter_support;

use std::path::Path;
use std::process::{Command, Output};

use graft_quant::model_cache::test_model_path;
use serde_json::Value;

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

fn json_ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// A rank-8 adapter on all seven projections of the test model, written as GGUF LoRA.
fn write_adapter(dir: &Path, magnitude: f32) -> String {
    let base = test_model_path().unwrap_or_else(|m| panic!("{m}"));
    adapter_support::write_all_projections_adapter(&base, dir, magnitude)
}

#[test]
fn lora_flags_apply_adapters() {
    let m = test_model_path().unwrap_or_else(|msg| panic!("{msg}"));
    let m = m.to_str().expect("utf-8");
    let dir = tempfile::tempdir().expect("tempdir");
    let strong = write_adapter(dir.path(), 0.2);
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "-m",
            m,
            "-p",
            "Once upon a time",
            "-n",
            "12",
            "--temp",
            "0",
        ];
        args.extend_from_slice(extra);
        args.push("--json");
        json_ok(&graft(&args))["ids"].clone()
    };
    let base = run(&[]);
    // Scale 0 is the base exactly; scale 1 of a strong adapter changes the continuation.
    assert_eq!(run(&["--lora-scaled", &strong, "0"]), base);
    assert_ne!(run(&["--lora", &strong]), base);

    let j = json_ok(&graft(&[
        "bench", "-m", m, "-p", "0", "-n", "4", "-r", "1", "-t", "1", "--json", "--lora", &strong,
    ]));
    assert_eq!(j["lora_adapters"], 1);
}

#[test]
fn bad_lora_input_is_a_clear_error() {
    let m = test_model_path().unwrap_or_else(|msg| panic!("{msg}"));
    let m = m.to_str().expect("utf-8");
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write_adapter(dir.path(), 0.01);
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(&good).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let truncated = truncated.to_str().expect("utf-8");
    for (args, needle) in [
        (
            vec!["--lora", "/nonexistent/adapter.gguf"],
            "/nonexistent/adapter.gguf",
        ),
        (vec!["--lora", truncated], "truncated.gguf"),
        (vec!["--lora-scaled", &good, "abc"], "abc"),
    ] {
        let mut full = vec!["run", "-m", m, "-p", "hi", "-n", "2"];
        full.extend(args);
        let out = graft(&full);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "must fail: {full:?}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
}
