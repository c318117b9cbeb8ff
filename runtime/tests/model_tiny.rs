//! Tiny random models of every family graft runs (4 layers, f32 weights, GQA, partial RoPE),
//! written with the GGUF writer: the CPU forward pass (batched prefill, chunked prefill,
//! single-token decode over the KV cache) must equal graft-testkit's f64 reference forward (with
//! keys and values rounded to f16, the cache's storage type). Each family's description is
//! exercised: SmolLM3's NoPE layers, Qwen2's q/k/v biases and NEOX RoPE, Qwen3's per-head q/k
//! norms, Gemma 3's sliding windows, post-norms, GeGLU and embedding scale, Llama 3's
//! `rope_freqs` factors, linear and YaRN RoPE scaling, a head width other than
//! `n_embd / n_head`. Files carrying what graft does not apply are refused by name.

use graft_runtime::{Model, ModelError, ModelParams, Session, SessionParams};
use graft_testkit::{reference, Tensor, TinyModel};
use std::path::Path;

const VOCAB: usize = 61;

/// The tiny model of `arch` with this file's sizes.
fn tiny(arch: &str, seed: u64, tied: bool) -> TinyModel {
    TinyModel {
        n_vocab: VOCAB,
        n_embd: 64,
        n_layer: 4,
        n_ff: 96,
        n_head: 4,
        n_head_kv: 2,
        n_rot: 12,
        tied,
        seed,
        ..TinyModel::for_arch(arch)
    }
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

/// Loads `m` and checks prefill, decode and a partial evaluation against the reference.
fn check(m: &TinyModel, n_batch: usize, threads: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    let tensors = m.write(&path);
    let model = Model::load(&path, ModelParams { threads }).expect("load tiny model");
    assert_eq!(model.weights().tied_output, m.tied);
    assert_eq!(model.spec().family.arch(), m.arch);
    let tokens: Vec<u32> = vec![3, 17, 0, 60, 5, 5, 42, 11, 29, 8];
    let want = reference::logits(m, &tensors, &tokens, true);
    let mut s = Session::new(&model, SessionParams { n_ctx: 32, n_batch }).expect("session");
    // Batched prefill of the first 7 tokens, all logits.
    let all = s.eval_all(&tokens[..7]).expect("prefill").to_vec();
    for p in 0..7 {
        assert_close(
            &all[p * VOCAB..(p + 1) * VOCAB],
            &want[p],
            &format!("{} prefill pos {p}", m.arch),
        );
    }
    // Decode the rest one token at a time over the KV cache.
    for (p, want_p) in want.iter().enumerate().skip(7) {
        let l = s.eval(&tokens[p..p + 1]).expect("decode").to_vec();
        assert_close(&l, want_p, &format!("{} decode pos {p}", m.arch));
    }
    assert_eq!(s.n_past(), tokens.len());
    // Reset and a partial-rows evaluation give the same numbers.
    s.reset();
    let tail = s.eval_from(&tokens, 6).expect("eval_from").to_vec();
    for p in 6..tokens.len() {
        assert_close(
            &tail[(p - 6) * VOCAB..(p - 5) * VOCAB],
            &want[p],
            &format!("{} eval_from pos {p}", m.arch),
        );
    }
}

/// The largest logit difference at the last of a few positions between two descriptions of the
/// same weights (a feature that changes nothing would go untested).
fn differs(a: &TinyModel, b: &TinyModel) -> f64 {
    let tokens = [3u32, 17, 0, 60, 9, 33];
    let t = a.tensors();
    let (x, y) = (
        reference::logits(a, &t, &tokens, false),
        reference::logits(b, &t, &tokens, false),
    );
    x[5].iter()
        .zip(&y[5])
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max)
}

#[test]
fn forward_equals_f64_reference_untied_one_batch() {
    check(&tiny("llama", 7, false), 512, 1);
}

#[test]
fn forward_equals_f64_reference_tied_small_batches_two_threads() {
    check(&tiny("llama", 8, true), 3, 2);
}

