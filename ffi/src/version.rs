//! The library version.

use std::ffi::c_char;

/// graft's version, "MAJOR.MINOR.PATCH" (a static string; never NULL, never to be freed).
#[no_mangle]
pub extern "C" fn graft_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr() as *const c_char
}
