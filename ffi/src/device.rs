//! The devices a model can be opened on: the CPU, then each GPU adapter wgpu finds (what
//! `graft devices` lists).

use crate::error::{graft_status, FfiError};
use crate::guard::call;
use graft_runtime::{list_devices, DeviceInfo};
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

/// Bytes of `graft_device_properties.id`, `.backend` and `.device_type`, the NUL included.
pub const GRAFT_DEVICE_ID_SIZE: usize = 32;
/// Bytes of `graft_device_properties.name` and `.driver`, the NUL included.
pub const GRAFT_DEVICE_NAME_SIZE: usize = 256;

/// One device a model can run on, as `graft_device_info()` describes it. The strings are UTF-8
/// and NUL-terminated; a longer one is cut at a character boundary to fit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct graft_device_properties {
    /// What the CLI's `--device` calls it: "cpu", "gpu:0", "gpu:1", ... Device `gpu:N` is
    /// opened with `graft_model_params.device = GRAFT_DEVICE_GPU` and `.device_index = N`.
    pub id: [c_char; GRAFT_DEVICE_ID_SIZE],
    /// Its name: the CPU's kernel set ("cpu-avx2"), the GPU adapter's name.
    pub name: [c_char; GRAFT_DEVICE_NAME_SIZE],
    /// "cpu", or the API the GPU is driven through: "vulkan", "metal", "dx12" or "gl".
    pub backend: [c_char; GRAFT_DEVICE_ID_SIZE],
    /// "cpu", "discrete", "integrated", "virtual", "software" (e.g. lavapipe) or "other".
    pub device_type: [c_char; GRAFT_DEVICE_ID_SIZE],
    /// The GPU driver's name and version ("" for the CPU).
    pub driver: [c_char; GRAFT_DEVICE_NAME_SIZE],
    /// A hardware GPU: what `GRAFT_DEVICE_AUTO` picks over the CPU (the first such one).
    pub hardware_gpu: bool,
    /// The GPU has 16-bit float shaders (`shader-f16`).
    pub shader_f16: bool,
    /// The GPU has subgroup operations.
    pub subgroups: bool,
    /// Largest GPU buffer in bytes (0 for the CPU).
    pub max_buffer_size: u64,
    /// Largest GPU storage binding in bytes (0 for the CPU).
    pub max_storage_binding: u64,
}

/// The device list, taken once per process (the first call enumerates the GPU adapters, which
/// can take a moment): the CPU is always entry 0.
fn devices() -> &'static [DeviceInfo] {
    static LIST: OnceLock<Vec<DeviceInfo>> = OnceLock::new();
    LIST.get_or_init(|| {
        catch_unwind(AssertUnwindSafe(list_devices))
            .ok()
            // CUDA devices (`cuda` feature) are detected but cannot open a model yet: the C
            // list keeps to the devices graft_model_params can name.
            .map(|l| {
                l.into_iter()
                    .filter(|d| d.backend != "cuda")
                    .collect::<Vec<_>>()
            })
            .filter(|l| !l.is_empty())
            // A driver that panics while being enumerated leaves the CPU only.
            .unwrap_or_else(|| vec![DeviceInfo::cpu()])
    })
}

/// `text` as a NUL-terminated C string in `N` bytes, cut at a UTF-8 character boundary when
/// it does not fit (interior NULs become spaces).
fn fixed<const N: usize>(text: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    let mut end = text.len().min(N - 1);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    for (o, &b) in out.iter_mut().zip(&text.as_bytes()[..end]) {
        *o = if b == 0 { b' ' } else { b } as c_char;
    }
    out
}

impl From<&DeviceInfo> for graft_device_properties {
    fn from(d: &DeviceInfo) -> Self {
        graft_device_properties {
            id: fixed(&d.id),
            name: fixed(&d.name),
            backend: fixed(&d.backend),
            device_type: fixed(&d.device_type),
            driver: fixed(&d.driver),
            hardware_gpu: d.hardware_gpu,
            shader_f16: d.shader_f16,
            subgroups: d.subgroups,
            max_buffer_size: d.max_buffer_size,
            max_storage_binding: d.max_storage_binding,
        }
    }
}

/// The number of devices `graft_device_info` describes, at least 1: the CPU (index 0), then
/// each GPU adapter this build can drive (index N + 1 is `gpu:N`; none without a GPU driver
/// or in a build without the GPU backend). The list is taken at the first call of this
/// function or `graft_device_info` and kept for the life of the process.
///
/// Thread-safety: may be called from any thread.
#[no_mangle]
pub extern "C" fn graft_device_count() -> i32 {
    let mut n = 1;
    call(|| {
        n = i32::try_from(devices().len()).unwrap_or(i32::MAX);
        Ok(())
    });
    n
}

/// Describes device `index` (0 = the CPU, N + 1 = `gpu:N`, below `graft_device_count()`) in
/// `*out`. An index out of range is `GRAFT_ERR_INVALID_ARG`, a NULL `out`
/// `GRAFT_ERR_NULL_ARG`; `*out` is left unchanged on error.
///
/// # Safety
/// `out` is NULL or valid for writing a `graft_device_properties`.
#[no_mangle]
pub unsafe extern "C" fn graft_device_info(
    index: i32,
    out: *mut graft_device_properties,
) -> graft_status {
    call(|| {
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        let list = devices();
        let d = usize::try_from(index)
            .ok()
            .and_then(|i| list.get(i))
            .ok_or_else(|| {
                FfiError::invalid(format!(
                    "device index {index} is out of range 0..{} (graft_device_count())",
                    list.len()
                ))
            })?;
        // SAFETY: non-NULL, and the caller guarantees it is valid for writes.
        unsafe { out.write(graft_device_properties::from(d)) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text<const N: usize>(a: &[c_char; N]) -> String {
        let bytes: Vec<u8> = a
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8(bytes).expect("UTF-8")
    }

    #[test]
    fn long_strings_are_cut_at_a_character_boundary_and_terminated() {
        let a: [c_char; 4] = fixed("abc");
        assert_eq!(text(&a), "abc");
        let b: [c_char; 4] = fixed("abcdef");
        assert_eq!(text(&b), "abc");
        assert_eq!(b[3], 0);
        // "é" is two bytes: it does not fit after "ab" in 3 bytes, and is not split.
        let c: [c_char; 4] = fixed("abé");
        assert_eq!(text(&c), "ab");
        let d: [c_char; 4] = fixed("a\0b");
        assert_eq!(text(&d), "a b");
    }
}
