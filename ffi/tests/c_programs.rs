//! The C examples and the abuse program, compiled with `cc -Wall -Werror` against
//! include/graft.h and both libgraft.so and libgraft.a, run on the real model. Their greedy
//! text must equal graft_runtime's and `graft run --chat`'s for the same prompt and adapters.

mod common;

use common::{compile, graft_run_chat, model_path, small_data, test_adapters, Link, Reference};
use graft_runtime::lora::LoadedAdapter;

const PROMPT: &str = "What is the capital of France?";

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("C program prints UTF-8")
}

#[test]
fn generate_c_equals_runtime_and_graft_run() {
    let n = 24;
    let want = Reference::new().chat(PROMPT, n, &[]);
    assert!(
        want.contains("Paris"),
        "reference answer lost Paris (llama.cpp says 'The capital of France is Paris.'): {want:?}"
    );
    let cli = graft_run_chat(PROMPT, n, None);
    assert_eq!(
        cli,
        format!("{want}\n"),
        "graft run --chat differs from graft_runtime"
    );
    let model = model_path();
    let model = model.to_str().expect("UTF-8 model path");
    for link in [Link::Shared, Link::Static] {
        let exe = compile("examples/generate.c", link);
        let out = exe.run(&[model, PROMPT, &n.to_string(), "1"], false);
        assert_eq!(
            stdout(&out),
            cli,
            "generate.c ({link:?}) differs from graft run"
        );
    }
}

#[test]
fn chat_adapter_c_hot_swaps_like_graft_run() {
    let n = 12;
    // Scale 8: these random adapters leave the greedy answer unchanged at scales up to 4.
    let scale = 8.0f32;
    let r = Reference::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let [pa, pb] = test_adapters(&r.model, dir.path());
    let a = LoadedAdapter::load(&r.model, &pa).expect("load A");
    let b = LoadedAdapter::load(&r.model, &pb).expect("load B");
    let none = r.chat(PROMPT, n, &[]);
    let with_a = r.chat(PROMPT, n, &[(a.clone(), scale)]);
    let with_b = r.chat(PROMPT, n, &[(b, scale)]);
    let half_a = r.chat(PROMPT, n, &[(a, scale / 2.0)]);
    assert!(
        with_a != none && with_b != none && with_a != with_b,
        "the adapters do not change the greedy text; the swap test would prove nothing"
    );
    // graft run with the same adapters gives the same text.
    assert_eq!(graft_run_chat(PROMPT, n, None), format!("{none}\n"));
    assert_eq!(
        graft_run_chat(PROMPT, n, Some((&pa, scale))),
        format!("{with_a}\n")
    );
    assert_eq!(
        graft_run_chat(PROMPT, n, Some((&pb, scale))),
        format!("{with_b}\n")
    );
    assert_eq!(
        graft_run_chat(PROMPT, n, Some((&pa, scale / 2.0))),
        format!("{half_a}\n")
    );
    let want = format!("none\t{none}\nA\t{with_a}\nB\t{with_b}\nA/2\t{half_a}\nnone\t{none}\n");
    let model = model_path();
    let args = [
        model.to_str().expect("UTF-8 path"),
        pa.to_str().expect("UTF-8 path"),
        pb.to_str().expect("UTF-8 path"),
        PROMPT,
        &n.to_string(),
        &scale.to_string(),
    ];
    for link in [Link::Shared, Link::Static] {
        let exe = compile("examples/chat_adapter.c", link);
        let out = exe.run(&args, false);
        assert_eq!(stdout(&out), want, "chat_adapter.c ({link:?})");
    }
}

#[test]
fn abuse_c_gets_error_codes_never_crashes() {
    let r = Reference::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let [pa, _] = test_adapters(&r.model, dir.path());
    let data = small_data(dir.path(), "train.jsonl", 4);
    let model = model_path();
    let args = [
        model.to_str().expect("UTF-8 path"),
        pa.to_str().expect("UTF-8 path"),
        data.to_str().expect("UTF-8 path"),
    ];
    for link in [Link::Shared, Link::Static] {
        let exe = compile("tests/c/abuse.c", link);
        let out = exe.run(&args, false);
        let text = stdout(&out);
        assert!(
            text.contains(" 0 failed"),
            "abuse.c ({link:?}) reported failures:\n{text}"
        );
    }
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn train_c_cancel_at_step_3_leaves_no_adapter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_data(dir.path(), "train.jsonl", 24);
    let out = dir.path().join("adapter.gguf");
    let model = model_path();
    let exe = compile("examples/train.c", Link::Shared);
    let o = exe.run(
        &[
            model.to_str().expect("UTF-8"),
            data.to_str().expect("UTF-8"),
            out.to_str().expect("UTF-8"),
            "6",
            "3",
        ],
        false,
    );
    let text = stdout(&o);
    assert!(text.contains("step 3/"), "{text}");
    assert!(
        !text.contains("step 4/"),
        "training went on after the cancel:\n{text}"
    );
    assert!(text.contains("cancelled after step 3"), "{text}");
    assert_eq!(
        files_in(dir.path()),
        vec!["train.jsonl".to_string()],
        "a cancelled run left files behind"
    );
}

#[test]
fn train_c_writes_adapter_that_graft_run_agrees_with() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_data(dir.path(), "train.jsonl", 12);
    let test = small_data(dir.path(), "test.jsonl", 2);
    let model = model_path();
    let mut adapters = Vec::new();
    for link in [Link::Shared, Link::Static] {
        let out = dir.path().join(format!("adapter-{link:?}.gguf"));
        let exe = compile("examples/train.c", link);
        let o = exe.run(
            &[
                model.to_str().expect("UTF-8"),
                data.to_str().expect("UTF-8"),
                out.to_str().expect("UTF-8"),
                "3",
                "0",
                test.to_str().expect("UTF-8"),
            ],
            false,
        );
        let text = stdout(&o);
        assert!(
            text.contains("step 3/") && text.contains("trained 3 steps"),
            "{text}"
        );
        let answer = text
            .lines()
            .find_map(|l| l.strip_prefix("answer: "))
            .unwrap_or_else(|| panic!("no answer line:\n{text}"));
        let cli = graft_run_chat("What is the capital of France?", 16, Some((&out, 1.0)));
        assert_eq!(
            format!("{answer}\n"),
            cli,
            "train.c ({link:?}) answer vs graft run --lora"
        );
        for which in ["base", "adapter"] {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("eval {which}: loss ")))
                .unwrap_or_else(|| panic!("no eval {which} line:\n{text}"));
            let loss: f64 = line
                .split_whitespace()
                .nth(3)
                .and_then(|v| v.parse().ok())
                .expect("loss");
            assert!(loss.is_finite() && loss > 0.0, "{line}");
        }
        adapters.push(std::fs::read(&out).expect("adapter written"));
    }
    assert!(
        adapters[0] == adapters[1],
        "the same seeded run gave different adapters with the shared and the static library"
    );
}
