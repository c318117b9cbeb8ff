//! The training forward's logits against the inference runtime (`Session::eval_all`): the base
//! alone (B = 0) on tiny f32 / quantized models and on the real SmolLM2 model, and a non-zero
//! adapter against the runtime on a model whose f32 weights were merged (`W + s·B·A`).

mod model_common;

use graft_quant::QuantType;
use graft_runtime::{Model, ModelParams, Session, SessionParams};
use graft_train::model::{Batch, LoraConfig, LoraParams, Target, TrainOptions, Trainable};
use model_common::*;

/// `max |a − b| / max |b|`.
fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from((x - y).abs()))
        .fold(0.0, f64::max);
    let den = b.iter().map(|y| f64::from(y.abs())).fold(0.0, f64::max);
    num / den
}

fn runtime_logits(model: &Model, tokens: &[u32]) -> Vec<f32> {
    let mut s = Session::new(
        model,
        SessionParams {
            n_ctx: 256,
            n_batch: 256,
        },
    )
    .expect("session");
    s.eval_all(tokens).expect("eval").to_vec()
}

fn train_logits(model: &Model, lora: LoraParams, tokens: &[u32]) -> Vec<f32> {
    let mut tr = Trainable::new(
        model,
        lora,
        TrainOptions {
            threads: 2,
            ..TrainOptions::default()
        },
    )
    .expect("trainable");
    tr.logits(&Batch::single(tokens).expect("batch"))
        .expect("logits")
}

fn tokens(n: usize) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 37 + 5) % VOCAB as u32).collect()
}

#[test]
fn base_only_matches_runtime_on_tiny_models() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, proj, embd, tied) in [
        ("f32.gguf", QuantType::F32, QuantType::F32, true),
        ("q8.gguf", QuantType::Q8_0, QuantType::Q8_0, false),
        ("q41.gguf", QuantType::Q4_1, QuantType::Q8_0, true),
    ] {
        let (model, _) = tiny_model(dir.path(), name, 3, proj, embd, tied);
        let lora = LoraParams::new(model.config(), LoraConfig::default()).expect("lora");
        let t = tokens(40);
        let rel = rel_diff(&train_logits(&model, lora, &t), &runtime_logits(&model, &t));
        eprintln!("{name}: rel diff {rel:.3e}");
        assert!(
            rel <= 1e-4,
            "{name}: training logits differ from the runtime's by {rel:.3e}"
        );
    }
}

#[test]
fn adapter_matches_runtime_on_merged_weights() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, tensors) = tiny_model(
        dir.path(),
        "f32.gguf",
        3,
        QuantType::F32,
        QuantType::F32,
        true,
    );
    let cfg = LoraConfig {
        rank: 4,
        alpha: 6.0,
        ..LoraConfig::default()
    };
    let lora = lora_nonzero(&model, cfg, 21);
    // Merge W' = W + s·B·A (f64) into a second f32 model.
    let s = f64::from(lora.scale());
    let mut merged = Vec::new();
    for t in &tensors {
        let mut values = t.values.clone();
        for l in 0..3 {
            for tg in Target::ALL {
                if t.name != format!("blk.{l}.{}.weight", tg.gguf_stem()) {
                    continue;
                }
                let (a, b) = lora.pair(l, tg).expect("pair");
                let (n_out, n_in) = lora.dims(tg);
                let r = lora.config().rank;
                for o in 0..n_out {
                    for i in 0..n_in {
                        let ba: f64 = (0..r)
                            .map(|k| {
                                f64::from(b.values[o * r + k]) * f64::from(a.values[k * n_in + i])
                            })
                            .sum();
                        values[o * n_in + i] = (f64::from(values[o * n_in + i]) + s * ba) as f32;
                    }
                }
            }
        }
        merged.push(Tensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            ty: t.ty,
            values,
        });
    }
    let path = dir.path().join("merged.gguf");
    write_model(&path, 3, &merged);
    let merged_model = Model::load(&path, ModelParams { threads: 1 }).expect("load merged");
    let t = tokens(40);
    let ours = train_logits(&model, lora, &t);
    let base = runtime_logits(&model, &t);
    let reference = runtime_logits(&merged_model, &t);
    let rel = rel_diff(&ours, &reference);
    let moved = rel_diff(&base, &reference);
    eprintln!("adapter vs merged: rel diff {rel:.3e} (the adapter moves logits by {moved:.3e})");
    assert!(
        moved > 1e-2,
        "the adapter should change the logits noticeably ({moved:.3e})"
    );
    assert!(
        rel <= 1e-4,
        "training logits with the adapter differ from the merged model's by {rel:.3e}"
    );
}

#[test]
fn base_only_matches_runtime_on_smollm2() {
    let path = graft_quant::model_cache::test_model_path().unwrap_or_else(|e| panic!("{e}"));
    let model = Model::load(&path, ModelParams { threads: 2 }).expect("load SmolLM2");
    let lora = LoraParams::new(model.config(), LoraConfig::default()).expect("lora");
    let t: Vec<u32> = vec![
        1, 9690, 198, 2683, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198,
    ];
    let ours = train_logits(&model, lora, &t);
    let theirs = runtime_logits(&model, &t);
    let rel = rel_diff(&ours, &theirs);
    let argmax = |v: &[f32]| {
        (0..v.len())
            .max_by(|&a, &b| v[a].total_cmp(&v[b]))
            .unwrap_or(0)
    };
    let nv = model.config().n_vocab;
    let same_top1 = (0..t.len())
        .filter(|&i| argmax(&ours[i * nv..(i + 1) * nv]) == argmax(&theirs[i * nv..(i + 1) * nv]))
        .count();
    eprintln!(
        "SmolLM2: rel diff {rel:.3e}, top-1 agreement {same_top1}/{}",
        t.len()
    );
    assert!(
        rel <= 1e-4,
        "training logits differ from the runtime's by {rel:.3e}"
    );
}
