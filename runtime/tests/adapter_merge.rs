//! Merging adapters into a base model, checked against a direct f64 computation of
//! `W + Σ s_i · B_i A_i` on dequantized weights, plus the real test model.
#![allow(clippy::unwrap_used)]

mod adapter_support;

use std::collections::BTreeMap;
use std::path::Path;

use adapter_support::*;
use graft_quant::blocks;
use graft_quant::gguf::{GgufFile, GgufWriter, Metadata, Value};
use graft_quant::QuantType;
use graft_runtime::adapter::merge::KEY_MERGED_ADAPTERS;
use graft_runtime::adapter::{merge_to_file, AdapterError, LoraAdapter, MergeItem};

const EMB: &str = "token_embd.weight";

/// Shapes (ne0, ne1) of the synthetic base: the embedding, three adapted projections and one
/// unadapted matrix.
fn synth_shapes() -> BTreeMap<String, (u64, u64)> {
    let mut m = BTreeMap::new();
    m.insert(EMB.to_string(), (D as u64, VOCAB as u64));
    m.insert("blk.0.attn_q.weight".into(), (D as u64, D as u64));
    m.insert("blk.0.attn_k.weight".into(), (D as u64, KV_DIM as u64));
    m.insert("blk.0.ffn_down.weight".into(), (FFN as u64, D as u64));
    m.insert("blk.0.attn_v.weight".into(), (D as u64, KV_DIM as u64));
    m
}

/// Writes a llama-shaped base with random weights stored as `ty`, plus a norm vector.
fn write_base(dir: &Path, ty: QuantType) -> std::path::PathBuf {
    let mut meta = Metadata::new();
    meta.insert("general.architecture", Value::String("llama".into()));
    meta.insert("general.name", Value::String("synth".into()));
    meta.insert("llama.attention.head_count", Value::U32(N_HEAD as u32));
    meta.insert(
        "llama.attention.head_count_kv",
        Value::U32(N_HEAD_KV as u32),
    );
    let mut w = GgufWriter::new(meta, 32).unwrap();
    let mut rng = Rng::new(7);
    for (name, (ne0, ne1)) in synth_shapes() {
        let vals = rng.vec((ne0 * ne1) as usize);
        let bytes = blocks::quantize(ty, &vals).unwrap();
        w.add_tensor(name, ty, &[ne0, ne1], bytes).unwrap();
    }
    let norm: Vec<u8> = (0..D).flat_map(|i| (i as f32).to_le_bytes()).collect();
    w.add_tensor("blk.0.attn_norm.weight", QuantType::F32, &[D as u64], norm)
        .unwrap();
    let path = dir.join(format!("base-{}.gguf", ty.name()));
    w.write_file(&path).unwrap();
    path
}

/// Two adapters: rank 4 with alpha 8 on every adapted tensor (including the embedding), and
/// rank 3 without alpha on q and ffn_down.
fn two_adapters() -> (LoraAdapter, LoraAdapter) {
    let mut shapes = synth_shapes();
    shapes.remove("blk.0.attn_v.weight");
    let mut a1 = random_adapter(&shapes, 4, Some(8.0), 11);
    let mut small = BTreeMap::new();
    for k in ["blk.0.attn_q.weight", "blk.0.ffn_down.weight"] {
        small.insert(k.to_string(), shapes[k]);
    }
    let mut a2 = random_adapter(&small, 3, None, 12);
    for a in [&mut a1, &mut a2] {
        for p in a.tensors.values_mut() {
            p.a.iter_mut().for_each(|v| *v *= 0.3);
            p.b.iter_mut().for_each(|v| *v *= 0.3);
        }
    }
    (a1, a2)
}

fn dequant(t: &graft_quant::gguf::TensorView<'_>) -> Vec<f32> {
    let mut out = vec![0f32; t.n_elements() as usize];
    blocks::dequantize(t.ty, t.bytes, &mut out).unwrap();
    out
}

/// `W + Σ s_i B_i A_i` in f64, in GGUF row order (rows of ne0).
fn oracle(
    base: &[f32],
    name: &str,
    ne0: usize,
    ne1: usize,
    terms: &[(&LoraAdapter, f32)],
) -> Vec<f64> {
    let mut out: Vec<f64> = base.iter().map(|v| *v as f64).collect();
    for (ad, user) in terms {
        let Some(p) = ad.tensors.get(name) else {
            continue;
        };
        let s = (*user * p.scale_factor) as f64;
        // delta[o][i] = Σ_k B[o,k] A[k,i] over the logical (n_out × n_in) matrix.
        for o in 0..p.n_out {
            for i in 0..p.n_in {
                let d: f64 = (0..p.rank)
                    .map(|k| p.b[o * p.rank + k] as f64 * p.a[k * p.n_in + i] as f64)
                    .sum();
                // The embedding is stored with rows = tokens (n_in), columns = n_embd (n_out).
                let idx = if name == EMB {
                    i * ne0 + o
                } else {
                    o * ne0 + i
                };
                out[idx] += s * d;
            }
        }
        assert_eq!(ne0 * ne1, p.n_in * p.n_out);
    }
    out
}

