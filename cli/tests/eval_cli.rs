//! `graft eval` on the real model (SmolLM2-135M-Instruct Q4_1; `scripts/fetch-model.sh`):
//! `--compare` with an adapter at scale 0 gives identical columns, a random nonzero adapter
//! changes them, the table and `--out` work, and bad input gives clear errors.

#[path = "../../runtime/tests/adapter_support/mod.rs"]
mod adapter_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use graft_quant::model_cache::test_model_path;
use serde_json::Value;

const LIMIT: &str = "4";

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

fn model() -> String {
    let m = test_model_path().unwrap_or_else(|msg| panic!("{msg}"));
    m.to_str().expect("utf-8").to_string()
}

fn test_set() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/support-triage/data/test.jsonl")
        .to_str()
        .expect("utf-8")
        .to_string()
}

fn json_ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn err_text(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A rank-8 adapter on all seven projections of the test model (GGUF LoRA).
fn write_adapter(dir: &Path, magnitude: f32) -> String {
    let base = test_model_path().unwrap_or_else(|m| panic!("{m}"));
    adapter_support::write_all_projections_adapter(&base, dir, magnitude)
}

fn metrics(r: &Value) -> Vec<Value> {
    [
        "n_examples",
        "scored_tokens",
        "loss",
        "ppl",
        "exact_match",
        "token_f1",
    ]
    .iter()
    .map(|k| r[*k].clone())
    .collect()
}

fn predictions(r: &Value) -> Vec<Value> {
    r["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .map(|e| e["prediction"].clone())
        .collect()
}

#[test]
fn compare_at_scale_zero_is_identical_and_a_random_adapter_changes_it() {
    let m = model();
    let data = test_set();
    let dir = tempfile::tempdir().expect("tempdir");
    let adapter = write_adapter(dir.path(), 0.2);
    let out_file = dir.path().join("per-example.jsonl");
    let out_s = out_file.to_str().expect("utf-8");

    let zero = json_ok(&graft(&[
        "eval",
        "-m",
        &m,
        "--data",
        &data,
        "--limit",
        LIMIT,
        "-c",
        "512",
        "--compare",
        "--lora-scaled",
        &adapter,
        "0",
        "--json",
        "--out",
        out_s,
    ]));
    let (base, adapted) = (&zero["base"], &zero["adapted"]);
    assert_eq!(base["n_examples"], 4);
    assert_eq!(base["adapters"].as_array().map(Vec::len), Some(0));
    assert_eq!(adapted["adapters"][0]["scale"], 0.0);
    assert!(base["loss"].as_f64().is_some_and(|l| l > 0.0), "{base}");
    assert_eq!(metrics(base), metrics(adapted));
    assert_eq!(predictions(base), predictions(adapted));
    assert_eq!(base["examples"], adapted["examples"]);

    // --out: one line per example, the adapted record with the base's prediction alongside.
    let text = std::fs::read_to_string(&out_file).expect("--out file");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 4);
    for (l, e) in lines
        .iter()
        .zip(adapted["examples"].as_array().expect("examples"))
    {
        assert_eq!(l["prediction"], e["prediction"]);
        assert_eq!(l["base_prediction"], e["prediction"]);
        assert!(l["reference"]
            .as_str()
            .is_some_and(|r| r.contains("severity")));
    }

    let strong = json_ok(&graft(&[
        "eval",
        "-m",
        &m,
        "--data",
        &data,
        "--limit",
        LIMIT,
        "-c",
        "512",
        "--compare",
        "--lora",
        &adapter,
        "--json",
    ]));
    assert_eq!(
        metrics(&strong["base"]),
        metrics(base),
        "the base is deterministic"
    );
    let (bl, al) = (
        strong["base"]["loss"].as_f64().expect("loss"),
        strong["adapted"]["loss"].as_f64().expect("loss"),
    );
    assert!((al - bl).abs() > 1e-3, "base loss {bl}, adapted {al}");
    assert_ne!(predictions(&strong["adapted"]), predictions(base));
}

#[test]
fn table_output_and_single_model() {
    let m = model();
    let data = test_set();
    let out = graft(&[
        "eval", "-m", &m, "--data", &data, "--limit", "2", "-c", "512",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    for row in [
        "metric",
        "base",
        "loss",
        "perplexity",
        "exact match %",
        "token F1 %",
    ] {
        assert!(table.contains(row), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("examples") && l.ends_with(" 2")),
        "{table}"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    let m = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"prompt\":\"2+2=\",\"completion\":\"4\"}\n{\"prompt\":\"x\",\n",
    )
    .expect("write");
    let bad_s = bad.to_str().expect("utf-8");
    let e = err_text(&graft(&["eval", "-m", &m, "--data", bad_s]));
    assert!(
        e.contains("bad.jsonl:2") && e.contains("invalid JSON"),
        "{e}"
    );

    let e = err_text(&graft(&[
        "eval",
        "-m",
        &m,
        "--data",
        "/nonexistent/t.jsonl",
    ]));
    assert!(e.contains("/nonexistent/t.jsonl"), "{e}");

    let data = test_set();
    let e = err_text(&graft(&["eval", "-m", &m, "--data", &data, "--compare"]));
    assert!(e.contains("--compare needs an adapter"), "{e}");

    let e = err_text(&graft(&[
        "eval",
        "-m",
        &m,
        "--data",
        &data,
        "--limit",
        "1",
        "--general",
        "/nonexistent/g.txt",
    ]));
    assert!(e.contains("general text /nonexistent/g.txt"), "{e}");

    let e = err_text(&graft(&[
        "eval", "-m", &m, "--data", &data, "--limit", "1", "-c", "16",
    ]));
    assert!(e.contains("test.jsonl:1") && e.contains("raise -c"), "{e}");
}

#[test]
fn few_shot_prompt_baseline_is_a_column_of_its_own() {
    let m = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let adapter = write_adapter(dir.path(), 0.2);
    let data = test_set();
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/support-triage/data/train.jsonl");
    let shots = shots.to_str().expect("utf-8");
    let all = json_ok(&graft(&[
        "eval",
        "-m",
        &m,
        "--data",
        &data,
        "--limit",
        "2",
        "--compare",
        "--lora",
        &adapter,
        "--few-shot",
        "2",
        "--shots",
        shots,
        "--json",
    ]));
    let (base, prompted, adapted) = (&all["base"], &all["prompted"], &all["adapted"]);
    assert_eq!(prompted["prompting"], "2-shot");
    assert!(base["prompting"].is_null() && adapted["prompting"].is_null());
    assert_eq!(prompted["adapters"].as_array().map(Vec::len), Some(0));
    // Same examples and references; the prompt is longer (two demonstrations), and only the
    // example's own reply is scored.
    assert_eq!(base["scored_tokens"], prompted["scored_tokens"]);
    let (bp, pp) = (
        base["examples"][0]["prompt"].as_str().expect("prompt"),
        prompted["examples"][0]["prompt"].as_str().expect("prompt"),
    );
    assert!(
        pp.len() > bp.len() && pp.matches("<|im_start|>assistant").count() == 3,
        "{pp}"
    );
    assert_ne!(base["loss"], prompted["loss"]);

    // The table: three columns and the adapter's gain over each baseline.
    let out = graft(&[
        "eval",
        "-m",
        &m,
        "--data",
        &data,
        "--limit",
        "2",
        "--compare",
        "--lora",
        &adapter,
        "--few-shot",
        "2",
        "--shots",
        shots,
        "--system",
        "Answer with JSON.",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let header = table.lines().next().expect("header");
    for col in ["base", "base + 2-shot + system", "adapted", "vs base"] {
        assert!(header.contains(col), "{header}");
    }

    // Bad combinations and sources are clear errors.
    let e = err_text(&graft(&[
        "eval",
        "-m",
        &m,
        "--data",
        &data,
        "--few-shot",
        "2",
    ]));
    assert!(e.contains("--few-shot 2 needs --shots"), "{e}");
    let e = err_text(&graft(&[
        "eval", "-m", &m, "--data", &data, "--shots", shots,
    ]));
    assert!(e.contains("--shots needs --few-shot"), "{e}");
    let e = err_text(&graft(&[
        "eval",
        "-m",
        &m,
        "--data",
        &data,
        "--few-shot",
        "5000",
        "--shots",
        shots,
    ]));
    assert!(
        e.contains("5000 demonstrations") && e.contains("960"),
        "{e}"
    );
}
