//! Llama-3.x-shaped models with random weights, for throughput and memory runs on machines that
//! reach no model hub (`graft model random`): the shapes of Llama 3.2 1B and 3B and Llama 3.1
//! 8B (or a tiny one for tests), seeded N(0, 0.02) weights and norms at 1, Llama 3's RoPE
//! (base 500000, the `rope_freqs.weight` long-context factors llama.cpp's converter writes), and
//! the real tokenizer and chat template of another GGUF file, so prompts and training data
//! tokenize as they would for a real model. The vocabulary (and so the embedding rows) is that
//! tokenizer's.
//!
//! Each weight matrix gets the type `graft quantize --type T` would give it from f32 (the rules
//! of [`crate::target`]) and is quantized with [`crate::blocks`]. The file is written
//! atomically and streamed: rows are generated and quantized a chunk at a time (chunks in
//! parallel on the current rayon pool), so memory stays at a few chunks whatever the model's
//! size, and the values depend only on the seed, never on the thread count.

use std::io::Write;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::blocks::QuantError;
use crate::gguf::{GgufError, GgufFile, GgufWriter, Metadata, TensorInfo, Value};
use crate::target::{tensor_type, FileType, ModelLayout};
use crate::QuantType;

/// Standard deviation of the random weights (the usual initializer scale: activations stay in
/// range through every layer after RMSNorm).
pub const WEIGHT_STD: f32 = 0.02;

/// Elements generated and quantized per chunk (whole rows; at least one row).
const CHUNK_ELEMENTS: usize = 1 << 20;

/// Errors of [`RandomModel`].
#[derive(Debug, thiserror::Error)]
pub enum RandomModelError {
    /// The tokenizer source cannot be read or has no vocabulary.
    #[error("tokenizer source: {0}")]
    Tokenizer(GgufError),
    /// A parameter out of range (size, type).
    #[error("{0}")]
    InvalidParam(String),
    /// A block format refused the values (a bug in the shapes).
    #[error("cannot quantize tensor '{tensor}': {source}")]
    Quantize {
        /// The tensor.
        tensor: String,
        /// What the block format said.
        source: QuantError,
    },
    /// The GGUF file cannot be laid out or written.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// Writing tensor data failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The output file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Llama 3.1's RoPE scaling ("rope_type": "llama3" in the Hugging Face config), which llama.cpp's
/// converter turns into the `rope_freqs.weight` tensor of per-frequency divisors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Llama3RopeScaling {
    /// `factor` (32 for Llama 3.2 1B/3B, 8 for Llama 3.1 8B).
    pub factor: f32,
    /// `low_freq_factor` (1).
    pub low_freq_factor: f32,
    /// `high_freq_factor` (4).
    pub high_freq_factor: f32,
    /// `original_max_position_embeddings` (8192).
    pub original_context: u32,
}

impl Llama3RopeScaling {
    /// The `n_rot / 2` divisors of the rotary frequencies (`rope_freqs.weight`), as
    /// convert_hf_to_gguf.py computes them for `base` and `n_rot` rotated dimensions: 1 for
    /// wavelengths below `original_context / high_freq_factor`, `factor` above
    /// `original_context / low_freq_factor`, and a smooth blend between.
    pub fn rope_freqs(&self, base: f32, n_rot: usize) -> Vec<f32> {
        let old = self.original_context as f64;
        let low_wavelen = old / self.low_freq_factor as f64;
        let high_wavelen = old / self.high_freq_factor as f64;
        let factor = self.factor as f64;
        (0..n_rot / 2)
            .map(|i| {
                let freq = 1.0 / (base as f64).powf(2.0 * i as f64 / n_rot as f64);
                let wavelen = 2.0 * std::f64::consts::PI / freq;
                let divisor = if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    factor
                } else {
                    let smooth = (old / wavelen - self.low_freq_factor as f64)
                        / (self.high_freq_factor as f64 - self.low_freq_factor as f64);
                    1.0 / ((1.0 - smooth) / factor + smooth)
                };
                divisor as f32
            })
            .collect()
    }
}

