//! Opaque handles: each is an `Arc` handed to C as a raw pointer and recorded in a registry of
//! live handles with its type tag. A pointer is dereferenced only after the registry says it is
//! live and of the expected type, so wrong handle types, already freed handles and garbage
//! pointers give `GRAFT_ERR_INVALID_HANDLE` instead of undefined behaviour. (A freed handle's
//! address can be reused by a new handle of the same type; that case cannot be told apart.)
//!
//! Every use takes its own `Arc` clone, so a handle freed by one thread while another is still
//! inside a call stays alive until that call returns.

use crate::error::{graft_status, FfiError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The type of a handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Model,
    Session,
    Adapter,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Model => "graft_model",
            Kind::Session => "graft_session",
            Kind::Adapter => "graft_adapter",
        }
    }

    /// A per-type magic number stored in every handle and checked on use.
    pub const fn magic(self) -> u64 {
        match self {
            Kind::Model => 0x6772_6166_744d_444c,   // "graftMDL"
            Kind::Session => 0x6772_6166_7453_4553, // "graftSES"
            Kind::Adapter => 0x6772_6166_7441_4450, // "graftADP"
        }
    }
}

/// A type handed to C as a handle.
pub(crate) trait Handle: Send + Sync + Sized + 'static {
    /// Its tag.
    const KIND: Kind;
    /// The magic number stored in the value (must equal `KIND.magic()` while live).
    fn magic(&self) -> u64;
}

/// The registry's key for the handle at `addr`: the address with every bit flipped, so that
/// the registry holds no word that points into the handle. Leak checkers (LeakSanitizer,
/// valgrind) scan memory for pointers; with the plain address stored here, a handle the
/// application lost without freeing would look reachable and its leak would go unreported.
fn key(addr: usize) -> usize {
    !addr
}

fn registry() -> MutexGuard<'static, HashMap<usize, Kind>> {
    static LIVE: OnceLock<Mutex<HashMap<usize, Kind>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Registers `value` and returns the pointer C will hold.
pub(crate) fn into_raw<T: Handle>(value: T) -> *mut T {
    let p = Arc::into_raw(Arc::new(value)) as *mut T;
    registry().insert(key(p as usize), T::KIND);
    p
}

fn check(map: &HashMap<usize, Kind>, addr: usize, want: Kind, arg: &str) -> Result<(), FfiError> {
    match map.get(&key(addr)) {
        Some(&k) if k == want => Ok(()),
        Some(&k) => Err(FfiError::new(
            graft_status::GRAFT_ERR_INVALID_HANDLE,
            format!("{arg}: expected a {}, got a {}", want.name(), k.name()),
        )),
        None => Err(FfiError::new(
            graft_status::GRAFT_ERR_INVALID_HANDLE,
            format!(
                "{arg}: not a live {} (already freed, or never created by graft)",
                want.name()
            ),
        )),
    }
}

/// A new reference to the live handle `p` of type `T`; `arg` names the argument in errors.
pub(crate) fn get<T: Handle>(p: *const T, arg: &str) -> Result<Arc<T>, FfiError> {
    if p.is_null() {
        return Err(FfiError::null(arg));
    }
    let map = registry();
    check(&map, p as usize, T::KIND, arg)?;
    // SAFETY: the registry holds exactly the pointers made by `into_raw::<T>` (checked: same
    // kind) whose strong reference `release` has not yet given back; while we hold the lock
    // no `release` can run, so the allocation is alive and adding a count is sound.
    let arc = unsafe {
        Arc::increment_strong_count(p);
        Arc::from_raw(p)
    };
    drop(map);
    if arc.magic() != T::KIND.magic() {
        return Err(FfiError::new(
            graft_status::GRAFT_ERR_INVALID_HANDLE,
            format!("{arg}: corrupted {} (bad magic)", T::KIND.name()),
        ));
    }
    Ok(arc)
}

/// Unregisters `p` and drops the reference C held. NULL is a no-op.
pub(crate) fn release<T: Handle>(p: *mut T, arg: &str) -> Result<(), FfiError> {
    if p.is_null() {
        return Ok(());
    }
    let mut map = registry();
    check(&map, p as usize, T::KIND, arg)?;
    map.remove(&key(p as usize));
    drop(map);
    // SAFETY: `p` came from `into_raw::<T>` (registered with kind T) and was still registered,
    // so C's strong reference has not been given back; it was just unregistered, so this is
    // the only place that gives it back.
    drop(unsafe { Arc::from_raw(p as *const T) });
    Ok(())
}
