//! The training forward's logits against the inference runtime (`Session::eval_all`): the base
//! alone (B = 0) on tiny f32 / quantized models and on the real SmolLM2 model, and a non-zero
//! adapter against the runtime on a model whose f32 weights were merged (`W + s·B·A`). The
//! training forward runs with `kv_f16` (k, v rounded to f16 like the runtime's KV cache).

mod model_common;

use graft_quant::QuantType;
use graft_runtime::{Model, ModelParams, Session, SessionParams};
use graft_testkit::TinyModel;
use graft_train::model::{
    BaseMatmul, Batch, LoraConfig, LoraParams, Target, TrainOptions, Trainable,
};
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
            // The runtime keeps K/V in f16 and rounds activations to 8 bits in its matmuls.
            kv_f16: true,
            base_matmul: BaseMatmul::Fast,
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
fn base_only_matches_runtime_on_a_tiny_smollm3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model_arch(
        dir.path(),
        "smollm3.gguf",
        "smollm3",
        4,
        QuantType::Q8_0,
        QuantType::Q8_0,
        false,
    );
    let lora = LoraParams::new(model.config(), LoraConfig::default()).expect("lora");
    let t = tokens(40);
    let rel = rel_diff(&train_logits(&model, lora, &t), &runtime_logits(&model, &t));
    assert!(
        rel <= 1e-4,
        "smollm3: training logits differ from the runtime's by {rel:.3e}"
    );
}

