//! A tiny random llama (4 layers, f32 weights, GQA, partial RoPE) written with the GGUF writer:
//! the CPU forward pass (batched prefill, chunked prefill, single-token decode over the KV
//! cache) must equal a naive f64 reference implemented here from the llama equations (with
//! keys and values rounded to f16, the cache's storage type). The same file as `smollm3` (no RoPE
//! in every fourth layer) checks that the forward follows the model description; files carrying
//! what graft does not apply (Llama 3 RoPE factors, RoPE scaling) are refused by name.

use graft_quant::QuantType;
use graft_runtime::{Model, ModelError, ModelParams, Session, SessionParams};
use graft_testkit::{Tensor, TinyModel};
use std::collections::HashMap;
use std::path::Path;

const VOCAB: usize = 61;
const D: usize = 64;
const N_HEAD: usize = 4;
const N_KV: usize = 2;
const HD: usize = D / N_HEAD;
const FF: usize = 96;
const N_LAYER: usize = 4;
const N_ROT: usize = 12;
const EPS: f64 = 1e-5;
const BASE: f64 = 10000.0;

/// Tensor name -> (shape ne0-first, values row-major over ne1 x ne0).
type Tensors = Vec<(String, Vec<u64>, Vec<f32>)>;

/// The shared tiny model (graft-testkit) with this file's sizes.
fn tiny(arch: &str, seed: u64, tied: bool) -> TinyModel {
    TinyModel {
        arch: arch.into(),
        n_vocab: VOCAB,
        n_embd: D,
        n_layer: N_LAYER,
        n_ff: FF,
        n_head: N_HEAD,
        n_head_kv: N_KV,
        n_rot: N_ROT,
        eps: EPS as f32,
        rope_base: BASE as f32,
        tied,
        seed,
        ..TinyModel::default()
    }
}

fn random_tensors(seed: u64, tied: bool) -> Tensors {
    tiny("llama", seed, tied)
        .tensors()
        .into_iter()
        .map(|t| (t.name, t.shape, t.values))
        .collect()
}

fn write_model(path: &Path, arch: &str, tensors: &Tensors) {
    write_model_with(path, arch, tensors, None)
}

fn write_model_with(path: &Path, arch: &str, tensors: &Tensors, key: Option<(&str, &str)>) {
    let t: Vec<Tensor> = tensors
        .iter()
        .map(|(name, shape, values)| Tensor {
            name: name.clone(),
            shape: shape.clone(),
            ty: QuantType::F32,
            values: values.clone(),
        })
        .collect();
    let extra: Vec<(&str, &str)> = key.into_iter().collect();
    tiny(arch, 0, false).write_with(path, &t, &extra);
}

/// Whether layer `l` of a model of architecture `arch` applies RoPE (SmolLM3 skips it in every
/// fourth layer, as llama.cpp's `n_no_rope_layer_step = 4`).
fn rotary(arch: &str, l: usize) -> bool {
    arch != "smollm3" || !(l + 1).is_multiple_of(4)
}

