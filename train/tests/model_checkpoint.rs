//! Checkpointing only changes what is stored, not the math: gradients and loss with
//! checkpointing off, every layer and every 2 layers are bitwise identical (quantized base,
//! fast matmuls, dropout on, 3 layers so the segments are uneven), for a llama and for a
//! Gemma 3 (post-norms: its recompute keeps the down projection, whose output the post-FFN
//! norm's backward reads; the llama's skips it).

mod model_common;

use graft_quant::QuantType;
use graft_train::model::{BaseMatmul, Checkpointing, LoraConfig, TrainOptions, Trainable};
use model_common::*;

#[test]
fn checkpointing_gives_identical_gradients() {
    identical_gradients("llama");
}

#[test]
fn checkpointing_gives_identical_gradients_with_post_norms() {
    identical_gradients("gemma3");
}

fn identical_gradients(arch: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model_arch(
        dir.path(),
        "q41.gguf",
        arch,
        3,
        QuantType::Q4_1,
        QuantType::Q8_0,
        true,
    );
    assert_eq!(
        model.spec().layers.iter().all(|l| l.post_norms),
        arch == "gemma3"
    );
    let batch = packed_batch();
    let mut results = Vec::new();
    for ck in [
        Checkpointing::Off,
        Checkpointing::EveryLayer,
        Checkpointing::EveryN(2),
    ] {
        let cfg = LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.1,
            ..LoraConfig::default()
        };
        let lora = lora_nonzero(&model, cfg, 11);
        let opts = TrainOptions {
            threads: 2,
            checkpointing: ck,
            base_matmul: BaseMatmul::Fast,
            head_chunk: 7,
            kv_f16: false,
            ..TrainOptions::default()
        };
        let mut tr = Trainable::new(&model, lora, opts).expect("trainable");
        tr.set_dropout_step(3);
        let (loss, grads) = gradients(&mut tr, &batch);
        // A second step accumulates twice the gradient (up to rounding of the running sums).
        tr.forward(&batch).expect("forward");
        tr.backward().expect("backward");
        for (t, g) in tr.lora().tensors().iter().zip(&grads) {
            let scale = g.iter().fold(0f32, |m, v| m.max(2.0 * v.abs()));
            for (a, b) in t.grad.iter().zip(g) {
                assert!(
                    (a - 2.0 * b).abs() <= 1e-5 * scale,
                    "{}: accumulation {a} vs 2 x {b}",
                    t.name
                );
            }
        }
        results.push((ck, loss, grads));
    }
    let (_, loss0, g0) = &results[0];
    assert!(g0.iter().flatten().any(|&v| v != 0.0));
    for (ck, loss, g) in &results[1..] {
        assert_eq!(loss.to_bits(), loss0.to_bits(), "{ck:?}: loss");
        assert_same_bits(&format!("{ck:?}"), g, g0);
    }
}

#[test]
fn backward_without_forward_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "f32.gguf",
        2,
        QuantType::F32,
        QuantType::F32,
        true,
    );
    let lora = lora_nonzero(&model, LoraConfig::default(), 1);
    let mut tr = Trainable::new(&model, lora, TrainOptions::default()).expect("trainable");
    assert!(tr.backward().is_err());
    let batch = packed_batch();
    tr.forward(&batch).expect("forward");
    tr.backward().expect("backward");
    assert!(
        tr.backward().is_err(),
        "a second backward needs a new forward"
    );
}

#[test]
fn segment_plans() {
    use graft_train::model::SegmentPlan;
    let p = SegmentPlan::new(Checkpointing::Off, 30).expect("plan");
    assert_eq!((p.seg_len, p.segments.clone()), (30, vec![(0, 30)]));
    let p = SegmentPlan::new(Checkpointing::EveryLayer, 3).expect("plan");
    assert_eq!(p.segments, vec![(0, 1), (1, 1), (2, 1)]);
    let p = SegmentPlan::new(Checkpointing::EveryN(4), 10).expect("plan");
    assert_eq!(
        (p.seg_len, p.segments.clone()),
        (4, vec![(0, 4), (4, 4), (8, 2)])
    );
    let p = SegmentPlan::new(Checkpointing::EveryN(50), 3).expect("plan");
    assert_eq!(p.segments, vec![(0, 3)]);
    assert!(SegmentPlan::new(Checkpointing::EveryN(0), 3).is_err());
}

/// With the fast base matmuls (8-bit activations, as inference) the gradient is that of the
/// exact-activation function evaluated at slightly rounded activations: it stays close to the
/// exact-mode gradient (which the finite-difference tests check). Measured on this tiny Q4_1
/// model: cosine 0.9984, relative difference 5.6e-2.
#[test]
fn fast_base_gradient_is_close_to_exact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "q41.gguf",
        3,
        QuantType::Q4_1,
        QuantType::Q8_0,
        true,
    );
    let batch = packed_batch();
    let mut all = Vec::new();
    for mode in [BaseMatmul::Exact, BaseMatmul::Fast, BaseMatmul::Tiled] {
        let cfg = LoraConfig {
            rank: 4,
            alpha: 8.0,
            ..LoraConfig::default()
        };
        let lora = lora_nonzero(&model, cfg, 12);
        let opts = TrainOptions {
            base_matmul: mode,
            ..TrainOptions::default()
        };
        let mut tr = Trainable::new(&model, lora, opts).expect("trainable");
        let (_, g) = gradients(&mut tr, &batch);
        all.push(g.concat());
    }
    let (e, f) = (&all[0], &all[1]);
    let dot: f64 = e
        .iter()
        .zip(f)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    let ne: f64 = e.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
    let nf: f64 = f.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
    let diff: f64 = e
        .iter()
        .zip(f)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    eprintln!(
        "fast vs exact: cosine {:.6}, |diff|/|g| {:.3e}",
        dot / (ne * nf),
        diff / ne
    );
    assert!(dot / (ne * nf) > 0.995, "cosine {}", dot / (ne * nf));
    assert!(diff / ne < 0.1, "relative difference {}", diff / ne);
    // Tiled is Exact's function in f32 sums: far closer than Fast's 8-bit activations.
    let t = &all[2];
    let diff_t: f64 = e
        .iter()
        .zip(t)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    eprintln!("tiled vs exact: |diff|/|g| {:.3e}", diff_t / ne);
    assert!(diff_t / ne < 1e-3, "tiled vs exact: {}", diff_t / ne);
    assert!(diff_t < diff, "tiled should be closer to exact than fast");
}
