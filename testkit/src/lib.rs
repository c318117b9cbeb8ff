//! graft-testkit: what the tests of several crates share: [`TinyModel`], a tiny random model of
//! any family graft runs, written with graft's own GGUF writer (the runtime, training, CLI and C
//! ABI tests all build their models with it, so a new family gets tiny models from
//! [`TinyModel::for_arch`], and every test sees the same layout); [`reference`], the f64 forward
//! every tiny model is checked against; [`oracle`], the llama.cpp oracle's path.
//!
//! Only a dev-dependency: nothing here ships in graft.

pub mod oracle;
pub mod reference;

use graft_quant::gguf::{GgufWriter, Metadata};
use graft_quant::QuantType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

/// One tensor of a tiny model: name, GGUF shape (ne0 first), the values the file holds
/// (row-major, after the quantize → dequantize round trip of its block format).
#[derive(Clone, Debug)]
pub struct Tensor {
    /// GGUF tensor name.
    pub name: String,
    /// Shape, `ne0` (row length) first.
    pub shape: Vec<u64>,
    /// Block format in the file.
    pub ty: QuantType,
    /// Values as the file holds them.
    pub values: Vec<f32>,
}

/// How to build a tiny random model. The defaults are a 2-layer llama with grouped-query
/// attention and partial RoPE (d 64, 4 heads / 2 KV heads, ffn 96, vocab 61).
#[derive(Clone, Debug)]
pub struct TinyModel {
    /// `general.architecture` (`llama`, `smollm3`, ...); also the metadata key prefix.
    pub arch: String,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// Model width.
    pub n_embd: usize,
    /// Blocks.
    pub n_layer: usize,
    /// FFN width.
    pub n_ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Rotated dimensions per head.
    pub n_rot: usize,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// RoPE base frequency.
    pub rope_base: f32,
    /// Training context written to the metadata.
    pub n_ctx: usize,
    /// No `output.weight` (the head is the token embedding).
    pub tied: bool,
    /// Block format of the projections (and of the untied head).
    pub proj_type: QuantType,
    /// Block format of the token embedding.
    pub embd_type: QuantType,
    /// Norm weights are `1 + norm_spread·U(-1, 1)` (0 keeps them at 1).
    pub norm_spread: f32,
    /// RNG seed of every value.
    pub seed: u64,
    /// Biases on the q, k and v projections (Qwen2).
    pub qkv_bias: bool,
    /// Per-head q/k RMSNorm weights (Qwen3).
    pub qk_norm: bool,
    /// A `rope_freqs.weight` tensor of frequency divisors (Llama 3).
    pub rope_freqs: bool,
    /// `rope.scaling.type` and `rope.scaling.factor` (`("linear", 2.0)`, `("yarn", 4.0)`); YaRN's
    /// original context is `n_ctx`.
    pub rope_scaling: Option<(String, f32)>,
    /// Head width when it is not `n_embd / n_head` (`attention.key_length`/`value_length`).
    pub head_dim_override: Option<usize>,
    /// Post-attention and post-FFN norm weights (Gemma 3).
    pub post_norms: bool,
    /// `attention.sliding_window` (Gemma 3: windowed layers, with `swa_pattern`).
    pub sliding_window: Option<usize>,
    /// `attention.sliding_window_pattern` (every this-many-th layer is global; Gemma 3's
    /// default is 6).
    pub swa_pattern: Option<usize>,
    /// `rope.freq_base_swa`: the RoPE base of windowed layers (default 10000).
    pub rope_base_swa: Option<f32>,
    /// `final_logit_softcapping` (Gemma 3).
    pub final_softcap: Option<f32>,
    /// Fused `attn_qkv` and gate|up `ffn_up` tensors instead of separate ones (Phi-3).
    pub fused: bool,
    /// LongRoPE (Phi-3): `rope_factors_short`/`rope_factors_long` tensors and
    /// `rope.scaling.type = longrope` with this original context.
    pub long_rope: Option<usize>,
    /// Write `tokenizer.ggml.model = none` and `<arch>.vocab_size`, so llama.cpp loads the file
    /// (with dummy tokens) and the oracle can evaluate ids on it.
    pub oracle_vocab: bool,
    /// Keys written after the model's own, replacing same-named ones: a real model's tokenizer
    /// and chat template from [`tokenizer_of`], so the tiny model tokenizes and chats as it.
    pub extra: Metadata,
}