#[test]
fn smollm3_forward_skips_rope_in_every_fourth_layer() {
    check(&tiny("smollm3", 7, false), 4, 2);
    let llama = tiny("llama", 7, false);
    assert!(differs(&llama, &tiny("smollm3", 7, false)) > 1e-3);
}

#[test]
fn qwen2_forward_adds_qkv_biases_with_neox_rope() {
    check(&tiny("qwen2", 9, true), 512, 1);
    check(&tiny("qwen2", 10, false), 3, 2);
}

#[test]
fn qwen3_forward_normalises_q_and_k_per_head() {
    check(&tiny("qwen3", 11, true), 512, 2);
    check(&tiny("qwen3", 12, false), 4, 1);
}

#[test]
fn gemma3_forward_windows_post_norms_and_geglu() {
    check(&tiny("gemma3", 16, true), 512, 1);
    check(&tiny("gemma3", 17, false), 3, 2);
    // Its own RoPE base in windowed layers.
    let m = TinyModel {
        rope_base_swa: Some(100.0),
        ..tiny("gemma3", 18, true)
    };
    check(&m, 4, 2);
    assert!(differs(&m, &tiny("gemma3", 18, true)) > 1e-3);
    // Final soft-capping.
    let capped = TinyModel {
        final_softcap: Some(3.0),
        ..tiny("gemma3", 19, false)
    };
    check(&capped, 512, 1);
    // The window matters: without it the same weights give other logits.
    let full = TinyModel {
        sliding_window: None,
        ..tiny("gemma3", 18, true)
    };
    assert!(differs(&full, &tiny("gemma3", 18, true)) > 1e-3);
}

#[test]
fn phi3_forward_reads_fused_projections_and_long_rope() {
    check(&tiny("phi3", 20, true), 512, 1);
    check(&tiny("phi3", 21, false), 3, 2);
    // LongRoPE: a session within the original context (1000) runs the short factors; one
    // past it (32 > 16) the long ones.
    let short = TinyModel {
        long_rope: Some(1000),
        ..tiny("phi3", 22, true)
    };
    check(&short, 4, 2);
    let long = TinyModel {
        long_rope: Some(16),
        ..tiny("phi3", 22, true)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("long.gguf");
    let tensors = long.write(&path);
    let model = Model::load(&path, ModelParams { threads: 1 }).expect("load");
    let tokens: Vec<u32> = vec![3, 17, 0, 60, 5, 5, 42, 11, 29, 8];
    let mut s = Session::new(
        &model,
        SessionParams {
            n_ctx: 32,
            n_batch: 32,
        },
    )
    .expect("session");
    let got = s.eval_all(&tokens).expect("eval").to_vec();
    let want = reference::logits_in(&long, &tensors, &tokens, true, 32);
    for (p, w) in want.iter().enumerate() {
        assert_close(
            &got[p * VOCAB..(p + 1) * VOCAB],
            w,
            &format!("long rope pos {p}"),
        );
    }
    let short_ref = reference::logits_in(&long, &tensors, &tokens, false, 8);
    let diff = short_ref[9]
        .iter()
        .zip(&want[9])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff > 1e-3, "long factors changed nothing ({diff})");
}

#[test]
fn llama3_rope_freqs_factors_are_applied() {
    let m = TinyModel {
        rope_freqs: true,
        ..tiny("llama", 13, true)
    };
    check(&m, 512, 1);
    let plain = tiny("llama", 13, true);
    let tokens = [1u32, 2, 3, 4, 5, 6];
    // The same tensors with and without the factors applied (the reference reads them).
    let t = m.tensors();
    let without: Vec<Tensor> = t
        .iter()
        .filter(|x| x.name != "rope_freqs.weight")
        .cloned()
        .collect();
    let (a, b) = (
        reference::logits(&m, &t, &tokens, false),
        reference::logits(&plain, &without, &tokens, false),
    );
    let diff = a[5]
        .iter()
        .zip(&b[5])
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    assert!(diff > 1e-3, "rope factors changed nothing ({diff})");
}

