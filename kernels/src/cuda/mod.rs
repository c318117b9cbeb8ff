//! The CUDA seam (feature `cuda`): finding the NVIDIA driver and its devices at run time,
//! through `cudarc` with dynamic loading — graft links no CUDA library, so a build with the
//! feature runs on machines without CUDA and says so instead of failing to start. There are
//! no CUDA kernels yet: this module only answers "is there a driver, and which devices does it
//! see" ([`probe`]).
//!
//! cudarc panics when a library it needs cannot be loaded; [`probe`] checks for `libcuda`
//! first (cudarc's `is_culib_present`, which only tries to open it) and runs every driver call
//! under `catch_unwind`, so a missing or broken driver is an error value, never a panic.

use std::panic::{catch_unwind, AssertUnwindSafe};

use cudarc::driver::result as drv;
use cudarc::driver::sys;

/// The library the driver API lives in (what a missing driver is reported as).
pub const DRIVER_LIBRARY: &str = "libcuda.so.1";

/// Why CUDA cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CudaError {
    /// No driver library could be loaded (no NVIDIA driver on this machine).
    #[error("no CUDA driver found ({DRIVER_LIBRARY} could not be loaded)")]
    NoDriver,
    /// The driver is there but a call failed (`cuInit` with no device, a broken install, ...).
    #[error("the CUDA driver failed: {0}")]
    Driver(String),
}

/// One CUDA device as the driver describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaDeviceInfo {
    /// Its ordinal (`cuda:N`).
    pub index: usize,
    /// The device's name (`NVIDIA H100 80GB HBM3`, `Orin`, ...).
    pub name: String,
    /// Compute capability (major, minor): (9, 0) for sm_90.
    pub compute_capability: (u32, u32),
    /// Total device memory in bytes.
    pub total_memory: u64,
    /// Shares memory with the host (Jetson).
    pub integrated: bool,
}

/// What the driver reports: its version and its devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaDriverInfo {
    /// The CUDA version the driver supports, as (major, minor) (`cuDriverGetVersion`).
    pub version: (u32, u32),
    /// Every device, in ordinal order (possibly none).
    pub devices: Vec<CudaDeviceInfo>,
}

/// Loads the driver (once per process; later calls reuse it) and lists its devices. Never
/// panics: a missing driver is [`CudaError::NoDriver`], any failure or panic inside the driver
/// calls is [`CudaError::Driver`].
pub fn probe() -> Result<CudaDriverInfo, CudaError> {
    // SAFETY: is_culib_present only tries to dlopen the driver's library names (libloading);
    // it calls nothing in the library.
    if !catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false) {
        return Err(CudaError::NoDriver);
    }
    match catch_unwind(AssertUnwindSafe(query)) {
        Ok(r) => r,
        Err(panic) => Err(CudaError::Driver(panic_text(panic.as_ref()))),
    }
}

/// `cuInit`, the driver version and every device's properties.
fn query() -> Result<CudaDriverInfo, CudaError> {
    let err = |what: &str| {
        let what = what.to_owned();
        move |e: drv::DriverError| CudaError::Driver(format!("{what}: {e}"))
    };
    drv::init().map_err(err("cuInit"))?;
    let mut v: std::ffi::c_int = 0;
    // SAFETY: the driver is loaded and initialized; `v` is a valid out-pointer for one int.
    unsafe { sys::cuDriverGetVersion(&mut v) }
        .result()
        .map_err(err("cuDriverGetVersion"))?;
    let version = (v.max(0) as u32 / 1000, (v.max(0) as u32 % 1000) / 10);
    let n = drv::device::get_count().map_err(err("cuDeviceGetCount"))?;
    let mut devices = Vec::new();
    for i in 0..n.max(0) {
        let dev = drv::device::get(i).map_err(err("cuDeviceGet"))?;
        let name = drv::device::get_name(dev).map_err(err("cuDeviceGetName"))?;
        let attr = |a: sys::CUdevice_attribute| {
            // SAFETY: `dev` was returned by cuDeviceGet for an ordinal below the device count.
            unsafe { drv::device::get_attribute(dev, a) }.map_err(err("cuDeviceGetAttribute"))
        };
        use sys::CUdevice_attribute as A;
        let major = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let integrated = attr(A::CU_DEVICE_ATTRIBUTE_INTEGRATED)? != 0;
        // SAFETY: as above, `dev` is a device the driver handed out.
        let total_memory =
            unsafe { drv::device::total_mem(dev) }.map_err(err("cuDeviceTotalMem"))? as u64;
        devices.push(CudaDeviceInfo {
            index: i as usize,
            name,
            compute_capability: (major.max(0) as u32, minor.max(0) as u32),
            total_memory,
            integrated,
        });
    }
    Ok(CudaDriverInfo { version, devices })
}

/// The message of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic inside the CUDA bindings".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probing_never_panics_and_a_missing_driver_is_named() {
        match probe() {
            Ok(info) => {
                for (i, d) in info.devices.iter().enumerate() {
                    assert_eq!(d.index, i);
                    assert!(d.compute_capability.0 >= 3, "{d:?}");
                }
            }
            Err(CudaError::NoDriver) => {
                assert_eq!(
                    CudaError::NoDriver.to_string(),
                    "no CUDA driver found (libcuda.so.1 could not be loaded)"
                );
            }
            Err(CudaError::Driver(msg)) => assert!(!msg.is_empty()),
        }
        // A second probe gives the same answer.
        assert_eq!(probe().is_ok(), probe().is_ok());
    }
}
