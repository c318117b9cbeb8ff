//! A model merged with `graft merge` (adapter folded into the weights) against the base with
//! the same adapter applied at run time, on the real model (SmolLM2-135M-Instruct Q4_1).
//!
//! Measured on 128 positions of real text with the rank-16 test adapter at scale 1 (the adapter
//! moves the logits by a relative RMS of about 0.07–0.09):
//! - merged to f16 vs the f16 base + adapter at run time: top-1 agreement 1.000, relative RMS
//!   difference 0.0048 (asserted: ≥ 0.99, ≤ 0.01, and under a fifth of the adapter's effect);
//! - merged into the base's Q4_1 (the default) vs the Q4_1 base + adapter at run time: top-1
//!   0.961, relative RMS 0.091 (asserted: ≥ 0.85, ≤ 0.25). Requantizing to Q4_1 adds rounding as
//!   large as a small adapter's whole effect, which is why `graft merge --type f16` is the
//!   faithful choice.

mod lora_support;
mod model_common;

use graft_quant::gguf::GgufFile;
use graft_quant::QuantType;
use graft_runtime::adapter::{merge_to_file, LoraAdapter, MergeItem};
use graft_runtime::lora::LoadedAdapter;
use graft_runtime::{Model, ModelParams, Session, SessionParams};
use lora_support::gen::{random_adapter, Dims, TEST_ADAPTERS};
use model_common::{golden, model_path, THREADS};

const N_POS: usize = 128;

fn argmax(l: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in l.iter().enumerate() {
        if x > l[best] {
            best = i;
        }
    }
    best
}

fn logits(
    model: &Model,
    adapter: Option<(std::sync::Arc<LoadedAdapter>, f32)>,
    ids: &[u32],
) -> Vec<f32> {
    let mut s = Session::new(
        model,
        SessionParams {
            n_ctx: 256,
            n_batch: 64,
        },
    )
    .expect("session");
    if let Some(a) = adapter {
        s.set_adapters(&[a]).expect("set adapter");
    }
    s.eval_all(ids).expect("eval").to_vec()
}

/// (top-1 agreement, RMS of the difference / RMS of the reference).
fn compare(reference: &[f32], other: &[f32], n_vocab: usize) -> (f64, f64) {
    let n = reference.len() / n_vocab;
    let agree = (0..n)
        .filter(|&p| {
            let r = p * n_vocab..(p + 1) * n_vocab;
            argmax(&reference[r.clone()]) == argmax(&other[r])
        })
        .count();
    let (mut d2, mut r2) = (0f64, 0f64);
    for (a, b) in reference.iter().zip(other) {
        d2 += f64::from(a - b).powi(2);
        r2 += f64::from(*a).powi(2);
    }
    (agree as f64 / n as f64, (d2 / r2).sqrt())
}

#[test]
fn merged_model_matches_adapter_applied_at_run_time() {
    let base = Model::load(model_path(), ModelParams { threads: THREADS }).expect("load model");
    let c = base.config();
    let dims = Dims {
        n_layer: c.n_layer,
        n_embd: c.n_embd,
        n_ff: c.n_ff,
        q_dim: c.q_dim(),
        kv_dim: c.kv_dim(),
    };
    let n_vocab = c.n_vocab;
    let (name, rank, alpha, seed) = TEST_ADAPTERS[1];
    let dir = tempfile::tempdir().expect("tempdir");
    let adapter_path = dir.path().join(name);
    random_adapter(dims, rank, alpha, seed)
        .save_gguf(&adapter_path, QuantType::F32)
        .expect("save adapter");

    let g = golden("logits_golden.json");
    let ids: Vec<u32> = g["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .take(N_POS)
        .map(|x| x.as_u64().expect("id") as u32)
        .collect();

    let base_file = GgufFile::open(model_path()).expect("open base");
    let lora = LoraAdapter::load_with_base(&adapter_path, &base_file).expect("adapter");

    // 1. f16: the base converted to f16 (a merge at scale 0) with the adapter applied at run
    //    time, against the adapter merged into f16 weights. Same weight path on both sides, so
    //    what differs is only where W + s·BA is rounded to f16.
    let f16_base_path = dir.path().join("base-f16.gguf");
    let zero = MergeItem {
        adapter: &lora,
        scale: 0.0,
        label: name,
    };
    merge_to_file(&base_file, &[zero], Some(QuantType::F16), &f16_base_path).expect("f16 base");
    let f16_base = Model::load(&f16_base_path, ModelParams { threads: THREADS }).expect("f16 base");
    let item = MergeItem {
        adapter: &lora,
        scale: 1.0,
        label: name,
    };

    // 2. The base's own type (Q4_1): the Q4_1 base with the adapter at run time, against the
    //    adapter merged and requantized to Q4_1 (which adds Q4_1 rounding to every adapted weight).
    let cases: [(&Model, Option<QuantType>, f64, f64); 2] = [
        (&f16_base, Some(QuantType::F16), 0.99, 0.01),
        (&base, None, 0.85, 0.25),
    ];
    for (reference_model, ty, min_agree, max_rel) in cases {
        let loaded = LoadedAdapter::load(reference_model, &adapter_path).expect("load adapter");
        let at_run_time = logits(reference_model, Some((loaded, 1.0)), &ids);
        let without = logits(reference_model, None, &ids);
        let (_, rel_base) = compare(&at_run_time, &without, n_vocab);

        let label = ty.map_or("base type", QuantType::name);
        let out = dir.path().join(format!("merged-{label}.gguf"));
        merge_to_file(&base_file, &[item], ty, &out).expect("merge");
        let merged = Model::load(&out, ModelParams { threads: THREADS }).expect("load merged");
        let m = logits(&merged, None, &ids);
        let (agree, rel) = compare(&at_run_time, &m, n_vocab);
        eprintln!(
            "merged ({label}) vs run-time adapter: top-1 {agree:.3}, rel RMS diff {rel:.4} \
             (the adapter itself moves logits by {rel_base:.4})"
        );
        assert!(
            agree >= min_agree,
            "{label}: top-1 agreement {agree} < {min_agree}"
        );
        assert!(
            rel <= max_rel,
            "{label}: relative RMS difference {rel} > {max_rel}"
        );
        if ty == Some(QuantType::F16) {
            // Without requantization the merge must carry the adapter almost exactly: far
            // closer to base+adapter than the base alone is.
            assert!(
                rel < rel_base / 5.0,
                "{label}: merged {rel} vs base {rel_base}"
            );
        }
    }
}
