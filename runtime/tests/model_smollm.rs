//! The real model (SmolLM2-135M-Instruct Q4_1) against llama.cpp's answers.

mod model_common;

use graft_runtime::chat_template::{ChatMessage, ChatTemplate};
use graft_runtime::generate::{generate, GenerateParams, StopReason};
use graft_runtime::perplexity::perplexity;
use graft_runtime::sampling::{Sampler, SamplerParams};
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::{Model, ModelParams, Session, SessionParams};
use model_common::{golden, model_path, THREADS};

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
    greedy_with_margins(s, prompt, n, stop).0
}

/// Greedy ids and, per step, the top-1 logit minus the runner-up's (as the oracle reports).
fn greedy_with_margins(
    s: &mut Session<'_>,
    prompt: &[u32],
    n: usize,
    stop: Option<u32>,
) -> (Vec<u32>, Vec<f32>) {
    let mut sampler = Sampler::new(SamplerParams::greedy());
    let mut out = Vec::new();
    let mut margins = Vec::new();
    let mut logits = s.eval(prompt).expect("prefill").to_vec();
    for _ in 0..n {
        let id = sampler.sample(&logits);
        let runner_up = logits
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != id as usize)
            .map(|(_, &v)| v)
            .fold(f32::NEG_INFINITY, f32::max);
        margins.push(logits[id as usize] - runner_up);
        out.push(id);
        if Some(id) == stop {
            break;
        }
        logits = s.eval(&[id]).expect("decode").to_vec();
    }
    (out, margins)
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

fn tokenizer(m: &Model) -> Tokenizer {
    Tokenizer::from_gguf(m.gguf().metadata()).expect("tokenizer from the model")
}

#[test]
fn france_chat_through_tokenizer_template_and_generate() {
    let m = load();
    let tok = tokenizer(&m);
    let tmpl = ChatTemplate::chatml().expect("chatml");
    let prompt = tmpl
        .render(
            &[ChatMessage::new("user", "What is the capital of France?")],
            true,
        )
        .expect("render");
    let ids = tok.encode(&prompt, true, true);
    assert_eq!(ids, FRANCE_PROMPT);
    let mut s = Session::new(&m, SessionParams::default()).expect("session");
    let params = GenerateParams {
        max_tokens: 64,
        stop: vec![],
        sampler: SamplerParams::greedy(),
    };
    let mut streamed = String::new();
    let g = generate(&mut s, &tok, &ids, &params, &mut |p| {
        streamed.push_str(p);
        true
    })
    .expect("generate");
    assert_eq!(g.ids, FRANCE_ANSWER);
    assert_eq!(g.text, "The capital of France is Paris.");
    assert_eq!(streamed, g.text);
    assert_eq!(g.stop_reason, StopReason::EndOfGeneration);
}

#[test]
fn stop_string_cuts_the_text() {
    let m = load();
    let tok = tokenizer(&m);
    let mut s = Session::new(&m, SessionParams::default()).expect("session");
    let params = GenerateParams {
        max_tokens: 64,
        stop: vec![" is".to_string()],
        sampler: SamplerParams::greedy(),
    };
    let g = generate(&mut s, &tok, &FRANCE_PROMPT, &params, &mut |_| true).expect("generate");
    assert_eq!(g.text, "The capital of France");
    assert_eq!(g.stop_reason, StopReason::StopString);
}

/// llama.cpp's top-2 logit margin below which a greedy step is a near-tie: engines that round
/// differently (f16 KV, 8-bit activations, flash attention) may pick either token.
const NEAR_TIE: f64 = 0.25;

