//! The C examples and the abuse program, compiled with `cc -Wall -Werror` against
//! include/graft.h and both libgraft.so and libgraft.a, run on the real model. Their greedy
//! text must equal graft_runtime's and `graft run --chat`'s for the same prompt and adapters.

mod common;

use common::{compile, graft_run_chat, model_path, test_adapters, Link, Reference};
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
    let model = model_path();
    let args = [
        model.to_str().expect("UTF-8 path"),
        pa.to_str().expect("UTF-8 path"),
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
