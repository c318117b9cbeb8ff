//! The loop learns: on two examples seen over and over, the training loss falls well below
//! where it started within 20 optimizer steps.

mod trainer_common;

use graft_train::trainer::{Schedule, Silent, TrainConfig, Trainer};
use trainer_common::*;

#[test]
fn loss_falls_when_overfitting_a_small_set() {
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", "train.jsonl", 100, 2);
    let cfg = TrainConfig {
        epochs: 20,
        batch: 1,
        grad_accum: 1,
        seq: 256,
        lr: 2e-3,
        dropout: 0.0,
        warmup: 0.0,
        schedule: Schedule::Constant,
        ..tiny_config()
    };
    let trainer = Trainer::new(&model, cfg, io(dir.path(), &data)).expect("start");
    assert_eq!(
        trainer.train_data().rows.len(),
        1,
        "both examples pack into one row"
    );
    assert_eq!(trainer.plan().total_steps, 20);
    let out = trainer.run(&mut Silent).expect("run");
    let losses: Vec<f64> = out.metrics.iter().map(|m| m.train_loss).collect();
    assert_eq!(losses.len(), 20);
    let first = losses[0];
    let last = losses[19];
    let best_late = losses[15..].iter().cloned().fold(f64::MAX, f64::min);
    assert!(
        first > 0.5,
        "the base model does not know these answers: {first}"
    );
    assert!(
        last < 0.3 * first && best_late < 0.3 * first,
        "loss did not fall enough: {losses:?}"
    );
}
