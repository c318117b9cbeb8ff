//! Every LoRA gradient (each target module of each layer; the largest entry and random entries
//! of each A and B, with B non-zero) against central finite differences of the training loss
//! on a tiny random llama (3 layers, d 64, 4 heads / 2 KV heads, ffn 128, vocab 96), with a
//! packed batch (two segments in one row, padding) — with and without checkpointing, f32 and
//! quantized (Q8_0, Q4_1) bases, with dropout.

mod model_common;

use graft_quant::QuantType;
use graft_testkit::TinyModel;
use graft_train::model::{BaseMatmul, Checkpointing, LoraConfig, TrainOptions, Trainable};
use model_common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Step for single entries (the f32 forward's loss noise is ~2e-6, so an entry's difference
/// carries ~1e-4 absolute noise at this step).
const FD_EPS: f32 = 1e-2;
/// Absolute tolerance of single entries (the noise above).
const FD_ATOL: f64 = 2e-4;
/// Loss change of the step along a tensor's normalised gradient (step `DIR_DL / ‖g‖`): large
/// against the loss noise, small enough that third-order terms vanish.
const DIR_DL: f64 = 2e-3;
/// Relative tolerance of the directional check.
const DIR_RTOL: f64 = 2e-3;

struct Stats {
    checked: usize,
    max_rel: f64,
    worst: String,
    max_dir_rel: f64,
}

/// Checks sampled entries of every tensor; an entry passes when
/// `|g − fd| ≤ rtol · max(|g|, |fd|) + atol`.
fn check_fd(tr: &mut Trainable<'_>, eps: f32, rtol: f64, atol: f64) -> Stats {
    let batch = packed_batch();
    let (_, grads) = gradients(tr, &batch);
    let mut rng = StdRng::seed_from_u64(5);
    let mut st = Stats {
        max_dir_rel: 0.0,
        checked: 0,
        max_rel: 0.0,
        worst: String::new(),
    };
    let mut failures = Vec::new();
    for (ti, g) in grads.iter().enumerate() {
        let name = tr.lora().tensors()[ti].name.clone();
        let argmax = (0..g.len())
            .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
            .unwrap_or(0);
        let mut idx = vec![argmax];
        idx.extend((0..3).map(|_| rng.gen_range(0..g.len())));
        assert!(
            g[argmax].abs() > 1e-4,
            "{name}: gradient is (near) zero everywhere: {}",
            g[argmax]
        );
        // The whole tensor along its gradient: dL/dh of L(θ + h·ĝ) must be ‖g‖ (large signal,
        // far above the f32 forward's noise).
        let norm = g
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        let dir: Vec<f32> = g.iter().map(|&v| (f64::from(v) / norm) as f32).collect();
        let dd = directional_difference(tr, &batch, ti, &dir, (DIR_DL / norm) as f32);
        let drel = (dd - norm).abs() / norm;
        if drel > st.max_dir_rel {
            st.max_dir_rel = drel;
        }
        if drel > DIR_RTOL {
            failures.push(format!(
                "{name}: |g| {norm:.6e}, directional difference {dd:.6e}"
            ));
        }
        for j in idx {
            let fd = finite_difference(tr, &batch, ti, j, eps);
            let a = f64::from(g[j]);
            let err = (a - fd).abs();
            let rel = err / a.abs().max(fd.abs()).max(1e-12);
            st.checked += 1;
            if rel > st.max_rel && a.abs().max(fd.abs()) > 10.0 * atol {
                st.max_rel = rel;
                st.worst = format!("{name}[{j}] analytic {a:.6e} fd {fd:.6e}");
            }
            if err > rtol * a.abs().max(fd.abs()) + atol {
                failures.push(format!(
                    "{name}[{j}]: analytic {a:.6e}, finite difference {fd:.6e}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} entries off:\n{}",
        failures.len(),
        st.checked,
        failures.join("\n")
    );
    eprintln!(
        "{} tensors along their gradient: max rel err {:.3e}; {} entries: max rel err {:.3e} at {}",
        grads.len(),
        st.max_dir_rel,
        st.checked,
        st.max_rel,
        st.worst
    );
    st
}

fn opts(ck: Checkpointing, mode: BaseMatmul) -> TrainOptions {
    TrainOptions {
        threads: 1,
        checkpointing: ck,
        base_matmul: mode,
        head_chunk: 16,
        kv_f16: false,
        ..TrainOptions::default()
    }
}

fn lora_cfg() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        ..LoraConfig::default()
    }
}

#[test]
fn fd_f32_checkpointing_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "f32.gguf",
        3,
        QuantType::F32,
        QuantType::F32,
        true,
    );
    let lora = lora_nonzero(&model, lora_cfg(), 1);
    let mut tr = Trainable::new(&model, lora, opts(Checkpointing::Off, BaseMatmul::Fast))
        .expect("trainable");
    check_fd(&mut tr, FD_EPS, 1e-2, FD_ATOL);
}

/// FD on a tiny model of another family / RoPE variant, checkpointing every two layers.
fn fd_variant(m: &TinyModel, name: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = load_tiny(dir.path(), name, m);
    let lora = lora_nonzero(&model, lora_cfg(), 9);
    let mut tr = Trainable::new(
        &model,
        lora,
        opts(Checkpointing::EveryN(2), BaseMatmul::Fast),
    )
    .expect("trainable");
    check_fd(&mut tr, FD_EPS, 1e-2, FD_ATOL);
}

#[test]
fn fd_qwen2_biases_neox_rope() {
    let f = QuantType::F32;
    fd_variant(&tiny("qwen2", 7, 3, f, f, true), "qwen2.gguf");
}

#[test]
fn fd_qwen3_per_head_qk_norms() {
    // q and k gradients go back through the per-head RMSNorms.
    let f = QuantType::F32;
    fd_variant(&tiny("qwen3", 7, 3, f, f, false), "qwen3.gguf");
}

#[test]
fn fd_gemma3_windows_post_norms_geglu_softcap() {
    // Back through post-norms, GeGLU, the query scale, windowed attention (window 4 in a
    // packed rows of 24) and the final soft-cap.
    let f = QuantType::F32;
    fd_variant(
        &TinyModel {
            final_softcap: Some(4.0),
            ..tiny("gemma3", 7, 3, f, f, true)
        },
        "gemma3.gguf",
    );
}

#[test]
fn fd_phi3_fused_projections() {
    // LoRA on q/k/v and gate/up whose base matrices are row ranges of fused tensors.
    let f = QuantType::F32;
    fd_variant(
        &TinyModel {
            long_rope: Some(1000),
            ..tiny("phi3", 7, 3, f, f, false)
        },
        "phi3.gguf",
    );
}

#[test]
fn fd_llama3_rope_factors_and_yarn() {
    let f = QuantType::F32;
    fd_variant(
        &TinyModel {
            rope_freqs: true,
            ..tiny("llama", 7, 3, f, f, true)
        },
        "factors.gguf",
    );
    fd_variant(
        &TinyModel {
            rope_scaling: Some(("yarn".into(), 4.0)),
            n_ctx: 16,
            ..tiny("qwen3", 8, 3, f, f, true)
        },
        "yarn.gguf",
    );
}

#[test]
fn fd_smollm3_nope_layer_checkpointing_every_two_layers() {
    // Layer 3 of a SmolLM3 has no RoPE: its q/k gradients skip the RoPE backward.
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model_arch(
        dir.path(),
        "smollm3.gguf",
        "smollm3",
        4,
        QuantType::F32,
        QuantType::F32,
        true,
    );
    assert!(model.spec().layer(3).rope.is_none() && model.spec().layer(2).rope.is_some());
    let lora = lora_nonzero(&model, lora_cfg(), 5);
    let mut tr = Trainable::new(
        &model,
        lora,
        opts(Checkpointing::EveryN(2), BaseMatmul::Fast),
    )
    .expect("trainable");
    check_fd(&mut tr, FD_EPS, 1e-2, FD_ATOL);
}

#[test]
fn fd_f32_checkpointing_every_layer_untied_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "f32u.gguf",
        3,
        QuantType::F32,
        QuantType::F32,
        false,
    );
    let lora = lora_nonzero(
        &model,
        LoraConfig {
            rslora: true,
            ..lora_cfg()
        },
        2,
    );
    let mut tr = Trainable::new(
        &model,
        lora,
        opts(Checkpointing::EveryLayer, BaseMatmul::Fast),
    )
    .expect("trainable");
    check_fd(&mut tr, FD_EPS, 1e-2, FD_ATOL);
}

