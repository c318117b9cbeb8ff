//! Training checkpoints: a directory `step-NNNNNNNN` under the checkpoint directory with
//!
//! - `state.json`: step, data position, config (and its hash), dataset and model hashes,
//!   early-stopping state, the metrics so far, and the SHA-256 of each other file;
//! - `lora.bin`: the LoRA tensors (names and f32 values, little-endian);
//! - `optimizer.bin`: the optimizer state (its own bit-exact format);
//! - `best.bin` (with early stopping): the LoRA tensors of the best validation loss.
//!
//! A checkpoint is written into a temporary directory and renamed into place, so a
//! `step-*` directory is always complete. The data order is a pure function of (seed,
//! epoch) and dropout of (seed, micro-batch index), so this state is all a resumed run needs
//! to continue bit for bit. The last [`KEEP`] checkpoints are kept. Floats in `state.json`
//! round-trip exactly (serde_json's `float_roundtrip`): the best validation loss decides
//! early stopping and is recorded in the adapter.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::hex;
use super::{StepMetrics, TrainConfig, TrainError};
use crate::optim::ParamTensor;

/// Checkpoints kept in the checkpoint directory (older ones are removed).
pub const KEEP: usize = 2;
const FORMAT: u32 = 1;
const STATE: &str = "state.json";
const LORA: &str = "lora.bin";
const OPTIM: &str = "optimizer.bin";
const BEST: &str = "best.bin";
const TENSOR_MAGIC: &[u8; 8] = b"GRAFTLRA";

/// Tensor values by name, in order.
pub type NamedTensors = Vec<(String, Vec<f32>)>;

/// Everything about a run at an optimizer-step boundary except the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Optimizer steps done.
    pub step: u64,
    /// Epoch of the next micro-batch.
    pub epoch: usize,
    /// Index of the next micro-batch within that epoch.
    pub next_micro: usize,
    /// Evaluations without improvement since the best one.
    pub evals_since_best: u32,
    /// Best validation loss so far.
    pub best_val: Option<f64>,
    /// Step of the best validation loss.
    pub best_step: Option<u64>,
    /// Metrics of every step so far.
    pub metrics: Vec<StepMetrics>,
}

/// `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StateFile {
    format: u32,
    graft_version: String,
    config_hash: String,
    config: TrainConfig,
    data_sha256: String,
    val_sha256: Option<String>,
    model_sha256: String,
    run: RunState,
    files: std::collections::BTreeMap<String, String>,
}

/// What identifies a run: a checkpoint only resumes the run it was written by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunIdentity {
    /// [`TrainConfig::hash`].
    pub config_hash: String,
    /// SHA-256 of the training file.
    pub data_sha256: String,
    /// SHA-256 of the validation file.
    pub val_sha256: Option<String>,
    /// SHA-256 of the base model file.
    pub model_sha256: String,
}

/// A loaded checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Its directory.
    pub dir: PathBuf,
    /// The run state.
    pub run: RunState,
    /// LoRA tensor values, by name, in order.
    pub lora: NamedTensors,
    /// The optimizer state bytes.
    pub optimizer: Vec<u8>,
    /// The best adapter's tensor values, when kept.
    pub best: Option<NamedTensors>,
}

/// The directory name of the checkpoint after `step` steps.
pub fn dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

fn encode_tensors<'a>(tensors: impl Iterator<Item = (&'a str, &'a [f32])>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(TENSOR_MAGIC);
    let list: Vec<_> = tensors.collect();
    out.extend_from_slice(&(list.len() as u32).to_le_bytes());
    for (name, vals) in list {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(vals.len() as u64).to_le_bytes());
        for v in vals {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn decode_tensors(bytes: &[u8]) -> Result<NamedTensors, String> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| format!("truncated at byte {pos}"))?;
        let s = &bytes[pos..end];
        pos = end;
        Ok(s)
    };
    if take(8)? != TENSOR_MAGIC {
        return Err("not a graft tensor file".into());
    }
    let u32_at = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let n = u32_at(take(4)?) as usize;
    let mut out = Vec::with_capacity(n.min(4096));
    for _ in 0..n {
        let len = u32_at(take(4)?) as usize;
        let name = String::from_utf8(take(len)?.to_vec()).map_err(|_| "bad tensor name")?;
        let b = take(8)?;
        let count = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let count = usize::try_from(count).map_err(|_| "tensor too large")?;
        let raw = take(count.checked_mul(4).ok_or("tensor too large")?)?;
        let vals = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push((name, vals));
    }
    if pos != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - pos));
    }
    Ok(out)
}