/// The hyperparameters of a Llama-3.x-shaped model (the vocabulary comes from the tokenizer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LlamaShape {
    /// Transformer blocks.
    pub n_layer: usize,
    /// Model width.
    pub n_embd: usize,
    /// FFN width.
    pub n_ff: usize,
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// The output head is the token embedding (Llama 3.2 1B and 3B).
    pub tied: bool,
    /// Training context (`llama.context_length`).
    pub n_ctx: usize,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub eps: f32,
    /// Llama 3.1's long-context RoPE scaling (written as `rope_freqs.weight`).
    pub rope_scaling: Option<Llama3RopeScaling>,
}

/// The sizes `graft model random --size` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlamaSize {
    /// Two layers of width 256 (4 heads / 2 KV heads of 64, FFN 512), Llama 3.2's RoPE: a few
    /// MB beside the vocabulary, for tests.
    Tiny,
    /// Llama 3.2 1B: 16 layers, width 2048, FFN 8192, 32 heads / 8 KV heads, tied head.
    B1,
    /// Llama 3.2 3B: 28 layers, width 3072, FFN 8192, 24 heads / 8 KV heads, tied head.
    B3,
    /// Llama 3.1 8B: 32 layers, width 4096, FFN 14336, 32 heads / 8 KV heads, separate head.
    B8,
}

impl LlamaSize {
    /// Every size, smallest first.
    pub const ALL: [LlamaSize; 4] = [LlamaSize::Tiny, LlamaSize::B1, LlamaSize::B3, LlamaSize::B8];

    /// The name on the command line (`tiny`, `1b`, `3b`, `8b`).
    pub const fn name(self) -> &'static str {
        match self {
            LlamaSize::Tiny => "tiny",
            LlamaSize::B1 => "1b",
            LlamaSize::B3 => "3b",
            LlamaSize::B8 => "8b",
        }
    }

    /// The size named `name` (case-insensitive).
    pub fn from_name(name: &str) -> Option<LlamaSize> {
        let lower = name.to_ascii_lowercase();
        Self::ALL.into_iter().find(|s| s.name() == lower)
    }

    /// The Llama 3.x hyperparameters of this size.
    pub fn shape(self) -> LlamaShape {
        // Llama 3.2 (1B, 3B): factor 32; Llama 3.1 8B: factor 8; both from an 8192 context.
        let scaling = |factor| {
            Some(Llama3RopeScaling {
                factor,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_context: 8192,
            })
        };
        let (n_layer, n_embd, n_ff, n_head, tied, factor) = match self {
            LlamaSize::Tiny => (2, 256, 512, 4, true, 32.0),
            LlamaSize::B1 => (16, 2048, 8192, 32, true, 32.0),
            LlamaSize::B3 => (28, 3072, 8192, 24, true, 32.0),
            LlamaSize::B8 => (32, 4096, 14336, 32, false, 8.0),
        };
        LlamaShape {
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv: if self == LlamaSize::Tiny { 2 } else { 8 },
            tied,
            n_ctx: 131072,
            rope_theta: 500000.0,
            eps: 1e-5,
            rope_scaling: scaling(factor),
        }
    }
}

