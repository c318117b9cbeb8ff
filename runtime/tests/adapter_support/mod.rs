//! Shared helpers for the adapter tests: a deterministic RNG, a small fake llama base model
//! written with graft's GGUF writer, and random adapters shaped for a base.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use graft_quant::gguf::{GgufFile, GgufWriter, Metadata, Value};
use graft_quant::QuantType;
use graft_runtime::adapter::{HeadLayout, LoraAdapter, LoraPair};

/// xorshift64*: deterministic values for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f32()).collect()
    }
}

/// Geometry of the fake base model.
pub const N_LAYER: usize = 2;
pub const D: usize = 64;
pub const FFN: usize = 128;
pub const N_HEAD: usize = 4;
pub const N_HEAD_KV: usize = 2;
pub const VOCAB: usize = 96;
pub const KV_DIM: usize = D / N_HEAD * N_HEAD_KV;

/// The seven projections of every layer, GGUF short names.
pub const PROJS: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

/// (ne0, ne1) of each matrix of the fake base.
pub fn fake_base_shapes() -> BTreeMap<String, (u64, u64)> {
    let mut m = BTreeMap::new();
    m.insert("token_embd.weight".to_string(), (D as u64, VOCAB as u64));
    for l in 0..N_LAYER {
        let (d, f, kv) = (D as u64, FFN as u64, KV_DIM as u64);
        for (p, s) in [
            ("attn_q", (d, d)),
            ("attn_k", (d, kv)),
            ("attn_v", (d, kv)),
            ("attn_output", (d, d)),
            ("ffn_gate", (d, f)),
            ("ffn_up", (d, f)),
            ("ffn_down", (f, d)),
        ] {
            m.insert(format!("blk.{l}.{p}.weight"), s);
        }
    }
    m
}

/// Writes the fake llama base model (f32 zeros, plus norm vectors) to `dir/base.gguf`.
pub fn write_fake_base(dir: &Path) -> PathBuf {
    let mut meta = Metadata::new();
    meta.insert("general.architecture", Value::String("llama".into()));
    meta.insert("llama.block_count", Value::U32(N_LAYER as u32));
    meta.insert("llama.embedding_length", Value::U32(D as u32));
    meta.insert("llama.attention.head_count", Value::U32(N_HEAD as u32));
    meta.insert(
        "llama.attention.head_count_kv",
        Value::U32(N_HEAD_KV as u32),
    );
    let mut w = GgufWriter::new(meta, 32).unwrap();
    for (name, (ne0, ne1)) in fake_base_shapes() {
        let n = (ne0 * ne1) as usize;
        w.add_tensor(name, QuantType::F32, &[ne0, ne1], vec![0u8; n * 4])
            .unwrap();
    }
    for l in 0..N_LAYER {
        w.add_tensor(
            format!("blk.{l}.attn_norm.weight"),
            QuantType::F32,
            &[D as u64],
            vec![0u8; D * 4],
        )
        .unwrap();
    }
    let path = dir.join("base.gguf");
    w.write_file(&path).unwrap();
    path
}

/// A random adapter for the base tensors `shapes` (name -> (ne0, ne1)), rank `rank`.
pub fn random_adapter(
    shapes: &BTreeMap<String, (u64, u64)>,
    rank: usize,
    alpha: Option<f32>,
    seed: u64,
) -> LoraAdapter {
    let mut rng = Rng::new(seed);
    let mut tensors = BTreeMap::new();
    for (name, (ne0, ne1)) in shapes {
        let (n_in, n_out) = if name == "token_embd.weight" {
            (*ne1 as usize, *ne0 as usize)
        } else {
            (*ne0 as usize, *ne1 as usize)
        };
        let scale_factor = match alpha {
            Some(a) if a != 0.0 => a / rank as f32,
            _ => 1.0,
        };
        tensors.insert(
            name.clone(),
            LoraPair {
                a: rng.vec(rank * n_in),
                b: rng.vec(n_out * rank),
                rank,
                n_in,
                n_out,
                scale_factor,
            },
        );
    }
    LoraAdapter {
        arch: Some("llama".into()),
        alpha,
        tensors,
        metadata: BTreeMap::new(),
        heads: Some(HeadLayout {
            n_head: N_HEAD,
            n_head_kv: N_HEAD_KV,
        }),
    }
}