/// Writes the checkpoint of `run` into `root/step-NNNNNNNN` atomically and removes all but the
/// newest [`KEEP`] checkpoints. Returns the new directory.
#[allow(clippy::too_many_arguments)]
pub fn save(
    root: &Path,
    id: &RunIdentity,
    config: &TrainConfig,
    run: &RunState,
    lora: &[ParamTensor],
    optimizer: &[u8],
    best: Option<&[(String, Vec<f32>)]>,
) -> Result<PathBuf, TrainError> {
    let lora_bytes = encode_tensors(lora.iter().map(|t| (t.name.as_str(), &t.values[..])));
    let best_bytes =
        best.map(|b| encode_tensors(b.iter().map(|(n, v)| (n.as_str(), v.as_slice()))));
    let mut files = std::collections::BTreeMap::new();
    files.insert(LORA.to_string(), hex(&Sha256::digest(&lora_bytes)));
    files.insert(OPTIM.to_string(), hex(&Sha256::digest(optimizer)));
    if let Some(b) = &best_bytes {
        files.insert(BEST.to_string(), hex(&Sha256::digest(b)));
    }
    let state = StateFile {
        format: FORMAT,
        graft_version: env!("CARGO_PKG_VERSION").to_string(),
        config_hash: id.config_hash.clone(),
        config: config.clone(),
        data_sha256: id.data_sha256.clone(),
        val_sha256: id.val_sha256.clone(),
        model_sha256: id.model_sha256.clone(),
        run: run.clone(),
        files,
    };
    let state_text = serde_json::to_string_pretty(&state).map_err(|e| TrainError::Checkpoint {
        path: root.to_path_buf(),
        message: format!("serialising state: {e}"),
    })?;
    let dir = root.join(dir_name(run.step));
    if dir.exists() {
        // A checkpoint of this step exists (a resumed run passing the same step again): it
        // holds the same state, so keep it rather than replace it non-atomically.
        return Ok(dir);
    }
    let mut list: Vec<(&str, &[u8])> = vec![
        (LORA, &lora_bytes),
        (OPTIM, optimizer),
        (STATE, state_text.as_bytes()),
    ];
    if let Some(b) = &best_bytes {
        list.push((BEST, b));
    }
    graft_quant::atomic_write::write_dir(&dir, &list).map_err(|e| TrainError::io(&dir, e))?;
    prune(root)?;
    Ok(dir)
}

