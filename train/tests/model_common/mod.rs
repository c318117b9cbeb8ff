//! Shared helpers of the model tests: a tiny random llama (graft-testkit's `TinyModel`, f32 or
//! quantized projections), LoRA parameters with non-zero `B`, finite differences.

#![allow(dead_code)]

use graft_quant::QuantType;
use graft_runtime::{Model, ModelParams};
use graft_testkit::TinyModel;
use graft_train::data::PackedRow;
use graft_train::model::{Batch, LoraConfig, LoraParams, Trainable};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

pub const VOCAB: usize = 96;
pub const D: usize = 64;
pub const N_HEAD: usize = 4;
pub const N_KV: usize = 2;
pub const HD: usize = D / N_HEAD;
pub const FF: usize = 128;
pub const N_ROT: usize = 16;
pub const EPS: f32 = 1e-5;
pub const BASE: f32 = 10000.0;

pub use graft_testkit::Tensor;

/// The shared tiny model (graft-testkit) with this suite's sizes.
pub fn tiny(
    arch: &str,
    seed: u64,
    n_layer: usize,
    proj: QuantType,
    embd: QuantType,
    tied: bool,
) -> TinyModel {
    TinyModel {
        arch: arch.into(),
        n_vocab: VOCAB,
        n_embd: D,
        n_layer,
        n_ff: FF,
        n_head: N_HEAD,
        n_head_kv: N_KV,
        n_rot: N_ROT,
        eps: EPS,
        rope_base: BASE,
        n_ctx: 128,
        tied,
        proj_type: proj,
        embd_type: embd,
        seed,
        ..TinyModel::for_arch(arch)
    }
}

/// Random tiny llama tensors: projections in `proj`, token embedding in `embd`.
pub fn tiny_tensors(
    seed: u64,
    n_layer: usize,
    proj: QuantType,
    embd: QuantType,
    tied: bool,
) -> Vec<Tensor> {
    tiny("llama", seed, n_layer, proj, embd, tied).tensors()
}

/// Writes the tensors as a llama GGUF.
pub fn write_model(path: &Path, n_layer: usize, tensors: &[Tensor]) {
    write_model_arch(path, "llama", n_layer, tensors)
}

/// Writes the tensors as a GGUF of architecture `arch`.
pub fn write_model_arch(path: &Path, arch: &str, n_layer: usize, tensors: &[Tensor]) {
    let f = QuantType::F32;
    tiny(arch, 0, n_layer, f, f, false).write_with(path, tensors, &[]);
}

/// A tiny model file in `dir`, loaded on one thread.
pub fn tiny_model(
    dir: &Path,
    name: &str,
    n_layer: usize,
    proj: QuantType,
    embd: QuantType,
    tied: bool,
) -> (Model, Vec<Tensor>) {
    tiny_model_arch(dir, name, "llama", n_layer, proj, embd, tied)
}

/// [`tiny_model`] of architecture `arch`.
pub fn tiny_model_arch(
    dir: &Path,
    name: &str,
    arch: &str,
    n_layer: usize,
    proj: QuantType,
    embd: QuantType,
    tied: bool,
) -> (Model, Vec<Tensor>) {
    load_tiny(dir, name, &tiny(arch, 7, n_layer, proj, embd, tied))
}

/// Writes `m` to `dir/name` and loads it on one thread.
pub fn load_tiny(dir: &Path, name: &str, m: &TinyModel) -> (Model, Vec<Tensor>) {
    let path = dir.join(name);
    let tensors = m.write(&path);
    let model = Model::load(&path, ModelParams { threads: 1 }).expect("load tiny model");
    (model, tensors)
}

/// LoRA parameters (rank 4, alpha 8) with `B` filled with random values so every gradient is
/// non-trivial.
pub fn lora_nonzero(model: &Model, cfg: LoraConfig, seed: u64) -> LoraParams {
    let mut p = LoraParams::new(model.config(), cfg).expect("lora params");
    let mut rng = StdRng::seed_from_u64(seed);
    for t in p
        .tensors_mut()
        .iter_mut()
        .filter(|t| t.name.ends_with("lora_b"))
    {
        t.values
            .iter_mut()
            .for_each(|v| *v = rng.gen_range(-0.2f32..0.2));
    }
    p
}