impl LlamaShape {
    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Every tensor in file order (llama.cpp's converter's order): name, ggml shape (row length
    /// first) and what its values are.
    fn tensors(&self, n_vocab: usize) -> Vec<(String, Vec<u64>, Fill)> {
        let (d, hd) = (self.n_embd as u64, self.head_dim() as u64);
        let (q, kv, ff) = (
            self.n_head as u64 * hd,
            self.n_head_kv as u64 * hd,
            self.n_ff as u64,
        );
        let mut out = Vec::new();
        if self.rope_scaling.is_some() {
            out.push(("rope_freqs.weight".into(), vec![hd / 2], Fill::RopeFreqs));
        }
        out.push((
            "token_embd.weight".into(),
            vec![d, n_vocab as u64],
            Fill::Normal,
        ));
        for l in 0..self.n_layer {
            let n = |s: &str| format!("blk.{l}.{s}.weight");
            out.push((n("attn_norm"), vec![d], Fill::Ones));
            out.push((n("attn_q"), vec![d, q], Fill::Normal));
            out.push((n("attn_k"), vec![d, kv], Fill::Normal));
            out.push((n("attn_v"), vec![d, kv], Fill::Normal));
            out.push((n("attn_output"), vec![q, d], Fill::Normal));
            out.push((n("ffn_norm"), vec![d], Fill::Ones));
            out.push((n("ffn_gate"), vec![d, ff], Fill::Normal));
            out.push((n("ffn_up"), vec![d, ff], Fill::Normal));
            out.push((n("ffn_down"), vec![ff, d], Fill::Normal));
        }
        out.push(("output_norm.weight".into(), vec![d], Fill::Ones));
        if !self.tied {
            out.push((
                "output.weight".into(),
                vec![d, n_vocab as u64],
                Fill::Normal,
            ));
        }
        out
    }
}

/// One tensor of the model: name, ggml shape, what it holds, the type it is written in.
type Planned = (String, Vec<u64>, Fill, QuantType);

/// What a tensor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    /// Seeded N(0, [`WEIGHT_STD`]).
    Normal,
    /// All ones (norm weights).
    Ones,
    /// Llama 3's RoPE frequency divisors.
    RopeFreqs,
}

/// The vocabulary size and every `tokenizer.*` key (vocabulary, merges, special ids,
/// pre-tokenizer, chat template) of a GGUF file: what a model needs to tokenize and chat as
/// that file's model does.
pub fn tokenizer_keys(file: &GgufFile) -> Result<(usize, Metadata), GgufError> {
    let md = file.metadata();
    let n_vocab = md.get_array("tokenizer.ggml.tokens")?.len();
    let mut keys = Metadata::new();
    for (k, v) in md.iter().filter(|(k, _)| k.starts_with("tokenizer.")) {
        keys.insert(k, v.clone());
    }
    Ok((n_vocab, keys))
}

/// A Llama-3.x-shaped model with random weights, ready to be planned or written.
#[derive(Clone, Debug)]
pub struct RandomModel {
    /// The hyperparameters.
    pub shape: LlamaShape,
    /// The target file type (as `graft quantize --type`).
    pub file_type: FileType,
    /// The seed of every random value.
    pub seed: u64,
    /// `general.name`.
    pub name: String,
    /// Vocabulary size (rows of the embedding and the output head).
    pub n_vocab: usize,
    /// The tokenizer keys copied into the file ([`tokenizer_keys`]).
    pub tokenizer: Metadata,
}

/// What [`RandomModel::write`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteReport {
    /// Bytes written.
    pub bytes: u64,
    /// Tensors written.
    pub tensors: usize,
    /// Parameters (elements of every tensor).
    pub params: u64,
}

impl RandomModel {
    /// A model of `size` in `file_type` with the tokenizer of the GGUF file at
    /// `tokenizer_from`.
    pub fn new(
        size: LlamaSize,
        file_type: FileType,
        tokenizer_from: &Path,
        seed: u64,
    ) -> Result<RandomModel, RandomModelError> {
        let file = GgufFile::open(tokenizer_from).map_err(RandomModelError::Tokenizer)?;
        let (n_vocab, tokenizer) = tokenizer_keys(&file).map_err(RandomModelError::Tokenizer)?;
        if n_vocab == 0 {
            return Err(RandomModelError::InvalidParam(format!(
                "{}: the tokenizer has no tokens",
                tokenizer_from.display()
            )));
        }
        Ok(RandomModel {
            shape: size.shape(),
            file_type,
            seed,
            name: format!("graft random llama-3 {} (seed {seed})", size.name()),
            n_vocab,
            tokenizer,
        })
    }

