//! Parity with llama.cpp: files graft writes must load and generate in llama.cpp.
//!
//! These tests need the llama.cpp oracle (tools/llama-oracle, which builds llama.cpp from the
//! `llama-cpp-2` crate): they are `#[ignore]`d in the default run and executed by
//! `scripts/test.sh --parity` (and CI), which builds the oracle and sets `GRAFT_LLAMA_ORACLE`.
//! Run by hand with:
//! `GRAFT_LLAMA_ORACLE=tools/llama-oracle/target/release/llama-oracle cargo test -p graft-cli --test llama_parity -- --ignored`

#[path = "../../runtime/tests/adapter_support/mod.rs"]
mod adapter_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use graft_quant::gguf::GgufFile;
use graft_quant::model_cache::test_model_path;
use serde_json::Value;

fn oracle() -> PathBuf {
    graft_testkit::oracle::path()
}

fn model() -> PathBuf {
    test_model_path().unwrap_or_else(|msg| panic!("{msg}"))
}

/// Has llama.cpp load `model` and greedily continue "The capital of France is" for `n` tokens;
/// asserts it loaded, ran and generated something, and returns the oracle's JSON.
fn llama_load_check(
    oracle: &std::path::Path,
    model: &std::path::Path,
    n: usize,
    what: &str,
) -> Value {
    let run = Command::new(oracle)
        .args([
            "load-check",
            "-n",
            &n.to_string(),
            "-p",
            "The capital of France is",
        ])
        .arg("-m")
        .arg(model)
        .output()
        .expect("llama-oracle runs");
    assert!(
        run.status.success(),
        "llama.cpp could not load/run {what}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let j: Value = serde_json::from_slice(&run.stdout).expect("load-check prints JSON");
    assert_eq!(j["ok"], true);
    let ids = j["ids"].as_array().map_or(0, Vec::len);
    assert!(ids > 0, "llama.cpp generated nothing from {what}");
    j
}

/// Quantizes the test model to `ty` with `graft quantize`, then has llama.cpp load and run it.
/// `expect_paris`: whether the type keeps enough quality for the 135M model to still complete
/// "The capital of France is" with Paris. Requantizing its Q4_1 weights to Q4_0 does not: the
/// second rounding costs too much on a model this small. Checked with llama.cpp's own quantizer
/// (`llama-oracle quantize --type q4_0 --allow-requantize`, whose file is byte-identical to
/// graft's, see `graft_quantize_matches_llama_quantize`): llama.cpp's `load-check` on it gave
/// " capitalised as it is capitalised.\n\nThe capital", while its Q5_1 and Q4_K_S files give
/// " Paris.".
fn quantized_output_runs_in_llama_cpp(ty: &str, expect_paris: bool) {
    let oracle = oracle();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join(format!("smollm2-{ty}.gguf"));
    let status = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["quantize", "--allow-requantize", "--type", ty])
        .arg(model())
        .arg(&out)
        .status()
        .expect("graft runs");
    assert!(status.success(), "graft quantize --type {ty} failed");

    let j = llama_load_check(&oracle, &out, 12, &format!("graft's {ty} output"));
    assert_eq!(j["n_layer"], 30);
    let text = j["text"].as_str().unwrap_or_default();
    eprintln!("llama.cpp on graft's {ty} file: {text:?}");
    // A working model continues this prompt with Paris; a corrupt file produces noise.
    if expect_paris {
        assert!(
            text.contains("Paris"),
            "llama.cpp's continuation on the {ty} file: {text:?}"
        );
    }
}

#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn q4_0_output_runs_in_llama_cpp() {
    quantized_output_runs_in_llama_cpp("q4_0", false);
}

#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn q4_k_output_runs_in_llama_cpp() {
    quantized_output_runs_in_llama_cpp("q4_k", true);
}

#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn q8_0_output_runs_in_llama_cpp() {
    quantized_output_runs_in_llama_cpp("q8_0", true);
}

#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn f16_output_runs_in_llama_cpp() {
    quantized_output_runs_in_llama_cpp("f16", true);
}