fn check_merge_against_oracle(base_ty: QuantType, out_ty: Option<QuantType>) {
    let dir = tempfile::tempdir().unwrap();
    let base_path = write_base(dir.path(), base_ty);
    let base = open(&base_path);
    let (a1, a2) = two_adapters();
    let items = [
        MergeItem {
            adapter: &a1,
            scale: 0.7,
            label: "one.gguf",
        },
        MergeItem {
            adapter: &a2,
            scale: -1.3,
            label: "two.gguf",
        },
    ];
    let out = dir.path().join("merged.gguf");
    let summary = merge_to_file(&base, &items, out_ty, &out).unwrap();
    assert_eq!(summary.n_adapted, 4);
    assert_eq!(summary.n_rewritten, 4);
    let merged = open(&out);
    assert_eq!(merged.tensor_infos().len(), base.tensor_infos().len());
    let mut worst = 0f64;
    for t in base.tensors() {
        let m = merged.tensor(t.name).unwrap();
        assert_eq!(m.shape, t.shape);
        let adapted = a1.tensors.contains_key(t.name);
        if !adapted {
            assert_eq!(m.ty, t.ty, "{}", t.name);
            assert_eq!(
                m.bytes, t.bytes,
                "unadapted {} must be copied as is",
                t.name
            );
            continue;
        }
        assert_eq!(m.ty, out_ty.unwrap_or(t.ty), "{}", t.name);
        let want = oracle(
            &dequant(&t),
            t.name,
            t.shape[0] as usize,
            t.shape[1] as usize,
            &[(&a1, 0.7), (&a2, -1.3)],
        );
        let got = dequant(&m);
        for (g, w) in got.iter().zip(&want) {
            worst = worst.max((*g as f64 - w).abs());
        }
        // The update is not negligible: the merged tensor differs from the base.
        assert!(dequant(&t)
            .iter()
            .zip(&got)
            .any(|(b, g)| (b - g).abs() > 1e-2));
    }
    assert!(worst <= 1e-5, "max |merged - oracle| = {worst}");
}

#[test]
fn f32_base_merges_exactly() {
    check_merge_against_oracle(QuantType::F32, None);
}

#[test]
fn q8_0_base_to_f32_is_dequant_plus_update() {
    check_merge_against_oracle(QuantType::Q8_0, Some(QuantType::F32));
}

#[test]
fn q4_1_base_to_f32_is_dequant_plus_update() {
    check_merge_against_oracle(QuantType::Q4_1, Some(QuantType::F32));
}

#[test]
fn q4_1_base_keeps_its_type_and_is_the_requantized_sum() {
    let dir = tempfile::tempdir().unwrap();
    let base = open(&write_base(dir.path(), QuantType::Q4_1));
    let (a1, _) = two_adapters();
    let out = dir.path().join("merged.gguf");
    let items = [MergeItem {
        adapter: &a1,
        scale: 1.0,
        label: "one",
    }];
    merge_to_file(&base, &items, None, &out).unwrap();
    let merged = open(&out);
    let t = base.tensor("blk.0.attn_q.weight").unwrap();
    let m = merged.tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!(m.ty, QuantType::Q4_1);
    let want = oracle(&dequant(&t), t.name, D, D, &[(&a1, 1.0)]);
    let want32: Vec<f32> = want.iter().map(|v| *v as f32).collect();
    // Requantizing the exact sum gives Q4_1 values within one quantization step of it.
    let got = dequant(&m);
    for (row_g, row_w) in got.chunks(32).zip(want32.chunks(32)) {
        let (lo, hi) = row_w
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        let step = (hi - lo) / 15.0;
        for (g, w) in row_g.iter().zip(row_w) {
            assert!(
                (g - w).abs() <= step * 0.5 + 1e-3,
                "{g} vs {w} (step {step})"
            );
        }
    }
}

#[test]
fn scale_zero_leaves_every_tensor_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    for ty in [QuantType::F32, QuantType::Q4_1] {
        let base = open(&write_base(dir.path(), ty));
        let (a1, a2) = two_adapters();
        let out = dir.path().join("zero.gguf");
        let items = [
            MergeItem {
                adapter: &a1,
                scale: 0.0,
                label: "one.gguf",
            },
            MergeItem {
                adapter: &a2,
                scale: 0.0,
                label: "two.gguf",
            },
        ];
        let summary = merge_to_file(&base, &items, None, &out).unwrap();
        assert_eq!(summary.n_rewritten, 0);
        let merged = open(&out);
        for t in base.tensors() {
            let m = merged.tensor(t.name).unwrap();
            assert_eq!(
                (m.ty, m.shape, m.bytes),
                (t.ty, t.shape, t.bytes),
                "{}",
                t.name
            );
        }
        let md = merged.metadata();
        assert_eq!(md.get_str("general.name").unwrap(), "synth (LoRA merged)");
        let listed = md.get(KEY_MERGED_ADAPTERS).unwrap().as_array().unwrap();
        assert_eq!(
            listed.as_strings().unwrap(),
            ["one.gguf scale=0", "two.gguf scale=0"]
        );
        assert_eq!(
            md.get_u32("llama.attention.head_count").unwrap(),
            N_HEAD as u32
        );
    }
}

