//! LoRA on a tiny random llama (f32 weights, untied head): several adapters at once equal the
//! base model with `W + Σ s_i B_i A_i` merged in f64 (embedding and output head included);
//! scale 0 is the base exactly; hot-swapping on one session equals fresh sessions bit for bit;
//! bad adapters are refused with errors naming the tensor.

mod lora_support;

use graft_quant::QuantType;
use graft_runtime::adapter::{LoraAdapter, LoraPair};
use graft_runtime::lora::LoadedAdapter;
use graft_runtime::{Model, ModelError, ModelParams, Session, SessionParams};
use graft_testkit::{Tensor, TinyModel};
use lora_support::gen::{projections, random_pair, Rng};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

const VOCAB: usize = 61;
const D: usize = 64;
const N_HEAD: usize = 4;
const N_KV: usize = 2;
const HD: usize = D / N_HEAD;
const FF: usize = 96;
const N_LAYER: usize = 2;

/// name -> (shape ne0-first, row-major values).
type Tensors = BTreeMap<String, (Vec<u64>, Vec<f32>)>;

/// The shared tiny llama (graft-testkit): 2 layers, untied head, f32.
fn tiny() -> TinyModel {
    TinyModel {
        n_vocab: VOCAB,
        n_embd: D,
        n_layer: N_LAYER,
        n_ff: FF,
        n_head: N_HEAD,
        n_head_kv: N_KV,
        seed: 99,
        ..TinyModel::default()
    }
}

fn base_tensors() -> Tensors {
    tiny()
        .tensors()
        .into_iter()
        .map(|t| (t.name, (t.shape, t.values)))
        .collect()
}

fn write_model(path: &Path, tensors: &Tensors) {
    let t: Vec<Tensor> = tensors
        .iter()
        .map(|(name, (shape, values))| Tensor {
            name: name.clone(),
            shape: shape.clone(),
            ty: QuantType::F32,
            values: values.clone(),
        })
        .collect();
    tiny().write_with(path, &t, &[]);
}

/// An adapter on every projection, the embedding table and the output head.
fn tiny_adapter(rank: usize, alpha: f32, seed: u64) -> LoraAdapter {
    let mut rng = Rng::new(seed);
    let mut tensors = BTreeMap::new();
    for l in 0..N_LAYER {
        for (s, n_in, n_out) in projections(D, FF, N_HEAD * HD, N_KV * HD) {
            let p = random_pair(&mut rng, rank, n_in, n_out, alpha, 0.05);
            tensors.insert(format!("blk.{l}.{s}.weight"), p);
        }
    }
    tensors.insert(
        "token_embd.weight".into(),
        random_pair(&mut rng, rank, VOCAB, D, alpha, 0.2),
    );
    tensors.insert(
        "output.weight".into(),
        random_pair(&mut rng, rank, D, VOCAB, alpha, 0.05),
    );
    LoraAdapter {
        arch: Some("llama".into()),
        alpha: Some(alpha),
        tensors,
        ..Default::default()
    }
}

/// `W + Σ s · B A` in f64 (for the embedding: row `t` += `s · B A[:, t]`).
fn merge(base: &Tensors, adapters: &[(&LoraAdapter, f32)]) -> Tensors {
    let mut out = base.clone();
    for (name, (_, w)) in out.iter_mut() {
        let mut w64: Vec<f64> = w.iter().map(|&x| x as f64).collect();
        for (a, user) in adapters {
            let Some(p) = a.tensors.get(name) else {
                continue;
            };
            let s = p.effective_scale(*user) as f64;
            let emb = name == "token_embd.weight";
            for o in 0..p.n_out {
                for i in 0..p.n_in {
                    let ba: f64 = (0..p.rank)
                        .map(|k| p.b[o * p.rank + k] as f64 * p.a[k * p.n_in + i] as f64)
                        .sum();
                    // Row-major [rows × cols]: rows = n_out (embedding: rows = n_vocab = n_in).
                    let idx = if emb { i * p.n_out + o } else { o * p.n_in + i };
                    w64[idx] += s * ba;
                }
            }
        }
        *w = w64.iter().map(|&x| x as f32).collect();
    }
    out
}