    /// The metadata written: Llama 3's hyperparameter keys as llama.cpp's converter writes
    /// them, `general.file_type`, a description saying the weights are random, then the
    /// tokenizer keys.
    pub fn metadata(&self) -> Metadata {
        let s = &self.shape;
        let mut md = Metadata::new();
        md.insert("general.architecture", "llama");
        md.insert("general.name", self.name.as_str());
        md.insert(
            "general.description",
            format!(
                "random weights (N(0, {WEIGHT_STD}), seed {}) with Llama 3.x shapes, written by \
                 graft model random for throughput and memory runs: it knows no language",
                self.seed
            ),
        );
        md.insert("llama.block_count", s.n_layer as u32);
        md.insert("llama.context_length", s.n_ctx as u32);
        md.insert("llama.embedding_length", s.n_embd as u32);
        md.insert("llama.feed_forward_length", s.n_ff as u32);
        md.insert("llama.attention.head_count", s.n_head as u32);
        md.insert("llama.attention.head_count_kv", s.n_head_kv as u32);
        md.insert("llama.rope.freq_base", s.rope_theta);
        md.insert("llama.attention.layer_norm_rms_epsilon", s.eps);
        md.insert("llama.attention.key_length", s.head_dim() as u32);
        md.insert("llama.attention.value_length", s.head_dim() as u32);
        md.insert("llama.rope.dimension_count", s.head_dim() as u32);
        md.insert("llama.vocab_size", self.n_vocab as u32);
        md.insert(
            "general.file_type",
            Value::U32(self.file_type.file_type_id()),
        );
        md.insert("general.quantization_version", Value::U32(2));
        for (k, v) in self.tokenizer.iter() {
            md.set(k, v.clone());
        }
        md
    }

    /// Every tensor with the type it is written in, in file order.
    fn typed_tensors(&self) -> Result<Vec<Planned>, RandomModelError> {
        let s = &self.shape;
        if s.n_head == 0
            || s.n_head_kv == 0
            || !s.n_embd.is_multiple_of(s.n_head)
            || !s.n_head.is_multiple_of(s.n_head_kv)
        {
            return Err(RandomModelError::InvalidParam(format!(
                "heads {} / KV heads {} do not divide width {}",
                s.n_head, s.n_head_kv, s.n_embd
            )));
        }
        let tensors = s.tensors(self.n_vocab);
        let mut layout = ModelLayout::from_tensors(
            tensors
                .iter()
                .map(|(name, shape, _)| (name.as_str(), shape.as_slice())),
        );
        layout.n_gqa = (s.n_head / s.n_head_kv) as u32;
        Ok(tensors
            .into_iter()
            .map(|(name, shape, fill)| {
                let ty = tensor_type(&name, &shape, QuantType::F32, self.file_type, &layout);
                (name, shape, fill, ty)
            })
            .collect())
    }

