//! The adapters a session applies, and the hook the forward pass calls after each matmul.

use super::loaded::LoadedAdapter;
use crate::backend::{ForwardOps, LoraInput, LoraMats, OpError};
use crate::model::Model;
pub use crate::spec::Proj;
use std::sync::Arc;

/// A tensor a LoRA can adapt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `token_embd.weight` (the embedding lookup).
    TokenEmbd,
    /// `output.weight` (untied output head).
    Output,
    /// A projection of block `l`.
    Layer(usize, Proj),
}

impl Target {
    /// A small number naming the target within a model (token embedding 0, output 1, then
    /// seven per layer): with an adapter's id, the key a device caches the pair under.
    pub fn slot(self) -> usize {
        match self {
            Target::TokenEmbd => 0,
            Target::Output => 1,
            Target::Layer(l, p) => 2 + 7 * l + p.index(),
        }
    }

    /// The target for a GGUF tensor name, if graft applies LoRAs to it.
    pub fn from_tensor_name(name: &str, n_layer: usize) -> Option<Target> {
        match name {
            "token_embd.weight" => return Some(Target::TokenEmbd),
            "output.weight" => return Some(Target::Output),
            _ => {}
        }
        let rest = name.strip_prefix("blk.")?;
        let (l, rest) = rest.split_once('.')?;
        let l: usize = l.parse().ok()?;
        if l >= n_layer {
            return None;
        }
        let p = Proj::from_gguf_stem(rest.strip_suffix(".weight")?)?;
        Some(Target::Layer(l, p))
    }

    /// `(rows, cols)` of the base matrix in `model` (`n_out × n_in`; `n_vocab × n_embd` for the
    /// embedding table).
    pub fn base_shape(self, model: &Model) -> (usize, usize) {
        let w = model.weights();
        let m = match self {
            Target::TokenEmbd => &w.token_embd,
            Target::Output => &w.output,
            Target::Layer(l, p) => w.layers[l].proj(p),
        };
        (m.rows, m.cols)
    }
}

/// The adapters a session applies, each with its user scale, and the `A x` scratch (sized once
/// for `n_batch × max rank` when the set changes, so evaluation never allocates).
#[derive(Default)]
pub struct ActiveAdapters {
    list: Vec<(Arc<LoadedAdapter>, f32)>,
    tmp: Vec<f32>,
}

impl ActiveAdapters {
    /// The active adapters and their user scales.
    pub fn list(&self) -> &[(Arc<LoadedAdapter>, f32)] {
        &self.list
    }

    /// Whether `list` is the active set already (same adapters by identity, same scales bit
    /// for bit, same order).
    pub fn same_as(&self, list: &[(Arc<LoadedAdapter>, f32)]) -> bool {
        self.list.len() == list.len()
            && self
                .list
                .iter()
                .zip(list)
                .all(|((a, s), (b, t))| Arc::ptr_eq(a, b) && s.to_bits() == t.to_bits())
    }

    /// Replaces the set and sizes the scratch for `n_batch` tokens.
    pub(crate) fn replace(&mut self, list: &[(Arc<LoadedAdapter>, f32)], n_batch: usize) {
        self.list = list.to_vec();
        let r = list.iter().map(|(a, _)| a.max_rank()).max().unwrap_or(0);
        self.tmp = vec![0.0; n_batch * r];
    }

    /// Adds every active adapter's update for `target` to `y` (`[n_tokens × n_out]`), in the
    /// order the adapters were given.
    pub fn apply<O: ForwardOps>(
        &mut self,
        b: &O,
        target: Target,
        x: LoraInput<'_, O::View<'_>>,
        n_tokens: usize,
        mut y: O::ViewMut<'_>,
    ) -> Result<(), OpError> {
        for (adapter, user_scale) in &self.list {
            if let Some(p) = adapter.pair(target) {
                let m = LoraMats {
                    cache_key: Some((adapter.uid(), target.slot())),
                    a: &p.a,
                    b: &p.b,
                    rank: p.rank,
                    n_in: p.n_in,
                    n_out: p.n_out,
                    scale: p.effective_scale(*user_scale),
                };
                b.lora(&m, x, n_tokens, &mut self.tmp, O::rw(&mut y))?;
            }
        }
        Ok(())
    }

    /// Whether no adapter is active.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