/// The fake base's projection shapes only (no token_embd).
pub fn projection_shapes() -> BTreeMap<String, (u64, u64)> {
    fake_base_shapes()
        .into_iter()
        .filter(|(k, _)| k.starts_with("blk."))
        .collect()
}

/// Opens a GGUF file.
pub fn open(path: &Path) -> GgufFile {
    GgufFile::open(path).unwrap()
}

/// The real test model, or a panic telling how to fetch it.
pub fn real_model_path() -> PathBuf {
    let dir = std::env::var_os("GRAFT_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            PathBuf::from(home).join(".cache/graft/models")
        });
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/fetch-model.sh (or set GRAFT_MODELS)",
        p.display()
    );
    p
}

/// HF -> GGUF row order for q/k (independent of the library): rows viewed as
/// [heads, 2, hd/2] with the last two axes swapped.
pub fn oracle_hf_to_gguf(rows: &[f32], row_len: usize, heads: usize) -> Vec<f32> {
    let n_rows = rows.len() / row_len;
    let hd = n_rows / heads;
    let mut out = vec![0.0; rows.len()];
    for r_hf in 0..n_rows {
        let h = r_hf / hd;
        let within = r_hf % hd;
        let (j, i) = (within / (hd / 2), within % (hd / 2));
        let r_gguf = h * hd + i * 2 + j;
        out[r_gguf * row_len..(r_gguf + 1) * row_len]
            .copy_from_slice(&rows[r_hf * row_len..(r_hf + 1) * row_len]);
    }
    out
}

/// The seven llama projections (GGUF module names) an adapter can target.
pub const ALL_PROJECTIONS: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

/// A rank-8 (alpha 16, seed 3) random adapter on all seven projections of the GGUF model at
/// `base_path`, saved as f32 GGUF LoRA in `dir` as `a<magnitude>.gguf`; returns its path.
pub fn write_all_projections_adapter(base_path: &Path, dir: &Path, magnitude: f32) -> String {
    let base = GgufFile::open(base_path).expect("base model opens");
    let a = random_adapter_for_base(&base, &ALL_PROJECTIONS, 8, Some(16.0), 3, magnitude);
    let path = dir.join(format!("a{magnitude}.gguf"));
    a.save_gguf(&path, QuantType::F32).expect("save adapter");
    path.to_str().expect("utf-8").to_string()
}

/// A seeded random adapter of rank `rank` for every matrix of `base` whose name is
/// `blk.<n>.<module>.weight` with `module` in `modules` (e.g. the real model's shapes), values
/// uniform in `[-magnitude, magnitude)`, architecture and head counts taken from `base`.
pub fn random_adapter_for_base(
    base: &GgufFile,
    modules: &[&str],
    rank: usize,
    alpha: Option<f32>,
    seed: u64,
    magnitude: f32,
) -> LoraAdapter {
    let shapes: BTreeMap<String, (u64, u64)> = base
        .tensors()
        .filter(|t| {
            t.shape.len() == 2
                && t.name.strip_prefix("blk.").is_some_and(|rest| {
                    let m = rest.split('.').nth(1).unwrap_or("");
                    modules.contains(&m)
                })
        })
        .map(|t| (t.name.to_string(), (t.shape[0], t.shape[1])))
        .collect();
    let mut a = random_adapter(&shapes, rank, alpha, seed);
    for p in a.tensors.values_mut() {
        p.a.iter_mut().for_each(|v| *v *= magnitude);
        p.b.iter_mut().for_each(|v| *v *= magnitude);
    }
    let md = base.metadata();
    a.arch = Some(md.get_str("general.architecture").unwrap().to_string());
    let arch = a.arch.clone().unwrap();
    let n_head = md.get_u32(&format!("{arch}.attention.head_count")).unwrap() as usize;
    let n_head_kv = md
        .get_u32(&format!("{arch}.attention.head_count_kv"))
        .map_or(n_head, |v| v as usize);
    a.heads = Some(HeadLayout { n_head, n_head_kv });
    a
}
