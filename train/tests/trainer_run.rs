//! A tiny training run on the real model: the adapter (GGUF with `graft.train.*` metadata,
//! PEFT export), the metrics JSONL and the loss-curve SVG.

mod trainer_common;

use graft_quant::gguf::GgufFile;
use graft_runtime::adapter::LoraAdapter;
use graft_train::trainer::{StopReason, TrainConfig, Trainer};
use trainer_common::*;

#[test]
fn tiny_run_writes_adapter_metadata_peft_metrics_and_curve() {
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", "train.jsonl", 0, 12);
    let val = small_file(dir.path(), "val.jsonl", "val.jsonl", 0, 4);
    let cfg = TrainConfig {
        epochs: 2,
        max_steps: Some(4),
        eval_every: Some(2),
        targets: vec!["q".into(), "k".into(), "gate".into(), "down".into()],
        anchor: 0.25,
        ..tiny_config()
    };
    let mut io = io(dir.path(), &data);
    io.val = Some(val.clone());
    io.peft = Some(dir.path().join("peft"));
    let trainer = Trainer::new(&model, cfg, io).expect("trainer starts");
    assert_eq!(
        trainer.train_data().examples,
        12,
        "every example fits seq 64"
    );
    let plan = *trainer.plan();
    assert_eq!((plan.steps_per_epoch, plan.total_steps), (3, 6));
    let out = trainer
        .run(&mut graft_train::trainer::Silent)
        .expect("run finishes");
    assert_eq!(out.stop, StopReason::MaxSteps);
    assert_eq!(out.steps, 4);
    assert_eq!(out.total_steps, plan.total_steps);
    assert!(out.tokens_per_sec > 0.0 && out.peak_rss_mb > 50.0);

    // Metrics: one line per step, val loss at steps 2 and 4, finite numbers.
    let metrics_path = dir.path().join("adapter.metrics.jsonl");
    let text = std::fs::read_to_string(&metrics_path).expect("metrics written");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("metrics line is JSON"))
        .collect();
    assert_eq!(lines.len(), 4);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["step"], (i + 1) as u64);
        assert!(l["train_loss"]
            .as_f64()
            .is_some_and(|v| v.is_finite() && v > 0.0));
        assert!(l["lr"].as_f64().is_some());
        assert!(l["tokens_per_sec"].as_f64().is_some_and(|v| v > 0.0));
        assert!(l["rss_mb"].as_f64().is_some_and(|v| v > 0.0));
        // The base anchor's penalty: 0 at the first step (B starts at 0), then positive.
        let anchor = l["anchor"].as_f64().expect("anchor penalty logged");
        assert!(anchor.is_finite() && (anchor > 0.0) == (i > 0), "line {l}");
        assert_eq!(l.get("val_loss").is_some(), (i + 1) % 2 == 0, "line {l}");
    }
    // Warmup 1 step: half the peak at step 1 (the ramp is (step + 1) / (warmup + 1), so the
    // first step already learns), then the peak decaying.
    let lr0 = lines[0]["lr"].as_f64().expect("lr");
    assert!((lr0 - 0.5e-3).abs() < 1e-9, "first step lr {lr0}");
    assert!(lines[1]["lr"].as_f64().is_some_and(|v| v > lr0));

    // SVG: a document with both curves and axis labels.
    let svg = std::fs::read_to_string(dir.path().join("adapter.loss.svg")).expect("svg written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 2);
    assert!(svg.contains("optimizer step") && svg.contains("validation loss"));

    // GGUF metadata.
    let adapter_path = dir.path().join("adapter.gguf");
    let f = GgufFile::open(&adapter_path).expect("adapter is a GGUF file");
    let md = f.metadata();
    assert_eq!(md.get_str("general.type").ok(), Some("adapter"));
    assert_eq!(md.get_str("adapter.type").ok(), Some("lora"));
    assert_eq!(md.get_f32("adapter.lora.alpha").ok(), Some(8.0));
    assert_eq!(md.get_u32("graft.train.rank").ok(), Some(4));
    assert_eq!(md.get_f32("graft.train.alpha").ok(), Some(8.0));
    assert_eq!(md.get_f32("graft.train.dropout").ok(), Some(0.1));
    assert_eq!(md.get_f32("graft.train.anchor").ok(), Some(0.25));
    assert_eq!(
        md.get_str("graft.train.targets").ok(),
        Some("q,k,gate,down")
    );
    assert_eq!(md.get_f32("graft.train.lr").ok(), Some(1e-3));
    assert_eq!(md.get_u32("graft.train.epochs").ok(), Some(2));
    assert_eq!(md.get_u32("graft.train.batch").ok(), Some(2));
    assert_eq!(md.get_u32("graft.train.grad_accum").ok(), Some(2));
    assert_eq!(md.get_u32("graft.train.seq").ok(), Some(64));
    assert_eq!(md.get_str("graft.train.optimizer").ok(), Some("adamw8bit"));
    assert_eq!(md.get_u64("graft.train.seed").ok(), Some(0));
    assert_eq!(md.get_str("graft.train.precision").ok(), Some("f32"));
    assert_eq!(md.get_str("graft.train.method").ok(), Some("sft"));
    assert!(md.get_f64("graft.train.beta").is_err(), "SFT has no β");
    assert_eq!(md.get_u64("graft.train.steps").ok(), Some(4));
    assert_eq!(
        md.get_str("graft.train.stop_reason").ok(),
        Some("max_steps")
    );
    let last = &lines[3];
    assert_eq!(
        md.get_f64("graft.train.final_train_loss").ok(),
        last["train_loss"].as_f64()
    );
    assert_eq!(
        md.get_f64("graft.train.final_val_loss").ok(),
        last["val_loss"].as_f64()
    );
    assert_eq!(
        md.get_str("graft.train.dataset_sha256").ok(),
        Some(sha256_hex(&data).as_str())
    );
    assert_eq!(
        md.get_str("graft.train.val_dataset_sha256").ok(),
        Some(sha256_hex(&val).as_str())
    );
    assert_eq!(
        md.get_str("graft.train.base_model_sha256").ok(),
        Some(sha256_hex(model.path()).as_str())
    );
    assert_eq!(
        md.get_str("graft.version").ok(),
        Some(env!("CARGO_PKG_VERSION"))
    );

    // The adapter loads, validates against the base, and has 4 targets × 30 layers.
    let a = LoraAdapter::load(&adapter_path).expect("adapter loads");
    assert_eq!(a.tensors.len(), 4 * 30);
    let q = &a.tensors["blk.0.attn_q.weight"];
    assert_eq!((q.rank, q.n_in, q.n_out), (4, 576, 576));
    assert!(
        q.b.iter().any(|&v| v != 0.0),
        "B moved away from its zero init"
    );

    // PEFT: names, shapes and config keys.
    let peft = dir.path().join("peft");
    let cfg: serde_json::Value = serde_json::from_slice(
        &std::fs::read(peft.join("adapter_config.json")).expect("adapter_config.json"),
    )
    .expect("config is JSON");
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["r"], 4);
    assert_eq!(cfg["lora_alpha"], 8);
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(
        cfg["base_model_name_or_path"],
        "SmolLM2-135M-Instruct.Q4_1.gguf"
    );
    assert!((cfg["lora_dropout"].as_f64().unwrap_or(-1.0) - 0.1).abs() < 1e-6);
    let mut targets: Vec<&str> = cfg["target_modules"]
        .as_array()
        .expect("target_modules is a list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    targets.sort_unstable();
    assert_eq!(targets, ["down_proj", "gate_proj", "k_proj", "q_proj"]);
    let st = std::fs::read(peft.join("adapter_model.safetensors")).expect("safetensors");
    let n = u64::from_le_bytes(st[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&st[8..8 + n]).expect("safetensors header is JSON");
    let p = "base_model.model.model.layers";
    for (name, shape) in [
        (format!("{p}.0.self_attn.q_proj.lora_A.weight"), [4, 576]),
        (format!("{p}.0.self_attn.q_proj.lora_B.weight"), [576, 4]),
        (format!("{p}.29.self_attn.k_proj.lora_A.weight"), [4, 576]),
        (format!("{p}.29.self_attn.k_proj.lora_B.weight"), [192, 4]),
        (format!("{p}.3.mlp.gate_proj.lora_B.weight"), [1536, 4]),
        (format!("{p}.3.mlp.down_proj.lora_A.weight"), [4, 1536]),
        (format!("{p}.3.mlp.down_proj.lora_B.weight"), [576, 4]),
    ] {
        let t = &header[&name];
        assert_eq!(t["dtype"], "F32", "{name}");
        assert_eq!(t["shape"], serde_json::json!(shape), "{name}");
    }
    let tensor_count = header
        .as_object()
        .map_or(0, |o| o.keys().filter(|k| *k != "__metadata__").count());
    assert_eq!(tensor_count, 2 * 4 * 30);
    // The PEFT export reads back to the same values.
    let back = LoraAdapter::load(&peft).expect("PEFT export loads");
    assert_eq!(
        back.tensors["blk.7.ffn_down.weight"],
        a.tensors["blk.7.ffn_down.weight"]
    );
}