#[test]
fn greedy_continuations_match_llama_cpp_goldens() {
    let m = load();
    let gold = golden("greedy_golden.json");
    let cases = gold["cases"].as_array().expect("cases");
    let mut full = 0;
    let mut max_margin_err = 0.0f64;
    let mut report = Vec::new();
    let mut bad = Vec::new();
    for c in cases {
        let prompt: Vec<u32> = ids_of(&c["prompt_ids"]);
        let want: Vec<u32> = ids_of(&c["ids"]);
        let margins: Vec<f64> = c["margins"]
            .as_array()
            .expect("margins")
            .iter()
            .map(|x| x.as_f64().expect("margin"))
            .collect();
        let n = want.len().min(32);
        let mut s = Session::new(&m, SessionParams::default()).expect("session");
        let (got, our_margins) = greedy_with_margins(&mut s, &prompt, n, None);
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        let name = c["prompt"].as_str().unwrap_or("?").to_string();
        // How far our top-2 margins are from llama.cpp's over the steps that agree: 0 means
        // bit-identical logits at those steps' top two.
        let margin_err = our_margins[..same.min(n)]
            .iter()
            .zip(&margins)
            .map(|(&a, &b)| (a - b as f32).abs() as f64)
            .fold(0.0f64, f64::max);
        max_margin_err = max_margin_err.max(margin_err);
        if same >= n {
            full += 1;
            report.push(format!(
                "{name:?}: {n}/{n} (margins within {margin_err:.2e})"
            ));
        } else {
            report.push(format!(
                "{name:?}: {same}/{n}, diverges where llama.cpp's margin is {:.2} \
                 (margins before within {margin_err:.2e})",
                margins[same]
            ));
            if margins[same] >= NEAR_TIE {
                bad.push(name);
            }
        }
    }
    eprintln!(
        "greedy goldens: {full}/{} match llama.cpp for the first 32 tokens; top-2 margins \
         within {max_margin_err:.2e} of llama.cpp's where the ids agree\n  {}",
        cases.len(),
        report.join("\n  ")
    );
    // Every divergence must start at a near-tie of llama.cpp's own logits. Where graft runs
    // its x86 kernels (AVX2 or AVX-512), it rounds exactly as llama.cpp's x86 CPU backend
    // (Q8 activations, block order, flash-attention accumulators, ggml expf, RoPE FMAs), so
    // all 8 prompts match with identical top-2 margins; elsewhere (scalar, NEON: other
    // summation orders) at least 6 of 8 ("most", issue 3) must match.
    assert!(
        bad.is_empty(),
        "diverged at a clear choice: {bad:?}\n{report:?}"
    );
    if x86_kernels() {
        assert_eq!(full, cases.len(), "{report:?}");
        assert_eq!(max_margin_err, 0.0, "logits not bit-identical: {report:?}");
    } else {
        assert!(
            full * 4 >= cases.len() * 3,
            "only {full}/{} match: {report:?}",
            cases.len()
        );
    }
}

/// Whether the kernels in use are graft's x86 ones, which reproduce llama.cpp's x86 rounding
/// (AVX2, AVX-512; not AMX, whose int8 tiles sum the blocks in another f32 order: on AMX hosts
/// `scripts/test.sh` reruns this file with `GRAFT_ISA=avx512`).
fn x86_kernels() -> bool {
    use graft_kernels::cpu::{isa, Isa};
    matches!(isa(), Isa::Avx2 | Isa::Avx512)
}

