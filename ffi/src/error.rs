//! Status codes, the thread-local last-error message and the error type of the entry points.

use graft_runtime::ModelError;
use std::cell::RefCell;
use std::ffi::{c_char, CString};

/// The result of every fallible graft function. `GRAFT_OK` is 0; on any other value
/// `graft_last_error()` describes what went wrong and where.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum graft_status {
    /// Success.
    GRAFT_OK = 0,
    /// A required pointer argument was NULL.
    GRAFT_ERR_NULL_ARG = 1,
    /// An argument is out of its valid range.
    GRAFT_ERR_INVALID_ARG = 2,
    /// A string argument is not valid UTF-8.
    GRAFT_ERR_INVALID_UTF8 = 3,
    /// A handle is not a live handle of the expected type (wrong type, already freed, garbage).
    GRAFT_ERR_INVALID_HANDLE = 4,
    /// A file could not be found, read or written.
    GRAFT_ERR_IO = 5,
    /// The model file is invalid or not supported.
    GRAFT_ERR_MODEL = 6,
    /// An adapter file is invalid, or an adapter does not belong to the session's model.
    GRAFT_ERR_ADAPTER = 7,
    /// The caller's buffer is too small; the required size was written to the size argument.
    GRAFT_ERR_BUFFER_TOO_SMALL = 8,
    /// The tokens do not fit in the session's context.
    GRAFT_ERR_CONTEXT_FULL = 9,
    /// The handle is in use by another call right now (another thread, or a callback
    /// re-entering the call that invoked it).
    GRAFT_ERR_BUSY = 10,
    /// The operation was cancelled (training: by the progress callback).
    GRAFT_ERR_CANCELLED = 11,
    /// The chat template is missing, does not parse or failed to render.
    GRAFT_ERR_TEMPLATE = 12,
    /// Training or evaluation failed (dataset, parameters, numerics).
    GRAFT_ERR_TRAIN = 13,
    /// An internal error (a bug in graft, caught at the boundary).
    GRAFT_ERR_INTERNAL = 14,
    /// What was asked for needs more memory than the machine has available (checked before
    /// allocating; the message names both numbers).
    GRAFT_ERR_NO_MEMORY = 15,
    /// The device could not be opened or used: no such GPU adapter, a GPU that cannot hold or
    /// read the model, a lost device.
    GRAFT_ERR_DEVICE = 16,
}

/// An error on its way to the C caller: a status and a message.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub status: graft_status,
    pub msg: String,
}

impl FfiError {
    /// An error with this status.
    pub fn new(status: graft_status, msg: impl Into<String>) -> Self {
        FfiError {
            status,
            msg: msg.into(),
        }
    }

    /// A NULL pointer where `what` was required.
    pub fn null(what: &str) -> Self {
        Self::new(
            graft_status::GRAFT_ERR_NULL_ARG,
            format!("{what} must not be NULL"),
        )
    }

    /// An out-of-range argument.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(graft_status::GRAFT_ERR_INVALID_ARG, msg)
    }
}

impl From<ModelError> for FfiError {
    fn from(e: ModelError) -> Self {
        use graft_status as S;
        let status = match &e {
            ModelError::Open { .. }
            | ModelError::UnsupportedArchitecture(_)
            | ModelError::Unapplied { .. }
            | ModelError::Metadata { .. }
            | ModelError::Config(_)
            | ModelError::MissingTensor(_)
            | ModelError::Tensor { .. }
            | ModelError::Tokenizer(_)
            | ModelError::FileChanged(_) => S::GRAFT_ERR_MODEL,
            ModelError::ContextFull { .. } => S::GRAFT_ERR_CONTEXT_FULL,
            ModelError::TokenOutOfRange { .. } | ModelError::InvalidParam(_) => {
                S::GRAFT_ERR_INVALID_ARG
            }
            ModelError::OutOfMemory(_) => S::GRAFT_ERR_NO_MEMORY,
            ModelError::Adapter { .. } => S::GRAFT_ERR_ADAPTER,
            ModelError::Kernel(_) => S::GRAFT_ERR_INTERNAL,
            ModelError::Device(_) => S::GRAFT_ERR_DEVICE,
        };
        FfiError::new(status, e.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `msg` as this thread's last error (interior NUL bytes become spaces).
pub(crate) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// The message of the last failed graft call on the calling thread, or "" when none failed.
///
/// Ownership: the string belongs to graft; do not free it. It stays valid until the next
/// graft call on the same thread. Thread-safety: per thread; any thread may call it.
#[no_mangle]
pub extern "C" fn graft_last_error() -> *const c_char {
    LAST_ERROR
        .try_with(|e| e.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// The human-readable name of a status code (a static string; never NULL, never to be freed).
/// Unknown values give "unknown status".
#[no_mangle]
pub extern "C" fn graft_status_name(status: i32) -> *const c_char {
    let s: &'static std::ffi::CStr = match status {
        0 => c"GRAFT_OK",
        1 => c"GRAFT_ERR_NULL_ARG",
        2 => c"GRAFT_ERR_INVALID_ARG",
        3 => c"GRAFT_ERR_INVALID_UTF8",
        4 => c"GRAFT_ERR_INVALID_HANDLE",
        5 => c"GRAFT_ERR_IO",
        6 => c"GRAFT_ERR_MODEL",
        7 => c"GRAFT_ERR_ADAPTER",
        8 => c"GRAFT_ERR_BUFFER_TOO_SMALL",
        9 => c"GRAFT_ERR_CONTEXT_FULL",
        10 => c"GRAFT_ERR_BUSY",
        11 => c"GRAFT_ERR_CANCELLED",
        12 => c"GRAFT_ERR_TEMPLATE",
        13 => c"GRAFT_ERR_TRAIN",
        14 => c"GRAFT_ERR_INTERNAL",
        15 => c"GRAFT_ERR_NO_MEMORY",
        16 => c"GRAFT_ERR_DEVICE",
        _ => c"unknown status",
    };
    s.as_ptr()
}
