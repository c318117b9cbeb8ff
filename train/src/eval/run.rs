//! Running an evaluation: loss and perplexity over the completion tokens, greedy completions
//! scored against the references, and the general-text perplexity.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use graft_runtime::generate::{generate, GenerateParams};
use graft_runtime::lora::LoadedAdapter;
use graft_runtime::perplexity::perplexity;
use graft_runtime::sampling::SamplerParams;
use graft_runtime::{Model, Session, SessionParams};

use super::loss::example_loss;
use super::metrics::{exact_match, token_f1};
use super::prompting::Prompting;
use super::report::{AdapterUse, EvalReport, ExampleRecord, GeneralPpl, Timing};
use super::EvalError;
use crate::data::{Dataset, LoadOptions, LossMask, Renderer};

/// Options of an evaluation.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Session context in tokens; every example (and every prompt plus its completion budget,
    /// which is cut to fit) must fit. Default 2048.
    pub n_ctx: usize,
    /// Evaluate only the first N examples.
    pub limit: Option<usize>,
    /// Completion budget beyond the reference's own token count (default 32): greedy
    /// generation stops at an end-of-generation token or after `reference tokens + this`.
    pub extra_tokens: usize,
    /// Which tokens the loss covers (default: completion / assistant tokens only).
    pub loss_mask: LossMask,
    /// A general text whose perplexity is the regression check.
    pub general: Option<PathBuf>,
    /// Window of the general-text perplexity (llama.cpp's `-c`; default 512).
    pub general_ctx: usize,
    /// Demonstrations and a system prompt before every example (the prompt baseline); only
    /// the example's own final reply is then scored.
    pub prompting: Option<Prompting>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            n_ctx: 2048,
            limit: None,
            extra_tokens: 32,
            loss_mask: LossMask::CompletionOnly,
            general: None,
            general_ctx: 512,
            prompting: None,
        }
    }
}

/// Which part of an evaluation a progress report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalPhase {
    /// Loss and greedy completion of the test examples (`done` of `total` examples).
    Examples,
    /// General-text perplexity (`done` of `total` windows).
    General,
}

/// A progress report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvalProgress {
    /// The phase.
    pub phase: EvalPhase,
    /// Units done.
    pub done: usize,
    /// Units in the phase.
    pub total: usize,
}

/// Loads a test set for evaluation: strict (the first bad line is an error naming file and
/// line), no deduplication (every line given is evaluated), then the first `limit` examples.
pub fn load_test_set(path: &Path, limit: Option<usize>) -> Result<Dataset, EvalError> {
    let opts = LoadOptions {
        dedup_exact: false,
        near_dup_threshold: None,
        ..LoadOptions::default()
    };
    let (ds, _) = Dataset::load(path, &opts)?;
    let mut records = ds.records().to_vec();
    if let Some(n) = limit {
        records.truncate(n);
    }
    if records.is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
            what: "no examples to evaluate".into(),
        });
    }
    Ok(Dataset::from_records(records))
}

