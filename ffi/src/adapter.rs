//! LoRA adapter handles and hot-swapping the active set of a session.

use crate::cbuf::{slice_arg, str_arg};
use crate::error::{graft_status, FfiError};
use crate::guard::call;
use crate::handle::{self, Handle, Kind};
use crate::model::graft_model;
use crate::session::graft_session;
use graft_runtime::lora::LoadedAdapter;
use std::ffi::c_char;
use std::sync::Arc;

/// A LoRA adapter loaded for one model (llama.cpp GGUF LoRA, or a PEFT directory / its
/// `adapter_model.safetensors`).
///
/// Ownership: made by `graft_adapter_load`, freed by `graft_adapter_free`. Sessions that have
/// it active keep its weights alive until their next `graft_session_set_adapters`, so it may
/// be freed while active. Thread-safety: immutable; may be used from several threads.
#[allow(non_camel_case_types)]
pub struct graft_adapter {
    magic: u64,
    pub(crate) model: Arc<graft_model>,
    pub(crate) adapter: Arc<LoadedAdapter>,
}

impl Handle for graft_adapter {
    const KIND: Kind = Kind::Adapter;
    fn magic(&self) -> u64 {
        self.magic
    }
}

/// Loads and validates the adapter at `path` (UTF-8) for `model`; writes its handle to `*out`
/// (NULL on error).
///
/// # Safety
/// `path` is NULL or NUL-terminated; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn graft_adapter_load(
    model: *const graft_model,
    path: *const c_char,
    out: *mut *mut graft_adapter,
) -> graft_status {
    call(|| {
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: non-NULL, valid for a pointer write per the caller.
        unsafe { out.write(std::ptr::null_mut()) };
        let m = handle::get(model, "model")?;
        // SAFETY: the caller guarantees `path` is NULL or NUL-terminated.
        let path = unsafe { str_arg(path, "path") }?;
        if !std::path::Path::new(path).exists() {
            return Err(FfiError::new(
                graft_status::GRAFT_ERR_IO,
                format!("adapter not found: {path}"),
            ));
        }
        let adapter = LoadedAdapter::load(&m.model, path)?;
        let h = handle::into_raw(graft_adapter {
            magic: Kind::Adapter.magic(),
            model: m,
            adapter,
        });
        // SAFETY: checked non-NULL above.
        unsafe { out.write(h) };
        Ok(())
    })
}

/// Frees an adapter handle. NULL is a no-op; a handle that is not a live adapter gives
/// `GRAFT_ERR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn graft_adapter_free(adapter: *mut graft_adapter) -> graft_status {
    call(|| handle::release(adapter, "adapter"))
}

/// Makes `n` adapters the session's active set, adapter `i` at `scales[i]` (finite; the
/// adapter's own alpha/r applies on top); `n = 0` runs the base model. Hot swap: when the set
/// changes the KV cache is emptied (the next generation starts a new context); setting the
/// same set again keeps it. Every adapter must have been loaded for the session's model.
///
/// # Safety
/// `adapters` and `scales` point to `n` elements each (may be NULL when `n` is 0).
#[no_mangle]
pub unsafe extern "C" fn graft_session_set_adapters(
    session: *mut graft_session,
    adapters: *const *const graft_adapter,
    scales: *const f32,
    n: usize,
) -> graft_status {
    call(|| {
        let s = handle::get(session, "session")?;
        // SAFETY: the caller guarantees `n` elements each.
        let hs = unsafe { slice_arg(adapters, n, "adapters") }?;
        // SAFETY: as above.
        let sc = unsafe { slice_arg(scales, n, "scales") }?;
        let mut list = Vec::with_capacity(n);
        for (i, (&h, &scale)) in hs.iter().zip(sc).enumerate() {
            let a = handle::get(h, &format!("adapters[{i}]"))?;
            if !Arc::ptr_eq(&a.model, &s.model) {
                return Err(FfiError::new(
                    graft_status::GRAFT_ERR_ADAPTER,
                    format!(
                        "adapters[{i}] ({}) was loaded for another model",
                        a.adapter.name()
                    ),
                ));
            }
            if !scale.is_finite() {
                return Err(FfiError::invalid(format!(
                    "scales[{i}] = {scale} is not finite"
                )));
            }
            list.push((a.adapter.clone(), scale));
        }
        let mut st = s.lock()?;
        st.cell
            .with_dependent_mut(|_, sess| sess.set_adapters(&list))?;
        Ok(())
    })
}
