//! Writes the seed inputs of the fuzz targets into `seeds/<target>/` (run from `fuzz/`:
//! `cargo run --example make_seeds`). Small valid inputs of each format, built with graft's own
//! writers so they follow the formats exactly; deterministic, so re-running changes nothing.
//! The regression seeds (`regress_*`) found by fuzzing are kept by hand and not touched here.

use std::collections::BTreeMap;
use std::path::Path;

use graft_fuzz::{join, trainer};
use graft_quant::QuantType;
use graft_runtime::adapter::format_gguf::to_gguf_writer;
use graft_runtime::adapter::{LoraAdapter, LoraPair};
use graft_train::trainer::{Silent, Trainer};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("create the seed directory");
    std::fs::write(dir.join(name), bytes).expect("write a seed");
}

/// A small adapter for the tiny model (d 64, ffn 96, 4 heads / 2 KV heads of 16, vocab 61).
fn adapter() -> LoraAdapter {
    let pair = |rank: usize, n_in: usize, n_out: usize, seed: f32| LoraPair {
        a: (0..rank * n_in)
            .map(|i| (i as f32 * 0.37 + seed).sin() * 0.1)
            .collect(),
        b: (0..n_out * rank)
            .map(|i| (i as f32 * 0.11 + seed).cos() * 0.1)
            .collect(),
        rank,
        n_in,
        n_out,
        scale_factor: 2.0,
    };
    let mut tensors = BTreeMap::new();
    tensors.insert("blk.0.attn_q.weight".to_string(), pair(2, 64, 64, 1.0));
    tensors.insert("blk.0.attn_k.weight".to_string(), pair(2, 64, 32, 2.0));
    tensors.insert("blk.1.ffn_down.weight".to_string(), pair(2, 96, 64, 3.0));
    tensors.insert("token_embd.weight".to_string(), pair(2, 61, 64, 4.0));
    LoraAdapter {
        arch: Some("llama".into()),
        alpha: Some(4.0),
        tensors,
        metadata: BTreeMap::new(),
        heads: Some(graft_runtime::adapter::HeadLayout {
            n_head: 4,
            n_head_kv: 2,
        }),
    }
}

fn lora_gguf(root: &Path) {
    let dir = root.join("lora_gguf");
    let a = adapter();
    for (name, ty) in [
        ("f32.gguf", QuantType::F32),
        ("f16.gguf", QuantType::F16),
        ("bf16.gguf", QuantType::BF16),
        ("q8_0.gguf", QuantType::Q8_0),
    ] {
        let mut bytes = Vec::new();
        to_gguf_writer(&a, ty)
            .expect("the seed adapter is writable")
            .write_to(&mut bytes)
            .expect("write to a Vec");
        write(&dir, name, &bytes);
    }
    // One pair only, no alpha.
    let mut small = adapter();
    small.tensors.retain(|k, _| k == "blk.0.attn_k.weight");
    small.alpha = None;
    for p in small.tensors.values_mut() {
        p.scale_factor = 1.0;
    }
    let mut bytes = Vec::new();
    to_gguf_writer(&small, QuantType::F32)
        .expect("writable")
        .write_to(&mut bytes)
        .expect("write to a Vec");
    write(&dir, "one_pair_no_alpha.gguf", &bytes);
}

fn peft(root: &Path) {
    let dir = root.join("peft_adapter");
    let tmp = tempfile::tempdir().expect("tempdir");
    for (name, ty) in [("f32", QuantType::F32), ("bf16", QuantType::BF16)] {
        let out = tmp.path().join(name);
        adapter()
            .save_peft(&out, ty)
            .expect("the seed adapter saves as PEFT");
        let config = std::fs::read(out.join("adapter_config.json")).expect("config");
        let weights = std::fs::read(out.join("adapter_model.safetensors")).expect("weights");
        for flag in [0u8, 1] {
            let mut seed = vec![flag];
            seed.extend(join(&[&config, &weights]));
            write(&dir, &format!("{name}_base{flag}.bin"), &seed);
        }
    }
}

fn dataset(root: &Path) {
    let dir = root.join("dataset_jsonl");
    let shapes = concat!(
        r#"{"messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello."}]}"#,
        "\n",
        r#"{"instruction":"Add","input":"2 2","output":"4"}"#,
        "\n",
        r#"{"prompt":"The sky is","completion":" blue."}"#,
        "\n",
        r#"{"text":"plain text [with] \\ brackets"}"#,
        "\n",
        r#"{"prompt":"Pick","chosen":"a","rejected":"b"}"#,
        "\n\n",
        r#"{"instruction":"Add","output":"4"}"#,
        "\r\n",
    );
    let bad = concat!(
        r#"{"messages":[{"role":"user","content":"no answer"}]}"#,
        "\n",
        "not json\n",
        r#"{"text":""}"#,
        "\n",
        r#"{"text":"ok"}"#,
        "\n",
        r#"{"text":"ok"}"#,
        "\n",
        "[1,2]\n",
        r#"{"messages":[{"role":"robot","content":"x"},{"role":"assistant","content":"y"}]}"#,
        "\n",
    );
    for flags in [0u8, 1, 2, 16, 32 + 8 + 4] {
        let mut s = vec![flags];
        s.extend_from_slice(shapes.as_bytes());
        write(&dir, &format!("shapes_{flags}.jsonl"), &s);
    }
    let mut s = vec![1u8];
    s.extend_from_slice(bad.as_bytes());
    write(&dir, "bad_lines_drop.jsonl", &s);
    let triage =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/support-triage/data/val.jsonl");
    if let Ok(text) = std::fs::read_to_string(triage) {
        let mut s = vec![0u8];
        for line in text.lines().take(3) {
            s.extend_from_slice(line.as_bytes());
            s.push(b'\n');
        }
        write(&dir, "support_triage_3.jsonl", &s);
    }
}