/// Complete checkpoints under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<(u64, PathBuf)>, TrainError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(TrainError::io(root, e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| TrainError::io(root, e))?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.path().join(STATE).is_file() {
            out.push((step, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes what a killed writer left in `root` (names starting with `.graft-tmp-`: partial
/// checkpoints and checkpoints being pruned; never a complete checkpoint). Call only while no
/// other run writes to `root`.
pub fn clean_stale(root: &Path) -> Result<(), TrainError> {
    graft_quant::atomic_write::remove_stale(root).map_err(|e| TrainError::io(root, e))
}

fn prune(root: &Path) -> Result<(), TrainError> {
    let all = list(root)?;
    if all.len() > KEEP {
        for (_, dir) in &all[..all.len() - KEEP] {
            graft_quant::atomic_write::remove_dir(dir).map_err(|e| TrainError::io(dir, e))?;
        }
    }
    Ok(())
}

/// The checkpoint `path` names: a checkpoint directory itself, or a checkpoint root (its
/// newest checkpoint is taken).
pub fn resolve(path: &Path) -> Result<PathBuf, TrainError> {
    if path.join(STATE).is_file() {
        return Ok(path.to_path_buf());
    }
    if !path.is_dir() {
        return Err(TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: "no such checkpoint directory".into(),
        });
    }
    list(path)?
        .pop()
        .map(|(_, d)| d)
        .ok_or_else(|| TrainError::Checkpoint {
            path: path.to_path_buf(),
            message: format!(
                "neither a checkpoint (no {STATE}) nor a directory holding step-* checkpoints"
            ),
        })
}

/// The configuration of the run that wrote the checkpoint at `path` (a step directory, or a
/// checkpoint directory: its newest), without checking anything else — for settings a
/// resumed run takes over when the user left them on auto (`--precision auto`).
pub fn config(path: &Path) -> Result<TrainConfig, TrainError> {
    let dir = resolve(path)?;
    let p = dir.join(STATE);
    let bytes = std::fs::read(&p).map_err(|e| TrainError::io(&p, e))?;
    let state: StateFile = serde_json::from_slice(&bytes).map_err(|e| TrainError::Checkpoint {
        path: dir.clone(),
        message: format!("{STATE}: {e}"),
    })?;
    Ok(state.config)
}

/// Loads the checkpoint at `path` (see [`resolve`]) and checks that it belongs to the run
/// `id` and that its files are intact.
pub fn load(path: &Path, id: &RunIdentity) -> Result<Checkpoint, TrainError> {
    let dir = resolve(path)?;
    let err = |message: String| TrainError::Checkpoint {
        path: dir.clone(),
        message,
    };
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).map_err(|e| TrainError::io(p, e))
    };
    let state: StateFile =
        serde_json::from_slice(&read(STATE)?).map_err(|e| err(format!("{STATE}: {e}")))?;
    if state.format != FORMAT {
        return Err(err(format!("format {}, expected {FORMAT}", state.format)));
    }
    if state.config_hash != id.config_hash {
        return Err(err(format!(
            "written by a run with other hyperparameters ({:?}); resume with the same flags",
            state.config
        )));
    }
    if state.data_sha256 != id.data_sha256 || state.val_sha256 != id.val_sha256 {
        return Err(err(
            "the training or validation data changed since this checkpoint was written".into(),
        ));
    }
    if state.model_sha256 != id.model_sha256 {
        return Err(err(
            "written for another base model (its SHA-256 differs)".into()
        ));
    }
    let mut blobs = std::collections::BTreeMap::new();
    for (name, want) in &state.files {
        let bytes = read(name)?;
        if &hex(&Sha256::digest(&bytes)) != want {
            return Err(err(format!("{name} is corrupt (SHA-256 mismatch)")));
        }
        blobs.insert(name.clone(), bytes);
    }
    let tensors = |name: &str| -> Result<Option<NamedTensors>, TrainError> {
        blobs
            .get(name)
            .map(|b| decode_tensors(b).map_err(|m| err(format!("{name}: {m}"))))
            .transpose()
    };
    let lora = tensors(LORA)?.ok_or_else(|| err(format!("{LORA} missing")))?;
    let best = tensors(BEST)?;
    let optimizer = blobs
        .get(OPTIM)
        .cloned()
        .ok_or_else(|| err(format!("{OPTIM} missing")))?;
    Ok(Checkpoint {
        dir: dir.clone(),
        run: state.run,
        lora,
        optimizer,
        best,
    })
}

/// Copies checkpointed values into `params`; names and lengths must match exactly.
pub fn restore_tensors(
    dir: &Path,
    params: &mut [ParamTensor],
    saved: &[(String, Vec<f32>)],
) -> Result<(), TrainError> {
    if params.len() != saved.len() {
        return Err(TrainError::Checkpoint {
            path: dir.to_path_buf(),
            message: format!(
                "{} LoRA tensors saved, the run has {}",
                saved.len(),
                params.len()
            ),
        });
    }
    for (p, (name, vals)) in params.iter_mut().zip(saved) {
        if &p.name != name || p.values.len() != vals.len() {
            return Err(TrainError::Checkpoint {
                path: dir.to_path_buf(),
                message: format!(
                    "tensor `{name}` ({} values) does not match `{}` ({} values)",
                    vals.len(),
                    p.name,
                    p.values.len()
                ),
            });
        }
        p.values.copy_from_slice(vals);
    }
    Ok(())
}
