//! graft's C ABI: `libgraft.so` / `libgraft.a` with the header `include/graft.h` (made by
//! cbindgen from this crate; `tests/header.rs` keeps it current).
//!
//! Conventions of every entry point:
//! - it returns a [`graft_status`] (or a plain value for the infallible ones); on failure the
//!   calling thread's [`graft_last_error`] says what and where;
//! - no panic crosses the boundary: each body runs under `catch_unwind`;
//! - NULL pointers, invalid UTF-8, out-of-range values and stale or wrong-typed handles are
//!   errors, never undefined behaviour (handles are checked against a registry of live ones).

#![allow(non_camel_case_types)]

mod adapter;
mod cbuf;
mod device;
mod error;
mod eval;
mod generate;
mod guard;
mod handle;
mod model;
mod session;
mod text;
mod train;
mod version;

pub use adapter::*;
pub use device::*;
pub use error::{graft_last_error, graft_status, graft_status_name};
pub use eval::*;
pub use generate::*;
pub use model::*;
pub use session::*;
pub use text::*;
pub use train::*;
pub use version::*;