#[test]
fn linear_and_yarn_rope_scaling_are_applied() {
    for (ty, arch) in [("linear", "llama"), ("yarn", "qwen2"), ("yarn", "llama")] {
        let m = TinyModel {
            rope_scaling: Some((ty.into(), 4.0)),
            n_ctx: 16,
            ..tiny(arch, 14, false)
        };
        check(&m, 5, 2);
        assert!(differs(&m, &tiny(arch, 14, false)) > 1e-3, "{ty} {arch}");
    }
}

#[test]
fn head_width_from_key_length() {
    // 4 heads of 24 (q width 96) on a 64-wide model.
    let m = TinyModel {
        head_dim_override: Some(24),
        n_rot: 24,
        ..tiny("qwen3", 15, false)
    };
    check(&m, 512, 1);
}

/// Writes `m` with `edit` applied to its tensors and `extra` keys, and returns the load error.
fn load_error(m: &TinyModel, edit: impl Fn(&mut Vec<Tensor>), extra: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("extra.gguf");
    let mut t = m.tensors();
    edit(&mut t);
    m.write_with(&path, &t, extra);
    Model::load(&path, ModelParams { threads: 1 })
        .expect_err("must be refused")
        .to_string()
}

fn extra_tensor(name: &str, len: usize) -> impl Fn(&mut Vec<Tensor>) + '_ {
    move |t: &mut Vec<Tensor>| {
        t.push(Tensor {
            name: name.to_string(),
            shape: vec![len as u64],
            ty: graft_quant::QuantType::F32,
            values: vec![1.0; len],
        })
    }
}

#[test]
fn what_a_family_does_not_apply_is_refused_by_name() {
    // Qwen2 has no rope_freqs (llama.cpp would not load it either).
    let e = load_error(
        &tiny("qwen2", 1, true),
        extra_tensor("rope_freqs.weight", 6),
        &[],
    );
    assert!(
        e.contains("rope_freqs.weight") && e.contains("RoPE frequency factors"),
        "{e}"
    );
    // Qwen2's output projection has no bias.
    let e = load_error(
        &tiny("qwen2", 1, true),
        extra_tensor("blk.0.attn_output.bias", 64),
        &[],
    );
    assert!(
        e.contains("blk.0.attn_output.bias") && e.contains("bias"),
        "{e}"
    );
    // Post-norms belong to Gemma, not llama.
    let e = load_error(
        &tiny("llama", 1, true),
        extra_tensor("blk.1.post_attention_norm.weight", 64),
        &[],
    );
    assert!(e.contains("post_attention_norm"), "{e}");
    // LongRoPE is phi3's, not llama's.
    let e = load_error(
        &tiny("llama", 1, true),
        |_| {},
        &[("llama.rope.scaling.type", "longrope")],
    );
    assert!(
        e.contains("llama.rope.scaling.type") && e.contains("longrope"),
        "{e}"
    );
    // Factors of the wrong length.
    let e = load_error(
        &tiny("llama", 1, true),
        extra_tensor("rope_freqs.weight", 5),
        &[],
    );
    assert!(e.contains("rope_freqs.weight") && e.contains("[6]"), "{e}");
}

#[test]
fn context_overflow_and_bad_tokens_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    tiny("llama", 1, true).write(&path);
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
    tiny("gpt2", 1, true).write(&path);
    let err = Model::load(&path, ModelParams { threads: 1 }).expect_err("must fail");
    assert!(matches!(err, ModelError::UnsupportedArchitecture(ref a) if a == "gpt2"));
    assert!(err.to_string().contains("gpt2"), "{err}");
    assert!(err.to_string().contains("qwen3"), "{err}");
}

fn edit_write(m: &TinyModel, path: &Path, edit: impl Fn(&mut Vec<Tensor>)) {
    let mut t = m.tensors();
    edit(&mut t);
    m.write_with(path, &t, &[]);
}