impl Default for TinyModel {
    fn default() -> Self {
        TinyModel {
            arch: "llama".into(),
            n_vocab: 61,
            n_embd: 64,
            n_layer: 2,
            n_ff: 96,
            n_head: 4,
            n_head_kv: 2,
            n_rot: 12,
            eps: 1e-5,
            rope_base: 10000.0,
            n_ctx: 64,
            tied: false,
            proj_type: QuantType::F32,
            embd_type: QuantType::F32,
            norm_spread: 0.2,
            seed: 7,
            qkv_bias: false,
            qk_norm: false,
            rope_freqs: false,
            rope_scaling: None,
            head_dim_override: None,
            post_norms: false,
            sliding_window: None,
            swa_pattern: None,
            rope_base_swa: None,
            final_softcap: None,
            fused: false,
            long_rope: None,
            oracle_vocab: false,
            extra: Metadata::new(),
        }
    }
}

impl TinyModel {
    /// The default tiny model of architecture `arch` with that family's tensors (q/k/v biases
    /// for `qwen2`, q/k norms for `qwen3`; for `gemma3` q/k norms, post-norms and a sliding
    /// window of 4 in all but every third layer).
    pub fn for_arch(arch: &str) -> TinyModel {
        let gemma = arch == "gemma3";
        TinyModel {
            arch: arch.into(),
            qkv_bias: arch == "qwen2",
            qk_norm: arch == "qwen3" || gemma,
            post_norms: gemma,
            sliding_window: gemma.then_some(4),
            swa_pattern: gemma.then_some(3),
            fused: arch == "phi3",
            ..TinyModel::default()
        }
    }

    /// LongRoPE's (short, long) factors of this model.
    pub fn long_rope_factors(&self) -> (Vec<f32>, Vec<f32>) {
        let half = self.n_rot / 2;
        let ramp = |top: f32| -> Vec<f32> {
            (0..half)
                .map(|i| 1.0 + top * (i as f32 / (half.max(2) - 1) as f32))
                .collect()
        };
        (ramp(0.5), ramp(6.0))
    }

    /// Whether layer `l` uses the sliding window (Gemma 3's pattern: every `swa_pattern`-th
    /// layer is global).
    pub fn windowed(&self, l: usize) -> Option<usize> {
        let w = self.sliding_window?;
        let n = self.swa_pattern.unwrap_or(6);
        (n == 0 || l % n < n - 1).then_some(w)
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim_override.unwrap_or(self.n_embd / self.n_head)
    }

