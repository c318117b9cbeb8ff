//! `graft devices` and `--device` through the built binary: the list always starts with the
//! CPU; a GPU that is not there is a clear error, never a panic; `--device auto` (the default)
//! falls back to the CPU and says so in one line. `WGPU_BACKEND=dx12` hides every GPU adapter
//! on Linux (wgpu has no DX12 there), which makes "no GPU" testable on any machine.

use std::process::{Command, Output};

use graft_quant::model_cache::test_model_path;
use serde_json::Value;

fn model() -> String {
    test_model_path()
        .unwrap_or_else(|msg| panic!("{msg}"))
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

/// Runs graft with `env` added (and a runtime dir for the GPU drivers when none is set).
fn graft_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_graft"));
    c.args(args);
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        c.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the graft binary runs")
}

/// No GPU adapter visible (on Linux; DX12 exists only on Windows).
const NO_GPU: &[(&str, &str)] = &[("WGPU_BACKEND", "dx12")];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn devices_json(env: &[(&str, &str)]) -> Vec<Value> {
    let out = graft_env(&["devices", "--json"], env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("devices --json is JSON");
    v.as_array().expect("a JSON array").clone()
}

#[test]
fn devices_json_lists_the_cpu_first_then_numbered_gpus() {
    let list = devices_json(&[]);
    assert!(!list.is_empty());
    assert_eq!(list[0]["id"], "cpu");
    assert_eq!(list[0]["device_type"], "cpu");
    assert_eq!(list[0]["hardware_gpu"], false);
    // CUDA devices (`cuda` feature, a driver present) come last, numbered on their own.
    let gpus = list.iter().skip(1).filter(|d| d["backend"] != "cuda");
    for (i, d) in gpus.enumerate() {
        assert_eq!(d["id"], format!("gpu:{i}"), "{d}");
        for key in ["name", "backend", "device_type", "driver"] {
            assert!(d[key].is_string(), "{key} in {d}");
        }
        for key in ["max_buffer_size", "max_storage_binding"] {
            assert!(d[key].is_u64(), "{key} in {d}");
        }
        for key in ["hardware_gpu", "shader_f16", "subgroups"] {
            assert!(d[key].is_boolean(), "{key} in {d}");
        }
    }
}

#[test]
fn devices_without_a_gpu_lists_the_cpu_alone_and_succeeds() {
    let list = devices_json(NO_GPU);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], "cpu");
    let out = graft_env(&["devices"], NO_GPU);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("id ") && lines[0].contains("driver"),
        "{table}"
    );
    assert!(lines[1].starts_with("cpu "), "{table}");
    assert!(
        lines.iter().any(|l| l.starts_with("--device auto: cpu")),
        "{table}"
    );
}

#[test]
#[cfg(feature = "wgpu")]
fn device_gpu_without_an_adapter_is_a_clear_error() {
    let m = model();
    for dev in ["gpu", "gpu:0"] {
        let out = graft_env(
            &["run", "-m", &m, "-p", "Hi", "-n", "2", "--device", dev],
            NO_GPU,
        );
        let err = text(&out.stderr);
        assert!(!out.status.success(), "--device {dev} must fail: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(
            err.contains(&format!("--device {dev}")) && err.contains("no GPU adapter"),
            "{err}"
        );
    }
}

#[test]
#[cfg(feature = "wgpu")]
fn a_gpu_index_past_the_list_is_a_clear_error() {
    let out = graft_env(
        &[
            "run",
            "-m",
            &model(),
            "-p",
            "Hi",
            "-n",
            "2",
            "--device",
            "gpu:999",
        ],
        &[],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("gpu:999"), "{err}");
}

#[test]
fn unknown_device_names_the_choices() {
    let out = graft_env(&["run", "-m", &model(), "-p", "Hi", "--device", "tpu"], &[]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("tpu") && err.contains("auto") && err.contains("cpu"),
        "{err}"
    );
}

#[test]
fn device_auto_falls_back_to_the_cpu_and_says_so_in_one_line() {
    let m = model();
    // Explicitly, and as the default.
    for extra in [&["--device", "auto"][..], &[][..]] {
        let mut args = vec![
            "run", "-m", &m, "-p", "Hi", "-n", "2", "--temp", "0", "--json",
        ];
        args.extend_from_slice(extra);
        let out = graft_env(&args, NO_GPU);
        let err = text(&out.stderr);
        assert!(out.status.success(), "{err}");
        let notes: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("--device auto:"))
            .collect();
        assert_eq!(notes.len(), 1, "{err}");
        assert!(notes[0].contains("running on the CPU"), "{err}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("run --json");
        assert_eq!(v["ids"].as_array().map(Vec::len), Some(2), "{v}");
    }
}

#[test]
fn device_cpu_prints_no_note() {
    let out = graft_env(
        &[
            "run",
            "-m",
            &model(),
            "-p",
            "Hi",
            "-n",
            "1",
            "--device",
            "cpu",
            "--json",
        ],
        &[],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("--device auto"), "{err}");
}

