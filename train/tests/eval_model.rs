//! Evaluation on the real test model (SmolLM2-135M-Instruct Q4_1; `scripts/fetch-model.sh`):
//! the greedy predictions are `graft run --chat`'s generations of the same prompts, the loss
//! is a direct NllAccumulator computation over the masked positions, cancel works, and bad
//! data gives errors that name the file and line.

use std::path::{Path, PathBuf};

use graft_quant::model_cache::test_model_path;
use graft_runtime::chat_template::{ChatMessage, ChatTemplate};
use graft_runtime::generate::{generate, GenerateParams};
use graft_runtime::perplexity::NllAccumulator;
use graft_runtime::sampling::SamplerParams;
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::{Model, ModelParams, Session, SessionParams};
use graft_train::data::{Example, LossMask, Renderer};
use graft_train::eval::{evaluate, load_test_set, EvalError, EvalOptions, EvalPhase};

const LIMIT: usize = 4;

fn test_set() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/support-triage/data/test.jsonl")
}

fn model() -> Model {
    let path = test_model_path().unwrap_or_else(|msg| panic!("{msg}"));
    Model::load(path, ModelParams { threads: 2 }).expect("load the test model")
}

fn opts() -> EvalOptions {
    EvalOptions {
        limit: Some(LIMIT),
        n_ctx: 512,
        ..EvalOptions::default()
    }
}

/// The prompt `graft run --chat` builds (llama.cpp's ChatML formatting, no default system
/// message), here with the example's system and user turns.
fn run_chat_prompt(tok: &Tokenizer, ex: &Example) -> Vec<u32> {
    let Example::Messages(msgs) = ex else {
        panic!("support-triage examples are conversations");
    };
    let turns: Vec<ChatMessage> = msgs[..msgs.len() - 1]
        .iter()
        .map(|m| ChatMessage::new(m.role.as_str(), &m.content))
        .collect();
    let text = ChatTemplate::chatml()
        .expect("chatml")
        .render(&turns, true)
        .expect("render");
    tok.encode(&text, true, true)
}

#[test]
fn predictions_equal_run_chat_generation_and_loss_equals_direct_nll() {
    let model = model();
    let renderer = Renderer::from_model(&model).expect("renderer");
    let tok = renderer.tokenizer();
    let path = test_set();
    let data = load_test_set(&path, Some(LIMIT)).expect("test set");
    let mut calls = Vec::new();
    let report = evaluate(&model, &renderer, &[], &data, &path, &opts(), &mut |p| {
        calls.push((p.phase, p.done, p.total));
        true
    })
    .expect("evaluate");
    assert_eq!(report.n_examples, LIMIT);
    assert_eq!(report.n_generated, LIMIT);
    assert_eq!(
        calls,
        (1..=LIMIT)
            .map(|k| (EvalPhase::Examples, k, LIMIT))
            .collect::<Vec<_>>()
    );

    let mut acc = NllAccumulator::default();
    for (rec, r) in data.records().iter().zip(&report.examples) {
        assert_eq!(r.line, rec.line);
        // Same prompt ids as `graft run --chat`, same greedy continuation.
        let ids = run_chat_prompt(tok, &rec.example);
        let p = renderer
            .prompt(&rec.example)
            .expect("prompt")
            .expect("chat");
        assert_eq!(p.ids, ids, "line {}: prompt ids", rec.line);
        assert_eq!(tok.decode(&ids), r.prompt);
        let mut s = Session::new(&model, SessionParams::default()).expect("session");
        let ref_tokens = tok.encode(&p.reference, false, false).len();
        let params = GenerateParams {
            max_tokens: ref_tokens + 32,
            stop: Vec::new(),
            sampler: SamplerParams::greedy(),
        };
        let g = generate(&mut s, tok, &ids, &params, &mut |_| true).expect("generate");
        assert_eq!(
            r.prediction.as_deref(),
            Some(g.text.as_str()),
            "line {}",
            rec.line
        );
        assert_eq!(r.generated_tokens, g.ids.len());
        assert_eq!(r.reference, p.reference);
        assert_eq!(r.em, Some(g.text.trim() == p.reference.trim()));

        // Loss: every logits row of the whole example, scored where the mask says.
        let t = renderer
            .tokenize(&rec.example, LossMask::CompletionOnly)
            .expect("tokenize");
        s.reset();
        let nv = model.config().n_vocab;
        let logits = s.eval_all(&t.ids).expect("eval_all").to_vec();
        let before = acc.count();
        for i in 1..t.ids.len() {
            if t.mask[i] {
                acc.add_row(&logits[(i - 1) * nv..i * nv], t.ids[i]);
            }
        }
        assert_eq!(r.scored_tokens, acc.count() - before, "line {}", rec.line);
        // The reference's tokens and the end-of-turn token are scored.
        assert!(r.scored_tokens > ref_tokens, "line {}", rec.line);
    }
    assert_eq!(report.scored_tokens, acc.count());
    let (ppl, _) = acc.ppl();
    let rel = (report.ppl - ppl).abs() / ppl;
    assert!(rel < 1e-5, "eval ppl {} vs direct {ppl}", report.ppl);
    assert!(
        (report.loss - ppl.ln()).abs() < 1e-5,
        "{} vs {}",
        report.loss,
        ppl.ln()
    );
    let em = report
        .examples
        .iter()
        .filter(|r| r.em == Some(true))
        .count();
    assert!((report.exact_match - em as f64 / LIMIT as f64).abs() < 1e-12);
    let f1: f64 = report.examples.iter().filter_map(|r| r.f1).sum();
    assert!((report.token_f1 - f1 / LIMIT as f64).abs() < 1e-12);
}

