//! Model handles: open (memory-map) and close.

use crate::cbuf::{str_arg, write_opt, write_text};
use crate::error::{graft_status, FfiError};
use crate::guard::call;
use crate::handle::{self, Handle, Kind};
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::{DeviceKind, Model, ModelParams};
use std::ffi::c_char;
use std::sync::RwLock;

/// Most compute threads accepted.
pub(crate) const MAX_THREADS: u32 = 1024;

/// The devices a model can run on (the values of `graft_model_params.device`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum graft_device {
    /// The CPU (SIMD kernels picked at run time, `threads` threads).
    GRAFT_DEVICE_CPU = 0,
    /// The first hardware GPU that can hold and run the model, else the CPU (software
    /// adapters such as lavapipe are never picked this way). `graft_model_device` says which.
    GRAFT_DEVICE_AUTO = 1,
    /// A GPU: adapter `graft_model_params.device_index` (`gpu:N`, `graft_device_info` index
    /// N + 1), or with -1 the first adapter, software ones included. No such adapter, or one
    /// that cannot hold the model, is `GRAFT_ERR_DEVICE`.
    GRAFT_DEVICE_GPU = 2,
}

/// Options for opening a model. Get the defaults from `graft_model_params_default()`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_model_params {
    /// Compute threads for every session of this model, 1..=1024 (default: the CPUs available
    /// to this process).
    pub threads: u32,
    /// The device to run on, a `graft_device` value (default `GRAFT_DEVICE_CPU`); a value this
    /// build does not run on is `GRAFT_ERR_INVALID_ARG`.
    pub device: u32,
    /// With `GRAFT_DEVICE_GPU`: the adapter, N >= 0 for `gpu:N` (`graft_device_info` index
    /// N + 1), -1 for the first one (default -1). Must be -1 with the other devices.
    pub device_index: i32,
}

/// The device kind `graft_model_params.device` and `.device_index` name.
fn device_kind(device: u32, index: i32) -> Result<DeviceKind, FfiError> {
    use graft_device as D;
    let gpu = cfg!(feature = "wgpu");
    let kind = match device {
        d if d == D::GRAFT_DEVICE_CPU as u32 => DeviceKind::Cpu,
        d if d == D::GRAFT_DEVICE_AUTO as u32 => DeviceKind::Auto,
        d if d == D::GRAFT_DEVICE_GPU as u32 && gpu => match index {
            -1 => DeviceKind::Gpu(None),
            i => DeviceKind::Gpu(Some(usize::try_from(i).map_err(|_| {
                FfiError::invalid(format!(
                    "params.device_index = {i} is out of range (-1 for the first GPU, N >= 0 \
                     for gpu:N)"
                ))
            })?)),
        },
        d => {
            return Err(FfiError::invalid(format!(
                "params.device = {d} is not a device this build runs on (GRAFT_DEVICE_CPU = 0, \
                 GRAFT_DEVICE_AUTO = 1{})",
                if gpu {
                    ", GRAFT_DEVICE_GPU = 2"
                } else {
                    "; no GPU backend in this build"
                }
            )))
        }
    };
    if index != -1 && !matches!(kind, DeviceKind::Gpu(_)) {
        return Err(FfiError::invalid(format!(
            "params.device_index = {index} applies to GRAFT_DEVICE_GPU only (use -1)"
        )));
    }
    Ok(kind)
}

/// A loaded model: the memory-mapped GGUF file, its weights and tokenizer.
///
/// Ownership: made by `graft_model_open`, freed by `graft_model_close`. Sessions and adapters
/// made from it keep what they need alive, so it may be closed before them.
/// Thread-safety: may be used from several threads at once (tokenize, chat template, session
/// and adapter creation).
#[allow(non_camel_case_types)]
pub struct graft_model {
    magic: u64,
    pub(crate) model: Model,
    pub(crate) tokenizer: Tokenizer,
    /// The chat template chosen with `graft_model_set_chat_template` (a built-in name or a
    /// Jinja file path), `None` for the model's own.
    pub(crate) chat_template: RwLock<Option<String>>,
}

