//! Shared helpers of the trainer tests: the real test model and small data files cut from the
//! support-triage example.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use graft_runtime::{Model, ModelParams};
use graft_train::trainer::{Control, Observer, Progress, TrainConfig, TrainIo};

/// The real test model (fails with the fetch hint when it is missing).
pub fn model() -> Model {
    let path = match graft_quant::model_cache::test_model_path() {
        Ok(p) => p,
        Err(msg) => panic!("{msg}"),
    };
    Model::load(&path, ModelParams { threads: 1 }).expect("the test model loads")
}

/// The support-triage example file `name` (train/val/test.jsonl).
pub fn example_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/support-triage/data")
        .join(name)
}

/// `n` examples of `src` from line `skip` on, without their system turn (so they fit in 64
/// tokens), written to `dir/name`.
pub fn small_file(dir: &Path, src: &str, name: &str, skip: usize, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(example_file(src)).expect("example data is readable");
    let mut out = String::new();
    for line in text.lines().skip(skip).take(n) {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("example line is JSON");
        if let Some(msgs) = v.get_mut("messages").and_then(|m| m.as_array_mut()) {
            msgs.retain(|m| m["role"] != "system");
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    let p = dir.join(name);
    std::fs::write(&p, out).expect("write test data");
    p
}

/// A tiny configuration: rank 4 on all projections, seq 64, batch 2, grad-accum 2, AdamW
/// 8-bit, dropout on (so the dropout masks are exercised).
pub fn tiny_config() -> TrainConfig {
    TrainConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.1,
        lr: 1e-3,
        epochs: 1,
        batch: 2,
        grad_accum: 2,
        seq: 64,
        warmup: 1.0,
        threads: 1,
        ..TrainConfig::default()
    }
}

/// I/O for a run in `dir` with training data `data`.
pub fn io(dir: &Path, data: &Path) -> TrainIo {
    TrainIo {
        data: data.to_path_buf(),
        out: dir.join("adapter.gguf"),
        ..TrainIo::default()
    }
}

/// SHA-256 (hex) of a file, computed independently of the trainer.
pub fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).expect("read file to hash");
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Names of the entries of `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// An observer that stops the run after step `0` (a checkpoint of that step is written when
/// the run has a checkpoint directory).
pub struct StopAfter(pub u64);

impl Observer for StopAfter {
    fn on_step(&mut self, p: &Progress) -> Control {
        if p.step >= self.0 {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}
