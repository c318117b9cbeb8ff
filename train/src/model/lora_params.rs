//! LoRA parameters for every targeted projection of every layer: configuration (targets, rank,
//! alpha, dropout, rsLoRA), PEFT's initialisation, and export to a [`LoraAdapter`].

use super::error::TrainModelError;
use crate::optim::ParamTensor;
use graft_runtime::adapter::{HeadLayout, LoraAdapter, LoraPair, MetaValue};
use graft_runtime::config::ModelConfig;
use std::collections::BTreeMap;

/// A projection LoRA can adapt: the runtime's one projection table ([`graft_runtime::spec::Proj`]:
/// GGUF, PEFT and command-line names, dimensions).
pub use graft_runtime::spec::Proj as Target;

/// LoRA hyperparameters.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Adapted projections (default: all seven).
    pub targets: Vec<Target>,
    /// Rank `r` (≥ 1).
    pub rank: usize,
    /// `alpha`: the update is scaled by `alpha / r` (or `alpha / sqrt(r)` with rsLoRA).
    pub alpha: f32,
    /// Dropout probability on each LoRA input (PEFT's `lora_dropout`), in `[0, 1)`.
    pub dropout: f32,
    /// rsLoRA scaling.
    pub rslora: bool,
    /// Seed of the initialisation and of the dropout masks.
    pub seed: u64,
    /// Weight `λ` of the base anchor (`super::anchor`): `λ` times the mean, over the tokens
    /// the loss does not score, of `Σ ‖s·B A x‖²` over the adapted projections is added to
    /// the training loss, so the adapter stays near zero on prompts (less drift on unrelated
    /// text). 0 turns it off.
    pub anchor: f32,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            targets: Target::ALL.to_vec(),
            rank: 16,
            alpha: 32.0,
            dropout: 0.0,
            rslora: false,
            seed: 0,
            anchor: 0.0,
        }
    }
}