    /// The file's layout without its data: metadata and every tensor's name, type, shape and
    /// offset ([`GgufWriter::tensor_infos`], [`GgufWriter::file_size`]). Nothing is generated.
    pub fn plan(&self) -> Result<GgufWriter<'static>, RandomModelError> {
        let mut w = GgufWriter::new(self.metadata(), crate::gguf::DEFAULT_ALIGNMENT)?;
        for (name, shape, _, ty) in self.typed_tensors()? {
            w.declare_tensor(name, ty, &shape)?;
        }
        Ok(w)
    }

    /// Writes the model to `path` atomically, streaming: `progress(done, total)` is called with
    /// the bytes written so far after each tensor.
    pub fn write(
        &self,
        path: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<WriteReport, RandomModelError> {
        let plan = self.plan()?;
        let fills: Vec<Fill> = self
            .typed_tensors()?
            .into_iter()
            .map(|(_, _, f, _)| f)
            .collect();
        let total = plan.file_size();
        let mut index = 0usize;
        let mut done = 0u64;
        let bytes = plan.write_file_streamed(path, |t, w| {
            let fill = fills.get(index).copied().unwrap_or(Fill::Normal);
            self.write_tensor(index as u64, t, fill, w)
                .map_err(|e| match e {
                    RandomModelError::Io { source, .. } => RandomModelError::Io {
                        path: path.display().to_string(),
                        source,
                    },
                    e => e,
                })?;
            index += 1;
            done += t.n_bytes as u64;
            progress(done, total);
            Ok::<(), RandomModelError>(())
        })?;
        let params = plan
            .tensor_infos()
            .map(|t| t.shape.iter().product::<u64>())
            .sum();
        Ok(WriteReport {
            bytes,
            tensors: fills.len(),
            params,
        })
    }

    /// The bytes of tensor number `index` (`t`), generated and quantized a chunk of rows at a
    /// time, several chunks in parallel.
    fn write_tensor(
        &self,
        index: u64,
        t: &TensorInfo,
        fill: Fill,
        w: &mut dyn Write,
    ) -> Result<(), RandomModelError> {
        let io = |source| RandomModelError::Io {
            path: String::new(),
            source,
        };
        let row = t.shape.first().copied().unwrap_or(1) as usize;
        let n_rows: usize = t.shape.iter().skip(1).product::<u64>() as usize;
        let n_rows = n_rows.max(1);
        match fill {
            Fill::Normal => {}
            Fill::Ones | Fill::RopeFreqs => {
                let values = match (fill, &self.shape.rope_scaling) {
                    (Fill::RopeFreqs, Some(r)) => {
                        r.rope_freqs(self.shape.rope_theta, self.shape.head_dim())
                    }
                    _ => vec![1.0; row * n_rows],
                };
                let bytes = quantize(t, &values)?;
                return w.write_all(&bytes).map_err(io);
            }
        }
        let rows_per_chunk = (CHUNK_ELEMENTS / row.max(1)).max(1);
        let n_chunks = n_rows.div_ceil(rows_per_chunk);
        let group = 2 * rayon::current_num_threads().max(1);
        for first in (0..n_chunks).step_by(group) {
            let last = (first + group).min(n_chunks);
            let parts: Vec<Vec<u8>> = (first..last)
                .into_par_iter()
                .map(|c| {
                    let rows = rows_per_chunk.min(n_rows - c * rows_per_chunk);
                    let values = normal_values(chunk_seed(self.seed, index, c as u64), rows * row);
                    quantize(t, &values)
                })
                .collect::<Result<_, _>>()?;
            for p in parts {
                w.write_all(&p).map_err(io)?;
            }
        }
        Ok(())
    }
}

/// `values` in `t`'s block format.
fn quantize(t: &TensorInfo, values: &[f32]) -> Result<Vec<u8>, RandomModelError> {
    crate::blocks::quantize(t.ty, values).map_err(|source| RandomModelError::Quantize {
        tensor: t.name.clone(),
        source,
    })
}

