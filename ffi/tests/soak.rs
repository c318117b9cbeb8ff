//! The multi-threaded soak (tests/c/soak.c): 8 threads share one model, create and free
//! sessions, hot-swap adapters at random scales, generate, cancel each other's generations,
//! use each other's busy sessions (GRAFT_ERR_BUSY) and replace adapters other threads are
//! using; RSS must stay flat after warm-up. 30 s here; `GRAFT_SOAK_SECS` sets the duration
//! (`scripts/soak.sh SECONDS`).
//!
//! `soak_c_under_thread_sanitizer` (ignored; `scripts/soak.sh --tsan SECONDS` builds what it
//! needs and runs it) links soak.c, compiled with `-fsanitize=thread`, against a libgraft.a
//! built with `-Zsanitizer=thread -Zbuild-std` (the Rust standard library instrumented too) and
//! the Rust toolchain's own ThreadSanitizer runtime: every access on both sides of the ABI is
//! checked.

mod common;

use common::{compile, model_path, test_adapters, Link, Reference};
use std::path::PathBuf;
use std::process::Command;

fn seconds() -> String {
    std::env::var("GRAFT_SOAK_SECS").unwrap_or_else(|_| "30".into())
}

/// Two test adapters in a fresh directory, and the arguments of soak.c up to SECONDS.
fn soak_args(dir: &std::path::Path) -> Vec<String> {
    let r = Reference::new();
    let [pa, pb] = test_adapters(&r.model, dir);
    [model_path(), pa, pb]
        .iter()
        .map(|p| p.to_str().expect("UTF-8 path").to_string())
        .collect()
}

#[test]
fn soak_c_8_threads_steady_rss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = soak_args(dir.path());
    args.push(seconds());
    args.push("8".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = compile("tests/c/soak.c", Link::Shared).run(&args, false);
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(text.contains("soak: OK"), "{text}");
}

fn env_path(name: &str) -> PathBuf {
    let p = std::env::var_os(name).unwrap_or_else(|| {
        panic!("{name} is not set: run scripts/soak.sh --tsan, which builds the TSan libgraft")
    });
    PathBuf::from(p)
}

#[test]
#[ignore = "needs a ThreadSanitizer build of libgraft (nightly): scripts/soak.sh --tsan"]
fn soak_c_under_thread_sanitizer() {
    let lib = env_path("GRAFT_TSAN_LIB"); // libgraft.a built with -Zsanitizer=thread
    let rt = env_path("GRAFT_TSAN_RT"); // the toolchain's librustc-*_rt.tsan.a
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let obj = dir.path().join("soak.o");
    let exe = dir.path().join("soak-tsan");
    let cc = std::env::var("TSAN_CC").unwrap_or_else(|_| "clang".into());
    // Compile with the instrumentation, link with Rust's runtime (the one its instrumented
    // code was built for) instead of the C compiler's.
    let st = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1"])
        .args(["-fsanitize=thread", "-fno-omit-frame-pointer", "-c", "-I"])
        .arg(manifest.join("include"))
        .arg(manifest.join("tests/c/soak.c"))
        .arg("-o")
        .arg(&obj)
        .status()
        .expect("run the C compiler");
    assert!(
        st.success(),
        "compiling soak.c with -fsanitize=thread failed"
    );
    let st = Command::new(&cc)
        .arg(&obj)
        .arg("-Wl,--whole-archive")
        .arg(&rt)
        .arg("-Wl,--no-whole-archive")
        .arg(&lib)
        .args(common::STATIC_DEPS)
        .arg("-lstdc++")
        .arg("-o")
        .arg(&exe)
        .status()
        .expect("run the linker");
    assert!(st.success(), "linking the TSan soak failed");

    let mut args = soak_args(dir.path());
    args.push(seconds());
    args.push("8".into());
    let supp = manifest.join("tests/c/tsan.supp");
    let out = Command::new(&exe)
        .args(&args)
        // TSan's shadow memory and history grow with the run: no RSS bound here.
        .env("SOAK_RSS_CHECK", "0")
        .env(
            "TSAN_OPTIONS",
            format!(
                "halt_on_error=0:exitcode=66:second_deadlock_stack=1:history_size=4:suppressions={}",
                supp.display()
            ),
        )
        .output()
        .expect("run the TSan soak");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        !stderr.contains("ThreadSanitizer"),
        "ThreadSanitizer reported:\n{stderr}"
    );
    assert!(out.status.success(), "soak under TSan: {}", out.status);
    assert!(stdout.contains("soak: OK"), "{stdout}");
}