#[test]
fn fd_f32_dropout_every_two_layers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "f32d.gguf",
        3,
        QuantType::F32,
        QuantType::F32,
        true,
    );
    let lora = lora_nonzero(
        &model,
        LoraConfig {
            dropout: 0.3,
            ..lora_cfg()
        },
        3,
    );
    let mut tr = Trainable::new(
        &model,
        lora,
        opts(Checkpointing::EveryN(2), BaseMatmul::Fast),
    )
    .expect("trainable");
    tr.set_dropout_step(17);
    check_fd(&mut tr, FD_EPS, 1e-2, FD_ATOL);
}

/// The base anchor (a penalty on the LoRA output at unscored tokens) is part of the function
/// the backward differentiates: FD of `loss(_, true)` (cross-entropy + penalty) with dropout
/// and checkpointing, and the penalty is a real share of the loss.
#[test]
fn fd_f32_anchor_dropout_every_two_layers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "f32a.gguf",
        3,
        QuantType::F32,
        QuantType::F32,
        true,
    );
    let cfg = LoraConfig {
        dropout: 0.2,
        anchor: 0.5,
        ..lora_cfg()
    };
    let lora = lora_nonzero(&model, cfg.clone(), 3);
    let mut tr = Trainable::new(
        &model,
        lora,
        opts(Checkpointing::EveryN(2), BaseMatmul::Fast),
    )
    .expect("trainable");
    tr.set_dropout_step(5);
    let batch = packed_batch();
    let ce = f64::from(tr.forward(&batch).expect("forward"));
    let penalty = tr.anchor_penalty();
    let total = tr.loss(&batch, true).expect("loss");
    assert!(
        penalty > 0.05 * ce,
        "anchor penalty {penalty} is not a real share of the loss (cross-entropy {ce})"
    );
    assert!(
        (total - (ce + penalty)).abs() < 1e-4 * total,
        "loss(_, true) {total} is not cross-entropy {ce} + penalty {penalty}"
    );
    let eval = tr.loss(&batch, false).expect("eval loss");
    assert!(
        (eval - total).abs() > 0.5 * penalty,
        "evaluation loss {eval} carries the penalty"
    );
    // The penalty makes some entries' gradients large (|g| ~ 0.4): a half step keeps the
    // curvature of the cross-entropy out of the difference, at twice the noise.
    check_fd(&mut tr, FD_EPS / 2.0, 1e-2, 2.0 * FD_ATOL);
}