#[test]
fn cancel_stops_the_evaluation() {
    let model = model();
    let renderer = Renderer::from_model(&model).expect("renderer");
    let path = test_set();
    let data = load_test_set(&path, Some(3)).expect("test set");
    let mut seen = 0;
    let r = evaluate(&model, &renderer, &[], &data, &path, &opts(), &mut |_| {
        seen += 1;
        false
    });
    assert!(matches!(r, Err(EvalError::Cancelled)), "{r:?}");
    assert_eq!(seen, 1);
}

#[test]
fn example_longer_than_the_context_is_a_clear_error() {
    let model = model();
    let renderer = Renderer::from_model(&model).expect("renderer");
    let path = test_set();
    let data = load_test_set(&path, Some(1)).expect("test set");
    let o = EvalOptions {
        n_ctx: 16,
        ..opts()
    };
    let e = evaluate(&model, &renderer, &[], &data, &path, &o, &mut |_| true)
        .expect_err("too long for 16 tokens");
    let msg = e.to_string();
    assert!(matches!(e, EvalError::TooLong { line: 1, .. }), "{msg}");
    assert!(
        msg.contains("test.jsonl:1") && msg.contains("raise -c"),
        "{msg}"
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn bad_test_sets_name_the_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = r#"{"prompt":"2+2=","completion":"4"}"#;
    let cases = [
        (
            "broken.jsonl",
            format!("{good}\n{{\"prompt\": \n"),
            ":2:",
            "invalid JSON",
        ),
        (
            "missing.jsonl",
            format!("{good}\n{{\"prompt\":\"x\"}}\n"),
            ":2:",
            "missing field `completion`",
        ),
        (
            "role.jsonl",
            r#"{"messages":[{"role":"robot","content":"hi"},{"role":"assistant","content":"yo"}]}"#
                .to_string(),
            ":1:",
            "unknown role",
        ),
        ("empty.jsonl", "\n\n".to_string(), "", "no usable examples"),
    ];
    for (name, text, at, what) in cases {
        let p = write(dir.path(), name, &text);
        let e = load_test_set(&p, None).expect_err(name).to_string();
        assert!(e.contains(&format!("{name}{at}")), "{name}: {e}");
        assert!(e.contains(what), "{name}: {e}");
    }
    let e = load_test_set(&dir.path().join("absent.jsonl"), None)
        .expect_err("absent")
        .to_string();
    assert!(e.contains("absent.jsonl"), "{e}");
}
