//! Session handles: a KV cache and sampler settings over a model, with a cancel flag.

use crate::cbuf::write_opt;
use crate::error::{graft_status, FfiError};
use crate::guard::call;
use crate::handle::{self, Handle, Kind};
use crate::model::graft_model;
use graft_runtime::sampling::SamplerParams;
use graft_runtime::{Session, SessionParams};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// Largest context accepted (tokens).
const MAX_CTX: u32 = 1 << 20;

/// Options for a session. Get the defaults from `graft_session_params_default()` and change
/// what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_session_params {
    /// Context size in tokens, 0..=1048576; 0 means the model's training context (default 4096).
    pub n_ctx: u32,
    /// Tokens per forward call when evaluating a prompt, >= 1 (default 512).
    pub n_batch: u32,
    /// Sampling seed (default 0x5EED): the same seed gives the same tokens.
    pub seed: u64,
    /// Temperature; <= 0 means greedy decoding (default 0.8). Must be finite.
    pub temperature: f32,
    /// Keep the top_k most likely tokens; <= 0 keeps all (default 40).
    pub top_k: i32,
    /// Nucleus sampling mass in [0, 1]; 1 is off (default 0.95).
    pub top_p: f32,
    /// Drop tokens below min_p times the top probability, in [0, 1]; 0 is off (default 0.05).
    pub min_p: f32,
    /// Repetition penalty, > 0; 1 is off (default 1).
    pub repeat_penalty: f32,
    /// Recent tokens the penalty looks at, >= 0 (default 64).
    pub repeat_last_n: i32,
}

/// The default session options (llama.cpp's sampling defaults).
#[no_mangle]
pub extern "C" fn graft_session_params_default() -> graft_session_params {
    let s = SessionParams::default();
    let p = SamplerParams::default();
    graft_session_params {
        n_ctx: s.n_ctx as u32,
        n_batch: s.n_batch as u32,
        seed: p.seed,
        temperature: p.temperature,
        top_k: p.top_k,
        top_p: p.top_p,
        min_p: p.min_p,
        repeat_penalty: p.repeat_penalty,
        repeat_last_n: p.repeat_last_n as i32,
    }
}

impl graft_session_params {
    fn check(&self) -> Result<(SessionParams, SamplerParams), FfiError> {
        let bad = |m: String| Err(FfiError::invalid(m));
        if self.n_ctx > MAX_CTX {
            return bad(format!(
                "params.n_ctx = {} is out of range 0..={MAX_CTX}",
                self.n_ctx
            ));
        }
        if self.n_batch == 0 {
            return bad("params.n_batch must be at least 1".into());
        }
        if !self.temperature.is_finite() {
            return bad(format!(
                "params.temperature = {} is not finite",
                self.temperature
            ));
        }
        if !(0.0..=1.0).contains(&self.top_p) {
            return bad(format!("params.top_p = {} is not in [0, 1]", self.top_p));
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad(format!("params.min_p = {} is not in [0, 1]", self.min_p));
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty.is_finite()) {
            return bad(format!(
                "params.repeat_penalty = {} must be positive and finite",
                self.repeat_penalty
            ));
        }
        let Ok(repeat_last_n) = usize::try_from(self.repeat_last_n) else {
            return bad(format!(
                "params.repeat_last_n = {} is negative",
                self.repeat_last_n
            ));
        };
        Ok((
            SessionParams {
                n_ctx: self.n_ctx as usize,
                n_batch: self.n_batch as usize,
            },
            SamplerParams {
                temperature: self.temperature,
                top_k: self.top_k,
                top_p: self.top_p,
                min_p: self.min_p,
                repeat_penalty: self.repeat_penalty,
                repeat_last_n,
                seed: self.seed,
            },
        ))
    }
}

self_cell::self_cell!(
    /// A runtime session together with the model it borrows.
    pub(crate) struct SessionCell {
        owner: Arc<graft_model>,
        #[covariant]
        dependent: Session,
    }
);

/// What a session's calls work on, one call at a time.
pub(crate) struct SessionState {
    pub cell: SessionCell,
    pub sampler: SamplerParams,
}