#[test]
fn top1_agreement_with_llama_cpp_logits() {
    let m = load();
    let gold = golden("logits_golden.json");
    let ids = ids_of(&gold["ids"]);
    let positions = gold["positions"].as_array().expect("positions");
    assert!(positions.len() >= 500);
    let nv = m.config().n_vocab;
    let mut s = Session::new(
        &m,
        SessionParams {
            n_ctx: ids.len(),
            n_batch: 512,
        },
    )
    .expect("session");
    let logits = s.eval_all(&ids).expect("eval").to_vec();
    let (mut agree, mut top10_overlap, mut max_lp_err) = (0usize, 0usize, 0.0f64);
    for p in positions {
        let pos = p["pos"].as_u64().expect("pos") as usize;
        let row = &logits[pos * nv..(pos + 1) * nv];
        let argmax = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|x| x.0 as u64);
        if argmax == p["argmax"].as_u64() {
            agree += 1;
        }
        let top = p["top"].as_array().expect("top");
        let lse = {
            let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            mx + row.iter().map(|&l| (l as f64 - mx).exp()).sum::<f64>().ln()
        };
        // Their top-1 log-probability under our logits.
        let id0 = top[0]["id"].as_u64().expect("id") as usize;
        let lp0 = top[0]["logprob"].as_f64().expect("logprob");
        max_lp_err = max_lp_err.max((row[id0] as f64 - lse - lp0).abs());
        let mut ours: Vec<usize> = (0..nv).collect();
        ours.select_nth_unstable_by(9, |&a, &b| row[b].total_cmp(&row[a]));
        top10_overlap += top
            .iter()
            .filter(|t| ours[..10].contains(&(t["id"].as_u64().unwrap_or(u64::MAX) as usize)))
            .count();
    }
    let rate = agree as f64 / positions.len() as f64;
    eprintln!(
        "top-1 agreement with llama.cpp: {agree}/{} = {rate:.4}; top-10 overlap {:.3}; \
         max |logprob diff| of llama.cpp's top-1 {max_lp_err:.3}",
        positions.len(),
        top10_overlap as f64 / (10 * positions.len()) as f64
    );
    // Bit-identical logits on graft's x86 kernels (see the greedy test); 95% elsewhere.
    if x86_kernels() {
        assert_eq!(agree, positions.len(), "top-1 agreement {rate}");
        assert!(
            max_lp_err < 1e-6,
            "log-probabilities differ by {max_lp_err}"
        );
    } else {
        assert!(rate >= 0.95, "top-1 agreement {rate}");
    }
}

#[test]
fn perplexity_gpl3_c256_within_1pct_of_llama_cpp() {
    let m = load();
    let gold = golden("perplexity_golden.json");
    let want = gold["ppl"].as_f64().expect("ppl");
    let tok = tokenizer(&m);
    let text = std::fs::read_to_string("/usr/share/common-licenses/GPL-3")
        .expect("/usr/share/common-licenses/GPL-3 (Debian's base-files) must exist");
    let ids = tok.encode(&text, true, false);
    assert_eq!(
        ids.len() as u64,
        gold["tokens_total"].as_u64().expect("count")
    );
    let mut s = Session::new(
        &m,
        SessionParams {
            n_ctx: 256,
            n_batch: 256,
        },
    )
    .expect("session");
    let bos = tok.added_bos();
    let r = perplexity(&mut s, &ids, 256, bos, &mut |_, _, _| {}).expect("perplexity");
    eprintln!(
        "perplexity GPL-3 -c 256: {:.4} ± {:.4} over {} tokens (llama.cpp {want:.4})",
        r.ppl, r.ppl_err, r.tokens_scored
    );
    assert_eq!(
        r.tokens_scored as u64,
        gold["tokens_scored"].as_u64().expect("n")
    );
    assert!(
        (r.ppl - want).abs() / want < 0.01,
        "ppl {} vs llama.cpp {want}",
        r.ppl
    );
}

#[test]
fn sampling_is_deterministic_per_seed() {
    let m = load();
    let tok = tokenizer(&m);
    let run = |seed: u64| {
        let mut s = Session::new(&m, SessionParams::default()).expect("session");
        let params = GenerateParams {
            max_tokens: 32,
            stop: vec![],
            sampler: SamplerParams {
                temperature: 1.0,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                seed,
                ..SamplerParams::default()
            },
        };
        let prompt = tok.encode("Once upon a time", true, false);
        generate(&mut s, &tok, &prompt, &params, &mut |_| true)
            .expect("generate")
            .ids
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert_ne!(a, run(43));
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}