/// Every `graft quantize --type` llama.cpp also writes: the plain types, the older names
/// `q4_k`/`q5_k` (= `q4_k_s`/`q5_k_s`) and llama.cpp's k-quant mixes.
const LLAMA_TYPES: [&str; 18] = [
    "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "f16", "f32", "q4_k", "q5_k", "q2_k", "q3_k_s",
    "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k",
];

/// Gemma 3 270M (Q4_K_M), or a panic saying how to fetch it.
fn gemma_model() -> PathBuf {
    let path = graft_quant::model_cache::models_dir().join("gemma-3-270m-q4_k_m.gguf");
    assert!(
        path.is_file(),
        "Gemma 3 270M test model {} is missing: run `scripts/fetch-model.sh gemma3-270m`",
        path.display()
    );
    path
}

/// Quantizes `model` to `ty` with both `graft quantize` and llama.cpp's
/// `llama_model_quantize` (the oracle's `quantize`) and compares the files tensor by tensor:
/// every tensor must get the same type, shape and bytes, and the files the same
/// `general.file_type`.
fn quantize_matches_llama(model: &Path, ty: &str) {
    let oracle = oracle();
    let dir = tempfile::tempdir().expect("temp dir");
    let ours = dir.path().join(format!("graft-{ty}.gguf"));
    let theirs = dir.path().join(format!("llama-{ty}.gguf"));
    let status = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["quantize", "--allow-requantize", "--type", ty])
        .arg(model)
        .arg(&ours)
        .status()
        .expect("graft runs");
    assert!(status.success(), "graft quantize --type {ty} failed");
    let run = Command::new(oracle)
        .args(["quantize", "--allow-requantize", "--type", ty, "-m"])
        .arg(model)
        .arg("-o")
        .arg(&theirs)
        .output()
        .expect("llama-oracle runs");
    assert!(
        run.status.success(),
        "llama.cpp could not quantize to {ty}: {}",
        String::from_utf8_lossy(&run.stderr)
    );

    let a = GgufFile::open(&ours).expect("graft's output parses");
    let b = GgufFile::open(&theirs).expect("llama.cpp's output parses");
    // llama.cpp writes the tensors in its own order (by layer, then name); graft keeps the input's.
    let mut names_a: Vec<&str> = a.tensors().map(|t| t.name).collect();
    let mut names_b: Vec<&str> = b.tensors().map(|t| t.name).collect();
    names_a.sort_unstable();
    names_b.sort_unstable();
    assert_eq!(names_a, names_b, "{ty}: tensor names differ");
    let (mut same, mut type_diff, mut byte_diff) = (0usize, Vec::new(), Vec::new());
    let mut per_type = std::collections::BTreeMap::<String, usize>::new();
    for ta in a.tensors() {
        let tb = b.tensor(ta.name).expect("same names");
        assert_eq!(ta.shape, tb.shape, "{ty}: shape of {}", ta.name);
        if ta.ty != tb.ty {
            type_diff.push(format!("{}: graft {} llama.cpp {}", ta.name, ta.ty, tb.ty));
        } else if ta.bytes != tb.bytes {
            let first = ta.bytes.iter().zip(tb.bytes).position(|(x, y)| x != y);
            byte_diff.push(format!(
                "{} ({}): first differing byte {first:?}",
                ta.name, ta.ty
            ));
        } else {
            same += 1;
            *per_type.entry(ta.ty.to_string()).or_default() += 1;
        }
    }
    let file = model.file_name().map(|f| f.to_string_lossy().into_owned());
    eprintln!(
        "{file:?} {ty}: {same} of {} tensors byte-identical to llama.cpp's ({per_type:?})",
        names_a.len()
    );
    assert!(
        type_diff.is_empty(),
        "{ty}: {} tensors got a different type than in llama.cpp:\n{}",
        type_diff.len(),
        type_diff.join("\n")
    );
    assert!(
        byte_diff.is_empty(),
        "{ty}: {} tensors differ from llama.cpp's bytes:\n{}",
        byte_diff.len(),
        byte_diff.join("\n")
    );
    assert_eq!(same, names_a.len());
    assert_eq!(
        a.metadata().get("general.file_type"),
        b.metadata().get("general.file_type"),
        "{ty}: general.file_type"
    );
}