#[test]
fn bench_honours_device_and_reports_it() {
    let m = model();
    let args = [
        "bench", "-m", &m, "-p", "0", "-n", "2", "-r", "1", "-t", "1", "--json", "--device", "cpu",
    ];
    let out = graft_env(&args, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("bench --json");
    assert!(
        v["device"].as_str().is_some_and(|d| d.starts_with("cpu")),
        "{v}"
    );
    assert_eq!(v["device_id"], "cpu");
    assert!(v["results"][0].get("gpu_per_token").is_none(), "{v}");
    // A GPU that is not there fails bench as it fails run.
    let mut gpu = args;
    gpu[13] = "gpu";
    let out = graft_env(&gpu, NO_GPU);
    let err = text(&out.stderr);
    assert!(!out.status.success() && !err.contains("panicked"), "{err}");
    if cfg!(feature = "wgpu") {
        assert!(err.contains("no GPU adapter"), "{err}");
    }
    // The text output names the device in one line.
    let text_args: Vec<&str> = args.iter().copied().filter(|&a| a != "--json").collect();
    let out = graft_env(&text_args, &[]);
    let t = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        t.lines().filter(|l| l.starts_with("device: cpu")).count(),
        1,
        "{t}"
    );
}

#[test]
fn bench_on_a_gpu_reports_the_work_per_generated_token() {
    // Any adapter, software ones (lavapipe) included; skipped where there is none.
    if devices_json(&[]).len() < 2 {
        eprintln!("no GPU adapter: skipped");
        return;
    }
    let m = model();
    let out = graft_env(
        &[
            "bench", "-m", &m, "-p", "0", "-n", "2", "-r", "1", "-t", "1", "--json", "--device",
            "gpu",
        ],
        &[],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("bench --json");
    assert_eq!(v["device_id"], "gpu:0", "{v}");
    let g = &v["results"][0]["gpu_per_token"];
    // The warm-up token and one repetition of two.
    assert_eq!(g["tokens"], 3, "{v}");
    let submits = g["submits"].as_f64().expect("submits");
    assert!(submits >= 1.0, "every token is at least one submit: {v}");
    let bytes = g["readback_bytes"].as_f64().expect("readback_bytes");
    assert!(bytes > 0.0, "every token reads something back: {v}");
    // The read bound measures the CPU's threads: a clear error on a GPU, before any test runs.
    let out = graft_env(
        &[
            "bench",
            "-m",
            &m,
            "-p",
            "0",
            "-n",
            "2",
            "-r",
            "1",
            "--device",
            "gpu",
            "--read-bound",
        ],
        &[],
    );
    let err = text(&out.stderr);
    assert!(!out.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("--read-bound measures the CPU"), "{err}");
}

/// `--device cuda` on a model command: whatever this build and machine have, a clear error
/// that says the CUDA backend is not built yet, a failure status, no panic.
fn assert_cuda_refused(out: &Output) {
    let err = text(&out.stderr);
    assert!(!out.status.success(), "--device cuda must fail: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains("cuda"), "{err}");
    if cfg!(feature = "cuda") {
        assert!(err.contains("CUDA backend is not built yet"), "{err}");
    } else {
        assert!(err.contains("`cuda` feature"), "{err}");
    }
}

#[test]
fn device_cuda_is_a_clear_error_until_there_is_a_cuda_backend() {
    let m = model();
    for dev in ["cuda", "cuda:1"] {
        assert_cuda_refused(&graft_env(
            &["run", "-m", &m, "-p", "Hi", "-n", "2", "--device", dev],
            NO_GPU,
        ));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("a.gguf");
    assert_cuda_refused(&graft_env(
        &[
            "train",
            "-m",
            &m,
            "--data",
            "/nonexistent/d.jsonl",
            "-o",
            out.to_str().expect("utf-8"),
            "--device",
            "cuda",
        ],
        NO_GPU,
    ));
    assert!(!out.exists());
    // `graft devices` says where CUDA stands on its last line, and still succeeds.
    let listed = graft_env(&["devices"], NO_GPU);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let table = text(&listed.stdout);
    let last = table.lines().last().unwrap_or_default();
    assert!(last.starts_with("cuda: "), "{table}");
}

/// With the `cuda` feature on a machine without the NVIDIA driver (CI, this project's
/// machines), the missing library is named; with a driver, its devices are listed.
#[test]
#[cfg(feature = "cuda")]
fn without_a_cuda_driver_devices_and_run_name_the_missing_library() {
    let listed = graft_env(&["devices"], NO_GPU);
    let table = text(&listed.stdout);
    let json = devices_json(NO_GPU);
    let cudas: Vec<&Value> = json.iter().filter(|d| d["backend"] == "cuda").collect();
    if table.contains("cuda: no CUDA driver found") {
        assert!(
            table.contains("cuda: no CUDA driver found (libcuda.so.1 could not be loaded)"),
            "{table}"
        );
        assert!(cudas.is_empty(), "{json:?}");
        let out = graft_env(
            &[
                "run",
                "-m",
                &model(),
                "-p",
                "Hi",
                "-n",
                "2",
                "--device",
                "cuda",
            ],
            NO_GPU,
        );
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(
            err.contains("no CUDA driver found (libcuda.so.1 could not be loaded)"),
            "{err}"
        );
    } else {
        for (i, d) in cudas.iter().enumerate() {
            assert_eq!(d["id"], format!("cuda:{i}"), "{d}");
            assert!(d["total_memory"].as_u64().unwrap_or(0) > 0, "{d}");
        }
    }
}
