//! `graft train` as a new user meets it: the plan says why the step count is what it is, a plan
//! that cannot learn is warned about, the first step learns, and `--test` prints a report card
//! whose numbers equal `graft eval`'s and go into the model card (next to the adapter and in
//! the PEFT directory).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn model_path() -> PathBuf {
    match graft_quant::model_cache::test_model_path() {
        Ok(p) => p,
        Err(msg) => panic!("{msg}"),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `n` support-triage examples of `split` from line `skip`, without the system turn.
fn small_file(dir: &Path, split: &str, skip: usize, n: usize) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/support-triage/data")
        .join(split);
    let text = std::fs::read_to_string(src).expect("example data is readable");
    let mut out = String::new();
    for line in text.lines().skip(skip).take(n) {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("example line is JSON");
        if let Some(msgs) = v.get_mut("messages").and_then(|m| m.as_array_mut()) {
            msgs.retain(|m| m["role"] != "system");
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    let p = dir.join(split);
    std::fs::write(&p, out).expect("write test data");
    p
}

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_plan_that_cannot_learn_is_warned_about_and_starts_above_lr_0() {
    let model = model_path();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", 0, 20);
    let out = dir.path().join("a.gguf");
    let o = graft(&[
        "train",
        "-m",
        s(&model),
        "--data",
        s(&data),
        "-o",
        s(&out),
        "--epochs",
        "1",
        "--rank",
        "4",
        "--max-steps",
        "1",
        "-t",
        "1",
        "--no-progress",
    ]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("WARNING: this run has only 20 optimizer steps"),
        "{err}"
    );
    assert!(err.contains("why: auto batch: 20 examples"), "{err}");
    let metrics = std::fs::read_to_string(dir.path().join("a.metrics.jsonl")).expect("metrics");
    let first: serde_json::Value =
        serde_json::from_str(metrics.lines().next().expect("a step")).expect("JSON");
    assert!(first["lr"].as_f64().is_some_and(|lr| lr > 0.0), "{first}");
}

#[test]
fn test_flag_prints_the_report_card_graft_eval_agrees_with() {
    let model = model_path();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", 0, 12);
    let test = small_file(dir.path(), "test.jsonl", 0, 3);
    let out = dir.path().join("t.gguf");
    let peft = dir.path().join("t-peft");
    let o = graft(&[
        "train",
        "-m",
        s(&model),
        "--data",
        s(&data),
        "-o",
        s(&out),
        "--peft",
        s(&peft),
        "--rank",
        "4",
        "--alpha",
        "8",
        "--lr",
        "1e-3",
        "--max-steps",
        "2",
        "--test",
        s(&test),
        "--few-shot",
        "1",
        "-t",
        "1",
        "--no-progress",
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for want in [
        "report card",
        "base + 1-shot",
        "adapted",
        "exact match %",
        "model card",
    ] {
        assert!(stdout.contains(want), "missing {want}: {stdout}");
    }
    let card = std::fs::read_to_string(dir.path().join("t.README.md")).expect("model card");
    let peft_card = std::fs::read_to_string(peft.join("README.md")).expect("PEFT model card");
    assert_eq!(card, peft_card);

    // `graft eval` of the written adapter gives the card's adapted numbers.
    let e = graft(&[
        "eval",
        "-m",
        s(&model),
        "--lora",
        s(&out),
        "--data",
        s(&test),
        "--json",
    ]);
    assert!(e.status.success(), "{}", text(&e.stderr));
    let eval: serde_json::Value = serde_json::from_slice(&e.stdout).expect("eval JSON");
    let metrics = std::fs::read_to_string(dir.path().join("t.metrics.jsonl")).expect("metrics");
    let last: serde_json::Value =
        serde_json::from_str(metrics.lines().last().expect("a line")).expect("JSON");
    let adapted = &last["report_card"]["columns"][2];
    assert_eq!(adapted["label"], "adapted");
    for key in ["loss", "exact_match", "token_f1", "scored_tokens"] {
        assert_eq!(adapted[key], eval[key], "{key}");
    }
    // The card shows them with the table's rounding.
    let loss = eval["loss"].as_f64().expect("loss");
    assert!(card.contains(&format!(" {loss:.4} |")), "{card}");
}