/// Every type and mix, on SmolLM2 (Q4_1, requantized directly: no mix picks Q4_1, so every
/// weight matrix but the Q8_0 output head is requantized by both tools).
#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn graft_quantize_matches_llama_quantize() {
    for ty in LLAMA_TYPES {
        quantize_matches_llama(&model(), ty);
    }
}

/// Every type and mix, on Gemma 3 270M: its Q4_K_M file is first dequantized to f32 by
/// `graft quantize --type f32` (exact), so that both tools quantize every weight matrix from
/// the same floats instead of copying the tensors already of their target type.
#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn graft_quantize_matches_llama_quantize_on_gemma3() {
    let dir = tempfile::tempdir().expect("temp dir");
    let f32_model = dir.path().join("gemma-3-270m-f32.gguf");
    let status = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["quantize", "--allow-requantize", "--type", "f32"])
        .arg(gemma_model())
        .arg(&f32_model)
        .status()
        .expect("graft runs");
    assert!(status.success(), "graft quantize --type f32 failed");
    for ty in LLAMA_TYPES {
        if ty != "f32" {
            quantize_matches_llama(&f32_model, ty);
        }
    }
}

/// graft's k-quant block quantizers equal ggml's (`ggml_quantize_chunk` through the oracle's
/// `quantize-blocks`) on real weights: every 2-D tensor of SmolLM2 (dequantized from Q4_1, whose
/// grid makes ties in the scale searches likely), plus the same weights scaled by 1e-3 and with
/// every 97th value made an outlier. The model parity tests never write a Q2_K tensor (the
/// models' 576/640-wide rows send Q2_K to Q4_0), so this is where Q2_K meets ggml on real data.
#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn k_quant_blocks_match_ggml_on_model_weights() {
    use std::io::Write;
    use std::process::Stdio;
    let file = GgufFile::open(model()).expect("model opens");
    let mut x = Vec::new();
    for t in file.tensors().filter(|t| t.shape.len() == 2) {
        let n = usize::try_from(t.n_elements()).expect("fits");
        // A slice of each tensor keeps the run short: 64 super-blocks.
        let mut all = vec![0f32; n];
        graft_quant::blocks::dequantize(t.ty, t.bytes, &mut all).expect("dequantizes");
        x.extend_from_slice(&all[..n.min(64 * 256)]);
    }
    let mut y: Vec<f32> = x.iter().map(|v| v * 1e-3).collect();
    for (i, v) in y.iter_mut().enumerate() {
        if i % 97 == 0 {
            *v *= 300.0;
        }
    }
    x.extend_from_slice(&y);
    let input: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    for ty in ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k"] {
        let mut child = Command::new(oracle())
            .args(["quantize-blocks", "--type", ty])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("llama-oracle runs");
        let mut stdin = child.stdin.take().expect("stdin");
        let feed = input.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&feed).expect("writes"));
        let out = child.wait_with_output().expect("llama-oracle finishes");
        writer.join().expect("writer");
        assert!(out.status.success(), "quantize-blocks --type {ty} failed");
        let qt = graft_quant::QuantType::from_name(ty).expect("known type");
        let ours = graft_quant::blocks::quantize(qt, &x).expect("graft quantizes");
        let bs = qt.type_size();
        let bad: Vec<usize> = (0..ours.len() / bs)
            .filter(|&b| ours[b * bs..(b + 1) * bs] != out.stdout[b * bs..(b + 1) * bs])
            .collect();
        assert_eq!(ours.len(), out.stdout.len(), "{ty}: sizes");
        eprintln!(
            "{ty}: {} of {} blocks byte-identical to ggml's",
            ours.len() / bs - bad.len(),
            ours.len() / bs
        );
        assert!(
            bad.is_empty(),
            "{ty}: blocks {:?}... differ",
            &bad[..bad.len().min(8)]
        );
    }
}

