//! Fuzzes `--resume` from a corrupted training checkpoint (graft-train's `trainer::checkpoint`
//! and the trainer's resume path). The input is a flag byte and then four `u16`
//! length-prefixed parts (`graft_fuzz::split`): `state.json`, `lora.bin`, `optimizer.bin` and
//! `best.bin`, written as `step-00000001/` of a checkpoint directory. Flag bits: 0 rewrites the
//! state's `files` map with the real SHA-256 of the parts (so corruption gets past the integrity
//! check, as a crafted file would), 1 rewrites the run identity (config, data and model hashes)
//! to the tiny run's, 2 writes `best.bin`, 3 resumes from the checkpoint directory itself
//! rather than from the root holding it.
//!
//! `checkpoint::load` must return a checkpoint or an error; when it loads, the whole tiny
//! training run (`graft_fuzz::trainer`: tiny model, 3 steps, validation, early stopping) is
//! resumed from it with `Trainer::run`, which must end with an outcome or an error. Nothing may
//! panic or allocate without bound.
#![no_main]

use std::path::Path;

use graft_fuzz::trainer::{config, identity, io, warm_up, ByteTokenizer};
use graft_train::trainer::checkpoint;
use graft_train::trainer::{Silent, Trainer};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `state.json` with the fix-ups the flags ask for (unchanged when it is not a JSON object).
fn fix_state(state: &[u8], flags: u8, blobs: &[(&str, &[u8])]) -> Vec<u8> {
    if flags & 3 == 0 {
        return state.to_vec();
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(state) else {
        return state.to_vec();
    };
    if flags & 1 != 0 {
        let files = blobs
            .iter()
            .map(|(name, b)| (name.to_string(), Value::from(sha_hex(b))))
            .collect();
        obj.insert("files".into(), Value::Object(files));
    }
    if flags & 2 != 0 {
        let id = identity();
        obj.insert("config_hash".into(), Value::from(id.config_hash.clone()));
        obj.insert("data_sha256".into(), Value::from(id.data_sha256.clone()));
        obj.insert("val_sha256".into(), Value::from(id.val_sha256.clone()));
        obj.insert("model_sha256".into(), Value::from(id.model_sha256.clone()));
    }
    serde_json::to_vec(&Value::Object(obj)).expect("a JSON value serialises")
}

fn write(path: &Path, bytes: &[u8]) {
    if let Err(e) = std::fs::write(path, bytes) {
        panic!("cannot write {}: {e}", path.display());
    }
}

fuzz_target!(|data: &[u8]| {
    warm_up();
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let parts = graft_fuzz::split(rest, 4);
    let mut blobs = vec![("lora.bin", parts[1]), ("optimizer.bin", parts[2])];
    if flags & 4 != 0 {
        blobs.push(("best.bin", parts[3]));
    }
    let state = fix_state(parts[0], flags, &blobs);

    let run_dir = graft_fuzz::scratch_dir().join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    let root = run_dir.join("ckpt");
    let step_dir = root.join(checkpoint::dir_name(1));
    std::fs::create_dir_all(&step_dir).expect("create the checkpoint directory");
    write(&step_dir.join("state.json"), &state);
    for (name, bytes) in &blobs {
        write(&step_dir.join(name), bytes);
    }
    let resume = if flags & 8 != 0 { step_dir } else { root };

    if checkpoint::load(&resume, identity()).is_err() {
        return;
    }
    let trainer = Trainer::with_tokenizer(
        graft_fuzz::tiny_model(),
        config(),
        io(&run_dir, Some(resume), None),
        &ByteTokenizer,
    )
    .expect("the tiny run is valid");
    let _ = trainer.run(&mut Silent);
});