/// The f64 reference: full recomputation over the whole sequence, returns logits per position.
fn reference(arch: &str, tensors: &Tensors, tokens: &[u32]) -> Vec<Vec<f64>> {
    let m: HashMap<&str, Vec<f64>> = tensors
        .iter()
        .map(|(n, _, v)| (n.as_str(), v.iter().map(|&x| x as f64).collect()))
        .collect();
    let get = |n: &str| -> &Vec<f64> { &m[n] };
    let matvec = |w: &[f64], x: &[f64], rows: usize| -> Vec<f64> {
        let cols = x.len();
        (0..rows)
            .map(|r| (0..cols).map(|c| w[r * cols + c] * x[c]).sum())
            .collect()
    };
    let rmsnorm = |x: &[f64], w: &[f64]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let s = 1.0 / (ms + EPS).sqrt();
        x.iter().zip(w).map(|(a, b)| a * s * b).collect()
    };
    let rope = |x: &mut [f64], n_heads: usize, pos: usize| {
        for h in 0..n_heads {
            for i in 0..N_ROT / 2 {
                let theta = pos as f64 * BASE.powf(-2.0 * i as f64 / N_ROT as f64);
                let (s, c) = theta.sin_cos();
                let a = x[h * HD + 2 * i];
                let b = x[h * HD + 2 * i + 1];
                x[h * HD + 2 * i] = a * c - b * s;
                x[h * HD + 2 * i + 1] = a * s + b * c;
            }
        }
    };
    let n = tokens.len();
    let emb = get("token_embd.weight");
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| emb[t as usize * D..(t as usize + 1) * D].to_vec())
        .collect();
    for l in 0..N_LAYER {
        let nm = |s: &str| format!("blk.{l}.{s}.weight");
        let mut qs = Vec::new();
        let mut ks = Vec::new();
        let mut vs = Vec::new();
        for (p, x) in xs.iter().enumerate() {
            let h = rmsnorm(x, get(&nm("attn_norm")));
            let mut q = matvec(get(&nm("attn_q")), &h, N_HEAD * HD);
            let mut k = matvec(get(&nm("attn_k")), &h, N_KV * HD);
            if rotary(arch, l) {
                rope(&mut q, N_HEAD, p);
                rope(&mut k, N_KV, p);
            }
            // The KV cache stores f16 (llama.cpp's default cache type).
            let f16r = |v: Vec<f64>| -> Vec<f64> {
                v.into_iter()
                    .map(|x| half::f16::from_f64(x).to_f64())
                    .collect()
            };
            qs.push(q);
            ks.push(f16r(k));
            vs.push(f16r(matvec(get(&nm("attn_v")), &h, N_KV * HD)));
        }
        for p in 0..n {
            let mut att = vec![0.0; N_HEAD * HD];
            for h in 0..N_HEAD {
                let kh = h / (N_HEAD / N_KV);
                let sc: Vec<f64> = (0..=p)
                    .map(|j| {
                        (0..HD)
                            .map(|i| qs[p][h * HD + i] * ks[j][kh * HD + i])
                            .sum::<f64>()
                            / (HD as f64).sqrt()
                    })
                    .collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|s| (s - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, ej) in e.iter().enumerate() {
                    for i in 0..HD {
                        att[h * HD + i] += ej / z * vs[j][kh * HD + i];
                    }
                }
            }
            let o = matvec(get(&nm("attn_output")), &att, D);
            for i in 0..D {
                xs[p][i] += o[i];
            }
            let h = rmsnorm(&xs[p], get(&nm("ffn_norm")));
            let g = matvec(get(&nm("ffn_gate")), &h, FF);
            let u = matvec(get(&nm("ffn_up")), &h, FF);
            let a: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let dn = matvec(get(&nm("ffn_down")), &a, D);
            for i in 0..D {
                xs[p][i] += dn[i];
            }
        }
    }
    let out = m
        .get("output.weight")
        .unwrap_or_else(|| get("token_embd.weight"));
    xs.iter()
        .map(|x| matvec(out, &rmsnorm(x, get("output_norm.weight")), VOCAB))
        .collect()
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max).max(1.0);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            // 2e-3: the runtime reproduces llama.cpp's CPU flash attention, which rounds Q to
            // f16 and accumulates V·softmax in f16 for short batches (K/V are f16 in the cache
            // anyway): ~2^-11 relative per rounding, against this exact f64 reference.
            ((g as f64) - w).abs() <= 2e-3 * scale,
            "{what}: logit {i}: got {g}, reference {w}"
        );
    }
}

fn check(arch: &str, tied: bool, n_batch: usize, threads: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    let tensors = random_tensors(7 + tied as u64, tied);
    write_model(&path, arch, &tensors);
    let model = Model::load(&path, ModelParams { threads }).expect("load tiny model");
    assert_eq!(model.weights().tied_output, tied);
    assert_eq!(model.spec().family.arch(), arch);
    let tokens: Vec<u32> = vec![3, 17, 0, 60, 5, 5, 42, 11, 29, 8];
    let want = reference(arch, &tensors, &tokens);
    let mut s = Session::new(&model, SessionParams { n_ctx: 32, n_batch }).expect("session");
    // Batched prefill of the first 7 tokens, all logits.
    let all = s.eval_all(&tokens[..7]).expect("prefill").to_vec();
    for p in 0..7 {
        assert_close(
            &all[p * VOCAB..(p + 1) * VOCAB],
            &want[p],
            &format!("prefill pos {p}"),
        );
    }
    // Decode the rest one token at a time over the KV cache.
    for (p, want_p) in want.iter().enumerate().skip(7) {
        let l = s.eval(&tokens[p..p + 1]).expect("decode").to_vec();
        assert_close(&l, want_p, &format!("decode pos {p}"));
    }
    assert_eq!(s.n_past(), tokens.len());
    // Reset and a partial-rows evaluation give the same numbers.
    s.reset();
    let tail = s.eval_from(&tokens, 6).expect("eval_from").to_vec();
    for p in 6..tokens.len() {
        assert_close(
            &tail[(p - 6) * VOCAB..(p - 5) * VOCAB],
            &want[p],
            &format!("eval_from pos {p}"),
        );
    }
}

