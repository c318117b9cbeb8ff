//! The plan of a run on the real model: auto batch sizing counts the step in examples so small
//! sets get enough optimizer steps, plans that cannot learn are warned about, and the first
//! step already has a learning rate.

mod trainer_common;

use graft_train::trainer::{Silent, TrainConfig, Trainer};
use trainer_common::*;

#[test]
fn auto_plan_gives_a_small_set_enough_steps() {
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", "train.jsonl", 0, 300);
    // The guides' settings, other flags default: batch and accumulation on auto.
    let cfg = TrainConfig {
        epochs: 2,
        threads: 1,
        ..TrainConfig::default()
    };
    assert_eq!((cfg.batch, cfg.grad_accum), (0, 0), "auto is the default");
    let trainer = Trainer::new(&model, cfg, io(dir.path(), &data)).expect("trainer starts");
    let plan = *trainer.plan();
    let sizing = trainer.sizing().clone();
    assert!(sizing.auto);
    // At lr 2e-4 two epochs of 300 examples reach the learning-rate budget only with one
    // example per step (600 steps).
    assert_eq!(sizing.examples_per_step, Some(1));
    // Every row holds at most the per-row limit, and the steps of an epoch cover the data.
    let limit = sizing.examples_per_row.expect("a per-row limit");
    assert!(trainer
        .train_data()
        .rows
        .iter()
        .all(|r| r.examples.len() <= limit));
    assert_eq!(
        (plan.steps_per_epoch, plan.total_steps),
        (300, 600),
        "{plan:?}"
    );
    assert!(trainer.warnings().is_empty(), "{:?}", trainer.warnings());
    assert!(trainer.schedule().lr_at(0) > 0.0);
    let why = trainer.plan_explanation();
    assert!(
        why.contains("auto batch") && why.contains("300 examples"),
        "{why}"
    );

    // At lr 1e-3 the budget is reached with bigger steps.
    let hot = TrainConfig {
        epochs: 2,
        lr: 1e-3,
        threads: 1,
        ..TrainConfig::default()
    };
    let trainer = Trainer::new(&model, hot, io(dir.path(), &data)).expect("trainer starts");
    assert_eq!(trainer.sizing().examples_per_step, Some(6));
    assert!(trainer
        .train_data()
        .rows
        .iter()
        .all(|r| r.examples.len() <= 6));
    assert_eq!(trainer.plan().total_steps, 100, "{:?}", trainer.plan());
    assert!(trainer.warnings().is_empty(), "{:?}", trainer.warnings());

    // The same data with the old fixed defaults (4 rows of 512 x 4 micro-batches) has a
    // handful of steps and is warned about.
    let fixed = TrainConfig {
        epochs: 2,
        batch: 4,
        grad_accum: 4,
        threads: 1,
        ..TrainConfig::default()
    };
    let trainer = Trainer::new(&model, fixed, io(dir.path(), &data)).expect("trainer starts");
    assert!(trainer.plan().total_steps < 10, "{:?}", trainer.plan());
    let w = trainer.warnings().join("\n");
    assert!(w.contains("optimizer steps") && w.contains("auto"), "{w}");
}

#[test]
fn a_plan_that_cannot_learn_is_warned_about() {
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", "train.jsonl", 0, 20);
    let cfg = TrainConfig {
        epochs: 1,
        threads: 1,
        ..TrainConfig::default()
    };
    let trainer = Trainer::new(&model, cfg, io(dir.path(), &data)).expect("trainer starts");
    assert_eq!(trainer.plan().total_steps, 20, "one example per step");
    let w = trainer.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("only 20 optimizer steps"), "{}", w[0]);
    assert!(w[0].contains("--epochs 3"), "{}", w[0]);

    // A learning rate outside LoRA's range is warned about too.
    let hot = TrainConfig {
        epochs: 3,
        lr: 5e-3,
        threads: 1,
        ..TrainConfig::default()
    };
    let trainer = Trainer::new(&model, hot, io(dir.path(), &data)).expect("trainer starts");
    let w = trainer.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("learning rate 5e-3"), "{}", w[0]);
}

#[test]
fn the_first_logged_step_learns() {
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", "train.jsonl", 0, 12);
    let cfg = TrainConfig {
        warmup: 0.5,
        max_steps: Some(2),
        ..tiny_config()
    };
    let out = Trainer::new(&model, cfg, io(dir.path(), &data))
        .expect("trainer starts")
        .run(&mut Silent)
        .expect("run finishes");
    let first = &out.metrics[0];
    assert_eq!(first.step, 1);
    assert!(first.lr > 0.0, "first step lr {}", first.lr);
    assert!(out.metrics[1].lr > first.lr, "warmup ramps up");
}
