//! Eval first, in one command: with a test set, `graft train --test` evaluates the base (and
//! the prompt baseline) before training and the adapter after, on the inference runtime with
//! `graft eval`'s defaults, so the report card holds the numbers `graft eval` prints.

use std::path::PathBuf;
use std::sync::Arc;

use graft_quant::gguf::Value;
use graft_runtime::adapter::{LoraAdapter, MetaValue};
use graft_runtime::lora::LoadedAdapter;
use graft_runtime::Model;

use super::observer::{Control, Event, Observer};
use super::TrainError;
use crate::data::Renderer;
use crate::eval::{
    evaluate, load_test_set, EvalOptions, EvalPhase, EvalReport, Prompting, ReportCard,
};

/// A held-out test set evaluated before and after training.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSpec {
    /// The test set (JSONL, any shape `graft eval` takes).
    pub data: PathBuf,
    /// A general text whose perplexity is the regression check (`--general`).
    pub general: Option<PathBuf>,
    /// The prompt baseline evaluated beside the base (`--few-shot K`, `--system TEXT`).
    pub prompting: Option<Prompting>,
}

impl TestSpec {
    /// The evaluation options: `graft eval`'s defaults with this general text and prompting.
    fn options(&self, prompting: Option<&Prompting>) -> EvalOptions {
        EvalOptions {
            general: self.general.clone(),
            prompting: prompting.cloned(),
            ..EvalOptions::default()
        }
    }
}

/// Evaluates `model` with `adapters` on the test set, reporting progress to `obs` (which may
/// cancel).
fn run_eval(
    model: &Model,
    spec: &TestSpec,
    template: Option<&str>,
    adapters: &[(Arc<LoadedAdapter>, f32)],
    prompting: Option<&Prompting>,
    label: &str,
    obs: &mut dyn Observer,
) -> Result<EvalReport, TrainError> {
    let renderer = Renderer::from_model_with_template(model, template)?;
    let data = load_test_set(&spec.data, None)?;
    obs.on_event(&Event::Info(format!(
        "test {}: evaluating {label} on {} examples",
        spec.data.display(),
        data.len()
    )));
    let mut progress = |p: &crate::eval::EvalProgress| {
        let phase = match p.phase {
            EvalPhase::Examples => "examples",
            EvalPhase::General => "general-text windows",
        };
        obs.on_eval(label, phase, p.done, p.total) == Control::Continue
    };
    Ok(evaluate(
        model,
        &renderer,
        adapters,
        &data,
        &spec.data,
        &spec.options(prompting),
        &mut progress,
    )?)
}

/// The base model's report, then the prompt baseline's (when asked for): the card's first
/// columns, computed before training.
pub(crate) fn baselines(
    model: &Model,
    spec: &TestSpec,
    template: Option<&str>,
    obs: &mut dyn Observer,
) -> Result<Vec<EvalReport>, TrainError> {
    let mut out = vec![run_eval(model, spec, template, &[], None, "base", obs)?];
    if let Some(p) = &spec.prompting {
        let label = format!("base + {}", p.label());
        out.push(run_eval(model, spec, template, &[], Some(p), &label, obs)?);
    }
    Ok(out)
}

/// Evaluates the trained adapter (in memory, exactly the values written) and makes the
/// report card of `baselines` + it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn adapted_card(
    model: &Model,
    spec: &TestSpec,
    template: Option<&str>,
    adapter: &LoraAdapter,
    name: &str,
    baselines: &[EvalReport],
    test_sha256: &str,
    obs: &mut dyn Observer,
) -> Result<ReportCard, TrainError> {
    let loaded = LoadedAdapter::new(model, adapter.clone(), name)
        .map_err(|e| TrainError::Config(format!("the trained adapter does not load: {e}")))?;
    let adapted = run_eval(
        model,
        spec,
        template,
        &[(loaded, 1.0)],
        None,
        "adapted",
        obs,
    )?;
    let reports: Vec<&EvalReport> = baselines.iter().chain([&adapted]).collect();
    Ok(ReportCard::new(
        &spec.data.display().to_string(),
        test_sha256,
        &reports,
    ))
}

/// The metadata key stem of a card column: `base`, `prompted` or `adapted`.
fn column_key(label: &str) -> &'static str {
    if label == "base" {
        "base"
    } else if label.starts_with("base + ") {
        "prompted"
    } else {
        "adapted"
    }
}

/// Records the card in the adapter's metadata: `graft.eval.test`, `graft.eval.test_sha256`,
/// `graft.eval.general` and, per column (`base`, `prompted`, `adapted`),
/// `graft.eval.<column>.{label,examples,loss,perplexity,exact_match,token_f1,general_ppl}`.
pub(crate) fn annotate_card(adapter: &mut LoraAdapter, card: &ReportCard) {
    let mut put = |k: String, v: Value| {
        adapter.metadata.insert(k, MetaValue::Gguf(v));
    };
    put("graft.eval.test".into(), Value::String(card.test.clone()));
    put(
        "graft.eval.test_sha256".into(),
        Value::String(card.test_sha256.clone()),
    );
    if let Some(g) = &card.general {
        put("graft.eval.general".into(), Value::String(g.clone()));
    }
    for c in &card.columns {
        let k = column_key(&c.label);
        put(
            format!("graft.eval.{k}.label"),
            Value::String(c.label.clone()),
        );
        put(
            format!("graft.eval.{k}.examples"),
            Value::U64(c.n_examples as u64),
        );
        let mut num = |name: &str, v: f64| {
            if v.is_finite() {
                put(format!("graft.eval.{k}.{name}"), Value::F64(v));
            }
        };
        num("loss", c.loss);
        num("perplexity", c.ppl);
        num("exact_match", c.exact_match);
        num("token_f1", c.token_f1);
        if let Some(g) = c.general_ppl {
            num("general_ppl", g);
        }
    }
}