#[test]
fn wrong_tensor_shape_names_the_tensor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.gguf");
    edit_write(&tiny("llama", 1, true), &path, |t| {
        for x in t.iter_mut().filter(|x| x.name == "blk.1.attn_k.weight") {
            x.shape = vec![64, 16];
            x.values.truncate(64 * 16);
        }
    });
    let err = Model::load(&path, ModelParams { threads: 1 }).expect_err("must fail");
    assert!(err.to_string().contains("blk.1.attn_k.weight"), "{err}");
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing.gguf");
    edit_write(&tiny("qwen3", 1, true), &path, |t| {
        t.retain(|x| x.name != "blk.0.attn_k_norm.weight")
    });
    let err = Model::load(&path, ModelParams { threads: 1 }).expect_err("must fail");
    assert!(
        err.to_string().contains("blk.0.attn_k_norm.weight"),
        "{err}"
    );
}

#[test]
fn a_context_the_machine_cannot_hold_is_refused_before_allocating() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny.gguf");
    tiny("llama", 7, false).write(&path);
    let model = Model::load(&path, ModelParams { threads: 1 }).expect("load");
    for (n_ctx, n_batch) in [(1usize << 40, 512usize), (usize::MAX / 2, usize::MAX / 2)] {
        let e = Session::new(&model, SessionParams { n_ctx, n_batch })
            .err()
            .expect("a session of 2^40 positions");
        assert!(matches!(e, ModelError::OutOfMemory(_)), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("{n_ctx} tokens")) && msg.contains("memory"),
            "{msg}"
        );
    }
    // A real size still works.
    Session::new(
        &model,
        SessionParams {
            n_ctx: 64,
            n_batch: 16,
        },
    )
    .expect("a small session");
}

#[test]
fn a_model_file_changed_while_held_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("held.gguf");
    tiny("llama", 3, false).write(&path);
    let model = Model::load(&path, ModelParams { threads: 1 }).expect("load");
    let params = || SessionParams {
        n_ctx: 32,
        n_batch: 8,
    };
    let want = Session::new(&model, params())
        .expect("session")
        .eval(&[1, 2, 3])
        .expect("eval")
        .to_vec();

    // Another file renamed over it (how graft and most tools replace files): the map keeps
    // the old inode, the model runs on unchanged.
    let other = dir.path().join("other.gguf");
    tiny("llama", 99, false).write(&other);
    std::fs::rename(&other, &path).expect("rename over");
    let got = Session::new(&model, params())
        .expect("session")
        .eval(&[1, 2, 3])
        .expect("eval after the file was replaced")
        .to_vec();
    assert_eq!(got, want, "a replaced file changed a held model's output");

    // Truncated in place: reading the lost pages would be SIGBUS; the forward pass refuses.
    let path2 = dir.path().join("truncated.gguf");
    tiny("llama", 5, false).write(&path2);
    let model2 = Model::load(&path2, ModelParams { threads: 1 }).expect("load");
    let mut s2 = Session::new(&model2, params()).expect("session");
    s2.eval(&[1, 2]).expect("eval before truncation");
    let len = std::fs::metadata(&path2).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path2)
        .expect("open for writing")
        .set_len(len / 2)
        .expect("truncate");
    let e = s2.eval(&[3]).expect_err("a truncated model ran");
    assert!(matches!(e, ModelError::FileChanged(_)), "{e}");
    assert!(
        e.to_string().contains("shrank") && e.to_string().contains("truncated.gguf"),
        "{e}"
    );

    // Rewritten in place (same size, new modification time): refused too.
    let path3 = dir.path().join("rewritten.gguf");
    tiny("llama", 6, false).write(&path3);
    let model3 = Model::load(&path3, ModelParams { threads: 1 }).expect("load");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path3)
        .expect("open for writing");
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .expect("set mtime");
    let e = Session::new(&model3, params())
        .expect("session")
        .eval(&[1])
        .expect_err("a rewritten model ran");
    assert!(e.to_string().contains("rewritten in place"), "{e}");
}
