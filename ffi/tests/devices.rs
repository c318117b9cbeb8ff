//! The device list and device choice of the C API: `graft_device_count`, `graft_device_info`,
//! `graft_model_params.device` / `.device_index` and `graft_model_device`.

mod common;

use common::model_path;
use graft::*;
use std::ffi::{c_char, CStr, CString};

fn last_error() -> String {
    // SAFETY: graft_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(graft_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn text(a: &[c_char]) -> String {
    let end = a.iter().position(|&c| c == 0).expect("NUL-terminated");
    let bytes: Vec<u8> = a[..end].iter().map(|&c| c as u8).collect();
    String::from_utf8(bytes).expect("UTF-8")
}

fn info(index: i32) -> Result<graft_device_properties, graft_status> {
    let mut out = std::mem::MaybeUninit::<graft_device_properties>::zeroed();
    // SAFETY: `out` is valid for writing a graft_device_properties.
    match unsafe { graft_device_info(index, out.as_mut_ptr()) } {
        // SAFETY: zero-initialised, and graft wrote it on success.
        graft_status::GRAFT_OK => Ok(unsafe { out.assume_init() }),
        st => Err(st),
    }
}

#[test]
fn the_cpu_is_device_0_and_the_gpus_follow_as_gpu_n() {
    let n = graft_device_count();
    assert!(n >= 1, "{n}");
    assert_eq!(graft_device_count(), n, "the list is stable");
    let cpu = info(0).expect("device 0");
    assert_eq!(text(&cpu.id), "cpu");
    assert_eq!(text(&cpu.backend), "cpu");
    assert_eq!(text(&cpu.device_type), "cpu");
    assert!(text(&cpu.name).starts_with("cpu"), "{}", text(&cpu.name));
    assert!(!cpu.hardware_gpu);
    assert_eq!(cpu.max_storage_binding, 0);
    for i in 1..n {
        let d = info(i).expect("in range");
        assert_eq!(text(&d.id), format!("gpu:{}", i - 1));
        assert!(!text(&d.backend).is_empty() && !text(&d.device_type).is_empty());
        assert!(d.max_storage_binding > 0 && d.max_buffer_size > 0);
    }
}

#[test]
fn an_index_out_of_range_or_a_null_out_is_an_error() {
    let n = graft_device_count();
    for bad in [n, n + 5, -1, i32::MIN] {
        let mut out = std::mem::MaybeUninit::<graft_device_properties>::zeroed();
        // SAFETY: valid out pointer.
        let st = unsafe { graft_device_info(bad, out.as_mut_ptr()) };
        assert_eq!(st, graft_status::GRAFT_ERR_INVALID_ARG, "index {bad}");
        let e = last_error();
        assert!(
            e.contains(&bad.to_string()) && e.contains("out of range"),
            "{e}"
        );
        // SAFETY: zero-initialised.
        let out = unsafe { out.assume_init() };
        assert_eq!(out.id[0], 0, "out is left unchanged on error");
    }
    // SAFETY: NULL is checked.
    let st = unsafe { graft_device_info(0, std::ptr::null_mut()) };
    assert_eq!(st, graft_status::GRAFT_ERR_NULL_ARG);
    assert!(last_error().contains("out"), "{}", last_error());
}

fn open(mp: &graft_model_params) -> Result<*mut graft_model, (graft_status, String)> {
    let path = CString::new(model_path().to_str().expect("UTF-8 path")).expect("no NUL");
    let mut model = std::ptr::dangling_mut::<graft_model>();
    // SAFETY: valid C string, params and out pointer.
    let st = unsafe { graft_model_open(path.as_ptr(), mp, &mut model) };
    if st == graft_status::GRAFT_OK {
        Ok(model)
    } else {
        assert!(model.is_null(), "out is set to NULL on error");
        Err((st, last_error()))
    }
}