#[test]
fn bad_adapters_are_rejected_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let base = open(&write_base(dir.path(), QuantType::F32));
    let (good, _) = two_adapters();
    let out = dir.path().join("never.gguf");

    let mut wrong_shape = good.clone();
    let p = wrong_shape
        .tensors
        .get_mut("blk.0.ffn_down.weight")
        .unwrap();
    p.n_in = 96;
    p.a = vec![0.1; p.rank * 96];
    let mut other_arch = good.clone();
    other_arch.arch = Some("gpt2".into());
    let mut missing = good.clone();
    let p = missing.tensors["blk.0.attn_q.weight"].clone();
    missing.tensors.insert("blk.7.attn_q.weight".into(), p);

    for (bad, want) in [
        (&wrong_shape, "blk.0.ffn_down.weight"),
        (&other_arch, "gpt2"),
        (&missing, "blk.7.attn_q.weight"),
    ] {
        let items = [
            MergeItem {
                adapter: &good,
                scale: 1.0,
                label: "good.gguf",
            },
            MergeItem {
                adapter: bad,
                scale: 1.0,
                label: "bad.gguf",
            },
        ];
        let err = merge_to_file(&base, &items, None, &out).unwrap_err();
        assert!(matches!(err, AdapterError::InAdapter { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("bad.gguf") && msg.contains(want), "{msg}");
        assert!(!out.exists());
    }
    let items = [MergeItem {
        adapter: &good,
        scale: f32::NAN,
        label: "nan",
    }];
    assert!(merge_to_file(&base, &items, None, &out).is_err());
    assert!(merge_to_file(&base, &[], None, &out).is_err());
    assert!(!out.exists());
}

const ALL_PROJS: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

fn check_real_merge(out_ty: Option<QuantType>) {
    let dir = tempfile::tempdir().unwrap();
    let base = GgufFile::open(real_model_path()).unwrap();
    let adapter = random_adapter_for_base(&base, &ALL_PROJS, 16, Some(32.0), 5, 0.02);
    assert_eq!(adapter.tensors.len(), 30 * 7);
    // Through the file format, as a user would.
    let ad_path = dir.path().join("rand.gguf");
    adapter.save_gguf(&ad_path, QuantType::F32).unwrap();
    let loaded = LoraAdapter::load_with_base(&ad_path, &base).unwrap();
    let out = dir.path().join("merged.gguf");
    let items = [MergeItem {
        adapter: &loaded,
        scale: 1.0,
        label: "rand.gguf",
    }];
    let summary = merge_to_file(&base, &items, out_ty, &out).unwrap();
    assert_eq!(summary.n_adapted, 210);
    assert_eq!(summary.n_rewritten, 210);
    let merged = GgufFile::open(&out).unwrap();
    assert_eq!(merged.tensor_infos().len(), base.tensor_infos().len());
    for t in base.tensors() {
        let m = merged.tensor(t.name).unwrap();
        assert_eq!(m.shape, t.shape, "{}", t.name);
        if loaded.tensors.contains_key(t.name) {
            assert_eq!(m.ty, out_ty.unwrap_or(t.ty), "{}", t.name);
            assert!(m.ty != t.ty || m.bytes != t.bytes, "{} unchanged", t.name);
        } else {
            assert_eq!(
                (m.ty, m.bytes),
                (t.ty, t.bytes),
                "{} must be copied",
                t.name
            );
        }
    }
    // One tensor checked numerically against dequant(W) + s B A.
    let name = "blk.3.ffn_down.weight";
    let (t, m) = (base.tensor(name).unwrap(), merged.tensor(name).unwrap());
    let want = oracle(
        &dequant(&t),
        name,
        t.shape[0] as usize,
        t.shape[1] as usize,
        &[(&loaded, 1.0)],
    );
    let got = dequant(&m);
    let tol = match m.ty {
        QuantType::F16 => 1e-3,
        _ => 0.05, // Q4_1: within a quantization step of these weights
    };
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0f64, f64::max);
    assert!(worst < tol, "{name}: max error {worst}");
}

#[test]
fn real_model_merge_as_f16() {
    check_real_merge(Some(QuantType::F16));
}

#[test]
fn real_model_merge_keeps_base_types() {
    check_real_merge(None);
}
