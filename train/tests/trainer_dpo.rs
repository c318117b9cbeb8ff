//! Preference tuning through the trainer on the real test model: a DPO run starts at
//! `ln 2` (policy = reference), lowers the loss of its pairs and ranks them right (evaluated
//! as validation pairs: what the optimizer can reach in four steps), records rewards/margin/accuracy per step, resumes bit-exactly from a checkpoint;
//! `--init-adapter` makes the given adapter the starting point and the reference; data that
//! is not a clean set of pairs is refused before training with the line named.

mod trainer_common;

use std::path::{Path, PathBuf};

use graft_train::trainer::{Silent, TrainConfig, TrainMethod, Trainer};
use trainer_common::*;

/// `n` pairs of the triage-preference example from line `skip` on, without the system turn
/// (so a pair row fits in 160 tokens), written to `dir/name`.
fn pairs_file(dir: &Path, src: &str, name: &str, skip: usize, n: usize) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/triage-preference/data")
        .join(src);
    let text = std::fs::read_to_string(path).expect("example pairs are readable");
    let mut out = String::new();
    for line in text.lines().skip(skip).take(n) {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("pair line is JSON");
        if let Some(msgs) = v.get_mut("prompt").and_then(|m| m.as_array_mut()) {
            msgs.retain(|m| m["role"] != "system");
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    let p = dir.join(name);
    std::fs::write(&p, out).expect("write pairs");
    p
}

fn dpo_config() -> TrainConfig {
    TrainConfig {
        method: TrainMethod::Dpo {
            beta: 0.1,
            label_smoothing: 0.0,
            rpo_alpha: 0.0,
        },
        batch: 2,
        grad_accum: 1,
        epochs: 2,
        seq: 160,
        lr: 2e-3,
        eval_every: Some(2),
        ..tiny_config()
    }
}

#[test]
fn dpo_learns_the_preference_and_resumes_bit_exactly() {
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pairs_file(dir.path(), "train.jsonl", "train.jsonl", 0, 4);
    let val = data.clone();
    let a = dir.path().join("a");
    std::fs::create_dir(&a).expect("mkdir");
    let mut io_a = io(&a, &data);
    io_a.val = Some(val.clone());
    io_a.peft = Some(a.join("peft"));
    let out = Trainer::new(&model, dpo_config(), io_a)
        .expect("start")
        .run(&mut Silent)
        .expect("DPO run");
    assert_eq!(out.steps, 4);
    let m = &out.metrics;
    // B = 0 at the start: the policy is the reference, every margin 0, the loss ln 2.
    assert!(
        (m[0].train_loss - std::f64::consts::LN_2).abs() < 1e-6,
        "first step's loss {}",
        m[0].train_loss
    );
    let first = m[0].preference.expect("preference metrics");
    assert_eq!(first.margin, 0.0);
    let evals: Vec<_> = m
        .iter()
        .filter_map(|s| s.val_preference.zip(s.val_loss))
        .collect();
    assert_eq!(evals.len(), 2, "evaluated at steps 2 and 4");
    let (last, last_loss) = evals[1];
    assert!(
        last_loss < std::f64::consts::LN_2 - 0.05,
        "validation loss {last_loss} did not fall below ln 2"
    );
    assert!(
        last.margin > 0.0 && last.accuracy == 1.0,
        "validation {last:?}"
    );
    assert!(last.chosen_reward > last.rejected_reward);
    let metrics = std::fs::read_to_string(a.join("adapter.metrics.jsonl")).expect("metrics");
    assert!(metrics.contains("\"val_preference\"") && metrics.contains("\"accuracy\""));
    let bytes_a = std::fs::read(a.join("adapter.gguf")).expect("adapter A");

    // Stopped after step 2 with a checkpoint, then resumed: the same adapter bytes.
    let b = dir.path().join("b");
    std::fs::create_dir(&b).expect("mkdir");
    let mut io_b = io(&b, &data);
    io_b.val = Some(val);
    io_b.checkpoint_dir = Some(b.join("ckpt"));
    let cfg = TrainConfig {
        save_every: Some(2),
        ..dpo_config()
    };
    Trainer::new(&model, cfg.clone(), io_b.clone())
        .expect("start")
        .run(&mut StopAfter(2))
        .expect("run B");
    io_b.resume = Some(b.join("ckpt"));
    let out_b = Trainer::new(&model, cfg, io_b)
        .expect("start")
        .run(&mut Silent)
        .expect("run B resumed");
    assert_eq!(out_b.resumed_from, Some(2));
    let bytes_b = std::fs::read(b.join("adapter.gguf")).expect("adapter B");
    assert!(
        bytes_a == bytes_b,
        "resumed DPO adapter differs from the uninterrupted one"
    );

    // The trained adapter as the starting point: it is also the reference, so the first
    // step (no dropout) is at ln 2 again; a run of another rank is refused by name.
    let c = dir.path().join("c");
    std::fs::create_dir(&c).expect("mkdir");
    let mut io_c = io(&c, &data);
    io_c.init_adapter = Some(a.join("adapter.gguf"));
    let cfg = TrainConfig {
        dropout: 0.0,
        max_steps: Some(1),
        eval_every: None,
        ..dpo_config()
    };
    let out_c = Trainer::new(&model, cfg.clone(), io_c.clone())
        .expect("start")
        .run(&mut Silent)
        .expect("run C");
    assert!(
        (out_c.metrics[0].train_loss - std::f64::consts::LN_2).abs() < 1e-6,
        "from the adapter: first loss {}",
        out_c.metrics[0].train_loss
    );
    // (the PEFT directory of the same adapter: loads, and is refused for its rank).
    io_c.init_adapter = Some(a.join("peft"));
    let err = Trainer::new(&model, TrainConfig { rank: 8, ..cfg }, io_c)
        .expect("start")
        .run(&mut Silent)
        .expect_err("rank 8 against a rank-4 adapter");
    let msg = err.to_string();
    assert!(
        msg.contains("--init-adapter") && msg.contains("rank 4"),
        "{msg}"
    );
}

#[test]
fn bad_preference_data_is_refused_before_training() {
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = pairs_file(dir.path(), "train.jsonl", "good.jsonl", 0, 2);
    let good_text = std::fs::read_to_string(&good).expect("read");
    let cases = [
        (
            "sft_line",
            r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}"#,
            "preference run",
        ),
        (
            "identical",
            r#"{"prompt":"Classify: my card was charged twice","chosen":"billing","rejected":" billing "}"#,
            "identical",
        ),
        (
            "missing_rejected",
            r#"{"prompt":"Classify: my card was charged twice","chosen":"billing"}"#,
            "rejected",
        ),
        (
            "empty_prompt",
            r#"{"prompt":"","chosen":"billing","rejected":"account"}"#,
            "prompt",
        ),
    ];
    for (name, line, want) in cases {
        let path = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&path, format!("{good_text}{line}\n")).expect("write");
        let err = match Trainer::new(&model, dpo_config(), io(dir.path(), &path)) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(want) && err.contains(":3"),
            "{name}: the error names neither the problem nor line 3: {err}"
        );
    }
}