/// The seed of chunk `chunk` of tensor `tensor` (splitmix64 of the three): every chunk has its
/// own stream, so the values do not depend on how chunks are spread over threads.
fn chunk_seed(seed: u64, tensor: u64, chunk: u64) -> u64 {
    let mut z = seed
        ^ tensor.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ chunk.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` samples of N(0, [`WEIGHT_STD`]) (Box-Muller) from `seed`.
fn normal_values(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // u1 in (0, 1]: ln(u1) is finite.
        let u1: f32 = 1.0 - rng.gen::<f32>();
        let u2: f32 = rng.gen::<f32>();
        let r = WEIGHT_STD * (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
        out.push(r * c);
        out.push(r * s);
    }
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(ft: FileType, n_vocab: usize) -> RandomModel {
        let mut tokenizer = Metadata::new();
        tokenizer.insert("tokenizer.ggml.model", "none");
        RandomModel {
            shape: LlamaSize::Tiny.shape(),
            file_type: ft,
            seed: 3,
            name: "t".into(),
            n_vocab,
            tokenizer,
        }
    }

    #[test]
    fn llama3_shapes_are_the_published_ones() {
        let b1 = LlamaSize::B1.shape();
        assert_eq!((b1.n_layer, b1.n_embd, b1.n_ff), (16, 2048, 8192));
        assert_eq!((b1.n_head, b1.n_head_kv, b1.head_dim()), (32, 8, 64));
        let b3 = LlamaSize::B3.shape();
        assert_eq!(
            (b3.n_layer, b3.n_embd, b3.n_head, b3.head_dim()),
            (28, 3072, 24, 128)
        );
        let b8 = LlamaSize::B8.shape();
        assert_eq!((b8.n_layer, b8.n_embd, b8.n_ff), (32, 4096, 14336));
        assert!(!b8.tied && b1.tied && b3.tied);
        assert_eq!(LlamaSize::from_name("8B"), Some(LlamaSize::B8));
        assert_eq!(LlamaSize::from_name("2b"), None);
    }

    #[test]
    fn rope_freqs_follow_the_llama3_formula() {
        let s = LlamaSize::B8.shape();
        let f = s
            .rope_scaling
            .map(|r| r.rope_freqs(s.rope_theta, 128))
            .unwrap_or_default();
        assert_eq!(f.len(), 64);
        // High frequencies unscaled, the lowest divided by the factor, monotone between.
        assert_eq!(f[0], 1.0);
        assert_eq!(f[63], 8.0);
        assert!(f.windows(2).all(|w| w[0] <= w[1]), "{f:?}");
    }

    #[test]
    fn the_1b_plan_has_llama_3_2_1b_tensors_in_q4_k() {
        let m = RandomModel {
            shape: LlamaSize::B1.shape(),
            ..tiny(FileType::Q4_K_S, 128256)
        };
        let plan = m.plan().expect("plan");
        let infos: Vec<&TensorInfo> = plan.tensor_infos().collect();
        assert_eq!(infos.len(), 1 + 1 + 16 * 9 + 1);
        let get = |n: &str| infos.iter().find(|t| t.name == n).expect(n);
        assert_eq!(get("token_embd.weight").shape, [2048, 128256]);
        // Tied: the embedding is the output head, Q6_K.
        assert_eq!(get("token_embd.weight").ty, QuantType::Q6_K);
        assert_eq!(get("blk.0.attn_k.weight").shape, [2048, 512]);
        assert_eq!(get("blk.15.ffn_down.weight").shape, [8192, 2048]);
        assert_eq!(get("blk.15.ffn_down.weight").ty, QuantType::Q4_K);
        assert_eq!(get("blk.0.ffn_down.weight").ty, QuantType::Q5_K);
        assert_eq!(get("rope_freqs.weight").shape, [32]);
        // 1.24 B parameters at about 4.9 bits each (Llama 3.2 1B Q4_K_S is ~0.78 GB).
        let size = plan.file_size();
        assert!((700_000_000..850_000_000).contains(&size), "{size}");
    }

    #[test]
    fn a_written_tiny_model_matches_its_plan_and_its_seed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let m = tiny(FileType::Q8_0, 300);
        let (a, b) = (dir.path().join("a.gguf"), dir.path().join("b.gguf"));
        let r = m.write(&a, |_, _| {}).expect("write");
        let plan = m.plan().expect("plan");
        assert_eq!(r.bytes, plan.file_size());
        let file = GgufFile::open(&a).expect("open");
        let planned: Vec<&TensorInfo> = plan.tensor_infos().collect();
        assert_eq!(file.tensor_infos().len(), planned.len());
        for (x, y) in file.tensor_infos().iter().zip(planned) {
            assert_eq!(x, y);
        }
        // Same seed, same bytes, whatever the thread count.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        pool.install(|| m.write(&b, |_, _| {})).expect("write");
        assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
        let q = file.tensor("blk.1.attn_q.weight").expect("q");
        let mut v = vec![0.0f32; 256 * 256];
        crate::blocks::dequantize(q.ty, q.bytes, &mut v).expect("dequantize");
        let std = (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        assert!((0.019..0.021).contains(&std), "{std}");
        let norm = file.tensor("blk.0.ffn_norm.weight").expect("norm");
        assert_eq!(norm.ty, QuantType::F32);
        assert!(norm.bytes.chunks(4).all(|b| b == 1.0f32.to_le_bytes()));
    }
}