#[test]
fn base_only_matches_runtime_on_every_family_and_rope_variant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let q8 = QuantType::Q8_0;
    let variants = [
        ("qwen2", tiny("qwen2", 3, 3, q8, q8, true)),
        ("qwen3", tiny("qwen3", 4, 3, q8, q8, false)),
        (
            "llama rope_freqs",
            TinyModel {
                rope_freqs: true,
                ..tiny("llama", 5, 3, q8, q8, true)
            },
        ),
        ("gemma3", tiny("gemma3", 7, 3, q8, q8, true)),
        ("phi3", tiny("phi3", 9, 3, q8, q8, true)),
        (
            "gemma3 softcap",
            TinyModel {
                final_softcap: Some(4.0),
                ..tiny("gemma3", 8, 4, q8, q8, false)
            },
        ),
        (
            "qwen3 yarn",
            TinyModel {
                rope_scaling: Some(("yarn".into(), 4.0)),
                n_ctx: 16,
                ..tiny("qwen3", 6, 3, q8, q8, true)
            },
        ),
    ];
    for (name, m) in variants {
        let (model, _) = load_tiny(dir.path(), "m.gguf", &m);
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

/// Phi-3 fuses q/k/v and gate|up: the trained per-projection pairs are written as one pair
/// per fused tensor (`attn_qkv`, `ffn_up`; PEFT `qkv_proj`, `gate_up_proj`), and the runtime
/// splits them again: the adapter file gives the training forward's logits.
#[test]
fn fused_phi3_adapter_round_trips_through_gguf_and_peft() {
    use graft_runtime::lora::LoadedAdapter;
    let dir = tempfile::tempdir().expect("tempdir");
    let q8 = QuantType::Q8_0;
    let (model, _) = load_tiny(dir.path(), "phi3.gguf", &tiny("phi3", 11, 3, q8, q8, true));
    let cfg = LoraConfig {
        rank: 4,
        alpha: 6.0,
        ..LoraConfig::default()
    };
    let lora = lora_nonzero(&model, cfg, 31);
    let mut adapter = lora.to_adapter();
    adapter.fuse_for(model.spec(), false);
    assert!(adapter.tensors.contains_key("blk.0.attn_qkv.weight"));
    assert!(!adapter.tensors.contains_key("blk.0.attn_q.weight"));
    assert_eq!(adapter.tensors["blk.2.ffn_up.weight"].rank, 8);
    let gguf = dir.path().join("phi3-lora.gguf");
    adapter.save_gguf(&gguf, QuantType::F32).expect("save gguf");
    let peft = dir.path().join("phi3-peft");
    adapter.save_peft(&peft, QuantType::F32).expect("save peft");
    let cfg_json = std::fs::read_to_string(peft.join("adapter_config.json")).expect("config");
    assert!(
        cfg_json.contains("qkv_proj") && cfg_json.contains("gate_up_proj"),
        "{cfg_json}"
    );
    let t = tokens(30);
    let base = runtime_logits(&model, &t);
    let ours = train_logits(&model, lora, &t);
    for path in [&gguf, &peft] {
        let a = LoadedAdapter::load(&model, path).expect("load fused adapter");
        assert_eq!(a.n_pairs(), 3 * 7, "{}", path.display());
        let mut s = Session::new(
            &model,
            SessionParams {
                n_ctx: 256,
                n_batch: 256,
            },
        )
        .expect("session");
        s.set_adapters(&[(a, 1.0)]).expect("adapters");
        let got = s.eval_all(&t).expect("eval").to_vec();
        let rel = rel_diff(&got, &ours);
        assert!(
            rel_diff(&base, &ours) > 1e-2,
            "the adapter changes the logits"
        );
        assert!(rel <= 1e-4, "{}: {rel:.3e}", path.display());
    }
}

/// The fused Phi-3 adapter graft writes loads in llama.cpp and moves its logits as graft's:
/// llama.cpp's argmax equals graft's at every position, logits within 1e-3 of the largest.
#[test]
#[ignore = "needs the llama.cpp oracle (GRAFT_LLAMA_ORACLE); run by scripts/test.sh --parity"]
fn fused_phi3_adapter_matches_llama_cpp() {
    use graft_runtime::lora::LoadedAdapter;
    let dir = tempfile::tempdir().expect("tempdir");
    let f = QuantType::F32;
    let m = TinyModel {
        oracle_vocab: true,
        ..tiny("phi3", 12, 3, f, f, true)
    };
    let (model, _) = load_tiny(dir.path(), "phi3.gguf", &m);
    let lora = lora_nonzero(&model, LoraConfig::default(), 32);
    let mut adapter = lora.to_adapter();
    adapter.fuse_for(model.spec(), false);
    let path = dir.path().join("phi3-lora.gguf");
    adapter.save_gguf(&path, QuantType::F32).expect("save");
    let t = tokens(20);
    let a = LoadedAdapter::load(&model, &path).expect("load");
    let mut s = Session::new(
        &model,
        SessionParams {
            n_ctx: 64,
            n_batch: 64,
        },
    )
    .expect("session");
    s.set_adapters(&[(a, 1.0)]).expect("adapters");
    let ours = s.eval_all(&t).expect("eval").to_vec();
    let ids = dir.path().join("ids.json");
    std::fs::write(&ids, serde_json::to_vec(&t).expect("json")).expect("write");
    let rep = graft_testkit::oracle::run(&[
        "logits",
        "-m",
        &dir.path().join("phi3.gguf").to_string_lossy(),
        "--ids-file",
        &ids.to_string_lossy(),
        "--top",
        "100000",
        "-t",
        "1",
        "--lora",
        &path.to_string_lossy(),
    ]);
    let scale = ours.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    for (p, pos) in rep["positions"]
        .as_array()
        .expect("positions")
        .iter()
        .enumerate()
    {
        let row = &ours[p * VOCAB..(p + 1) * VOCAB];
        let arg = (0..VOCAB)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .expect("argmax");
        assert_eq!(pos["argmax"].as_u64(), Some(arg as u64), "position {p}");
        for c in pos["top"].as_array().expect("top") {
            let id = c["id"].as_u64().expect("id") as usize;
            let d = (c["logit"].as_f64().expect("logit") - f64::from(row[id])).abs();
            assert!(d <= 1e-3 * f64::from(scale), "position {p} id {id}: {d}");
        }
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
    // The merged model computes W' x where training computes W x + s·B(A x): a different
    // rounding path, amplified by the runtime's f16 attention accumulation (llama.cpp's), so
    // the bound is 1e-3 — still ~1000x below what the adapter moves. (The issue's "training
    // forward equals the runtime with the same adapter" is model_runtime_parity.rs: 0.0.)
    assert!(
        rel <= 1e-3,
        "training logits with the adapter differ from the merged model's by {rel:.3e}"
    );
}

/// KL(p ‖ q) of the softmaxes of two logit rows, in f64.
fn kl(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let logsm = |v: &[f32]| -> Vec<f64> {
        let mx = v.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = mx
            + v.iter()
                .map(|&x| (f64::from(x) - mx).exp())
                .sum::<f64>()
                .ln();
        v.iter().map(|&x| f64::from(x) - lse).collect()
    };
    let (lp, lq) = (logsm(p_logits), logsm(q_logits));
    lp.iter().zip(&lq).map(|(a, b)| a.exp() * (a - b)).sum()
}

/// On the real Q4_1 model the runtime rounds activations to 8 bits before every quantized
/// matmul, which turns any last-bit difference into whole quantization steps that grow over
/// 30 layers (llama.cpp moves its own logits by up to ~2.4 between attention kernels). So:
/// position 0 (attention over one key: no kernel difference) must be bit-identical — the whole
/// non-attention path equals the runtime's — and later positions, where the training attention
/// kernel (online softmax) rounds differently, must agree on the top-1 token with a KL no larger
/// than twice the runtime's own disagreement between prompt batch sizes 256 and 3.
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
    let nv = model.config().n_vocab;
    let row = |v: &[f32], i: usize| v[i * nv..(i + 1) * nv].to_vec();
    assert_eq!(
        row(&ours, 0),
        row(&theirs, 0),
        "position 0 must be bit-identical"
    );
    let argmax = |v: &[f32]| {
        (0..v.len())
            .max_by(|&a, &b| v[a].total_cmp(&v[b]))
            .unwrap_or(0)
    };
    let mut max_kl = 0f64;
    for i in 0..t.len() {
        let (a, b) = (row(&ours, i), row(&theirs, i));
        assert_eq!(argmax(&a), argmax(&b), "position {i}: top-1 differs");
        max_kl = max_kl.max(kl(&b, &a));
    }
    // The runtime against itself, prompt in batches of 3 tokens (other attention call shapes).
    let mut s3 = Session::new(
        &model,
        SessionParams {
            n_ctx: 256,
            n_batch: 3,
        },
    )
    .expect("session");
    let chunked = s3.eval_all(&t).expect("eval").to_vec();
    let self_kl = (0..t.len())
        .map(|i| kl(&row(&theirs, i), &row(&chunked, i)))
        .fold(0.0, f64::max);
    eprintln!(
        "runtime batch 256 vs batch 3: max KL {self_kl:.3e}, rel {:.3e}",
        rel_diff(&chunked, &theirs)
    );
    let rel = rel_diff(&ours, &theirs);
    eprintln!("SmolLM2: max rel diff {rel:.3e}, max KL {max_kl:.3e}, top-1 16/16");
    // Within twice the runtime's own batch-size disagreement.
    assert!(
        max_kl <= 2.0 * self_kl.max(5e-3),
        "KL(runtime ‖ training) up to {max_kl:.3e} (runtime vs itself {self_kl:.3e})"
    );
    // With kv_f16 the training forward runs the runtime's own attention: within 1e-4.
    assert!(
        rel <= 1e-4,
        "training logits differ from the runtime's by {rel:.3e}"
    );
}
