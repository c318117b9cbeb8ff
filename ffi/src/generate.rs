//! Generation with a streaming callback and a cross-thread cancel flag.

use crate::cbuf::{slice_arg, str_arg, write_opt};
use crate::error::{graft_status, FfiError};
use crate::guard::call;
use crate::handle;
use crate::session::graft_session;
use crate::text::check_ids;
use graft_runtime::generate::{generate, GenerateParams, StopReason};
use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::Ordering;

/// Receives each new piece of generated text as soon as it is final: `piece` (UTF-8, `len`
/// bytes, also NUL-terminated) is valid only during the call. Return true to go on, false to
/// stop generation. `user_data` is the pointer given to `graft_generate`.
#[allow(non_camel_case_types)]
pub type graft_piece_callback =
    Option<unsafe extern "C" fn(piece: *const c_char, len: usize, user_data: *mut c_void) -> bool>;

/// Why a generation ended.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum graft_stop_reason {
    /// The model produced an end-of-generation token.
    GRAFT_STOP_END_OF_GENERATION = 0,
    /// `max_tokens` were generated.
    GRAFT_STOP_MAX_TOKENS = 1,
    /// A stop string appeared (the text is cut before it).
    GRAFT_STOP_STOP_STRING = 2,
    /// The callback returned false.
    GRAFT_STOP_CALLBACK = 3,
    /// The context is full.
    GRAFT_STOP_CONTEXT_FULL = 4,
    /// `graft_session_cancel` was called.
    GRAFT_STOP_CANCELLED = 5,
}

/// Options of one generation. Get the defaults from `graft_generate_params_default()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_generate_params {
    /// Most tokens to generate; < 0 means until end of generation or a full context
    /// (default 128).
    pub max_tokens: i32,
    /// `n_stop` UTF-8 stop strings (owned by the caller; may be NULL when `n_stop` is 0).
    pub stop: *const *const c_char,
    /// Number of stop strings.
    pub n_stop: usize,
}

/// The default generation options: 128 tokens, no stop strings.
#[no_mangle]
pub extern "C" fn graft_generate_params_default() -> graft_generate_params {
    graft_generate_params {
        max_tokens: 128,
        stop: std::ptr::null(),
        n_stop: 0,
    }
}

/// What a generation did.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_generation {
    /// Why it ended.
    pub stop_reason: graft_stop_reason,
    /// Prompt tokens evaluated.
    pub n_prompt_tokens: u32,
    /// Tokens generated (including a final end-of-generation token).
    pub n_generated: u32,
    /// Prompt evaluation speed, tokens per second.
    pub prefill_tok_s: f64,
    /// Decoding speed, tokens per second.
    pub decode_tok_s: f64,
}

/// Reads the generation options.
///
/// # Safety
/// `p` is NULL or points to a `graft_generate_params` whose `stop` array is valid.
unsafe fn gen_params(
    p: *const graft_generate_params,
    sampler: graft_runtime::sampling::SamplerParams,
) -> Result<GenerateParams, FfiError> {
    let p = if p.is_null() {
        graft_generate_params_default()
    } else {
        // SAFETY: non-NULL, points to a graft_generate_params per the caller.
        unsafe { p.read() }
    };
    // SAFETY: the caller guarantees `stop` holds `n_stop` pointers.
    let stops = unsafe { slice_arg(p.stop, p.n_stop, "params.stop") }?;
    let mut stop = Vec::with_capacity(stops.len());
    for (i, &s) in stops.iter().enumerate() {
        // SAFETY: each entry is NULL or NUL-terminated per the caller.
        stop.push(unsafe { str_arg(s, &format!("params.stop[{i}]")) }?.to_string());
    }
    Ok(GenerateParams {
        max_tokens: usize::try_from(p.max_tokens).unwrap_or(usize::MAX),
        stop,
        sampler,
    })
}

