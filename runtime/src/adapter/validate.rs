//! Checking an adapter against the base model it is meant for.

use graft_quant::gguf::GgufFile;

use super::adapter::LoraAdapter;
use super::error::AdapterError;
use super::names::is_embedding;
use super::rope_order::HeadLayout;

/// The base model's `general.architecture`.
pub fn base_arch(base: &GgufFile) -> Result<String, AdapterError> {
    let v = base
        .metadata()
        .get("general.architecture")
        .ok_or_else(|| AdapterError::Metadata {
            key: "general.architecture".into(),
            message: "missing in the base model".into(),
        })?;
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| AdapterError::Metadata {
            key: "general.architecture".into(),
            message: format!(
                "expected a string in the base model, found {}",
                v.type_name()
            ),
        })
}

/// The base model's head counts (`<arch>.attention.head_count`, `head_count_kv` defaulting to
/// `head_count`), or `None` if it has no head count.
pub fn head_layout(base: &GgufFile, arch: &str) -> Result<Option<HeadLayout>, AdapterError> {
    let meta = base.metadata();
    let get = |key: String| -> Result<Option<usize>, AdapterError> {
        match meta.get(&key) {
            None => Ok(None),
            Some(v) => v
                .as_u32()
                .map(|n| Some(n as usize))
                .ok_or_else(|| AdapterError::Metadata {
                    key,
                    message: format!("expected an integer, found {}", v.type_name()),
                }),
        }
    };
    let Some(n_head) = get(format!("{arch}.attention.head_count"))? else {
        return Ok(None);
    };
    let n_head_kv = get(format!("{arch}.attention.head_count_kv"))?.unwrap_or(n_head);
    Ok(Some(HeadLayout { n_head, n_head_kv }))
}

impl LoraAdapter {
    /// Checks that this adapter fits `base`: same architecture, every adapted tensor exists in
    /// the base, and each pair's `n_in`/`n_out` match the base tensor's shape (for
    /// `token_embd.weight`, `n_in = ne1 = n_vocab` and `n_out = ne0 = n_embd`; for every other
    /// tensor `n_in = ne0`, `n_out = ne1`). Errors name the tensor.
    pub fn validate_against(&self, base: &GgufFile) -> Result<(), AdapterError> {
        self.check()?;
        let base_arch = base_arch(base)?;
        if let Some(arch) = &self.arch {
            if *arch != base_arch {
                return Err(AdapterError::ArchMismatch {
                    adapter: arch.clone(),
                    base: base_arch,
                });
            }
        }
        for (name, p) in &self.tensors {
            let t = base
                .tensor(name)
                .ok_or_else(|| AdapterError::MissingBaseTensor { name: name.clone() })?;
            let shape = t.shape;
            let (expect_in, expect_out) = match shape {
                [ne0, ne1, rest @ ..] if rest.iter().all(|d| *d == 1) => {
                    if is_embedding(name) {
                        (*ne1 as usize, *ne0 as usize)
                    } else {
                        (*ne0 as usize, *ne1 as usize)
                    }
                }
                _ => {
                    return Err(AdapterError::BadShape {
                        name: name.clone(),
                        shape: shape.to_vec(),
                        message: "base tensor is not a matrix".into(),
                    })
                }
            };
            if p.n_in != expect_in || p.n_out != expect_out {
                return Err(AdapterError::ShapeMismatch {
                    name: name.clone(),
                    n_in: p.n_in,
                    n_out: p.n_out,
                    base_shape: shape.to_vec(),
                    expect_in,
                    expect_out,
                });
            }
        }
        Ok(())
    }
}