/// Evaluates `model` with `adapters` (empty: the base model) on `data` (loaded from `path`,
/// which is only used in messages and the report).
///
/// Each example is run from an empty cache, one at a time: its loss over the scored tokens
/// (the mask from [`Renderer::tokenize`]), then a greedy completion of its prompt
/// ([`Renderer::prompt`]) scored against the reference. `progress` is called after each
/// example and each general-text window; returning `false` cancels ([`EvalError::Cancelled`];
/// during the general text the cancel takes effect once the perplexity run ends).
pub fn evaluate(
    model: &Model,
    renderer: &Renderer,
    adapters: &[(Arc<LoadedAdapter>, f32)],
    data: &Dataset,
    path: &Path,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(&EvalProgress) -> bool,
) -> Result<EvalReport, EvalError> {
    let t_all = Instant::now();
    if opts.n_ctx < 2 {
        return Err(EvalError::InvalidOption(format!(
            "context {} is too small",
            opts.n_ctx
        )));
    }
    let mut session = Session::new(
        model,
        SessionParams {
            n_ctx: opts.n_ctx,
            ..SessionParams::default()
        },
    )?;
    session.set_adapters(adapters)?;
    // Read the general text first: a missing file fails before any work is done.
    let general_text = match &opts.general {
        None => None,
        Some(file) => Some((file, read_utf8(file)?)),
    };
    let tok = renderer.tokenizer();
    let n = opts.limit.map_or(data.len(), |l| l.min(data.len()));
    let records = &data.records()[..n];
    if records.is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
            what: "no examples to evaluate".into(),
        });
    }
    let mut timing = Timing::default();
    let mut out = Vec::with_capacity(n);
    for (k, rec) in records.iter().enumerate() {
        let at = |source| EvalError::Example {
            path: path.to_path_buf(),
            line: rec.line,
            source,
        };
        let too_long = |tokens| EvalError::TooLong {
            path: path.to_path_buf(),
            line: rec.line,
            tokens,
            n_ctx: opts.n_ctx,
        };
        let prompted;
        let example = match &opts.prompting {
            Some(p) => {
                prompted = p.apply(&rec.example);
                &prompted
            }
            None => &rec.example,
        };
        let prompt = renderer.prompt(example).map_err(at)?;
        let mut t = renderer.tokenize(example, opts.loss_mask).map_err(at)?;
        if let (Some(_), Some(p)) = (&opts.prompting, &prompt) {
            // Score the example's own reply only, not the demonstrations.
            t.mask.iter_mut().take(p.ids.len()).for_each(|m| *m = false);
        }
        if t.ids.len() > opts.n_ctx {
            return Err(too_long(t.ids.len()));
        }
        let t0 = Instant::now();
        let loss = example_loss(&mut session, &t.ids, &t.mask)?;
        timing.loss_secs += t0.elapsed().as_secs_f64();

        let mut record = ExampleRecord {
            line: rec.line,
            prompt: String::new(),
            reference: String::new(),
            prediction: None,
            em: None,
            f1: None,
            nll_sum: loss.nll_sum,
            scored_tokens: loss.tokens,
            generated_tokens: 0,
        };
        if let Some(p) = prompt {
            if p.ids.is_empty() {
                return Err(EvalError::InvalidOption(format!(
                    "{}:{}: the prompt renders to no tokens",
                    path.display(),
                    rec.line
                )));
            }
            if p.ids.len() >= opts.n_ctx {
                return Err(too_long(p.ids.len() + 1));
            }
            let ref_tokens = tok.encode(&p.reference, false, false).len();
            let max_tokens = (ref_tokens + opts.extra_tokens)
                .max(1)
                .min(opts.n_ctx - p.ids.len());
            let params = GenerateParams {
                max_tokens,
                stop: Vec::new(),
                sampler: SamplerParams::greedy(),
            };
            let t1 = Instant::now();
            session.reset();
            let g = generate(&mut session, tok, &p.ids, &params, &mut |_| true)?;
            timing.generate_secs += t1.elapsed().as_secs_f64();
            timing.generated_tokens += g.ids.len();
            record.generated_tokens = g.ids.len();
            record.em = Some(exact_match(&g.text, &p.reference));
            record.f1 = Some(token_f1(&g.text, &p.reference));
            record.prompt = tok.decode(&p.ids);
            record.reference = p.reference;
            record.prediction = Some(g.text);
        }
        out.push(record);
        if !progress(&EvalProgress {
            phase: EvalPhase::Examples,
            done: k + 1,
            total: n,
        }) {
            return Err(EvalError::Cancelled);
        }
    }

    let scored_tokens: usize = out.iter().map(|r| r.scored_tokens).sum();
    if scored_tokens == 0 {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
            what: "no example has a token to score (check the loss mask)".into(),
        });
    }
    let nll: f64 = out.iter().map(|r| r.nll_sum).sum();
    let loss = nll / scored_tokens as f64;
    let generated: Vec<&ExampleRecord> = out.iter().filter(|r| r.em.is_some()).collect();
    let mean = |f: &dyn Fn(&ExampleRecord) -> f64| {
        if generated.is_empty() {
            f64::NAN
        } else {
            generated.iter().map(|r| f(r)).sum::<f64>() / generated.len() as f64
        }
    };
    let exact = mean(&|r| f64::from(u8::from(r.em == Some(true))));
    let f1 = mean(&|r| r.f1.unwrap_or(0.0));

    let general = match general_text {
        None => None,
        Some((file, text)) => {
            let t2 = Instant::now();
            let g = general_ppl(
                &mut session,
                renderer,
                file,
                &text,
                opts.general_ctx,
                progress,
            )?;
            timing.general_secs = t2.elapsed().as_secs_f64();
            Some(g)
        }
    };
    timing.total_secs = t_all.elapsed().as_secs_f64();
    Ok(EvalReport {
        data: path.display().to_string(),
        adapters: adapters
            .iter()
            .map(|(a, s)| AdapterUse {
                name: a.name().to_string(),
                scale: *s,
            })
            .collect(),
        prompting: opts.prompting.as_ref().map(Prompting::label),
        n_examples: out.len(),
        n_generated: generated.len(),
        scored_tokens,
        loss,
        ppl: loss.exp(),
        exact_match: exact,
        token_f1: f1,
        general,
        timing,
        examples: out,
    })
}

/// A text file that must be UTF-8.
fn read_utf8(file: &Path) -> Result<String, EvalError> {
    let err = |msg: String| EvalError::GeneralText {
        path: file.to_path_buf(),
        msg,
    };
    let bytes = std::fs::read(file).map_err(|e| err(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| {
        err(format!(
            "not valid UTF-8 (first invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// llama.cpp's perplexity of `text` (windows of `n_ctx`, second halves scored).
fn general_ppl(
    session: &mut Session<'_>,
    renderer: &Renderer,
    file: &Path,
    text: &str,
    n_ctx: usize,
    progress: &mut dyn FnMut(&EvalProgress) -> bool,
) -> Result<GeneralPpl, EvalError> {
    let err = |msg: String| EvalError::GeneralText {
        path: file.to_path_buf(),
        msg,
    };
    let tok = renderer.tokenizer();
    let tokens = tok.encode(text, true, false);
    let bos = tok.added_bos();
    let mut cancelled = false;
    let mut cb = |done: usize, total: usize, _ppl: f64| {
        if !cancelled {
            cancelled = !progress(&EvalProgress {
                phase: EvalPhase::General,
                done,
                total,
            });
        }
    };
    let r = perplexity(session, &tokens, n_ctx, bos, &mut cb).map_err(|e| err(e.to_string()))?;
    if cancelled {
        return Err(EvalError::Cancelled);
    }
    Ok(GeneralPpl {
        file: file.display().to_string(),
        ppl: r.ppl,
        ppl_err: r.ppl_err,
        tokens_scored: r.tokens_scored,
        chunks: r.chunks,
        n_ctx: r.n_ctx,
    })
}