/// `graft merge` output (a rank-16 adapter on all seven projections folded into the Q4_1 base,
/// and into f16) loads and generates in llama.cpp.
#[test]
#[ignore = "needs llama.cpp: scripts/test.sh --parity"]
fn merged_model_runs_in_llama_cpp() {
    let oracle = oracle();
    let base_path = model();
    let base = GgufFile::open(&base_path).expect("base opens");
    let dir = tempfile::tempdir().expect("temp dir");
    let adapter = adapter_support::random_adapter_for_base(
        &base,
        &adapter_support::ALL_PROJECTIONS,
        16,
        Some(32.0),
        7,
        0.01,
    );
    let adapter_path = dir.path().join("adapter.gguf");
    adapter
        .save_gguf(&adapter_path, graft_quant::QuantType::F32)
        .expect("adapter saved");
    for ty in [None, Some("f16")] {
        let out = dir
            .path()
            .join(format!("merged-{}.gguf", ty.unwrap_or("base")));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
        cmd.arg("merge")
            .arg("-m")
            .arg(&base_path)
            .arg("--lora")
            .arg(&adapter_path);
        cmd.arg("-o").arg(&out);
        if let Some(t) = ty {
            cmd.args(["--type", t]);
        }
        let status = cmd.status().expect("graft runs");
        assert!(status.success(), "graft merge ({ty:?}) failed");
        let j = llama_load_check(&oracle, &out, 8, &format!("the merged model ({ty:?})"));
        eprintln!("llama.cpp on the merged model ({ty:?}): {:?}", j["text"]);
    }
}

/// The support-triage test prompts (system + user turns, rendered with the chat template
/// `graft run --chat` uses, ending with the generation prompt), as raw text with special tokens.
fn triage_prompts(n: usize) -> Vec<String> {
    use graft_runtime::chat_template::{ChatMessage, ChatTemplate};
    let file = GgufFile::open(model()).expect("model opens");
    let tok = graft_runtime::tokenizer::Tokenizer::from_gguf(file.metadata()).expect("tokenizer");
    let tmpl = ChatTemplate::for_model(file.metadata(), &tok, false).expect("template");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/support-triage/data/test.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("test.jsonl");
    text.lines()
        .take(n)
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("json line");
            let msgs: Vec<ChatMessage> = v["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .filter(|m| m["role"] != "assistant")
                .map(|m| {
                    ChatMessage::new(
                        m["role"].as_str().expect("role"),
                        m["content"].as_str().expect("content"),
                    )
                })
                .collect();
            tmpl.render(&msgs, true).expect("render")
        })
        .collect()
}

/// Greedy ids of `graft run` on a raw prompt, optionally with an adapter (EOG tokens dropped).
fn graft_greedy(prompt: &str, adapter: Option<&std::path::Path>, n: usize) -> Vec<i64> {
    graft_greedy_on(&model(), prompt, adapter, n)
}

/// [`graft_greedy`] on another model file.
fn graft_greedy_on(
    model: &std::path::Path,
    prompt: &str,
    adapter: Option<&std::path::Path>,
    n: usize,
) -> Vec<i64> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
    // The CPU kernels are what is held to llama.cpp's greedy ids (`--device auto`, the
    // default, would take a hardware GPU where there is one).
    cmd.arg("run").arg("-m").arg(model).args([
        "-p",
        prompt,
        "--temp",
        "0",
        "-n",
        &n.to_string(),
        "--json",
        "--device",
        "cpu",
    ]);
    if let Some(a) = adapter {
        cmd.arg("--lora").arg(a);
    }
    let out = cmd.output().expect("graft runs");
    assert!(
        out.status.success(),
        "graft run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).expect("graft run --json");
    ids_without_eog(&j["ids"])
}

