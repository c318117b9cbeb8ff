//! The C examples, the abuse program and a short soak built with
//! `-fsanitize=address,undefined -fno-sanitize-recover=all` against libgraft.so, run on the
//! real model: clean exit, no AddressSanitizer / LeakSanitizer / UBSan report.
//!
//! What this checks: the C side is instrumented (every read and write the programs make,
//! including reads of the text graft writes into caller buffers and of the strings it hands
//! back). libgraft itself is not instrumented (the Rust side is built as usual), but ASan
//! replaces malloc/free and the libc memory functions for the whole process: a double or
//! invalid free by graft, an overflow through memcpy/memmove/memset (which Rust calls for
//! bulk copies), and every leak at exit (LeakSanitizer sees the Rust allocations too) are
//! caught; plain stores from the uninstrumented Rust code are not. Data races are the business
//! of the ThreadSanitizer soak (`scripts/soak.sh --tsan`, Rust side instrumented).

mod common;

use common::{
    compile_with, model_path, small_data, test_adapters, CProgram, Link, Reference, NO_GPU_DRIVERS,
};

const ASAN_FLAGS: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-omit-frame-pointer",
    "-fno-sanitize-recover=all",
];

/// Leaks are reported (detect_leaks=1) and fail the run; the first error ends it.
const ASAN_ENV: &[(&str, &str)] = &[
    (
        "ASAN_OPTIONS",
        "detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=86:strict_string_checks=1:\
         detect_stack_use_after_return=1:check_initialization_order=1",
    ),
    ("LSAN_OPTIONS", "exitcode=87"),
    ("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1"),
];

fn asan(src: &str) -> CProgram {
    compile_with(src, Link::Shared, "-asan", ASAN_FLAGS)
}

fn model() -> String {
    model_path().to_str().expect("UTF-8 model path").to_string()
}

/// Runs `exe` under the sanitizers (panics on a non-zero exit) and fails on any report.
fn run_clean(exe: &CProgram, args: &[&str], env: &[(&str, &str)]) -> String {
    let env: Vec<(&str, &str)> = ASAN_ENV.iter().chain(env).copied().collect();
    let out = exe.run_env(args, false, &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for marker in [
        "AddressSanitizer",
        "LeakSanitizer",
        "runtime error:",
        "UndefinedBehaviorSanitizer",
    ] {
        assert!(
            !stderr.contains(marker),
            "{} {args:?}: sanitizer report ({marker}):\n{stderr}",
            exe.exe.display()
        );
    }
    String::from_utf8(out.stdout).expect("C program prints UTF-8")
}

#[test]
fn generate_c_under_asan_ubsan() {
    let want = Reference::new().chat("What is the capital of France?", 8, &[]);
    let out = run_clean(
        &asan("examples/generate.c"),
        &[&model(), "What is the capital of France?", "8", "2"],
        &[],
    );
    assert_eq!(out, format!("{want}\n"));
}

#[test]
fn chat_adapter_c_under_asan_ubsan() {
    let r = Reference::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let [pa, pb] = test_adapters(&r.model, dir.path());
    let out = run_clean(
        &asan("examples/chat_adapter.c"),
        &[
            &model(),
            pa.to_str().expect("UTF-8"),
            pb.to_str().expect("UTF-8"),
            "Hi",
            "4",
        ],
        &[],
    );
    assert_eq!(out.lines().count(), 5, "{out}");
}

#[test]
fn abuse_c_under_asan_ubsan() {
    let r = Reference::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let [pa, _] = test_adapters(&r.model, dir.path());
    let data = small_data(dir.path(), "train.jsonl", 4);
    // abuse.c lists the devices: with the GPU drivers hidden, as under valgrind (graft's own
    // device code is checked by tests/devices.rs and the CLI's device tests).
    let out = run_clean(
        &asan("tests/c/abuse.c"),
        &[
            &model(),
            pa.to_str().expect("UTF-8"),
            data.to_str().expect("UTF-8"),
        ],
        &[NO_GPU_DRIVERS],
    );
    assert!(out.contains(" 0 failed"), "abuse.c under ASan:\n{out}");
}

#[test]
fn train_c_under_asan_ubsan() {
    // The smallest run (GRAFT_TRAIN_TINY: batch 1 x seq 64, rank 2) on 2 examples: one step,
    // the adapter written, loaded, chatted with and evaluated.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_data(dir.path(), "train.jsonl", 2);
    let test = small_data(dir.path(), "test.jsonl", 1);
    let adapter = dir.path().join("adapter.gguf");
    let out = run_clean(
        &asan("examples/train.c"),
        &[
            &model(),
            data.to_str().expect("UTF-8"),
            adapter.to_str().expect("UTF-8"),
            "1",
            "0",
            test.to_str().expect("UTF-8"),
        ],
        &[("GRAFT_TRAIN_TINY", "1")],
    );
    assert!(out.contains("trained 1 steps"), "{out}");
    assert!(out.contains("answer: "), "{out}");
    assert!(adapter.exists(), "the adapter was not written");
}

#[test]
fn soak_c_under_asan_ubsan() {
    // 8 threads for 10 s. ASan's quarantine keeps freed memory on purpose, so the RSS check
    // is off here (the uninstrumented soak in tests/soak.rs makes it).
    let r = Reference::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let [pa, pb] = test_adapters(&r.model, dir.path());
    drop(r);
    let out = run_clean(
        &asan("tests/c/soak.c"),
        &[
            &model(),
            pa.to_str().expect("UTF-8"),
            pb.to_str().expect("UTF-8"),
            "10",
            "8",
        ],
        &[("SOAK_RSS_CHECK", "0")],
    );
    assert!(out.contains("soak: OK"), "{out}");
}

#[test]
fn leaked_handles_are_reported_by_leak_sanitizer() {
    // Regression: the handle registry used to hold each live handle's address, so a model,
    // session or adapter the application lost looked reachable and LeakSanitizer (and
    // valgrind) said nothing. It now keeps only a transformed key.
    let r = Reference::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let [pa, _] = test_adapters(&r.model, dir.path());
    drop(r);
    let exe = asan("tests/c/leak_handle.c");
    let args = [model(), pa.to_str().expect("UTF-8").to_string()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Freed: clean.
    let mut freed = args.clone();
    freed.push("free");
    run_clean(&exe, &freed, &[]);
    // Lost: reported.
    let out = exe.output_env(&args, false, ASAN_ENV);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("LeakSanitizer: detected memory leaks"),
        "LeakSanitizer did not report the lost handles ({}):\n{stderr}",
        out.status
    );
}