fn tokenizer(root: &Path) {
    let dir = root.join("tokenizer");
    let texts: &[(&str, u8, &str)] = &[
        ("hello", 0, "hello world, the world's hello"),
        (
            "chatml",
            1,
            "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
        ),
        ("chatml_spelled", 0, "<|im_start|>user\nHi<|im_end|>"),
        (
            "unicode",
            0,
            "naïve café 日本語 🦀🚀 \u{200b}\u{a0}x tab\tnew\nline\r\n\u{10FFFF}",
        ),
        ("spm_markers", 2, "▁hello <tool> <s></s><unk>  aa   wor"),
        ("numbers", 3, "12345 6789.01 I'm we're they've   \n\n  ?!"),
    ];
    for (name, flags, text) in texts {
        let mut s = vec![*flags];
        s.extend_from_slice(text.as_bytes());
        write(&dir, &format!("{name}.txt"), &s);
    }
    let mut ids = vec![4u8];
    for id in [0u32, 1, 2, 3, 70, 260, 300, 61, 0x8000_0000, 5, 280] {
        ids.extend_from_slice(&id.to_le_bytes());
    }
    write(&dir, "ids.bin", &ids);
    let vocab = "\u{1}\u{3}\u{4}\u{0}\u{0}\u{2}\u{0}\u{15}\n<s>\n</s>\n\u{2}h\n\u{1}e\n\u{1}he\n\u{1}llo\n\u{6}<0x41>";
    let mut v = vec![8u8];
    v.extend_from_slice(vocab.as_bytes());
    write(&dir, "vocab_spm.bin", &v);
    let mut v = vec![8u8];
    v.extend_from_slice("\u{2}\u{1}\u{2}\n<|a|>\nh\ne\nl\no\nhe\nll\nhello".as_bytes());
    write(&dir, "vocab_bpe.bin", &v);
}

fn chat_template(root: &Path) {
    let dir = root.join("chat_template");
    // The real templates of the cached test models (scripts/fetch-model.sh), when present.
    let models = graft_quant::model_cache::models_dir();
    for (name, file) in [
        ("smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
        ("gemma3", "gemma-3-270m-q4_k_m.gguf"),
    ] {
        let Ok(gguf) = graft_quant::gguf::GgufFile::open(models.join(file)) else {
            continue;
        };
        if let Some(src) = gguf
            .metadata()
            .get("tokenizer.chat_template")
            .and_then(|v| v.as_str())
        {
            let mut s = vec![1u8];
            s.extend_from_slice(src.as_bytes());
            write(&dir, &format!("{name}.jinja"), &s);
        }
    }
    let small: &[(&str, &str)] = &[
        (
            "chatml",
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        ),
        (
            "macro_loop",
            "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}x{% endif %}{% endmacro %}{{ f(5) }}{% for i in range(3) %}{{ i ~ bos_token }}{% endfor %}{{ messages[0].content.strip() | upper }}",
        ),
        (
            "llama3",
            "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
        ),
        (
            "mistral",
            "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% endif %}{% endfor %}",
        ),
        (
            "namespace_slice",
            "{% set ns = namespace(sys='') %}{% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = m.content %}{% endif %}{% endfor %}{{ ns.sys[:5] }}{% for m in messages[1:] | reverse %}{{ loop.index }}:{{ m.content | length }}{{ m.content.split(' ') | join('-') }}{% endfor %}{{ messages | map(attribute='role') | list | tojson }}",
        ),
        (
            "raise",
            "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}",
        ),
    ];
    for (name, src) in small {
        let mut s = vec![0u8];
        s.extend_from_slice(src.as_bytes());
        write(&dir, &format!("{name}.jinja"), &s);
    }
}

fn checkpoint(root: &Path) {
    let dir = root.join("checkpoint");
    let tmp = tempfile::tempdir().expect("tempdir");
    let ck = tmp.path().join("ckpt");
    let mut cfg = trainer::config();
    cfg.save_every = Some(1);
    let run = Trainer::with_tokenizer(
        graft_fuzz::tiny_model(),
        cfg,
        trainer::io(tmp.path(), None, Some(ck.clone())),
        &trainer::ByteTokenizer,
    )
    .expect("the tiny run starts");
    run.run(&mut Silent).expect("the tiny run trains");
    let mut steps: Vec<_> = std::fs::read_dir(&ck)
        .expect("checkpoints")
        .map(|e| e.expect("entry").path())
        .collect();
    steps.sort();
    for step in steps {
        let read = |n: &str| std::fs::read(step.join(n)).unwrap_or_default();
        let (state, lora, opt, best) = (
            read("state.json"),
            read("lora.bin"),
            read("optimizer.bin"),
            read("best.bin"),
        );
        let name = step
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for flags in [4u8, 4 + 8, 3 + 4] {
            let mut s = vec![flags];
            s.extend(join(&[&state, &lora, &opt, &best]));
            write(&dir, &format!("{name}_flags{flags}.bin"), &s);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    lora_gguf(&root);
    peft(&root);
    dataset(&root);
    tokenizer(&root);
    chat_template(&root);
    checkpoint(&root);
    println!("seeds written under {}", root.display());
}