const TOKENS: [u32; 9] = [3, 17, 0, 60, 5, 5, 42, 11, 29];

fn logits(s: &mut Session<'_>) -> Vec<f32> {
    s.reset();
    let mut all = s.eval_all(&TOKENS[..6]).expect("prefill").to_vec();
    for &t in &TOKENS[6..] {
        all.extend_from_slice(s.eval(&[t]).expect("decode"));
    }
    all
}

fn session(m: &Model) -> Session<'_> {
    Session::new(
        m,
        SessionParams {
            n_ctx: 32,
            n_batch: 4,
        },
    )
    .expect("session")
}

struct Fixture {
    _dir: tempfile::TempDir,
    base: Tensors,
    model: Model,
    a1: LoraAdapter,
    a2: LoraAdapter,
    l1: Arc<LoadedAdapter>,
    l2: Arc<LoadedAdapter>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = base_tensors();
    write_model(&dir.path().join("base.gguf"), &base);
    let model =
        Model::load(dir.path().join("base.gguf"), ModelParams { threads: 2 }).expect("load");
    let a1 = tiny_adapter(4, 8.0, 1);
    let a2 = tiny_adapter(6, 3.0, 2);
    let l1 = LoadedAdapter::new(&model, a1.clone(), "a1").expect("a1");
    let l2 = LoadedAdapter::new(&model, a2.clone(), "a2").expect("a2");
    Fixture {
        _dir: dir,
        base,
        model,
        a1,
        a2,
        l1,
        l2,
    }
}

#[test]
fn two_adapters_equal_the_f64_merged_model() {
    let f = fixture();
    let (s1, s2) = (0.7f32, -1.3f32);
    let merged = merge(&f.base, &[(&f.a1, s1), (&f.a2, s2)]);
    let path = f._dir.path().join("merged.gguf");
    write_model(&path, &merged);
    let mm = Model::load(&path, ModelParams { threads: 2 }).expect("load merged");
    let want = logits(&mut session(&mm));
    let base = logits(&mut session(&f.model));
    let mut s = session(&f.model);
    s.set_adapters(&[(f.l1.clone(), s1), (f.l2.clone(), s2)])
        .expect("set");
    let got = logits(&mut s);
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let mut max_err = 0.0f32;
    let mut max_delta = 0.0f32;
    for ((g, w), b) in got.iter().zip(&want).zip(&base) {
        max_err = max_err.max((g - w).abs());
        max_delta = max_delta.max((w - b).abs());
    }
    assert!(
        max_err <= 2e-4 * scale,
        "adapted vs merged: max |Δ| {max_err} (logit scale {scale})"
    );
    // The adapters really change the output (the comparison is not vacuous).
    assert!(
        max_delta > 0.1,
        "merged model differs from base by only {max_delta}"
    );
}

#[test]
fn scale_zero_is_the_base_exactly() {
    let f = fixture();
    let base = logits(&mut session(&f.model));
    let mut s = session(&f.model);
    s.set_adapters(&[(f.l1.clone(), 0.0), (f.l2.clone(), 0.0)])
        .expect("set");
    assert_eq!(logits(&mut s), base);
}

#[test]
fn hot_swap_equals_fresh_sessions_bitwise() {
    let f = fixture();
    let fresh = |list: &[(Arc<LoadedAdapter>, f32)]| {
        let mut s = session(&f.model);
        s.set_adapters(list).expect("set");
        logits(&mut s)
    };
    let ra = fresh(&[(f.l1.clone(), 1.0)]);
    let rb = fresh(&[(f.l2.clone(), 0.5)]);
    let rn = fresh(&[]);
    assert_ne!(ra, rn);
    let mut s = session(&f.model);
    for (list, want) in [
        (vec![(f.l1.clone(), 1.0)], &ra),
        (vec![(f.l2.clone(), 0.5)], &rb),
        (vec![(f.l1.clone(), 1.0)], &ra),
        (vec![], &rn),
    ] {
        // Evaluate a prefix first, so a stale cache would show if the swap kept it.
        s.eval(&TOKENS[..3]).expect("eval");
        s.set_adapters(&list).expect("set");
        assert_eq!(s.n_past(), 0, "changing adapters empties the cache");
        let mut got = s.eval_all(&TOKENS[..6]).expect("prefill").to_vec();
        for &t in &TOKENS[6..] {
            got.extend_from_slice(s.eval(&[t]).expect("decode"));
        }
        assert_eq!(&got, want);
    }
    // Setting the same set again keeps the cache; another scale drops it.
    s.set_adapters(&[(f.l1.clone(), 1.0)]).expect("set");
    s.eval(&TOKENS[..3]).expect("eval");
    s.set_adapters(&[(f.l1.clone(), 1.0)]).expect("same set");
    assert_eq!(s.n_past(), 3);
    s.set_adapters(&[(f.l1.clone(), 0.9)]).expect("new scale");
    assert_eq!(s.n_past(), 0);
}