fn device_name(model: *const graft_model) -> String {
    let mut len = 0usize;
    // SAFETY: live model; a size query (NULL buffer, capacity 0).
    let st = unsafe { graft_model_device(model, std::ptr::null_mut(), 0, &mut len) };
    assert_eq!(st, graft_status::GRAFT_ERR_BUFFER_TOO_SMALL);
    let mut buf = vec![0 as c_char; len + 1];
    // SAFETY: buf holds len + 1 bytes.
    let st = unsafe { graft_model_device(model, buf.as_mut_ptr(), buf.len(), &mut len) };
    assert_eq!(st, graft_status::GRAFT_OK, "{}", last_error());
    text(&buf)
}

#[test]
fn defaults_are_the_cpu_and_the_first_adapter_index() {
    let mp = graft_model_params_default();
    assert_eq!(mp.device, graft_device::GRAFT_DEVICE_CPU as u32);
    assert_eq!(mp.device_index, -1);
    let model = open(&mp).expect("CPU model");
    assert!(device_name(model).starts_with("cpu"));
    assert_eq!(graft_model_close(model), graft_status::GRAFT_OK);
}

#[test]
fn auto_opens_on_some_device_and_names_it() {
    let mut mp = graft_model_params_default();
    mp.threads = 1;
    mp.device = graft_device::GRAFT_DEVICE_AUTO as u32;
    let model = open(&mp).expect("auto never fails for want of a GPU");
    let name = device_name(model);
    let hardware = (1..graft_device_count()).any(|i| info(i).expect("in range").hardware_gpu);
    if !hardware {
        assert!(name.starts_with("cpu"), "{name}");
    }
    assert_eq!(graft_model_close(model), graft_status::GRAFT_OK);
}

#[test]
fn bad_device_choices_are_errors() {
    let mut mp = graft_model_params_default();
    mp.threads = 1;
    // An index with a device other than the GPU.
    for dev in [
        graft_device::GRAFT_DEVICE_CPU,
        graft_device::GRAFT_DEVICE_AUTO,
    ] {
        mp.device = dev as u32;
        mp.device_index = 0;
        let (st, e) = open(&mp).expect_err("index without GPU");
        assert_eq!(st, graft_status::GRAFT_ERR_INVALID_ARG);
        assert!(e.contains("device_index = 0"), "{e}");
    }
    // An unknown device lists the known ones.
    mp.device = 7;
    mp.device_index = -1;
    let (st, e) = open(&mp).expect_err("device 7");
    assert_eq!(st, graft_status::GRAFT_ERR_INVALID_ARG);
    assert!(e.contains("GRAFT_DEVICE_AUTO"), "{e}");
    if !cfg!(feature = "wgpu") {
        return;
    }
    assert!(e.contains("GRAFT_DEVICE_GPU"), "{e}");
    // Negative indices other than -1.
    mp.device = graft_device::GRAFT_DEVICE_GPU as u32;
    mp.device_index = -2;
    let (st, e) = open(&mp).expect_err("index -2");
    assert_eq!(st, graft_status::GRAFT_ERR_INVALID_ARG);
    assert!(e.contains("device_index = -2"), "{e}");
    // An adapter that is not there.
    mp.device_index = 999;
    let (st, e) = open(&mp).expect_err("gpu:999");
    assert_eq!(st, graft_status::GRAFT_ERR_DEVICE, "{e}");
    assert!(e.contains("gpu:999"), "{e}");
    // SAFETY: graft_status_name returns a static string.
    let name = unsafe { CStr::from_ptr(graft_status_name(st as i32)) };
    assert_eq!(name.to_str(), Ok("GRAFT_ERR_DEVICE"));
}

#[test]
fn a_gpu_adapter_opens_by_index_and_is_named() {
    // Any adapter, software ones (lavapipe) included; skipped where there is none.
    if graft_device_count() < 2 {
        eprintln!("no GPU adapter: skipped");
        return;
    }
    let mut mp = graft_model_params_default();
    mp.threads = 1;
    mp.device = graft_device::GRAFT_DEVICE_GPU as u32;
    for index in [-1, 0] {
        mp.device_index = index;
        let model = open(&mp).unwrap_or_else(|(st, e)| panic!("gpu {index}: {st:?}: {e}"));
        let name = device_name(model);
        assert!(name.starts_with("gpu:0 "), "{name}");
        assert_eq!(graft_model_close(model), graft_status::GRAFT_OK);
    }
}
