//! Evaluating a model (base or with adapters) on a JSONL test set.

use crate::adapter::graft_adapter;
use crate::cbuf::{slice_arg, str_arg, write_opt};
use crate::error::{graft_status, FfiError};
use crate::guard::call;
use crate::handle;
use crate::model::graft_model;
use graft_train::data::Renderer;
use graft_train::eval::{evaluate, load_test_set, EvalError, EvalOptions, EvalProgress};
use std::ffi::{c_char, c_void};
use std::path::Path;
use std::sync::Arc;

/// Options of an evaluation. Defaults from `graft_eval_params_default()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_eval_params {
    /// Context size for each example, >= 2 (default 2048).
    pub n_ctx: u32,
    /// Evaluate only the first N examples; 0 means all (default 0).
    pub limit: u32,
    /// Greedy completion budget beyond the reference's token count (default 32).
    pub extra_tokens: u32,
}

/// The default evaluation options.
#[no_mangle]
pub extern "C" fn graft_eval_params_default() -> graft_eval_params {
    let o = EvalOptions::default();
    graft_eval_params {
        n_ctx: o.n_ctx as u32,
        limit: 0,
        extra_tokens: o.extra_tokens as u32,
    }
}

/// The metrics of an evaluation.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_eval_result {
    /// Examples evaluated.
    pub n_examples: u64,
    /// Tokens scored by the loss.
    pub scored_tokens: u64,
    /// Mean negative log-likelihood per scored (completion) token, nats.
    pub loss: f64,
    /// exp(loss).
    pub ppl: f64,
    /// Fraction of greedy completions equal to the reference (NaN when no example has a prompt).
    pub exact_match: f64,
    /// Mean token F1 of the greedy completions (NaN when none).
    pub token_f1: f64,
}

/// Called after each evaluated example (`done` of `total`); return false to cancel
/// (`graft_eval` then returns `GRAFT_ERR_CANCELLED`).
pub type graft_eval_callback =
    Option<unsafe extern "C" fn(done: u64, total: u64, user_data: *mut c_void) -> bool>;

fn eval_err(e: EvalError) -> FfiError {
    let status = match &e {
        EvalError::Cancelled => graft_status::GRAFT_ERR_CANCELLED,
        _ => graft_status::GRAFT_ERR_TRAIN,
    };
    FfiError::new(status, e.to_string())
}

/// Evaluates `model` with `n_adapters` adapters at `scales` (0: the base model) on the JSONL
/// test set `data`: loss and perplexity over the completion tokens, exact match and token F1
/// of greedy completions, as `graft eval` does. `params` may be NULL for the defaults; the
/// metrics go to `*result`.
///
/// # Safety
/// `data` is NUL-terminated; `adapters` and `scales` hold `n_adapters` elements (may be NULL
/// when 0); `params` is NULL or valid; `callback`, if given, has the documented signature;
/// `result` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn graft_eval(
    model: *const graft_model,
    data: *const c_char,
    adapters: *const *const graft_adapter,
    scales: *const f32,
    n_adapters: usize,
    params: *const graft_eval_params,
    callback: graft_eval_callback,
    user_data: *mut c_void,
    result: *mut graft_eval_result,
) -> graft_status {
    call(|| {
        let m = handle::get(model, "model")?;
        // SAFETY: the caller guarantees a NUL-terminated string.
        let data = unsafe { str_arg(data, "data") }?;
        // SAFETY: the caller guarantees `n_adapters` elements each.
        let hs = unsafe { slice_arg(adapters, n_adapters, "adapters") }?;
        // SAFETY: as above.
        let sc = unsafe { slice_arg(scales, n_adapters, "scales") }?;
        let mut list = Vec::with_capacity(hs.len());
        for (i, (&h, &s)) in hs.iter().zip(sc).enumerate() {
            let a = handle::get(h, &format!("adapters[{i}]"))?;
            if !Arc::ptr_eq(&a.model, &m) {
                return Err(FfiError::new(
                    graft_status::GRAFT_ERR_ADAPTER,
                    format!("adapters[{i}] was loaded for another model"),
                ));
            }
            if !s.is_finite() {
                return Err(FfiError::invalid(format!(
                    "scales[{i}] = {s} is not finite"
                )));
            }
            list.push((a.adapter.clone(), s));
        }
        let p = if params.is_null() {
            graft_eval_params_default()
        } else {
            // SAFETY: non-NULL, points to a graft_eval_params per the caller.
            unsafe { params.read() }
        };
        if p.n_ctx < 2 {
            return Err(FfiError::invalid(format!(
                "params.n_ctx = {} is below 2",
                p.n_ctx
            )));
        }
        let opts = EvalOptions {
            n_ctx: p.n_ctx as usize,
            limit: (p.limit > 0).then_some(p.limit as usize),
            extra_tokens: p.extra_tokens as usize,
            ..EvalOptions::default()
        };
        let path = Path::new(data);
        if !path.is_file() {
            return Err(FfiError::new(
                graft_status::GRAFT_ERR_IO,
                format!("test set not found: {data}"),
            ));
        }
        let set = load_test_set(path, opts.limit).map_err(eval_err)?;
        let choice = m.template_choice();
        let renderer = Renderer::from_model_with_template(&m.model, choice.as_deref())
            .map_err(|e| FfiError::new(graft_status::GRAFT_ERR_TEMPLATE, e.to_string()))?;
        let mut progress = |pr: &EvalProgress| -> bool {
            match callback {
                // SAFETY: the caller's callback with the documented signature.
                Some(cb) => unsafe { cb(pr.done as u64, pr.total as u64, user_data) },
                None => true,
            }
        };
        let r = evaluate(&m.model, &renderer, &list, &set, path, &opts, &mut progress)
            .map_err(eval_err)?;
        // SAFETY: the caller guarantees `result` is NULL or valid for a write.
        unsafe {
            write_opt(
                result,
                graft_eval_result {
                    n_examples: r.n_examples as u64,
                    scored_tokens: r.scored_tokens as u64,
                    loss: r.loss,
                    ppl: r.ppl,
                    exact_match: r.exact_match,
                    token_f1: r.token_f1,
                },
            )
        };
        Ok(())
    })
}