#[test]
fn registry_adds_and_drops_adapters() {
    let f = fixture();
    let path = f._dir.path().join("a1.gguf");
    f.a1.save_gguf(&path, QuantType::F32).expect("save");
    let id = f.model.load_adapter(&path).expect("load adapter");
    let mut s = session(&f.model);
    s.set_adapter_ids(&[(id, 1.0)]).expect("by id");
    let via_file = logits(&mut s);
    let mut s2 = session(&f.model);
    s2.set_adapters(&[(f.l1.clone(), 1.0)]).expect("set");
    assert_eq!(via_file, logits(&mut s2));
    let dropped = f.model.adapters().remove(id).expect("registered");
    assert!(f.model.adapters().get(id).is_none());
    assert!(matches!(
        s.set_adapter_ids(&[(id, 1.0)]),
        Err(ModelError::InvalidParam(_))
    ));
    // The session still holds the dropped adapter and keeps working.
    assert!(Arc::ptr_eq(&s.adapters()[0].0, &dropped));
    assert_eq!(logits(&mut s), via_file);
    assert_eq!(
        f.l1.bytes(),
        f.a1.tensors
            .values()
            .map(|p| 4 * (p.a.len() + p.b.len()))
            .sum::<usize>()
    );
}

fn load_err(model: &Model, a: LoraAdapter) -> String {
    match LoadedAdapter::new(model, a, "bad") {
        Ok(_) => panic!("adapter was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_adapters_are_refused_naming_the_tensor() {
    let f = fixture();
    // Shape mismatch.
    let mut a = f.a1.clone();
    let p = a.tensors.get_mut("blk.1.ffn_up.weight").expect("pair");
    *p = LoraPair {
        a: vec![0.0; 4 * (D + 1)],
        n_in: D + 1,
        ..p.clone()
    };
    let e = load_err(&f.model, a);
    assert!(e.contains("blk.1.ffn_up.weight"), "{e}");
    // A tensor the base does not have.
    let mut a = f.a1.clone();
    let p = a.tensors["blk.0.attn_q.weight"].clone();
    a.tensors.insert("blk.7.attn_q.weight".into(), p);
    let e = load_err(&f.model, a);
    assert!(e.contains("blk.7.attn_q.weight"), "{e}");
    // A base tensor graft does not adapt (a norm vector).
    let mut a = f.a1.clone();
    let p = random_pair(&mut Rng::new(5), 2, D, 1, 1.0, 0.1);
    a.tensors.insert("blk.0.attn_norm.weight".into(), p);
    let e = load_err(&f.model, a);
    assert!(e.contains("blk.0.attn_norm.weight"), "{e}");
    // Wrong architecture.
    let mut a = f.a1.clone();
    a.arch = Some("qwen2".into());
    let e = load_err(&f.model, a);
    assert!(e.contains("qwen2"), "{e}");
    // A truncated file.
    let path = f._dir.path().join("trunc.gguf");
    f.a1.save_gguf(&path, QuantType::F32).expect("save");
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 100]).expect("truncate");
    let e = f
        .model
        .load_adapter(&path)
        .expect_err("truncated")
        .to_string();
    assert!(e.contains("trunc.gguf"), "{e}");
    assert!(f.model.adapters().ids().is_empty(), "nothing registered");
}
