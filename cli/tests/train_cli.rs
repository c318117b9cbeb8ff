//! `graft train` end to end on the real model: a run killed with SIGKILL after a checkpoint
//! and resumed writes the same adapter bytes as an uninterrupted run; bad data never starts a
//! run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn model_path() -> PathBuf {
    match graft_quant::model_cache::test_model_path() {
        Ok(p) => p,
        Err(msg) => panic!("{msg}"),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `n` support-triage training examples from line `skip`, without the system turn.
fn small_file(dir: &Path, skip: usize, n: usize) -> PathBuf {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/support-triage/data/train.jsonl");
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
    let p = dir.join("train.jsonl");
    std::fs::write(&p, out).expect("write test data");
    p
}

fn train_args(model: &Path, data: &Path, out: &Path, ckpt: &Path) -> Vec<String> {
    [
        "train",
        "-m",
        s(model),
        "--data",
        s(data),
        "-o",
        s(out),
        "--rank",
        "4",
        "--alpha",
        "8",
        "--seq",
        "64",
        "--batch",
        "1",
        "--grad-accum",
        "2",
        "--lr",
        "1e-3",
        "--epochs",
        "1",
        "--max-steps",
        "6",
        "--warmup",
        "1",
        "--save-every",
        "1",
        "--checkpoint-dir",
        s(ckpt),
        "-t",
        "1",
        "--no-progress",
    ]
    .map(String::from)
    .to_vec()
}

fn graft(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

/// Every `step-*` entry of a checkpoint root is complete; the only other entries allowed
/// (with `allow_tmp`, right after a kill) are the writer's hidden temporary directories.
fn assert_complete(root: &Path, allow_tmp: bool) {
    for e in std::fs::read_dir(root).expect("checkpoint dir") {
        let e = e.expect("entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if allow_tmp && name.starts_with(".graft-tmp-") {
            continue;
        }
        assert!(
            name.starts_with("step-"),
            "unexpected entry {name} left behind"
        );
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(e.path().join("state.json")).expect("state.json"),
        )
        .expect("state.json parses");
        for f in state["files"].as_object().expect("files").keys() {
            assert!(e.path().join(f).is_file(), "{name}/{f} missing");
        }
    }
}

#[test]
fn sigkill_and_resume_gives_the_same_adapter() {
    let model = model_path();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), 200, 16);

    // Uninterrupted run.
    let out_a = dir.path().join("a.gguf");
    let ckpt_a = dir.path().join("ckpt-a");
    let o = graft(&train_args(&model, &data, &out_a, &ckpt_a));
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let stdout = text(&o.stdout);
    for want in [
        "after 6 of",
        "tokens/s",
        "peak RSS",
        "final train loss",
        "adapter ",
    ] {
        assert!(stdout.contains(want), "no `{want}` in summary:\n{stdout}");
    }
    assert!(dir.path().join("a.metrics.jsonl").is_file());
    assert!(dir.path().join("a.loss.svg").is_file());
    let bytes_a = std::fs::read(&out_a).expect("adapter A");

    // Killed once step 2's checkpoint exists.
    let out_b = dir.path().join("b.gguf");
    let ckpt_b = dir.path().join("ckpt-b");
    let mut child = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(train_args(&model, &data, &out_b, &ckpt_b))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn graft train");
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ckpt_b.join("step-00000002").join("state.json").is_file() {
        assert!(Instant::now() < deadline, "no checkpoint after 300 s");
        if let Ok(Some(st)) = child.try_wait() {
            panic!("graft train exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL"); // SIGKILL on Unix
    let status = child.wait().expect("wait");
    assert!(!status.success());
    assert!(!out_b.exists(), "a killed run left an adapter");
    assert_complete(&ckpt_b, true);

    // Resume from the checkpoint directory (its newest complete checkpoint).
    let mut args = train_args(&model, &data, &out_b, &ckpt_b);
    args.extend(["--resume".to_string(), s(&ckpt_b).to_string()]);
    let o = graft(&args);
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("resumed at step"),
        "{}",
        text(&o.stdout)
    );
    let bytes_b = std::fs::read(&out_b).expect("adapter B");
    assert!(
        bytes_a == bytes_b,
        "resumed adapter differs from the uninterrupted one"
    );
    assert_complete(&ckpt_b, false);
}

#[test]
fn bad_data_names_the_line_and_writes_nothing() {
    let model = model_path();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), 0, 3);
    let mut bytes = std::fs::read(&data).expect("read");
    bytes.extend_from_slice(b"{\"messages\": [oops\n");
    std::fs::write(&data, bytes).expect("write");
    let out = dir.path().join("x.gguf");
    let o = graft(&train_args(&model, &data, &out, &dir.path().join("ck")));
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains(&format!("{}:4:", data.display())), "{err}");
    assert!(err.contains("invalid JSON"), "{err}");
    assert!(!out.exists());
    assert!(!dir.path().join("ck").exists());
}
