//! The real model (SmolLM2-135M-Instruct Q4_1) against llama.cpp's answers.

mod model_common;

use graft_runtime::sampling::{Sampler, SamplerParams};
use graft_runtime::{Model, ModelParams, Session, SessionParams};
use model_common::{model_path, THREADS};

/// llama.cpp's chat prompt for "What is the capital of France?" (its built-in ChatML, no system
/// message): 16 tokens, no BOS.
const FRANCE_PROMPT: [u32; 16] = [
    1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198,
];
/// llama.cpp's greedy answer: "The capital of France is Paris." then <|im_end|>.
const FRANCE_ANSWER: [u32; 8] = [504, 3575, 282, 4649, 314, 7042, 30, 2];

fn load() -> Model {
    Model::load(model_path(), ModelParams { threads: THREADS }).expect("load the test model")
}

fn greedy(s: &mut Session<'_>, prompt: &[u32], n: usize, stop: Option<u32>) -> Vec<u32> {
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let mut out = Vec::new();
    let mut logits = s.eval(prompt).expect("prefill").to_vec();
    for _ in 0..n {
        let id = sampler.sample(&logits);
        out.push(id);
        if Some(id) == stop {
            break;
        }
        logits = s.eval(&[id]).expect("decode").to_vec();
    }
    out
}

#[test]
fn config_is_read_from_gguf() {
    let m = load();
    let c = m.config();
    assert_eq!(
        (
            c.n_layer,
            c.n_embd,
            c.n_head,
            c.n_head_kv,
            c.n_ff,
            c.n_vocab
        ),
        (30, 576, 9, 3, 1536, 49152)
    );
    assert_eq!((c.head_dim, c.n_rot), (64, 64));
    assert_eq!(c.rope_freq_base, 100000.0);
    assert!(m.weights().tied_output);
    assert_eq!(m.weights().output.ty, graft_quant::QuantType::Q8_0);
}

#[test]
fn france_greedy_ids_match_llama_cpp() {
    let m = load();
    let mut s = Session::new(
        &m,
        SessionParams {
            n_ctx: 64,
            n_batch: 512,
        },
    )
    .expect("session");
    let got = greedy(&mut s, &FRANCE_PROMPT, 12, Some(2));
    assert_eq!(got, FRANCE_ANSWER);
}
