//! The C programs under valgrind (memcheck): no errors and no definite leaks over generate,
//! adapter hot-swap and the abuse program. Kept tiny (few tokens, short prompts): valgrind is
//! slow. Skipped, loudly, when valgrind is not installed (CI installs it).

mod common;

use common::{compile, have_valgrind, model_path, small_data, test_adapters, Link, Reference};

fn model() -> String {
    model_path().to_str().expect("UTF-8 model path").to_string()
}

fn valgrind_or_say_why() -> bool {
    let ok = have_valgrind();
    if !ok {
        eprintln!("SKIPPED: valgrind is not installed (apt-get install -y valgrind)");
    }
    ok
}

#[test]
fn generate_c_under_valgrind() {
    if !valgrind_or_say_why() {
        return;
    }
    let want = Reference::new().chat("Hi", 3, &[]);
    let out = compile("examples/generate.c", Link::Shared).run(&[&model(), "Hi", "3", "1"], true);
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{want}\n"));
}

#[test]
fn chat_adapter_c_under_valgrind() {
    if !valgrind_or_say_why() {
        return;
    }
    let r = Reference::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let [pa, pb] = test_adapters(&r.model, dir.path());
    let out = compile("examples/chat_adapter.c", Link::Shared).run(
        &[
            &model(),
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
    if !valgrind_or_say_why() {
        return;
    }
    let r = Reference::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let [pa, _] = test_adapters(&r.model, dir.path());
    let data = small_data(dir.path(), "train.jsonl", 4);
    let out = compile("tests/c/abuse.c", Link::Shared).run(
        &[
            &model(),
            pa.to_str().expect("UTF-8"),
            data.to_str().expect("UTF-8"),
        ],
        true,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(" 0 failed"),
        "abuse.c under valgrind:\n{text}"
    );
}

#[test]
#[ignore = "slow: on this 2-core machine it ran 11 CPU-minutes under valgrind without finishing step 1; run with --ignored"]
fn train_c_cancelled_at_step_2_under_valgrind() {
    if !valgrind_or_say_why() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_data(dir.path(), "train.jsonl", 8);
    let out = dir.path().join("adapter.gguf");
    let o = compile("examples/train.c", Link::Shared).run(
        &[
            &model(),
            data.to_str().expect("UTF-8"),
            out.to_str().expect("UTF-8"),
            "4",
            "2",
        ],
        true,
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("cancelled after step 2"), "{text}");
    assert!(!out.exists(), "a cancelled run wrote the adapter");
}
