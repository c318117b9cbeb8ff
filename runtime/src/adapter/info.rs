//! What an adapter file stores on disk (format, element types, size), for `graft adapter
//! inspect`; the adapter's content comes from [`LoraAdapter::load`].

use std::collections::BTreeMap;
use std::path::Path;

use graft_quant::gguf::GgufFile;

use super::adapter::{AdapterFormat, LoraAdapter};
use super::error::AdapterError;
use super::format_peft;

/// How an adapter is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredInfo {
    /// GGUF LoRA or PEFT.
    pub format: AdapterFormat,
    /// Bytes on disk (the GGUF file, or the PEFT weights file plus its config).
    pub bytes: u64,
    /// Number of tensors stored, by element type name (`f32`, `f16`, `bf16`, `q8_0`).
    pub dtypes: BTreeMap<String, usize>,
    /// Tensors in the file (two per pair, plus any skipped extras).
    pub n_file_tensors: usize,
}

fn file_len(path: &Path) -> Result<u64, AdapterError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| AdapterError::io(path, e))
}

/// Reads how the adapter at `path` is stored (without decoding its tensors).
pub fn stored_info(path: impl AsRef<Path>) -> Result<StoredInfo, AdapterError> {
    let path = path.as_ref();
    let format = LoraAdapter::sniff(path)?;
    let mut dtypes = BTreeMap::new();
    match format {
        AdapterFormat::Gguf => {
            let f = GgufFile::open(path).map_err(|e| AdapterError::Gguf {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            for t in f.tensor_infos() {
                *dtypes.entry(t.ty.name().to_string()).or_insert(0) += 1;
            }
            let n_file_tensors = f.tensor_infos().len();
            Ok(StoredInfo {
                format,
                bytes: file_len(path)?,
                dtypes,
                n_file_tensors,
            })
        }
        AdapterFormat::Peft => {
            let (config, weights) = format_peft::resolve(path)?;
            let bytes = std::fs::read(&weights).map_err(|e| AdapterError::io(&weights, e))?;
            let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
                AdapterError::Safetensors {
                    path: weights.clone(),
                    message: e.to_string(),
                }
            })?;
            let tensors = st.tensors();
            for (_, v) in &tensors {
                let name = format!("{:?}", v.dtype()).to_ascii_lowercase();
                *dtypes.entry(name).or_insert(0) += 1;
            }
            let config_len = if config.is_file() {
                file_len(&config)?
            } else {
                0
            };
            Ok(StoredInfo {
                format,
                bytes: bytes.len() as u64 + config_len,
                dtypes,
                n_file_tensors: tensors.len(),
            })
        }
    }
}