/// Two rows of 24 tokens: row 0 packs two examples (15 + 9 tokens, positions restart), row 1
/// is one example of 20 tokens plus 4 padding tokens; some tokens unscored.
pub fn packed_batch() -> Batch {
    let mut rng = StdRng::seed_from_u64(99);
    let mut ids = |n: usize| {
        (0..n)
            .map(|_| rng.gen_range(0..VOCAB as u32))
            .collect::<Vec<u32>>()
    };
    let (a, b, c) = (ids(15), ids(9), ids(20));
    let row0 = PackedRow {
        ids: [a.clone(), b.clone()].concat(),
        loss_mask: (0..24).map(|i| i % 5 != 2 && i != 3).collect(),
        positions: (0..15u32).chain(0..9).collect(),
        seq_ids: [vec![0; 15], vec![1; 9]].concat(),
        boundaries: vec![0, 15, 24],
        examples: vec![0, 1],
    };
    let row1 = PackedRow {
        ids: c,
        loss_mask: (0..20).map(|i| i >= 6).collect(),
        positions: (0..20u32).collect(),
        seq_ids: vec![0; 20],
        boundaries: vec![0, 20],
        examples: vec![2],
    };
    Batch::from_rows(&[row0, row1], 24).expect("batch")
}

/// Analytic gradient (fresh: zeroed, one forward + backward) of every LoRA tensor.
pub fn gradients(tr: &mut Trainable<'_>, batch: &Batch) -> (f32, Vec<Vec<f32>>) {
    tr.lora_mut().zero_grad();
    let loss = tr.forward(batch).expect("forward");
    tr.backward().expect("backward");
    (
        loss,
        tr.lora().tensors().iter().map(|t| t.grad.clone()).collect(),
    )
}

/// Central difference of the training loss (f64 sum over f32 logits, dropout as in training) in tensor `ti`, element `j`.
pub fn finite_difference(
    tr: &mut Trainable<'_>,
    batch: &Batch,
    ti: usize,
    j: usize,
    eps: f32,
) -> f64 {
    let orig = tr.lora().tensors()[ti].values[j];
    tr.lora_mut().tensors_mut()[ti].values[j] = orig + eps;
    let lp = tr.loss(batch, true).expect("loss +");
    tr.lora_mut().tensors_mut()[ti].values[j] = orig - eps;
    let lm = tr.loss(batch, true).expect("loss -");
    tr.lora_mut().tensors_mut()[ti].values[j] = orig;
    let h = f64::from(orig + eps) - f64::from(orig - eps);
    (lp - lm) / h
}

/// Directional derivative of the training loss along `dir` (added to tensor `ti`), by central
/// differences with step `h`: `(L(θ + h·dir) − L(θ − h·dir)) / 2h`.
pub fn directional_difference(
    tr: &mut Trainable<'_>,
    batch: &Batch,
    ti: usize,
    dir: &[f32],
    h: f32,
) -> f64 {
    let orig = tr.lora().tensors()[ti].values.clone();
    let set = |tr: &mut Trainable<'_>, k: f32| {
        for ((v, &o), &d) in tr.lora_mut().tensors_mut()[ti]
            .values
            .iter_mut()
            .zip(&orig)
            .zip(dir)
        {
            *v = o + k * d;
        }
    };
    set(tr, h);
    let lp = tr.loss(batch, true).expect("loss +");
    set(tr, -h);
    let lm = tr.loss(batch, true).expect("loss -");
    tr.lora_mut().tensors_mut()[ti].values = orig;
    (lp - lm) / (2.0 * f64::from(h))
}

/// Asserts that two sets of LoRA gradients (as [`gradients`] returns them) are bitwise equal,
/// naming `what`, the tensor and the entry of the first difference.
pub fn assert_same_bits(what: &str, got: &[Vec<f32>], want: &[Vec<f32>]) {
    assert_eq!(got.len(), want.len(), "{what}: tensor count");
    for (ti, (a, b)) in got.iter().zip(want).enumerate() {
        assert_eq!(a.len(), b.len(), "{what}: tensor {ti} length");
        for (j, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(
                x.to_bits(),
                y.to_bits(),
                "{what}: tensor {ti} entry {j}: {x} vs {y}"
            );
        }
    }
}
