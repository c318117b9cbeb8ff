//! The tiny training run behind the `checkpoint` target and its seeds: the tiny model, a
//! handful of `text` examples tokenized byte by byte, rank 2 on every projection, 3 steps with
//! validation and early stopping (so checkpoints hold `best.bin` too).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use graft_train::data::{DataError, Example, LossMask, TokenizedExample, TokenizedPair};
use graft_train::trainer::checkpoint::RunIdentity;
use graft_train::trainer::{file_sha256, ExampleTokenizer, TrainConfig, TrainIo};

use crate::{scratch_dir, tiny_model, tiny_model_path};

/// Tokenizes an example's segments byte by byte (ids `byte % 61`, the tiny vocabulary),
/// scoring the trainable ones: no tokenizer file needed.
pub struct ByteTokenizer;

impl ExampleTokenizer for ByteTokenizer {
    fn tokenize_example(
        &self,
        example: &Example,
        mask: LossMask,
    ) -> Result<TokenizedExample, DataError> {
        let mut out = TokenizedExample {
            ids: Vec::new(),
            mask: Vec::new(),
        };
        for seg in example.segments(mask) {
            for b in seg.text.bytes() {
                out.ids.push(u32::from(b) % 61);
                out.mask.push(seg.trainable);
            }
        }
        Ok(out)
    }

    fn tokenize_pair(&self, example: &Example) -> Result<TokenizedPair, DataError> {
        let (chosen, rejected) = example
            .preference_segments(LossMask::CompletionOnly)
            .ok_or_else(|| {
                DataError::InvalidOption(format!(
                    "a `{}` example is not a preference pair (prompt/chosen/rejected)",
                    example.shape()
                ))
            })?;
        let side = |segs: Vec<graft_train::data::Segment>| {
            let mut out = TokenizedExample {
                ids: Vec::new(),
                mask: Vec::new(),
            };
            for seg in segs {
                for b in seg.text.bytes() {
                    out.ids.push(u32::from(b) % 61);
                    out.mask.push(seg.trainable);
                }
            }
            if let Some(m) = out.mask.first_mut() {
                *m = false;
            }
            out
        };
        Ok(TokenizedPair {
            chosen: side(chosen),
            rejected: side(rejected),
        })
    }
}

/// The run's hyperparameters (`save_every` and `max_steps` are not part of its identity).
pub fn config() -> TrainConfig {
    TrainConfig {
        rank: 2,
        alpha: 4.0,
        dropout: 0.0,
        lr: 1e-3,
        epochs: 1,
        batch: 1,
        grad_accum: 1,
        seq: 16,
        warmup: 0.0,
        threads: 1,
        eval_every: Some(1),
        early_stopping: Some(3),
        max_steps: Some(3),
        ..TrainConfig::default()
    }
}

/// The training and validation files, written once.
pub fn data_files() -> &'static (PathBuf, PathBuf) {
    static FILES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = scratch_dir();
        let train = dir.join("train.jsonl");
        let val = dir.join("val.jsonl");
        let write = |p: &Path, lines: &[&str]| {
            let text: String = lines
                .iter()
                .map(|t| format!("{}\n", serde_json::json!({ "text": t })))
                .collect();
            if let Err(e) = std::fs::write(p, text) {
                panic!("cannot write {}: {e}", p.display());
            }
        };
        write(
            &train,
            &[
                "the cat sat on the mat",
                "a dog ran far away",
                "one two three four",
                "red green blue",
            ],
        );
        write(&val, &["the dog sat", "three blue cats"]);
        (train, val)
    })
}

/// The identity checkpoints of this run carry (what `--resume` checks them against).
pub fn identity() -> &'static RunIdentity {
    static ID: OnceLock<RunIdentity> = OnceLock::new();
    ID.get_or_init(|| {
        let (train, val) = data_files();
        let sha = |p: &Path| match file_sha256(p) {
            Ok(s) => s,
            Err(e) => panic!("cannot hash {}: {e}", p.display()),
        };
        RunIdentity {
            config_hash: config().hash(),
            data_sha256: sha(train),
            val_sha256: Some(sha(val)),
            model_sha256: sha(tiny_model_path()),
        }
    })
}

/// I/O of a run writing its adapter into `dir`, resuming from `resume` when given.
pub fn io(dir: &Path, resume: Option<PathBuf>, checkpoint_dir: Option<PathBuf>) -> TrainIo {
    let (train, val) = data_files();
    TrainIo {
        data: train.clone(),
        val: Some(val.clone()),
        out: dir.join("adapter.gguf"),
        checkpoint_dir,
        resume,
        ..TrainIo::default()
    }
}

/// Makes sure the tiny model is loaded (and written) before the first input.
pub fn warm_up() {
    let _ = tiny_model();
    let _ = identity();
}