/// The shared body of `graft_generate` and `graft_generate_tokens`.
///
/// # Safety
/// As for `graft_generate`.
unsafe fn run(
    s: &graft_session,
    prompt: Prompt<'_>,
    params: *const graft_generate_params,
    callback: graft_piece_callback,
    user_data: *mut c_void,
    out: *mut graft_generation,
) -> Result<(), FfiError> {
    let mut st = s.lock()?;
    // SAFETY: forwarded from the caller's guarantee on `params`.
    let gp = unsafe { gen_params(params, st.sampler.clone()) }?;
    let m = &s.model;
    let ids = match prompt {
        Prompt::Text(t) => m.tokenizer.encode(t, true, true),
        Prompt::Ids(ids) => check_ids(m, ids, "tokens")?,
    };
    if ids.is_empty() {
        return Err(FfiError::invalid("the prompt is empty"));
    }
    s.cancel.store(false, Ordering::SeqCst);
    let mut cancelled = false;
    let mut on_piece = |piece: &str| -> bool {
        if s.cancel.swap(false, Ordering::SeqCst) {
            cancelled = true;
            return false;
        }
        let Some(cb) = callback else {
            return true;
        };
        let c = CString::new(piece.replace('\0', " ")).unwrap_or_default();
        // SAFETY: `cb` is the caller's callback with the documented signature; `c` outlives
        // the call and holds `piece.len()` bytes plus a NUL.
        unsafe { cb(c.as_ptr(), piece.len(), user_data) }
    };
    let g = st.cell.with_dependent_mut(|model, session| {
        generate(session, &model.tokenizer, &ids, &gp, &mut on_piece)
    })?;
    let stop_reason = match g.stop_reason {
        StopReason::Callback if cancelled => graft_stop_reason::GRAFT_STOP_CANCELLED,
        StopReason::Callback => graft_stop_reason::GRAFT_STOP_CALLBACK,
        StopReason::EndOfGeneration => graft_stop_reason::GRAFT_STOP_END_OF_GENERATION,
        StopReason::MaxTokens => graft_stop_reason::GRAFT_STOP_MAX_TOKENS,
        StopReason::StopString => graft_stop_reason::GRAFT_STOP_STOP_STRING,
        StopReason::ContextFull => graft_stop_reason::GRAFT_STOP_CONTEXT_FULL,
    };
    // SAFETY: the caller guarantees `out` is NULL or valid for a write.
    unsafe {
        write_opt(
            out,
            graft_generation {
                stop_reason,
                n_prompt_tokens: g.prompt_tokens as u32,
                n_generated: g.ids.len() as u32,
                prefill_tok_s: g.prefill_tok_s(),
                decode_tok_s: g.decode_tok_s(),
            },
        )
    };
    Ok(())
}

enum Prompt<'a> {
    Text(&'a str),
    Ids(&'a [i32]),
}

/// Tokenizes `prompt` (UTF-8; special-token texts are parsed, BOS added where the model asks,
/// as `graft run` does), evaluates it after what the session already holds, then samples with
/// the session's settings, streaming text through `callback` (may be NULL). Writes a summary to
/// `*out` (may be NULL). `params` may be NULL for the defaults. Use `graft_session_reset` to
/// start from an empty context. Cancel (`graft_session_cancel`) and a false return from the
/// callback end it with `GRAFT_OK`; the stop reason tells which.
///
/// # Safety
/// `prompt` is NULL or NUL-terminated; `params` is NULL or valid (with `n_stop` valid stop
/// strings); `callback`, if given, has the documented signature; `out` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn graft_generate(
    session: *mut graft_session,
    prompt: *const c_char,
    params: *const graft_generate_params,
    callback: graft_piece_callback,
    user_data: *mut c_void,
    out: *mut graft_generation,
) -> graft_status {
    call(|| {
        let s = handle::get(session, "session")?;
        // SAFETY: the caller guarantees `prompt` is NULL or NUL-terminated.
        let text = unsafe { str_arg(prompt, "prompt") }?;
        // SAFETY: forwarded from the caller.
        unsafe { run(&s, Prompt::Text(text), params, callback, user_data, out) }
    })
}

/// As `graft_generate`, with the prompt given as `n_tokens` token ids.
///
/// # Safety
/// `tokens` points to `n_tokens` ids; otherwise as `graft_generate`.
#[no_mangle]
pub unsafe extern "C" fn graft_generate_tokens(
    session: *mut graft_session,
    tokens: *const i32,
    n_tokens: usize,
    params: *const graft_generate_params,
    callback: graft_piece_callback,
    user_data: *mut c_void,
    out: *mut graft_generation,
) -> graft_status {
    call(|| {
        let s = handle::get(session, "session")?;
        // SAFETY: the caller guarantees `tokens` holds `n_tokens` ids.
        let ids = unsafe { slice_arg(tokens, n_tokens, "tokens") }?;
        // SAFETY: forwarded from the caller.
        unsafe { run(&s, Prompt::Ids(ids), params, callback, user_data, out) }
    })
}
