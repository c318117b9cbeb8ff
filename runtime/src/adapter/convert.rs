//! Saving in either format, and converting files between GGUF and PEFT.

use std::path::Path;

use graft_quant::gguf::GgufFile;
use graft_quant::QuantType;

use super::adapter::{AdapterFormat, LoraAdapter};
use super::elements::FloatType;
use super::error::AdapterError;
use super::{format_gguf, format_peft};

impl LoraAdapter {
    /// Writes a llama.cpp GGUF LoRA file (atomically). `ty` is f32, f16, bf16 or q8_0 (q8_0
    /// tensors whose rows are not a multiple of 32 are written as f16, as gguf-py does).
    pub fn save_gguf(&self, path: impl AsRef<Path>, ty: QuantType) -> Result<(), AdapterError> {
        format_gguf::save_gguf(self, path.as_ref(), ty)
    }

    /// Writes a PEFT adapter directory (`adapter_config.json` + `adapter_model.safetensors`),
    /// replacing `dir` atomically. `ty` is f32, f16 or bf16.
    pub fn save_peft(&self, dir: impl AsRef<Path>, ty: QuantType) -> Result<(), AdapterError> {
        self.save_peft_with(dir, ty, &[])
    }

    /// As [`LoraAdapter::save_peft`], with extra files (name, bytes) in the directory, such
    /// as the model card `README.md`; all appear together or not at all.
    pub fn save_peft_with(
        &self,
        dir: impl AsRef<Path>,
        ty: QuantType,
        extra: &[(&str, &[u8])],
    ) -> Result<(), AdapterError> {
        let ft = match ty {
            QuantType::F32 => FloatType::F32,
            QuantType::F16 => FloatType::F16,
            QuantType::BF16 => FloatType::BF16,
            other => {
                return Err(AdapterError::Unrepresentable(format!(
                    "PEFT tensors can be f32, f16 or bf16, not {other:?}"
                )))
            }
        };
        format_peft::save_peft(self, dir.as_ref(), ft, extra)
    }

    /// Writes the adapter in `format`.
    pub fn save(
        &self,
        path: impl AsRef<Path>,
        format: AdapterFormat,
        ty: QuantType,
    ) -> Result<(), AdapterError> {
        match format {
            AdapterFormat::Gguf => self.save_gguf(path, ty),
            AdapterFormat::Peft => self.save_peft(path, ty),
        }
    }
}

/// Converts the adapter at `src` (either format) to `format` at `dst`, storing tensors as
/// `ty`. With `base`, the adapter is loaded with the base model's architecture and head counts
/// and validated against it before anything is written. Returns the adapter.
pub fn convert(
    src: impl AsRef<Path>,
    dst: impl AsRef<Path>,
    format: AdapterFormat,
    ty: QuantType,
    base: Option<&GgufFile>,
) -> Result<LoraAdapter, AdapterError> {
    let adapter = match base {
        Some(b) => {
            let a = LoraAdapter::load_with_base(src, b)?;
            a.validate_against(b)?;
            a
        }
        None => LoraAdapter::load(src)?,
    };
    adapter.save(dst, format, ty)?;
    Ok(adapter)
}