impl graft_model {
    /// The chat template chosen with `graft_model_set_chat_template`, if any.
    pub(crate) fn template_choice(&self) -> Option<String> {
        // A panic while holding the lock cannot leave the Option half-written.
        self.chat_template
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Handle for graft_model {
    const KIND: Kind = Kind::Model;
    fn magic(&self) -> u64 {
        self.magic
    }
}

/// The default model options.
#[no_mangle]
pub extern "C" fn graft_model_params_default() -> graft_model_params {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    graft_model_params {
        threads: (threads as u32).clamp(1, MAX_THREADS),
        device: graft_device::GRAFT_DEVICE_CPU as u32,
        device_index: -1,
    }
}

/// Opens the GGUF model at `path` (UTF-8, NUL-terminated) and writes its handle to `*out`.
/// `params` may be NULL for the defaults. On error `*out` is set to NULL.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `params` is NULL or points to a
/// `graft_model_params`; `out` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn graft_model_open(
    path: *const c_char,
    params: *const graft_model_params,
    out: *mut *mut graft_model,
) -> graft_status {
    call(|| {
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: non-NULL, and the caller guarantees it is valid for a pointer write.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the caller guarantees `path` is NULL or NUL-terminated.
        let path = unsafe { str_arg(path, "path") }?;
        let p = if params.is_null() {
            graft_model_params_default()
        } else {
            // SAFETY: non-NULL, and the caller guarantees it points to a graft_model_params.
            unsafe { params.read() }
        };
        if p.threads == 0 || p.threads > MAX_THREADS {
            return Err(FfiError::invalid(format!(
                "params.threads = {} is out of range 1..={MAX_THREADS}",
                p.threads
            )));
        }
        let device = device_kind(p.device, p.device_index)?;
        let fs_path = std::path::Path::new(path);
        if !fs_path.is_file() {
            return Err(FfiError::new(
                graft_status::GRAFT_ERR_IO,
                format!("model file not found: {path}"),
            ));
        }
        let model = Model::load_on(
            fs_path,
            ModelParams {
                threads: p.threads as usize,
            },
            device,
        )?;
        let tokenizer = Tokenizer::from_gguf(model.gguf().metadata()).map_err(|e| {
            FfiError::new(
                graft_status::GRAFT_ERR_MODEL,
                format!("{path}: tokenizer: {e}"),
            )
        })?;
        let h = handle::into_raw(graft_model {
            magic: Kind::Model.magic(),
            model,
            tokenizer,
            chat_template: RwLock::new(None),
        });
        // SAFETY: checked non-NULL above; valid for writes per the caller.
        unsafe { out.write(h) };
        Ok(())
    })
}

/// Releases the caller's reference to a model. NULL is a no-op; a handle that is not a live
/// model (already closed, another type) gives `GRAFT_ERR_INVALID_HANDLE`.
#[no_mangle]
pub extern "C" fn graft_model_close(model: *mut graft_model) -> graft_status {
    call(|| handle::release(model, "model"))
}

/// Writes the model's vocabulary size to `*n_vocab` and its training context length to
/// `*n_ctx_train` (either may be NULL).
///
/// # Safety
/// `n_vocab` and `n_ctx_train` are NULL or valid for writing.
#[no_mangle]
pub unsafe extern "C" fn graft_model_info(
    model: *const graft_model,
    n_vocab: *mut i32,
    n_ctx_train: *mut i32,
) -> graft_status {
    call(|| {
        let m = handle::get(model, "model")?;
        let c = m.model.config();
        // SAFETY: the caller guarantees each is NULL or valid for writes.
        unsafe {
            write_opt(n_vocab, i32::try_from(c.n_vocab).unwrap_or(i32::MAX));
            write_opt(
                n_ctx_train,
                i32::try_from(c.n_ctx_train).unwrap_or(i32::MAX),
            );
        }
        Ok(())
    })
}

/// Writes the name of the device the model runs on to `buf` (UTF-8, NUL-terminated), as
/// `graft bench` reports it: the CPU's kernel set (`cpu-avx2`) or the GPU adapter
/// (`gpu:0 <adapter name> (vulkan)`); with `GRAFT_DEVICE_AUTO` this is what was chosen. The
/// length without the NUL goes to `*len`; too small a buffer gives
/// `GRAFT_ERR_BUFFER_TOO_SMALL` with the size in `*len` (pass `buf = NULL, capacity = 0` to
/// ask for it).
///
/// # Safety
/// `buf` is valid for `capacity` writes when `capacity > 0`; `len` is NULL or valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn graft_model_device(
    model: *const graft_model,
    buf: *mut c_char,
    capacity: usize,
    len: *mut usize,
) -> graft_status {
    call(|| {
        let m = handle::get(model, "model")?;
        if len.is_null() {
            return Err(FfiError::null("len"));
        }
        let name = m.model.device().name();
        // SAFETY: `len` checked non-NULL; `buf` valid for `capacity` per the caller.
        unsafe { write_text(name.as_bytes(), buf, capacity, len) }
    })
}