#[test]
fn forward_equals_f64_reference_untied_one_batch() {
    check("llama", false, 512, 1);
}

#[test]
fn forward_equals_f64_reference_tied_small_batches_two_threads() {
    check("llama", true, 3, 2);
}

#[test]
fn smollm3_forward_skips_rope_in_every_fourth_layer() {
    check("smollm3", false, 4, 2);
    // The description changes the numbers: the same weights as llama give other logits.
    let t = random_tensors(7, false);
    let tokens = [3u32, 17, 0, 60];
    let (l, s) = (
        reference("llama", &t, &tokens),
        reference("smollm3", &t, &tokens),
    );
    let diff = l[3]
        .iter()
        .zip(&s[3])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff > 1e-3, "NoPE layer made no difference ({diff})");
}

/// Writes the tiny llama with an extra tensor or string key and returns the load error.
fn load_error(extra_tensor: Option<&str>, extra_key: Option<(&str, &str)>) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("extra.gguf");
    let mut t = random_tensors(1, true);
    if let Some(name) = extra_tensor {
        t.push((
            name.to_string(),
            vec![(N_ROT / 2) as u64],
            vec![1.0; N_ROT / 2],
        ));
    }
    write_model_with(&path, "llama", &t, extra_key);
    Model::load(&path, ModelParams { threads: 1 })
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn llama3_rope_factors_and_rope_scaling_are_refused_by_name() {
    let e = load_error(Some("rope_freqs.weight"), None);
    assert!(
        e.contains("rope_freqs.weight") && e.contains("RoPE frequency factors"),
        "{e}"
    );
    let e = load_error(Some("blk.0.attn_q.bias"), None);
    assert!(e.contains("blk.0.attn_q.bias") && e.contains("bias"), "{e}");
    let e = load_error(None, Some(("llama.rope.scaling.type", "yarn")));
    assert!(
        e.contains("llama.rope.scaling.type") && e.contains("yarn"),
        "{e}"
    );
}

#[test]
fn context_overflow_and_bad_tokens_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    write_model(&path, "llama", &random_tensors(1, true));
    let model = Model::load(&path, ModelParams { threads: 1 }).expect("load");
    let mut s = Session::new(
        &model,
        SessionParams {
            n_ctx: 4,
            n_batch: 4,
        },
    )
    .expect("session");
    assert!(matches!(
        s.eval(&[1, 2, 3, 4, 5]),
        Err(ModelError::ContextFull { n_ctx: 4, .. })
    ));
    assert!(matches!(
        s.eval(&[VOCAB as u32]),
        Err(ModelError::TokenOutOfRange { .. })
    ));
    assert_eq!(s.n_past(), 0);
}

#[test]
fn unsupported_architecture_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gpt2.gguf");
    write_model(&path, "gpt2", &random_tensors(1, true));
    let err = Model::load(&path, ModelParams { threads: 1 }).expect_err("must fail");
    assert!(matches!(err, ModelError::UnsupportedArchitecture(ref a) if a == "gpt2"));
    assert!(err.to_string().contains("gpt2"), "{err}");
}

#[test]
fn wrong_tensor_shape_names_the_tensor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.gguf");
    let mut t = random_tensors(1, true);
    for (name, shape, v) in t.iter_mut() {
        if name == "blk.1.attn_k.weight" {
            *shape = vec![D as u64, (N_KV * HD / 2) as u64];
            v.truncate(D * N_KV * HD / 2);
        }
    }
    write_model(&path, "llama", &t);
    let err = Model::load(&path, ModelParams { threads: 1 }).expect_err("must fail");
    assert!(err.to_string().contains("blk.1.attn_k.weight"), "{err}");
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing.gguf");
    let t: Tensors = random_tensors(1, true)
        .into_iter()
        .filter(|(n, _, _)| n != "blk.0.ffn_up.weight")
        .collect();
    write_model(&path, "llama", &t);
    let err = Model::load(&path, ModelParams { threads: 1 }).expect_err("must fail");
    assert!(err.to_string().contains("blk.0.ffn_up.weight"), "{err}");
}
