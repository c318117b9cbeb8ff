//! The boundary: every entry point runs its body through [`call`], which catches panics and
//! turns errors into a status plus the thread's last-error message.

use crate::error::{graft_status, set_last_error, FfiError};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; on error or panic records the message and returns the status.
pub(crate) fn call(f: impl FnOnce() -> Result<(), FfiError>) -> graft_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => graft_status::GRAFT_OK,
        Ok(Err(e)) => {
            set_last_error(&e.msg);
            e.status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!("internal error (caught panic): {what}"));
            graft_status::GRAFT_ERR_INTERNAL
        }
    }
}