impl LoraConfig {
    /// The factor `s` in `y = W x + s · B A x`.
    pub fn scale(&self) -> f32 {
        if self.rslora {
            self.alpha / (self.rank as f32).sqrt()
        } else {
            self.alpha / self.rank as f32
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), TrainModelError> {
        let bad = |m: String| Err(TrainModelError::InvalidOption(m));
        if self.rank == 0 {
            return bad("LoRA rank must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("LoRA dropout {} is not in [0, 1)", self.dropout));
        }
        if !(self.anchor.is_finite() && self.anchor >= 0.0) {
            return bad(format!(
                "anchor weight {} is not a finite number ≥ 0",
                self.anchor
            ));
        }
        if !self.alpha.is_finite() {
            return bad(format!("LoRA alpha {} is not finite", self.alpha));
        }
        if self.targets.is_empty() {
            return bad("no LoRA target module".into());
        }
        Ok(())
    }
}

/// The trainable tensors: for each layer and target, `A` (`r × n_in`) and `B` (`n_out × r`),
/// row-major, as [`ParamTensor`]s (values + gradient) the optimizers update directly.
#[derive(Debug, Clone)]
pub struct LoraParams {
    config: LoraConfig,
    /// `A` then `B` for each (layer, target) in layer-major, [`Target::ALL`] order.
    tensors: Vec<ParamTensor>,
    /// Per layer, per target: the index of `A` in `tensors` (`B` follows it).
    index: Vec<[Option<usize>; 7]>,
    /// Per target: `(n_out, n_in)`.
    dims: [(usize, usize); 7],
    n_head: usize,
    n_head_kv: usize,
    arch: String,
}

/// splitmix64: a small, well-mixed deterministic generator for init and dropout.
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Uniform in `[0, 1)` from a 64-bit hash (24 random bits, exact in f32).
pub(crate) fn unit_f32(h: u64) -> f32 {
    (h >> 40) as f32 / (1u64 << 24) as f32
}

impl LoraParams {
    /// Initialises as PEFT does: `A ~ U(-1/sqrt(n_in), 1/sqrt(n_in))` (kaiming-uniform with
    /// `a = sqrt(5)`), `B = 0`, seeded by `config.seed`.
    pub fn new(model: &ModelConfig, config: LoraConfig) -> Result<LoraParams, TrainModelError> {
        config.validate()?;
        let mut dims = [(0, 0); 7];
        for t in Target::ALL {
            dims[t.index()] = t.dims(model);
        }
        let r = config.rank;
        let mut tensors = Vec::new();
        let mut index = Vec::with_capacity(model.n_layer);
        for l in 0..model.n_layer {
            let mut row = [None; 7];
            for t in Target::ALL {
                if !config.targets.contains(&t) {
                    continue;
                }
                let (n_out, n_in) = dims[t.index()];
                let bound = 1.0 / (n_in as f32).sqrt();
                let stream = splitmix64(config.seed ^ ((l as u64) << 8 | t.index() as u64));
                let a: Vec<f32> = (0..r * n_in)
                    .map(|i| {
                        let u = unit_f32(splitmix64(stream.wrapping_add(i as u64)));
                        (2.0 * u - 1.0) * bound
                    })
                    .collect();
                row[t.index()] = Some(tensors.len());
                let base = format!("blk.{l}.{}.weight", t.gguf_stem());
                tensors.push(ParamTensor::new(format!("{base}.lora_a"), a));
                tensors.push(ParamTensor::new(
                    format!("{base}.lora_b"),
                    vec![0.0; n_out * r],
                ));
            }
            index.push(row);
        }
        Ok(LoraParams {
            config,
            tensors,
            index,
            dims,
            n_head: model.n_head,
            n_head_kv: model.n_head_kv,
            arch: model.arch.clone(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The scale `s`.
    pub fn scale(&self) -> f32 {
        self.config.scale()
    }

    /// Number of layers.
    pub fn n_layer(&self) -> usize {
        self.index.len()
    }

    /// Every tensor (`A`, `B` per adapted projection), for the optimizer.
    pub fn tensors(&self) -> &[ParamTensor] {
        &self.tensors
    }

    /// Every tensor, mutable (values for the optimizer step, gradients to zero).
    pub fn tensors_mut(&mut self) -> &mut [ParamTensor] {
        &mut self.tensors
    }

    /// Number of trainable scalars.
    pub fn n_params(&self) -> usize {
        self.tensors.iter().map(|t| t.len()).sum()
    }

    /// Zeroes every gradient.
    pub fn zero_grad(&mut self) {
        self.tensors.iter_mut().for_each(ParamTensor::zero_grad);
    }

    /// Index of `A` of (`layer`, `target`) in [`Self::tensors`] (`B` is the next one), or
    /// `None` when that projection is not adapted.
    pub fn slot(&self, layer: usize, target: Target) -> Option<usize> {
        self.index.get(layer).and_then(|r| r[target.index()])
    }

    /// `(A, B)` of (`layer`, `target`).
    pub fn pair(&self, layer: usize, target: Target) -> Option<(&ParamTensor, &ParamTensor)> {
        self.slot(layer, target)
            .map(|i| (&self.tensors[i], &self.tensors[i + 1]))
    }

    /// `(A, B)` of (`layer`, `target`), mutable.
    pub fn pair_mut(
        &mut self,
        layer: usize,
        target: Target,
    ) -> Option<(&mut ParamTensor, &mut ParamTensor)> {
        let i = self.slot(layer, target)?;
        let (a, b) = self.tensors[i..i + 2].split_at_mut(1);
        Some((&mut a[0], &mut b[0]))
    }

    /// `(n_out, n_in)` of a target.
    pub fn dims(&self, target: Target) -> (usize, usize) {
        self.dims[target.index()]
    }

    /// Parameters holding `adapter` scaled by `user_scale` (its rank and targets, scale 1): for
    /// evaluating an adapter file with the training forward.
    pub fn from_adapter(
        model: &ModelConfig,
        adapter: &LoraAdapter,
        user_scale: f32,
    ) -> Result<LoraParams, TrainModelError> {
        let bad = |m: String| TrainModelError::InvalidOption(m);
        let mut targets = Vec::new();
        let mut rank = None;
        for (name, pair) in &adapter.tensors {
            let stem = name
                .strip_prefix("blk.")
                .and_then(|r| r.split_once('.'))
                .and_then(|(_, r)| r.strip_suffix(".weight"))
                .ok_or_else(|| bad(format!("`{name}` is not a layer projection")))?;
            let t = Target::parse(stem)
                .ok_or_else(|| bad(format!("`{name}`: no projection is called `{stem}`")))?;
            if !targets.contains(&t) {
                targets.push(t);
            }
            if *rank.get_or_insert(pair.rank) != pair.rank {
                return Err(bad(format!(
                    "`{name}` has rank {}, others {rank:?}",
                    pair.rank
                )));
            }
        }
        let Some(rank) = rank else {
            return Err(bad("the adapter has no tensors".into()));
        };
        targets.sort();
        let config = LoraConfig {
            targets,
            rank,
            alpha: rank as f32,
            ..LoraConfig::default()
        };
        let mut p = LoraParams::new(model, config)?;
        p.load_adapter(adapter)?;
        for t in p.tensors.iter_mut().filter(|t| t.name.ends_with(".lora_b")) {
            t.values.iter_mut().for_each(|v| *v *= user_scale);
        }
        Ok(p)
    }

    /// Takes the values of `adapter` (a starting adapter: `--init-adapter`): every adapted
    /// projection of these parameters must be in it with the same rank and shape, and it may
    /// hold nothing else. `B` is rescaled so that the update `scale · B·A` equals the
    /// adapter's own (its alpha may differ from this configuration's).
    pub fn load_adapter(&mut self, adapter: &LoraAdapter) -> Result<(), TrainModelError> {
        let bad = |m: String| Err(TrainModelError::InvalidOption(m));
        let r = self.config.rank;
        let scale = self.scale();
        let mut used = 0;
        for l in 0..self.n_layer() {
            for t in Target::ALL {
                let Some(i) = self.slot(l, t) else {
                    continue;
                };
                let name = format!("blk.{l}.{}.weight", t.gguf_stem());
                let Some(pair) = adapter.tensors.get(&name) else {
                    return bad(format!(
                        "the adapter has no `{name}` pair, which this run adapts (targets and                          layers must match the adapter's)"
                    ));
                };
                let (n_out, n_in) = self.dims(t);
                if pair.rank != r || pair.n_in != n_in || pair.n_out != n_out {
                    return bad(format!(
                        "`{name}`: rank {} and shape {}x{} in the adapter, the run has rank {r}                          and {n_out}x{n_in} (set --rank to the adapter's)",
                        pair.rank, pair.n_out, pair.n_in
                    ));
                }
                let k = pair.scale_factor / scale;
                if !k.is_finite() {
                    return bad(format!("`{name}`: scale factor {}", pair.scale_factor));
                }
                self.tensors[i].values.copy_from_slice(&pair.a);
                for (v, &b) in self.tensors[i + 1].values.iter_mut().zip(&pair.b) {
                    *v = b * k;
                }
                used += 1;
            }
        }
        if used != adapter.tensors.len() {
            let extra: Vec<&str> = adapter
                .tensors
                .keys()
                .filter(|n| {
                    !(0..self.n_layer()).any(|l| {
                        Target::ALL.iter().any(|t| {
                            self.slot(l, *t).is_some()
                                && **n == format!("blk.{l}.{}.weight", t.gguf_stem())
                        })
                    })
                })
                .map(String::as_str)
                .take(3)
                .collect();
            return bad(format!(
                "the adapter adapts {} tensors this run does not (e.g. {}): set --targets to                  the adapter's",
                adapter.tensors.len() - used,
                extra.join(", ")
            ));
        }
        Ok(())
    }

    /// The adapter in the runtime's in-memory form (save it with `save_gguf` / `save_peft`).
    pub fn to_adapter(&self) -> LoraAdapter {
        let r = self.config.rank;
        let mut tensors = BTreeMap::new();
        for l in 0..self.n_layer() {
            for t in Target::ALL {
                let Some((a, b)) = self.pair(l, t) else {
                    continue;
                };
                let (n_out, n_in) = self.dims(t);
                tensors.insert(
                    format!("blk.{l}.{}.weight", t.gguf_stem()),
                    LoraPair {
                        a: a.values.clone(),
                        b: b.values.clone(),
                        rank: r,
                        n_in,
                        n_out,
                        scale_factor: self.scale(),
                    },
                );
            }
        }
        let mut metadata = BTreeMap::new();
        metadata.insert(
            "peft.lora_dropout".to_string(),
            MetaValue::Json(serde_json::json!(self.config.dropout)),
        );
        if self.config.rslora {
            metadata.insert(
                "peft.use_rslora".to_string(),
                MetaValue::Json(serde_json::Value::Bool(true)),
            );
        }
        LoraAdapter {
            arch: Some(self.arch.clone()),
            alpha: Some(self.config.alpha),
            tensors,
            metadata,
            heads: Some(HeadLayout {
                n_head: self.n_head,
                n_head_kv: self.n_head_kv,
            }),
        }
    }
}
