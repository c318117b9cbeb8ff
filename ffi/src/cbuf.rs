//! C strings in, caller buffers out.

use crate::error::{graft_status, FfiError};
use std::ffi::{c_char, CStr};

/// The UTF-8 text of the NUL-terminated string `p`; `arg` names the argument in errors.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, arg: &str) -> Result<&'a str, FfiError> {
    if p.is_null() {
        return Err(FfiError::null(arg));
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string alive for 'a.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        FfiError::new(
            graft_status::GRAFT_ERR_INVALID_UTF8,
            format!(
                "{arg} is not valid UTF-8 (first invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// The slice `p[..n]`; NULL is accepted only when `n == 0`.
///
/// # Safety
/// When `n > 0`, `p` points to `n` initialised values valid and unchanged for `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(
    p: *const T,
    n: usize,
    arg: &str,
) -> Result<&'a [T], FfiError> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(FfiError::null(arg));
    }
    if n > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(FfiError::invalid(format!("{arg}: length {n} is too large")));
    }
    // SAFETY: non-NULL, length bounded above, and the caller guarantees n valid elements.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Writes `*out = v` when `out` is not NULL.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_opt<T>(out: *mut T, v: T) {
    if !out.is_null() {
        // SAFETY: non-NULL and the caller guarantees it is valid for writes.
        unsafe { out.write(v) };
    }
}

/// Copies `text` and a terminating NUL into `buf[..cap]`, writing `text.len()` (without the
/// NUL) to `*len`. `buf` may be NULL when `cap` is 0 (a size query). Too small a buffer gives
/// `GRAFT_ERR_BUFFER_TOO_SMALL` and leaves `buf` unchanged.
///
/// # Safety
/// `len` is valid for a write; when `cap > 0`, `buf` is valid for `cap` bytes of writes.
pub(crate) unsafe fn write_text(
    text: &[u8],
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> Result<(), FfiError> {
    // SAFETY: the caller guarantees `len` is valid (checked non-NULL by callers).
    unsafe { len.write(text.len()) };
    if cap < text.len() + 1 {
        return Err(FfiError::new(
            graft_status::GRAFT_ERR_BUFFER_TOO_SMALL,
            format!(
                "buffer of {cap} bytes is too small: the text needs {} bytes plus the NUL",
                text.len()
            ),
        ));
    }
    if buf.is_null() {
        return Err(FfiError::null("buf (with capacity > 0)"));
    }
    // SAFETY: buf is valid for cap >= text.len() + 1 bytes and cannot overlap `text`, which
    // graft owns.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf as *mut u8, text.len());
        buf.add(text.len()).write(0);
    }
    Ok(())
}
