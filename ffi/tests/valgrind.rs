//! The C programs under valgrind (memcheck): no errors and no definite leaks over generate,
//! adapter hot-swap, a short training run and the abuse program. Kept tiny: few tokens, short
//! prompts, and a tiny random model with the test model's real tokenizer and chat template
//! (`common::tiny_model_with_real_tokenizer`): the same calls and code paths as on SmolLM2,
//! whose forward alone cost ~35 s per 10 tokens under memcheck. The C programs on the real model
//! run natively in c_programs.rs. Fails when valgrind is not installed (`scripts/setup.sh`
//! installs it).

mod common;

use common::{
    compile, have_valgrind, small_data, test_adapters, tiny_model_with_real_tokenizer, Link,
    Reference, NO_GPU_DRIVERS,
};
use std::path::{Path, PathBuf};

/// The tiny model written into `dir`, and its path as a string for argv.
fn model(dir: &Path) -> (PathBuf, String) {
    let path = tiny_model_with_real_tokenizer(dir);
    let arg = path.to_str().expect("UTF-8 model path").to_string();
    (path, arg)
}

/// Fails (never skips) without valgrind: `scripts/setup.sh` installs it.
fn valgrind_or_fail() {
    assert!(
        have_valgrind(),
        "valgrind is not installed: run scripts/setup.sh (or apt-get install -y valgrind)"
    );
}

#[test]
fn generate_c_under_valgrind() {
    valgrind_or_fail();
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, model) = model(dir.path());
    let want = Reference::load(&path).chat("Hi", 3, &[]);
    let out = compile("examples/generate.c", Link::Shared).run(&[&model, "Hi", "3", "1"], true);
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{want}\n"));
}

#[test]
fn chat_adapter_c_under_valgrind() {
    valgrind_or_fail();
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, model) = model(dir.path());
    let r = Reference::load(&path);
    let [pa, pb] = test_adapters(&r.model, dir.path());
    let out = compile("examples/chat_adapter.c", Link::Shared).run(
        &[
            &model,
            pa.to_str().expect("UTF-8"),
            pb.to_str().expect("UTF-8"),
            "Hi",
            "2",
        ],
        true,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5);
}

#[test]
fn abuse_c_under_valgrind() {
    valgrind_or_fail();
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, model) = model(dir.path());
    let r = Reference::load(&path);
    let [pa, _] = test_adapters(&r.model, dir.path());
    let data = small_data(dir.path(), "train.jsonl", 4);
    // abuse.c lists the devices: with the GPU drivers hidden, memcheck checks graft and not
    // the dynamic loader and the Vulkan/GL drivers.
    let out = compile("tests/c/abuse.c", Link::Shared).run_env(
        &[
            &model,
            pa.to_str().expect("UTF-8"),
            data.to_str().expect("UTF-8"),
        ],
        true,
        &[NO_GPU_DRIVERS],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0 failed"),
        "abuse.c under valgrind:\n{text}"
    );
}

#[test]
fn train_c_under_valgrind() {
    valgrind_or_fail();
    // A short training run at the smallest settings (GRAFT_TRAIN_TINY: batch 1 x seq 64,
    // rank 2) on 2 examples: one optimizer step, the adapter written, loaded, and chatted with,
    // on the machine's own training kernels (AVX2 here: valgrind's CPUID hides AVX-512).
    // Memcheck emulates each lane of an AVX2 FMA through a helper call (~4000x slower than
    // native, against ~33x for scalar code): on SmolLM2 this run took over an hour on AVX2 and
    // ~3.5 CPU-minutes with GRAFT_ISA=scalar; on the tiny model it takes ~35 s on AVX2.
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, model) = model(dir.path());
    let data = small_data(dir.path(), "train.jsonl", 2);
    let out = dir.path().join("adapter.gguf");
    let o = compile("examples/train.c", Link::Shared).run_env(
        &[
            &model,
            data.to_str().expect("UTF-8"),
            out.to_str().expect("UTF-8"),
            "1",
            "0",
        ],
        true,
        &[("GRAFT_TRAIN_TINY", "1")],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("trained 1 steps"), "{text}");
    assert!(text.contains("answer: "), "{text}");
    assert!(out.exists(), "the adapter was not written");
}
