//! `graft train` end to end on the real model: a run killed with SIGKILL after a checkpoint
//! and resumed writes the same adapter bytes as an uninterrupted run; bad data never starts a
//! run; the plan says why the step count is what it is and warns when it cannot learn, the
//! first step learns, and `--test` prints a report card whose numbers equal `graft eval`'s and
//! go into the model card (next to the adapter and in the PEFT directory).

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

/// `n` support-triage examples of `split` (`train.jsonl`, `test.jsonl`, ...) from line `skip`,
/// without the system turn, written to `dir/split`.
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

/// Owned arguments from string slices.
fn strs(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
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
    let data = small_file(dir.path(), "train.jsonl", 200, 16);

    // Uninterrupted run, in f32 (explicitly: `--precision auto` is bf16 on AMX hosts).
    let f32_args = |out: &Path, ckpt: &Path| {
        let mut a = train_args(&model, &data, out, ckpt);
        a.extend(["--precision".to_string(), "f32".to_string()]);
        a
    };
    let out_a = dir.path().join("a.gguf");
    let ckpt_a = dir.path().join("ckpt-a");
    let o = graft(&f32_args(&out_a, &ckpt_a));
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
        .args(f32_args(&out_b, &ckpt_b))
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

    // Resume from the checkpoint directory (its newest complete checkpoint), with
    // `--precision` left on auto: the run continues in the checkpoint's f32.
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

/// xorshift64*: the kill points' random numbers (seeded, printed, reproducible).
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The fault test: one training run SIGKILLed at 20 random moments (during start-up,
/// steps, checkpoint writes or the final writes), each kill followed by a restart with
/// `--resume` from the checkpoint root (or from scratch while it holds no checkpoint yet, as
/// a supervisor would), ends in the same adapter bytes as an uninterrupted run. The kill
/// moments are uniform in [0, T/20] after each start, T the uninterrupted run's wall time, so
/// the 20 kills all land before the run can finish. `GRAFT_KILL_SEED=N` replays a seed.
#[test]
fn sigkill_at_20_random_points_with_resume_gives_the_same_adapter() {
    let model = model_path();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", 300, 16);
    let args = |out: &Path, ckpt: &Path| {
        let mut a = train_args(&model, &data, out, ckpt);
        // 2 epochs of 16 one-example steps: long enough for 20 kills to land mid-run (each
        // leg lives up to T/20, about one step), at half the cost of 2-example steps.
        let i = a.iter().position(|x| x == "--epochs").expect("--epochs") + 1;
        a[i] = "2".into();
        let i = a
            .iter()
            .position(|x| x == "--grad-accum")
            .expect("--grad-accum")
            + 1;
        a[i] = "1".into();
        let i = a
            .iter()
            .position(|x| x == "--max-steps")
            .expect("--max-steps")
            + 1;
        a[i] = "32".into();
        a
    };

    let out_a = dir.path().join("a.gguf");
    let t0 = Instant::now();
    let o = graft(&args(&out_a, &dir.path().join("ckpt-a")));
    let run_time = t0.elapsed();
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let bytes_a = std::fs::read(&out_a).expect("adapter A");

    let seed = std::env::var("GRAFT_KILL_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    eprintln!("kill seed {seed} (GRAFT_KILL_SEED={seed} replays it); run time {run_time:?}");
    let mut rng = Rng(seed);
    let out_b = dir.path().join("b.gguf");
    let ckpt_b = dir.path().join("ckpt-b");
    let leg = |resume: bool| {
        let mut a = args(&out_b, &ckpt_b);
        if resume {
            a.extend(["--resume".to_string(), s(&ckpt_b).to_string()]);
        }
        a
    };
    let mut resumed_steps = Vec::new();
    for kill in 0..20 {
        let resume = !graft_train::trainer::checkpoint::list(&ckpt_b)
            .expect("list checkpoints")
            .is_empty();
        let mut child = Command::new(env!("CARGO_BIN_EXE_graft"))
            .args(leg(resume))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn graft train");
        let at = run_time.mul_f64(rng.unit() / 20.0);
        std::thread::sleep(at);
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("leg {kill} ended before its kill at {at:?} ({st}): {err}");
        }
        child.kill().expect("SIGKILL");
        assert!(!child.wait().expect("wait").success());
        assert!(!out_b.exists(), "kill {kill}: a killed run left an adapter");
        if ckpt_b.exists() {
            assert_complete(&ckpt_b, true);
        }
        if let Some((step, _)) = graft_train::trainer::checkpoint::list(&ckpt_b)
            .expect("list")
            .pop()
        {
            resumed_steps.push(step);
        }
    }
    eprintln!("newest checkpoint after each kill: {resumed_steps:?}");
    let resume = !resumed_steps.is_empty();
    let o = graft(&leg(resume));
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout).contains("resumed at step"),
        resume,
        "{}",
        text(&o.stdout)
    );
    assert!(
        std::fs::read(&out_b).expect("adapter B") == bytes_a,
        "after 20 kills and resumes the adapter differs from the uninterrupted one (seed {seed})"
    );
    assert_complete(&ckpt_b, false);
}

