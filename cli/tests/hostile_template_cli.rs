//! The hostile chat template, end to end: the test model rewritten with one change, its
//! `tokenizer.chat_template` a nested loop (`range(10000)` inside `range(10000)`, 20 bytes a
//! turn). `graft run --chat` (no `--jinja`) must refuse it with a clear error naming the bound,
//! quickly and with a small peak RSS, before any weight is loaded (measured with `getrusage(RUSAGE_CHILDREN)`, which is why
//! this test has a binary of its own: the only child it waits for is that `graft`).

use std::process::Command;

use graft_quant::gguf::{GgufFile, GgufWriter};
use graft_quant::model_cache::test_model_path;

const NESTED: &str = "{% for i in range(10000) %}{% for j in range(10000) %}\
                      {{ 'twenty bytes a turn' }}{% endfor %}{% endfor %}";

/// Peak RSS of the largest waited-for child, in bytes.
fn children_max_rss() -> u64 {
    // SAFETY: getrusage writes one rusage into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a live rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    ru.ru_maxrss as u64 * 1024 // kilobytes on Linux
}

#[test]
fn nested_loop_template_in_a_gguf_is_refused_quickly_in_little_memory() {
    let model = test_model_path().unwrap_or_else(|msg| panic!("{msg}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let hostile = dir.path().join("hostile.gguf");
    {
        let f = GgufFile::open(&model).expect("open the test model");
        let mut md = f.metadata().clone();
        md.insert("tokenizer.chat_template", NESTED);
        let mut w = GgufWriter::new(md, f.alignment()).expect("writer");
        for t in f.tensors() {
            w.add_tensor(t.name, t.ty, t.shape, t.bytes)
                .expect("tensor");
        }
        w.write_file(&hostile).expect("write the hostile model");
    }
    let t0 = std::time::Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
    cmd.args(["run", "-m"])
        .arg(&hostile)
        .args(["--chat", "-p", "Hi", "-n", "4", "-t", "1"]);
    // A no-op pre_exec makes std fork (a copy of this process's current, small, RSS) instead of
    // posix_spawn: a vfork-style spawn runs on this process's memory until exec, and Linux
    // charges that memory's high-water mark (the 98 MB model read above) to the child.
    // SAFETY: the closure does nothing (async-signal-safe).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || Ok(()));
    }
    let out = cmd.output().expect("graft runs");
    let took = t0.elapsed();
    let rss = children_max_rss();
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "refused in {took:?}, peak RSS {} MB: {}",
        rss >> 20,
        err.trim()
    );
    assert!(!out.status.success(), "the hostile template rendered?");
    assert!(
        err.contains("chat template was stopped"),
        "not the template bound's error: {err}"
    );
    assert!(
        rss < 100 << 20,
        "peak RSS {} MB refusing a hostile template (the issue's bound: 100 MB)",
        rss >> 20
    );
    // Not a timing assert (shared machines): a bound that stops a 10^8-iteration loop at all.
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
}
