//! `graft model random` through the built binary: the tiny size written with SmolLM2's
//! tokenizer runs (`graft run`) and trains a step (`graft train`); `--dry-run` prints exactly
//! what `graft inspect --json` says of the written file, so the 1B/3B/8B header and tensor
//! table are checked from the plan without writing gigabytes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use graft_quant::model_cache::test_model_path;
use serde_json::Value;

fn tokenizer_source() -> PathBuf {
    test_model_path().unwrap_or_else(|msg| panic!("{msg}"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "failed: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `graft model random --size SIZE --type TY` with the test model's tokenizer, to `out`.
fn random_args<'a>(size: &'a str, ty: &'a str, tok: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "model",
        "random",
        "--arch",
        "llama",
        "--size",
        size,
        "--type",
        ty,
        "--tokenizer-from",
        tok,
        "-o",
        out,
        "--seed",
        "5",
        "--no-progress",
    ]
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("JSON")
}

#[test]
fn the_tiny_model_runs_and_trains_a_step_and_its_plan_is_its_header() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tok = tokenizer_source();
    let out = dir.path().join("tiny.gguf");
    let mut args = random_args("tiny", "q4_k", s(&tok), s(&out));
    args.push("--dry-run");
    let mut plan = json(&ok(&graft(&args)));
    assert!(!out.exists(), "--dry-run writes nothing");
    args.pop();
    ok(&graft(&args));
    let mut inspected = json(&ok(&graft(&["inspect", s(&out), "--json"])));
    plan["path"] = Value::Null;
    inspected["path"] = Value::Null;
    assert_eq!(plan, inspected, "the plan is the written file's header");
    assert_eq!(inspected["tokenizer"]["vocab_size"], 49152);
    assert_eq!(inspected["chat_template"], true);
    let embd = inspected["tensors"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "token_embd.weight"))
        .expect("token_embd");
    assert_eq!(embd["shape"], serde_json::json!([256, 49152]));

    let run = ok(&graft(&[
        "run",
        "-m",
        s(&out),
        "-p",
        "Hello",
        "-n",
        "4",
        "--temp",
        "0",
        "--device",
        "cpu",
    ]));
    assert!(!run.is_empty());

    let data = dir.path().join("d.jsonl");
    let examples = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/support-triage/data/train.jsonl"),
    )
    .expect("example data");
    let two: Vec<&str> = examples.lines().take(2).collect();
    std::fs::write(&data, two.join("\n") + "\n").expect("write data");
    let adapter = dir.path().join("a.gguf");
    let train = graft(&[
        "train",
        "-m",
        s(&out),
        "--data",
        s(&data),
        "-o",
        s(&adapter),
        "--max-steps",
        "1",
        "--seq",
        "512",
        "--rank",
        "4",
        "--batch",
        "1",
        "-t",
        "2",
        "--no-progress",
    ]);
    let err = String::from_utf8_lossy(&train.stderr);
    assert!(train.status.success(), "{err}");
    assert!(adapter.is_file(), "{err}");
    // Random weights: the loss is about ln(vocab) and finite.
    let report = format!("{}{err}", String::from_utf8_lossy(&train.stdout));
    let line = report
        .lines()
        .find(|l| l.starts_with("final train loss"))
        .expect("final loss line");
    let loss: f64 = line
        .split_whitespace()
        .nth(3)
        .and_then(|v| v.parse().ok())
        .expect("a number");
    assert!(loss.is_finite() && (5.0..20.0).contains(&loss), "{line}");
}

#[test]
fn the_1b_3b_and_8b_plans_have_llama_3_shapes() {
    let tok = tokenizer_source();
    for (size, layers, d, ff, heads, tied, head_dim) in [
        ("1b", 16, 2048, 8192, 32, true, 64),
        ("3b", 28, 3072, 8192, 24, true, 128),
        ("8b", 32, 4096, 14336, 32, false, 128),
    ] {
        let mut args = random_args(size, "q4_k", s(&tok), "/nonexistent/never-written.gguf");
        args.push("--dry-run");
        let plan = json(&ok(&graft(&args)));
        let h = &plan["hparams"];
        assert_eq!(h["n_layers"], layers, "{size}");
        assert_eq!(h["d_model"], d, "{size}");
        assert_eq!(h["d_ffn"], ff, "{size}");
        assert_eq!(h["n_heads"], heads, "{size}");
        assert_eq!(h["n_kv_heads"], 8, "{size}");
        assert_eq!(h["rope_freq_base"], 500000.0, "{size}");
        assert_eq!(h["vocab_size"], 49152, "{size}");
        let tensors = plan["tensors"].as_array().expect("tensors");
        let find = |n: &str| tensors.iter().find(|t| t["name"] == n);
        assert_eq!(tensors.len(), 3 + 9 * layers + usize::from(!tied), "{size}");
        assert_eq!(find("output.weight").is_none(), tied, "{size}");
        assert_eq!(
            find("blk.0.attn_k.weight").map(|t| t["shape"].clone()),
            Some(serde_json::json!([d, 8 * head_dim])),
            "{size}"
        );
        assert_eq!(
            find("rope_freqs.weight").map(|t| t["shape"].clone()),
            Some(serde_json::json!([head_dim / 2])),
            "{size}"
        );
        assert_eq!(
            find(&format!("blk.{}.ffn_down.weight", layers - 1)).map(|t| t["type"].clone()),
            Some(Value::from("Q4_K")),
            "{size}"
        );
    }
    assert!(!Path::new("/nonexistent/never-written.gguf").exists());
}

#[test]
fn bad_sizes_and_tokenizer_sources_are_clear_errors() {
    let out = graft(&random_args("2b", "q4_k", "x.gguf", "y.gguf"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("tiny, 1b, 3b, 8b"),
        "{err}"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let o = dir.path().join("o.gguf");
    let out = graft(&random_args("tiny", "q4_k", "/nonexistent/tok.gguf", s(&o)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("/nonexistent/tok.gguf") && !err.contains("panicked"),
        "{err}"
    );
    assert!(!o.exists());
}