    /// The random tensors (values as the file will hold them), in file order.
    pub fn tensors(&self) -> Vec<Tensor> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let (d, hd) = (self.n_embd, self.head_dim());
        let mut out = Vec::new();
        let mut mat = |name: String, rows: usize, cols: usize, scale: f32, ty: QuantType| {
            let values: Vec<f32> = (0..rows * cols)
                .map(|_| rng.gen_range(-1.0f32..1.0) * scale)
                .collect();
            out.push(Tensor {
                name,
                shape: vec![cols as u64, rows as u64],
                ty,
                values,
            });
        };
        mat(
            "token_embd.weight".into(),
            self.n_vocab,
            d,
            1.0,
            self.embd_type,
        );
        let p = self.proj_type;
        for l in 0..self.n_layer {
            let n = |s: &str| format!("blk.{l}.{s}.weight");
            mat(n("attn_norm"), 1, d, 1.0, QuantType::F32);
            if self.fused {
                let qkv = (self.n_head + 2 * self.n_head_kv) * hd;
                mat(n("attn_qkv"), qkv, d, 0.3, p);
            } else {
                mat(n("attn_q"), self.n_head * hd, d, 0.3, p);
                mat(n("attn_k"), self.n_head_kv * hd, d, 0.3, p);
                mat(n("attn_v"), self.n_head_kv * hd, d, 0.3, p);
            }
            mat(n("attn_output"), d, self.n_head * hd, 0.2, p);
            mat(n("ffn_norm"), 1, d, 1.0, QuantType::F32);
            if self.fused {
                mat(n("ffn_up"), 2 * self.n_ff, d, 0.3, p);
            } else {
                mat(n("ffn_gate"), self.n_ff, d, 0.3, p);
                mat(n("ffn_up"), self.n_ff, d, 0.3, p);
            }
            mat(n("ffn_down"), d, self.n_ff, 0.2, p);
        }
        mat("output_norm.weight".into(), 1, d, 1.0, QuantType::F32);
        if !self.tied {
            mat("output.weight".into(), self.n_vocab, d, 0.5, p);
        }
        for l in 0..self.n_layer {
            let n = |s: &str| format!("blk.{l}.{s}");
            if self.qkv_bias {
                mat(n("attn_q.bias"), 1, self.n_head * hd, 0.5, QuantType::F32);
                mat(
                    n("attn_k.bias"),
                    1,
                    self.n_head_kv * hd,
                    0.5,
                    QuantType::F32,
                );
                mat(
                    n("attn_v.bias"),
                    1,
                    self.n_head_kv * hd,
                    0.5,
                    QuantType::F32,
                );
            }
            if self.qk_norm {
                mat(n("attn_q_norm.weight"), 1, hd, 1.0, QuantType::F32);
                mat(n("attn_k_norm.weight"), 1, hd, 1.0, QuantType::F32);
            }
            if self.post_norms {
                mat(n("post_attention_norm.weight"), 1, d, 1.0, QuantType::F32);
                mat(n("post_ffw_norm.weight"), 1, d, 1.0, QuantType::F32);
            }
        }
        if self.rope_freqs {
            // Llama 3's shape: 1 for high frequencies, growing to 8 for the lowest.
            let half = self.n_rot / 2;
            out.push(Tensor {
                name: "rope_freqs.weight".into(),
                shape: vec![half as u64],
                ty: QuantType::F32,
                values: (0..half)
                    .map(|i| 1.0 + 7.0 * (i as f32 / (half.max(2) - 1) as f32).powi(2))
                    .collect(),
            });
        }
        if self.long_rope.is_some() {
            let (short, long) = self.long_rope_factors();
            for (name, values) in [
                ("rope_factors_short.weight", short),
                ("rope_factors_long.weight", long),
            ] {
                out.push(Tensor {
                    name: name.into(),
                    shape: vec![values.len() as u64],
                    ty: QuantType::F32,
                    values,
                });
            }
        }
        for t in out.iter_mut().filter(|t| t.name.contains("norm")) {
            t.shape = vec![t.values.len() as u64];
            let s = self.norm_spread;
            t.values.iter_mut().for_each(|v| *v = 1.0 + s * *v);
        }
        for t in out.iter_mut().filter(|t| t.name.ends_with(".bias")) {
            t.shape = vec![t.values.len() as u64];
        }
        for t in out.iter_mut().filter(|t| t.ty != QuantType::F32) {
            round_trip(t);
        }
        out
    }

    /// The metadata of the model (hyperparameters under `<arch>.`).
    pub fn metadata(&self) -> Metadata {
        let arch = self.arch.as_str();
        let mut md = Metadata::new();
        md.insert("general.architecture", arch);
        md.insert(format!("{arch}.embedding_length"), self.n_embd as u32);
        md.insert(format!("{arch}.block_count"), self.n_layer as u32);
        md.insert(format!("{arch}.feed_forward_length"), self.n_ff as u32);
        md.insert(format!("{arch}.context_length"), self.n_ctx as u32);
        md.insert(format!("{arch}.attention.head_count"), self.n_head as u32);
        md.insert(
            format!("{arch}.attention.head_count_kv"),
            self.n_head_kv as u32,
        );
        md.insert(format!("{arch}.attention.layer_norm_rms_epsilon"), self.eps);
        md.insert(format!("{arch}.rope.freq_base"), self.rope_base);
        md.insert(format!("{arch}.rope.dimension_count"), self.n_rot as u32);
        if let Some(hd) = self.head_dim_override {
            md.insert(format!("{arch}.attention.key_length"), hd as u32);
            md.insert(format!("{arch}.attention.value_length"), hd as u32);
        }
        if let Some((ty, factor)) = &self.rope_scaling {
            md.insert(format!("{arch}.rope.scaling.type"), ty.as_str());
            md.insert(format!("{arch}.rope.scaling.factor"), *factor);
            md.insert(
                format!("{arch}.rope.scaling.original_context_length"),
                self.n_ctx as u32,
            );
        }
        if let Some(w) = self.sliding_window {
            md.insert(format!("{arch}.attention.sliding_window"), w as u32);
        }
        if let Some(p) = self.swa_pattern {
            md.insert(format!("{arch}.attention.sliding_window_pattern"), p as u32);
        }
        if let Some(orig) = self.long_rope {
            md.insert(format!("{arch}.rope.scaling.type"), "longrope");
            md.insert(
                format!("{arch}.rope.scaling.original_context_length"),
                orig as u32,
            );
        }
        if let Some(c) = self.final_softcap {
            md.insert(format!("{arch}.final_logit_softcapping"), c);
        }
        if let Some(b) = self.rope_base_swa {
            md.insert(format!("{arch}.rope.freq_base_swa"), b);
        }
        if self.oracle_vocab {
            md.insert("tokenizer.ggml.model", "none");
            md.insert(format!("{arch}.vocab_size"), self.n_vocab as u32);
        }
        for (k, v) in self.extra.iter() {
            md.set(k, v.clone());
        }
        md
    }

    /// Writes `tensors` (from [`TinyModel::tensors`], possibly edited) with this model's
    /// metadata plus `extra` keys to `path`.
    ///
    /// # Panics
    /// If the tensors do not fit their formats or the file cannot be written (a test bug).
    pub fn write_with(&self, path: &Path, tensors: &[Tensor], extra: &[(&str, &str)]) {
        let mut md = self.metadata();
        for (k, v) in extra {
            md.insert(*k, *v);
        }
        let mut w = GgufWriter::new(md, 32).expect("GGUF writer");
        for t in tensors {
            let bytes = graft_quant::blocks::quantize(t.ty, &t.values).expect("quantize");
            w.add_tensor(t.name.clone(), t.ty, &t.shape, bytes)
                .expect("add tensor");
        }
        w.write_file(path).expect("write tiny model");
    }

    /// Writes the model to `path` and returns its tensors.
    pub fn write(&self, path: &Path) -> Vec<Tensor> {
        let t = self.tensors();
        self.write_with(path, &t, &[]);
        t
    }
}