/// llama.cpp's greedy generation (32 tokens, raw prompts) of each prompt on `model`, optionally
/// with a LoRA: the oracle's `cases` (one per prompt, with `ids`, `text`, `margins`).
fn oracle_generate(
    oracle: &std::path::Path,
    model: &std::path::Path,
    adapter: Option<&std::path::Path>,
    prompts: &[impl AsRef<str>],
    dir: &std::path::Path,
) -> Vec<Value> {
    let spec: Vec<Value> = prompts
        .iter()
        .map(|p| serde_json::json!({"prompt": p.as_ref(), "chat": false}))
        .collect();
    let spec_path = dir.join("prompts.json");
    std::fs::write(&spec_path, serde_json::to_vec(&spec).expect("json")).expect("write");
    let mut cmd = Command::new(oracle);
    cmd.args(["generate", "-n", "32", "--prompts-json"])
        .arg(&spec_path)
        .arg("-m")
        .arg(model);
    if let Some(a) = adapter {
        cmd.arg("--lora").arg(a);
    }
    let run = cmd.output().expect("llama-oracle runs");
    assert!(
        run.status.success(),
        "llama.cpp could not run {} (adapter {adapter:?}): {}",
        model.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    let j: Value = serde_json::from_slice(&run.stdout).expect("oracle JSON");
    let cases = j["cases"].as_array().expect("cases").clone();
    assert_eq!(cases.len(), prompts.len(), "one case per prompt");
    cases
}

/// SmolLM2's end-of-generation ids (<|endoftext|> 0, <|im_end|> 2) removed.
fn ids_without_eog(v: &Value) -> Vec<i64> {
    v.as_array()
        .expect("ids array")
        .iter()
        .filter_map(Value::as_i64)
        .filter(|&id| id != 0 && id != 2)
        .collect()
}

/// An adapter trained by `graft train` loads in llama.cpp and gives the same greedy outputs on
/// the example task's test prompts as graft with the same adapter.
#[test]
#[ignore = "needs the llama.cpp oracle: scripts/test.sh --parity"]
fn trained_adapter_matches_llama_cpp_greedy() {
    let oracle = oracle();
    let dir = tempfile::tempdir().expect("temp dir");
    let adapter = dir.path().join("triage.gguf");
    // A short, strong run: enough to change what the model answers.
    train_short(
        "support-triage",
        &adapter,
        &[
            "--seq",
            "128",
            "--batch",
            "4",
            "--max-steps",
            "12",
            "--checkpointing",
            "off",
        ],
    );
    let changed = greedy_matches_llama_cpp(&oracle, &adapter, dir.path());
    assert!(changed > 0, "the trained adapter changed no answer");
}

/// A short, strong `graft train` run (rank 8, lr 2e-3 constant, one micro-batch per step, one
/// epoch) on `examples/<example>/data/train.jsonl`, with `extra` flags, writing `adapter`.
fn train_short(example: &str, adapter: &Path, extra: &[&str]) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(example)
        .join("data/train.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_graft"))
        .arg("train")
        .arg("-m")
        .arg(model())
        .arg("--data")
        .arg(&data)
        .arg("-o")
        .arg(adapter)
        .args([
            "--rank",
            "8",
            "--grad-accum",
            "1",
            "--lr",
            "2e-3",
            "--warmup",
            "0",
            "--schedule",
            "constant",
            "--epochs",
            "1",
            "-t",
            "2",
            "--no-progress",
        ])
        .args(extra)
        .status()
        .expect("graft train runs");
    assert!(status.success(), "graft train {extra:?} failed");
}

/// Greedy ids of graft and llama.cpp with `adapter` on six triage prompts are equal; returns
/// how many answers the adapter changed from the base's.
fn greedy_matches_llama_cpp(oracle: &Path, adapter: &Path, dir: &Path) -> usize {
    let prompts = triage_prompts(6);
    let cases = oracle_generate(oracle, &model(), Some(adapter), &prompts, dir);
    let mut changed = 0;
    for (p, case) in prompts.iter().zip(cases) {
        let ours = graft_greedy(p, Some(adapter), 32);
        let theirs = ids_without_eog(&case["ids"]);
        eprintln!("llama.cpp + adapter: {:?}", case["text"]);
        assert_eq!(
            ours, theirs,
            "greedy ids differ with the trained adapter on {p:?}"
        );
        if graft_greedy(p, None, 32) != ours {
            changed += 1;
        }
    }
    changed
}

