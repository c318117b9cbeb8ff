//! LoRA pairs on fused tensors (Phi-3's `attn_qkv`, and its `ffn_up` holding gate|up): llama.cpp
//! and PEFT (`qkv_proj`, `gate_up_proj`) keep one pair over the fused tensor, graft's forward
//! and trainer one pair per projection.
//!
//! - Export ([`LoraAdapter::fuse_for`]): the per-projection pairs of a fused tensor become one
//!   pair of rank `Σ rᵢ`, `A = [A_q; A_k; A_v]` (row blocks), `B = diag(B_q, B_k, B_v)` (a
//!   projection without a pair gets zero rows), exactly the same update. The file formats
//!   recompute the scale from the fused rank (`alpha / Σ rᵢ`), so `B` is multiplied by
//!   `old scale / new scale`.
//! - Import ([`split_fused`]): one pair over a fused tensor becomes one pair per projection,
//!   each with the whole `A` and its row range of `B` (same rank and scale): exact.

use super::{LoraAdapter, LoraPair};
use crate::spec::{ModelSpec, Proj};

/// The fused tensor of block `layer` holding projection `p`, and the row range of `p` in it.
fn fused_rows(spec: &ModelSpec, layer: usize, p: Proj) -> Option<(String, usize, usize)> {
    let l = spec.layers.get(layer)?;
    let fused = match p {
        Proj::Q | Proj::K | Proj::V => l.fused_qkv,
        Proj::Gate | Proj::Up => l.fused_gate_up,
        _ => false,
    };
    if !fused {
        return None;
    }
    let (name, first) = l.proj_tensor(p, layer, &spec.config);
    Some((name, first, p.dims(&spec.config).0))
}

/// The projections a fused tensor of block `layer` holds (q, k, v or gate, up), in row order.
fn members(spec: &ModelSpec, layer: usize, tensor: &str) -> Vec<Proj> {
    let l = &spec.layers[layer];
    if l.fused_qkv && *tensor == format!("blk.{layer}.attn_qkv.weight") {
        vec![Proj::Q, Proj::K, Proj::V]
    } else if l.fused_gate_up && *tensor == Proj::Up.gguf_name(layer) {
        vec![Proj::Gate, Proj::Up]
    } else {
        Vec::new()
    }
}

/// The layer index of a `blk.N.*` tensor name.
fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split_once('.')?.0.parse().ok()
}

/// The per-projection pairs of one fused pair: `(layer, projection, pair)`.
pub type SplitPairs = Vec<(usize, Proj, LoraPair)>;

/// One pair over a fused tensor of `spec`'s model split into one pair per projection, or `None`
/// when `tensor` is not fused in this model. Errors when the pair's output size is not the
/// fused tensor's.
pub fn split_fused(
    spec: &ModelSpec,
    tensor: &str,
    pair: &LoraPair,
) -> Option<Result<SplitPairs, String>> {
    let layer = layer_of(tensor).filter(|&l| l < spec.layers.len())?;
    let ps = members(spec, layer, tensor);
    if ps.is_empty() {
        return None;
    }
    let total: usize = ps.iter().map(|p| p.dims(&spec.config).0).sum();
    if pair.n_out != total {
        return Some(Err(format!(
            "'{tensor}' is fused ({} rows): its LoRA B has {} rows",
            total, pair.n_out
        )));
    }
    let r = pair.rank;
    let mut out = Vec::with_capacity(ps.len());
    for p in ps {
        let (_, first, rows) = fused_rows(spec, layer, p)?;
        out.push((
            layer,
            p,
            LoraPair {
                a: pair.a.clone(),
                b: pair.b[first * r..(first + rows) * r].to_vec(),
                rank: r,
                n_in: pair.n_in,
                n_out: rows,
                scale_factor: pair.scale_factor,
            },
        ));
    }
    Some(Ok(out))
}

impl LoraAdapter {
    /// Rewrites per-projection pairs of the projections `spec`'s model fuses into one pair per
    /// fused tensor (see the module docs), named by the fused tensor, so the adapter loads in
    /// llama.cpp (and PEFT as `qkv_proj` / `gate_up_proj`). `rslora`: the file's scale is
    /// `alpha / sqrt(rank)` instead of `alpha / rank`.
    pub fn fuse_for(&mut self, spec: &ModelSpec, rslora: bool) {
        let alpha = self.alpha;
        for layer in 0..spec.layers.len() {
            let l = &spec.layers[layer];
            let groups: Vec<(String, Vec<Proj>)> = [
                (l.fused_qkv, format!("blk.{layer}.attn_qkv.weight")),
                (l.fused_gate_up, Proj::Up.gguf_name(layer)),
            ]
            .into_iter()
            .filter(|(f, _)| *f)
            .map(|(_, name)| {
                let ps = members(spec, layer, &name);
                (name, ps)
            })
            .collect();
            for (name, ps) in groups {
                let parts: Vec<(Proj, LoraPair)> = ps
                    .iter()
                    .filter_map(|&p| self.tensors.remove(&p.gguf_name(layer)).map(|x| (p, x)))
                    .collect();
                if parts.is_empty() {
                    continue;
                }
                let rank: usize = parts.iter().map(|(_, x)| x.rank).sum();
                let n_in = parts[0].1.n_in;
                let n_out: usize = ps.iter().map(|p| p.dims(&spec.config).0).sum();
                let scale = match alpha {
                    Some(a) if a != 0.0 && rslora => a / (rank as f32).sqrt(),
                    Some(a) if a != 0.0 => a / rank as f32,
                    _ => 1.0,
                };
                let mut a = Vec::with_capacity(rank * n_in);
                let mut b = vec![0.0f32; n_out * rank];
                let mut col = 0;
                for (p, x) in &parts {
                    let Some((_, first, rows)) = fused_rows(spec, layer, *p) else {
                        continue;
                    };
                    a.extend_from_slice(&x.a);
                    let k = x.scale_factor / scale;
                    for r in 0..rows {
                        for c in 0..x.rank {
                            b[(first + r) * rank + col + c] = x.b[r * x.rank + c] * k;
                        }
                    }
                    col += x.rank;
                }
                self.tensors.insert(
                    name,
                    LoraPair {
                        a,
                        b,
                        rank,
                        n_in,
                        n_out,
                        scale_factor: scale,
                    },
                );
            }
        }
    }
}