#[test]
fn fd_q8_0_exact_base() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "q8.gguf",
        2,
        QuantType::Q8_0,
        QuantType::Q8_0,
        true,
    );
    let lora = lora_nonzero(&model, lora_cfg(), 4);
    let mut tr = Trainable::new(
        &model,
        lora,
        opts(Checkpointing::EveryLayer, BaseMatmul::Exact),
    )
    .expect("trainable");
    check_fd(&mut tr, FD_EPS, 1e-2, FD_ATOL);
}

#[test]
fn fd_q4_1_exact_base_untied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "q41.gguf",
        2,
        QuantType::Q4_1,
        QuantType::Q8_0,
        false,
    );
    let lora = lora_nonzero(&model, lora_cfg(), 5);
    let mut tr = Trainable::new(&model, lora, opts(Checkpointing::Off, BaseMatmul::Exact))
        .expect("trainable");
    check_fd(&mut tr, FD_EPS, 1e-2, FD_ATOL);
}

#[test]
fn fd_q4_1_tiled_base_every_layer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "q41t.gguf",
        2,
        QuantType::Q4_1,
        QuantType::Q8_0,
        true,
    );
    let lora = lora_nonzero(&model, lora_cfg(), 6);
    let mut tr = Trainable::new(
        &model,
        lora,
        opts(Checkpointing::EveryLayer, BaseMatmul::Tiled),
    )
    .expect("trainable");
    check_fd(&mut tr, FD_EPS, 1e-2, FD_ATOL);
}