/// An inference session: KV cache, sampler settings and active adapters over a model.
///
/// Ownership: made by `graft_session_create`, freed by `graft_session_free`; it keeps its
/// model alive. Thread-safety: one call at a time; a second concurrent call on the same
/// session returns `GRAFT_ERR_BUSY` (never a data race). `graft_session_cancel` may be called
/// from any thread at any time.
#[allow(non_camel_case_types)]
pub struct graft_session {
    magic: u64,
    pub(crate) model: Arc<graft_model>,
    pub(crate) cancel: AtomicBool,
    state: Mutex<SessionState>,
}

impl Handle for graft_session {
    const KIND: Kind = Kind::Session;
    fn magic(&self) -> u64 {
        self.magic
    }
}

impl graft_session {
    /// Exclusive access for one call, or `GRAFT_ERR_BUSY`.
    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, SessionState>, FfiError> {
        match self.state.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(FfiError::new(
                graft_status::GRAFT_ERR_BUSY,
                "the session is in use by another call (one call at a time per session)",
            )),
        }
    }
}

/// Creates a session over `model` and writes its handle to `*out` (NULL on error). `params`
/// may be NULL for the defaults.
///
/// # Safety
/// `params` is NULL or points to a `graft_session_params`; `out` is NULL or valid for writing
/// a pointer.
#[no_mangle]
pub unsafe extern "C" fn graft_session_create(
    model: *const graft_model,
    params: *const graft_session_params,
    out: *mut *mut graft_session,
) -> graft_status {
    call(|| {
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: non-NULL, valid for a pointer write per the caller.
        unsafe { out.write(std::ptr::null_mut()) };
        let m = handle::get(model, "model")?;
        let p = if params.is_null() {
            graft_session_params_default()
        } else {
            // SAFETY: non-NULL, points to a graft_session_params per the caller.
            unsafe { params.read() }
        };
        let (sp, sampler) = p.check()?;
        let cell = SessionCell::try_new(m.clone(), |m| Session::new(&m.model, sp))?;
        let h = handle::into_raw(graft_session {
            magic: Kind::Session.magic(),
            model: m,
            cancel: AtomicBool::new(false),
            state: Mutex::new(SessionState { cell, sampler }),
        });
        // SAFETY: checked non-NULL above.
        unsafe { out.write(h) };
        Ok(())
    })
}

/// Frees a session. NULL is a no-op; a handle that is not a live session gives
/// `GRAFT_ERR_INVALID_HANDLE`. A call running on it in another thread finishes first.
#[no_mangle]
pub extern "C" fn graft_session_free(session: *mut graft_session) -> graft_status {
    call(|| handle::release(session, "session"))
}

/// Empties the session's KV cache (the next generation starts a new context).
#[no_mangle]
pub extern "C" fn graft_session_reset(session: *mut graft_session) -> graft_status {
    call(|| {
        let s = handle::get(session, "session")?;
        s.lock()?.cell.with_dependent_mut(|_, d| d.reset());
        Ok(())
    })
}

/// Asks the generation running on `session` to stop after its current token (it then returns
/// `GRAFT_OK` with stop reason `GRAFT_STOP_CANCELLED`). Callable from any thread, also while
/// the session is busy. A request made while no generation runs is dropped when the next one
/// starts.
#[no_mangle]
pub extern "C" fn graft_session_cancel(session: *const graft_session) -> graft_status {
    call(|| {
        let s = handle::get(session, "session")?;
        s.cancel.store(true, Ordering::SeqCst);
        Ok(())
    })
}

/// Writes the tokens held in the KV cache to `*n_past` and the context size to `*n_ctx`
/// (either may be NULL).
///
/// # Safety
/// `n_past` and `n_ctx` are NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn graft_session_info(
    session: *const graft_session,
    n_past: *mut u32,
    n_ctx: *mut u32,
) -> graft_status {
    call(|| {
        let s = handle::get(session, "session")?;
        let g = s.lock()?;
        let d = g.cell.borrow_dependent();
        // SAFETY: the caller guarantees each is NULL or valid for writes.
        unsafe {
            write_opt(n_past, d.n_past() as u32);
            write_opt(n_ctx, d.n_ctx() as u32);
        }
        Ok(())
    })
}
