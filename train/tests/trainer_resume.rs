//! Checkpoints and resume: a run stopped by its observer and resumed from its checkpoint
//! writes the same adapter bytes as an uninterrupted run; a cancelled run writes no adapter;
//! checkpoint directories are always complete.

mod trainer_common;

use std::path::Path;

use graft_train::trainer::{
    checkpoint, Control, Observer, Silent, StopReason, TrainConfig, Trainer,
};
use trainer_common::*;

fn config() -> TrainConfig {
    TrainConfig {
        batch: 1,
        epochs: 2,
        max_steps: Some(5),
        save_every: Some(2),
        eval_every: Some(2),
        early_stopping: Some(5),
        ..tiny_config()
    }
}

/// Every `step-*` directory holds every file its state lists, and no temporary directory
/// is left behind.
fn assert_complete_checkpoints(root: &Path) {
    for name in entries(root) {
        assert!(
            name.starts_with("step-"),
            "unexpected entry {name} in {}",
            root.display()
        );
        let d = root.join(&name);
        let state: serde_json::Value = serde_json::from_slice(
            &std::fs::read(d.join("state.json")).expect("state.json present"),
        )
        .expect("state.json parses");
        for f in state["files"].as_object().expect("files map").keys() {
            assert!(d.join(f).is_file(), "{name}/{f} missing");
        }
    }
}

#[test]
fn stopped_and_resumed_run_is_byte_identical() {
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", "train.jsonl", 20, 8);
    let val = small_file(dir.path(), "val.jsonl", "val.jsonl", 10, 2);

    // Uninterrupted.
    let a = dir.path().join("a");
    std::fs::create_dir(&a).expect("mkdir");
    let mut io_a = io(&a, &data);
    io_a.val = Some(val.clone());
    io_a.checkpoint_dir = Some(a.join("ckpt"));
    let out_a = Trainer::new(&model, config(), io_a)
        .expect("start")
        .run(&mut Silent)
        .expect("run A");
    assert_eq!((out_a.steps, out_a.total_steps), (5, 8));
    let bytes_a = std::fs::read(a.join("adapter.gguf")).expect("adapter A");
    // Checkpoints at steps 2 and 4 (the last two are kept).
    assert_eq!(entries(&a.join("ckpt")), ["step-00000002", "step-00000004"]);
    assert_complete_checkpoints(&a.join("ckpt"));

    // Stopped by the observer after step 3: no adapter, metrics or curve; a checkpoint of
    // step 3 is written.
    let b = dir.path().join("b");
    std::fs::create_dir(&b).expect("mkdir");
    let mut io_b = io(&b, &data);
    io_b.val = Some(val.clone());
    io_b.checkpoint_dir = Some(b.join("ckpt"));
    let out_b = Trainer::new(&model, config(), io_b.clone())
        .expect("start")
        .run(&mut StopAfter(3))
        .expect("run B");
    assert_eq!(out_b.stop, StopReason::Cancelled);
    assert_eq!(out_b.steps, 3);
    assert!(out_b.adapter.is_none());
    assert_eq!(
        entries(&b),
        ["ckpt"],
        "only the checkpoint directory is written"
    );
    assert_eq!(entries(&b.join("ckpt")), ["step-00000002", "step-00000003"]);
    assert_complete_checkpoints(&b.join("ckpt"));

    // Resume from the checkpoint directory (its newest, step 3).
    io_b.resume = Some(b.join("ckpt"));
    let out_b2 = Trainer::new(&model, config(), io_b)
        .expect("start")
        .run(&mut Silent)
        .expect("run B resumed");
    assert_eq!(out_b2.resumed_from, Some(3));
    assert_eq!(out_b2.steps, 5);
    let bytes_b = std::fs::read(b.join("adapter.gguf")).expect("adapter B");
    assert!(
        bytes_a == bytes_b,
        "resumed adapter differs from the uninterrupted one"
    );
    let losses = |m: &[graft_train::trainer::StepMetrics]| -> Vec<(u64, u64, Option<u64>)> {
        m.iter()
            .map(|s| (s.step, s.train_loss.to_bits(), s.val_loss.map(f64::to_bits)))
            .collect()
    };
    assert_eq!(losses(&out_a.metrics), losses(&out_b2.metrics));

    // Resuming from the older checkpoint (step 2) also ends on the same bytes.
    let c = dir.path().join("c");
    std::fs::create_dir(&c).expect("mkdir");
    let mut io_c = io(&c, &data);
    io_c.val = Some(val.clone());
    io_c.checkpoint_dir = Some(c.join("ckpt"));
    io_c.resume = Some(a.join("ckpt").join("step-00000002"));
    let out_c = Trainer::new(&model, config(), io_c)
        .expect("start")
        .run(&mut Silent)
        .expect("run C");
    assert_eq!(out_c.resumed_from, Some(2));
    let bytes_c = std::fs::read(c.join("adapter.gguf")).expect("adapter C");
    assert!(bytes_a == bytes_c, "resume from step 2 differs");

    // A checkpoint refuses to resume a run with other hyperparameters or data.
    let mut io_d = io(&c, &data);
    io_d.val = Some(val);
    io_d.checkpoint_dir = Some(c.join("ckpt-d"));
    io_d.resume = Some(a.join("ckpt"));
    let other = TrainConfig {
        lr: 5e-4,
        ..config()
    };
    let err = Trainer::new(&model, other, io_d)
        .expect("start")
        .run(&mut Silent)
        .expect_err("other hyperparameters are refused");
    assert!(err.to_string().contains("other hyperparameters"), "{err}");
    assert_eq!(checkpoint::KEEP, 2);
}

#[test]
fn cancel_leaves_no_adapter() {
    struct StopFirstMicro;
    impl Observer for StopFirstMicro {
        fn on_micro_batch(&mut self, _done: usize, _of: usize) -> Control {
            Control::Stop
        }
    }
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", "train.jsonl", 40, 6);
    let run_dir = dir.path().join("run");
    std::fs::create_dir(&run_dir).expect("mkdir");
    let out = Trainer::new(&model, tiny_config(), io(&run_dir, &data))
        .expect("start")
        .run(&mut StopFirstMicro)
        .expect("cancel is not an error");
    assert_eq!(out.stop, StopReason::Cancelled);
    assert_eq!(out.steps, 0);
    assert!(out.adapter.is_none() && out.metrics_path.is_none());
    assert!(entries(&run_dir).is_empty(), "{:?}", entries(&run_dir));

    // Cancelled after one full step without a checkpoint directory: still nothing written.
    let out = Trainer::new(&model, tiny_config(), io(&run_dir, &data))
        .expect("start")
        .run(&mut StopAfter(1))
        .expect("cancel is not an error");
    assert_eq!((out.stop, out.steps), (StopReason::Cancelled, 1));
    assert!(entries(&run_dir).is_empty(), "{:?}", entries(&run_dir));
}
