//! `--chat-template NAME|FILE` on the commands that render chats (SmolLM2-135M-Instruct Q4_1;
//! `scripts/fetch-model.sh`): a built-in name replaces the model's template in the rendered
//! training text, a Jinja file is what `run --chat` feeds the model, every chat command takes
//! the option, and a bad choice is a clear error.

use std::path::PathBuf;
use std::process::{Command, Output};

use graft_quant::model_cache::test_model_path;
use serde_json::Value;

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

fn model() -> String {
    let m = test_model_path().unwrap_or_else(|msg| panic!("{msg}"));
    m.to_str().expect("utf-8").to_string()
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

fn test_set() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/support-triage/data/test.jsonl")
        .to_str()
        .expect("utf-8")
        .to_string()
}

#[test]
fn every_chat_command_takes_the_option() {
    for cmd in [
        &["run"][..],
        &["chat"],
        &["train"],
        &["eval"],
        &["data", "sample"],
    ] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = stdout_ok(&graft(&args));
        assert!(
            help.contains("--chat-template <NAME|FILE>") && help.contains("gemma"),
            "graft {cmd:?} --help lacks --chat-template:\n{help}"
        );
    }
}

#[test]
fn data_sample_renders_with_the_chosen_builtin() {
    let (m, data) = (model(), test_set());
    let sample = |extra: &[&str]| -> Value {
        let mut args = vec!["data", "sample", &data, "-m", &m, "-n", "1", "--json"];
        args.extend_from_slice(extra);
        let out = stdout_ok(&graft(&args));
        serde_json::from_str(out.lines().next().expect("one line")).expect("JSON line")
    };
    let own = sample(&[]);
    let own_text = own["text"].as_str().expect("text");
    assert!(own_text.contains("<|im_start|>user\n"), "{own_text}");
    let gemma = sample(&["--chat-template", "gemma"]);
    let text = gemma["text"].as_str().expect("text");
    assert_eq!(gemma["line"], own["line"], "same example");
    assert!(
        text.starts_with("<start_of_turn>user\nClassify the support message."),
        "the system message is folded into the user turn: {text}"
    );
    assert!(
        text.contains("<end_of_turn>\n<start_of_turn>model\n{"),
        "{text}"
    );
    assert!(!text.contains("<|im_start|>"), "{text}");
}

#[test]
fn run_chat_feeds_the_model_what_a_template_file_renders() {
    let m = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("qa.jinja");
    std::fs::write(
        &file,
        "{% for m in messages %}Q: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}A:{% endif %}",
    )
    .expect("write template");
    let f = file.to_str().expect("utf-8");
    let out = stdout_ok(&graft(&[
        "run",
        "-m",
        &m,
        "-p",
        "Name a colour.",
        "--chat",
        "--chat-template",
        f,
        "-n",
        "1",
        "--temp",
        "0",
        "--json",
    ]));
    let v: Value = serde_json::from_str(out.trim()).expect("JSON");
    let tok = stdout_ok(&graft(&[
        "tokenize",
        "-m",
        &m,
        "-p",
        "Q: Name a colour.\nA:",
        "--json",
    ]));
    let t: Value = serde_json::from_str(tok.trim()).expect("JSON");
    assert_eq!(v["prompt_tokens"], t["n_tokens"], "{out}\n{tok}");
}

#[test]
fn a_bad_choice_is_a_clear_error() {
    let m = model();
    let out = graft(&[
        "run",
        "-m",
        &m,
        "-p",
        "Hi",
        "--chat",
        "--chat-template",
        "no-such-tmpl",
        "-n",
        "1",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("no-such-tmpl") && err.contains("chatml") && err.contains("gemma"),
        "{err}"
    );
}