#[test]
fn batches_larger_than_memory_are_refused_before_training() {
    let model = model_path();
    let dir = tempfile::tempdir().expect("tempdir");
    // 64 examples of ~8,000 tokens in batches of 64 rows: ~512k tokens a micro-batch, about
    // 1 MB of activations each on this model: far past any machine's memory.
    let long = "the quick brown fox jumps over the lazy dog ".repeat(900);
    let mut lines = String::new();
    for i in 0..64 {
        let ex = serde_json::json!({"messages": [
            {"role": "user", "content": format!("{i} {long}")},
            {"role": "assistant", "content": "ok"},
        ]});
        lines.push_str(&ex.to_string());
        lines.push('\n');
    }
    let data = dir.path().join("long.jsonl");
    std::fs::write(&data, lines).expect("write data");
    let out = dir.path().join("x.gguf");
    let o = graft(&strs(&[
        "train",
        "-m",
        s(&model),
        "--data",
        s(&data),
        "-o",
        s(&out),
        "--seq",
        "16384",
        "--batch",
        "64",
        "--max-steps",
        "1",
        "-t",
        "1",
        "--no-progress",
    ]));
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("not enough memory") && err.contains("64 rows") && err.contains("available"),
        "{err}"
    );
    assert!(!out.exists(), "an adapter was written");
}

#[test]
fn bad_data_names_the_line_and_writes_nothing() {
    let model = model_path();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", 0, 3);
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

#[test]
fn a_plan_that_cannot_learn_is_warned_about_and_starts_above_lr_0() {
    let model = model_path();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", 0, 20);
    let out = dir.path().join("a.gguf");
    let o = graft(&strs(&[
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
    ]));
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
    let o = graft(&strs(&[
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
    ]));
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
    let e = graft(&strs(&[
        "eval",
        "-m",
        s(&model),
        "--lora",
        s(&out),
        "--data",
        s(&test),
        "--json",
    ]));
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

/// The adapter's `graft.train.*` value of `key` (any numeric type) as f64.
fn train_key(adapter: &Path, key: &str) -> f64 {
    let f = graft_quant::gguf::GgufFile::open(adapter).expect("adapter is a GGUF file");
    let md = f.metadata();
    let k = format!("graft.train.{key}");
    md.get_f64(&k).unwrap_or_else(|e| panic!("{k}: {e}"))
}

#[test]
fn dpo_defaults_to_rpo_and_the_base_anchor_and_says_so_in_the_adapter() {
    let model = model_path();
    let dir = tempfile::tempdir().expect("tempdir");
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/triage-preference/data/test.jsonl");
    let pairs: String = std::fs::read_to_string(src)
        .expect("example pairs are readable")
        .lines()
        .take(2)
        .map(|l| format!("{l}\n"))
        .collect();
    let data = dir.path().join("pairs.jsonl");
    std::fs::write(&data, pairs).expect("write pairs");
    let run = |name: &str, extra: &[&str]| -> (PathBuf, String) {
        let out = dir.path().join(name);
        let mut args = strs(&[
            "train",
            "-m",
            s(&model),
            "--data",
            s(&data),
            "-o",
            s(&out),
            "--method",
            "dpo",
            "--rank",
            "2",
            "--seq",
            "256",
            "--batch",
            "1",
            "--grad-accum",
            "1",
            "--max-steps",
            "1",
            "-t",
            "1",
            "--no-progress",
        ]);
        args.extend(strs(extra));
        let o = graft(&args);
        assert!(o.status.success(), "{}", text(&o.stderr));
        (out, text(&o.stderr))
    };
    let (default, said) = run("default.gguf", &[]);
    assert!(
        said.contains("dpo: beta 0.1, label smoothing 0, RPO weight 1, base anchor 0.5"),
        "{said}"
    );
    assert_eq!(train_key(&default, "anchor"), 0.5);
    assert_eq!(train_key(&default, "rpo_alpha"), 1.0);
    assert_eq!(train_key(&default, "beta"), 0.1_f64);
    let card = std::fs::read_to_string(default.with_extension("README.md")).expect("model card");
    for row in [
        "| method | dpo |",
        "| RPO weight | 1 |",
        "| base anchor | 0.5 |",
    ] {
        assert!(card.contains(row), "{row} not in the model card:\n{card}");
    }
    let (plain, _) = run("plain.gguf", &["--anchor", "0", "--rpo-alpha", "0"]);
    assert_eq!(train_key(&plain, "anchor"), 0.0);
    assert_eq!(train_key(&plain, "rpo_alpha"), 0.0);
    let f = graft_quant::gguf::GgufFile::open(&plain).expect("adapter");
    assert_eq!(f.metadata().get_str("graft.train.method").ok(), Some("dpo"));
}
