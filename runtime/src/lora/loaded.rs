//! An adapter checked against a model and laid out for the forward pass.

use super::active::Target;
use crate::adapter::{LoraAdapter, LoraPair};
use crate::model::Model;
use crate::model_error::ModelError;
use std::path::Path;
use std::sync::Arc;

/// A LoRA adapter ready to apply to one model: every pair validated against the base (shape,
/// architecture) and indexed by layer and projection. Immutable; share it with `Arc`.
#[derive(Debug)]
pub struct LoadedAdapter {
    name: String,
    layers: Vec<[Option<LoraPair>; 7]>,
    token_embd: Option<LoraPair>,
    output: Option<LoraPair>,
    n_pairs: usize,
    max_rank: usize,
    uid: u64,
}

/// Ids of loaded adapters: unique in the process, so a device never mistakes a new adapter for a
/// dropped one that lived at the same address.
static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn err(name: &str, msg: impl Into<String>) -> ModelError {
    ModelError::Adapter {
        adapter: name.to_string(),
        msg: msg.into(),
    }
}

impl LoadedAdapter {
    /// Reads an adapter file (GGUF LoRA or PEFT, see [`LoraAdapter::load_with_base`]) and
    /// checks it against `model`. All or nothing: on error nothing is kept.
    pub fn load(model: &Model, path: impl AsRef<Path>) -> Result<Arc<Self>, ModelError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let adapter = LoraAdapter::load_with_base(path, model.gguf())
            .map_err(|e| err(&name, e.to_string()))?;
        Self::new(model, adapter, name)
    }

    /// Checks an in-memory adapter against `model` (`validate_against`: architecture, every
    /// tensor present with matching shape) and lays it out. Errors name the tensor.
    pub fn new(
        model: &Model,
        adapter: LoraAdapter,
        name: impl Into<String>,
    ) -> Result<Arc<Self>, ModelError> {
        let name = name.into();
        adapter
            .validate_against(model.gguf())
            .map_err(|e| err(&name, e.to_string()))?;
        let n_layer = model.config().n_layer;
        let mut out = LoadedAdapter {
            name,
            layers: (0..n_layer).map(|_| Default::default()).collect(),
            token_embd: None,
            output: None,
            n_pairs: 0,
            max_rank: 0,
            uid: NEXT_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        for (tensor, pair) in adapter.tensors {
            // A pair over a fused tensor (Phi-3's attn_qkv, gate|up ffn_up): one per projection.
            if let Some(split) = crate::adapter::fused::split_fused(model.spec(), &tensor, &pair) {
                for (l, p, part) in split.map_err(|m| err(&out.name, m))? {
                    out.max_rank = out.max_rank.max(part.rank);
                    out.n_pairs += 1;
                    *out.slot_mut(Target::Layer(l, p)) = Some(part);
                }
                continue;
            }
            let target = Target::from_tensor_name(&tensor, n_layer).ok_or_else(|| {
                err(
                    &out.name,
                    format!("graft cannot apply a LoRA to tensor '{tensor}'"),
                )
            })?;
            let (rows, cols) = target.base_shape(model);
            let (want_in, want_out) = match target {
                Target::TokenEmbd => (rows, cols),
                _ => (cols, rows),
            };
            if (pair.n_in, pair.n_out) != (want_in, want_out) {
                return Err(err(
                    &out.name,
                    format!(
                        "tensor '{tensor}': pair n_in {} n_out {}, the model needs {want_in} × {want_out}",
                        pair.n_in, pair.n_out
                    ),
                ));
            }
            out.max_rank = out.max_rank.max(pair.rank);
            out.n_pairs += 1;
            *out.slot_mut(target) = Some(pair);
        }
        Ok(Arc::new(out))
    }

    fn slot_mut(&mut self, t: Target) -> &mut Option<LoraPair> {
        match t {
            Target::TokenEmbd => &mut self.token_embd,
            Target::Output => &mut self.output,
            Target::Layer(l, p) => &mut self.layers[l][p.index()],
        }
    }

    /// The pair adapting `t`, if any.
    pub fn pair(&self, t: Target) -> Option<&LoraPair> {
        match t {
            Target::TokenEmbd => self.token_embd.as_ref(),
            Target::Output => self.output.as_ref(),
            Target::Layer(l, p) => self.layers.get(l)?[p.index()].as_ref(),
        }
    }

    /// An id unique among the adapters loaded in this process.
    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// Where it came from (the file path, or the name given to [`LoadedAdapter::new`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of adapted tensors.
    pub fn n_pairs(&self) -> usize {
        self.n_pairs
    }

    /// The largest rank of any pair.
    pub fn max_rank(&self) -> usize {
        self.max_rank
    }

    /// Layers of the model it was laid out for.
    pub fn n_layer(&self) -> usize {
        self.layers.len()
    }

    /// Memory the adapter's A/B factors take (f32), in bytes.
    pub fn bytes(&self) -> usize {
        let pairs = self
            .layers
            .iter()
            .flatten()
            .chain([&self.token_embd, &self.output])
            .flatten();
        pairs
            .map(|p| (p.a.len() + p.b.len()) * std::mem::size_of::<f32>())
            .sum()
    }
}