/// The tokenizer of the real GGUF model at `path`: its vocabulary size and every `tokenizer.*`
/// key (vocabulary, merges, special ids, pre-tokenizer, chat template), for
/// [`TinyModel::extra`] with `n_vocab` set to that size.
pub fn tokenizer_of(path: &Path) -> Result<(usize, Metadata), graft_quant::GgufError> {
    graft_quant::random_model::tokenizer_keys(&graft_quant::GgufFile::open(path)?)
}

/// Replaces `t.values` by what its block format stores.
fn round_trip(t: &mut Tensor) {
    let bytes = graft_quant::blocks::quantize(t.ty, &t.values).expect("quantize");
    graft_quant::blocks::dequantize(t.ty, &bytes, &mut t.values).expect("dequantize");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_are_deterministic_and_shaped() {
        let m = TinyModel {
            proj_type: QuantType::Q8_0,
            tied: true,
            ..TinyModel::default()
        };
        let (a, b) = (m.tensors(), m.tensors());
        assert_eq!(a.len(), 1 + 9 * m.n_layer + 1);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((&x.name, &x.shape, x.ty), (&y.name, &y.shape, y.ty));
            assert_eq!(x.values, y.values);
            let n: u64 = x.shape.iter().product();
            assert_eq!(n as usize, x.values.len(), "{}", x.name);
        }
        let norm = a
            .iter()
            .find(|t| t.name == "blk.0.attn_norm.weight")
            .expect("norm");
        assert!(norm.values.iter().all(|v| (0.8..=1.2).contains(v)));
    }
}