/// An adapter trained by `graft train --method dpo` (the triage-preference pairs) loads in
/// llama.cpp and gives the same greedy outputs as graft with it. With RPO (the chosen answers
/// kept likely): eight plain DPO steps at this learning rate leave a model whose top logits
/// are within ulps of each other, where llama.cpp's own prompt-batch and whole-sequence logits
/// already disagree on the argmax (seen: 0.43 between the top two).
#[test]
#[ignore = "needs the llama.cpp oracle: scripts/test.sh --parity"]
fn dpo_adapter_matches_llama_cpp_greedy() {
    let oracle = oracle();
    let dir = tempfile::tempdir().expect("temp dir");
    let adapter = dir.path().join("dpo.gguf");
    train_short(
        "triage-preference",
        &adapter,
        &[
            "--method",
            "dpo",
            "--rpo-alpha",
            "1",
            "--seq",
            "256",
            "--batch",
            "2",
            "--max-steps",
            "8",
        ],
    );
    greedy_matches_llama_cpp(&oracle, &adapter, dir.path());
}

/// The test model's file with its architecture renamed (`general.architecture` and every
/// `llama.*` key): same weights, another family's graph.
fn rename_architecture(arch: &str, out: &std::path::Path) {
    let file = GgufFile::open(model()).expect("model opens");
    let mut md = graft_quant::gguf::Metadata::new();
    for (k, v) in file.metadata().iter() {
        let key = match k.strip_prefix("llama.") {
            Some(rest) => format!("{arch}.{rest}"),
            None => k.to_string(),
        };
        md.insert(key, v.clone());
    }
    md.insert("general.architecture", arch);
    let mut w = graft_quant::gguf::GgufWriter::new(md, file.alignment()).expect("writer");
    for t in file.tensors() {
        w.add_tensor(t.name, t.ty, t.shape, t.bytes)
            .expect("tensor");
    }
    w.write_file(out).expect("write");
}

/// A family graft added as a model description (SmolLM3: the llama block without RoPE in every
/// fourth layer), run on SmolLM2's weights renamed to `smollm3`: greedy ids follow llama.cpp's
/// `smollm3` graph (any divergence starts at a near-tie of llama.cpp's own top two logits: the
/// oracle CI builds is a generic x86-64 build, whose rounding is not graft's AVX2/AVX-512
/// rounding), and differ from the same weights read as `llama`.
#[test]
#[ignore = "needs the llama.cpp oracle: scripts/test.sh --parity"]
fn smollm3_description_matches_llama_cpp_greedy() {
    let oracle = oracle();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("smollm3.gguf");
    rename_architecture("smollm3", &path);
    let prompts = [
        "The capital of France is",
        "def fibonacci(n):",
        "Once upon a time, in a small village,",
    ];
    let cases = oracle_generate(&oracle, &path, None, &prompts, dir.path());
    // llama.cpp's top-1 minus top-2 logit below which two correct implementations that round
    // differently may pick either token (as runtime/tests/model_smollm.rs).
    const NEAR_TIE: f64 = 0.25;
    let mut differs_from_llama = 0;
    let mut agreed = 0;
    for (p, case) in prompts.iter().zip(cases) {
        let ours = graft_greedy_on(&path, p, None, 32);
        let theirs = ids_without_eog(&case["ids"]);
        let margins: Vec<f64> = case["margins"]
            .as_array()
            .expect("margins")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let same = ours.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
        eprintln!(
            "smollm3 {p:?}: {same}/{} ids agree; llama.cpp: {:?}",
            theirs.len(),
            case["text"]
        );
        agreed += same;
        if same < theirs.len().min(ours.len()) {
            assert!(
                margins[same] < NEAR_TIE,
                "greedy ids diverge from llama.cpp's at a clear choice (margin {}) on {p:?}:\n\
                 ours   {ours:?}\ntheirs {theirs:?}",
                margins[same]
            );
        }
        if graft_greedy(p, None, 32) != ours {
            differs_from_llama += 1;
        }
    }
    assert!(
        agreed >= 40,
        "only {agreed} of 96 greedy ids agree with llama.cpp"
    );
    assert!(differs_from_llama > 0, "the NoPE layers changed nothing");
}
