//! Eval first, in one command: a run with a test set evaluates the base and the prompt baseline
//! before training and the adapter after; the report card goes into the metrics file, the
//! adapter's metadata and the model card (next to the adapter and in the PEFT directory), and
//! its numbers equal a separate evaluation of the written adapter file.

mod trainer_common;

use graft_quant::gguf::GgufFile;
use graft_runtime::lora::LoadedAdapter;
use graft_train::data::Renderer;
use graft_train::eval::{evaluate, load_test_set, CardColumn, EvalOptions, Prompting};
use graft_train::trainer::{Silent, TestSpec, TrainConfig, Trainer};
use trainer_common::*;

#[test]
fn test_set_gives_report_card_metadata_and_model_cards() {
    let model = model();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = small_file(dir.path(), "train.jsonl", "train.jsonl", 0, 12);
    let test = small_file(dir.path(), "test.jsonl", "test.jsonl", 0, 4);
    let prompting = Prompting::from_file(&data, 2, 0, None).expect("demonstrations");
    let cfg = TrainConfig {
        max_steps: Some(3),
        ..tiny_config()
    };
    let mut io = io(dir.path(), &data);
    io.peft = Some(dir.path().join("peft"));
    io.test = Some(TestSpec {
        data: test.clone(),
        general: None,
        prompting: Some(prompting),
    });
    let out = Trainer::new(&model, cfg, io)
        .expect("trainer starts")
        .run(&mut Silent)
        .expect("run finishes");
    let card = out.card.expect("a report card");
    let labels: Vec<&str> = card.columns.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(labels, ["base", "base + 2-shot", "adapted"]);
    assert_eq!(card.test_sha256, sha256_hex(&test));
    for c in &card.columns {
        assert_eq!(c.n_examples, 4);
        assert!(c.loss.is_finite() && c.loss > 0.0, "{c:?}");
        assert!((0.0..=1.0).contains(&c.exact_match), "{c:?}");
    }
    let table = card.table();
    assert!(table.contains("vs base + 2-shot"), "{table}");

    // The adapter file, evaluated on its own as `graft eval --lora` does, gives the card's
    // numbers.
    let adapter_path = dir.path().join("adapter.gguf");
    let loaded = LoadedAdapter::load(&model, &adapter_path).expect("adapter loads");
    let renderer = Renderer::from_model(&model).expect("renderer");
    let ds = load_test_set(&test, None).expect("test set");
    let report = evaluate(
        &model,
        &renderer,
        &[(loaded, 1.0)],
        &ds,
        &test,
        &EvalOptions::default(),
        &mut |_| true,
    )
    .expect("evaluation");
    let mut again = CardColumn::of(&report);
    let mut adapted = card.adapted().expect("adapted column").clone();
    again.secs = 0.0;
    adapted.secs = 0.0;
    assert_eq!(again, adapted);

    // The metrics file ends with the card.
    let metrics =
        std::fs::read_to_string(dir.path().join("adapter.metrics.jsonl")).expect("metrics");
    let last: serde_json::Value =
        serde_json::from_str(metrics.lines().last().expect("a line")).expect("JSON");
    assert_eq!(
        last["report_card"]["columns"][2]["exact_match"].as_f64(),
        Some(adapted.exact_match)
    );
    assert_eq!(metrics.lines().count(), 4, "3 steps and the card");

    // The adapter's metadata holds it.
    let gguf = GgufFile::open(&adapter_path).expect("adapter opens");
    let md = gguf.metadata();
    assert_eq!(
        md.get_f64("graft.eval.adapted.loss").ok(),
        Some(adapted.loss)
    );
    assert_eq!(
        md.get_f64("graft.eval.prompted.exact_match").ok(),
        Some(card.columns[1].exact_match)
    );
    assert_eq!(
        md.get_str("graft.eval.test_sha256").ok(),
        Some(card.test_sha256.as_str())
    );

    // The model card: next to the adapter and as the PEFT README, the same text, with the
    // base model's and the data's sha256, the hyperparameters and the report card.
    let readme = std::fs::read_to_string(dir.path().join("adapter.README.md")).expect("card");
    let peft_readme =
        std::fs::read_to_string(dir.path().join("peft/README.md")).expect("PEFT card");
    assert_eq!(readme, peft_readme);
    assert!(readme.contains(&sha256_hex(model.path())));
    assert!(readme.contains(&sha256_hex(&data)));
    assert!(readme.contains(&sha256_hex(&test)));
    assert!(readme.contains("| rank | 4 |"), "{readme}");
    assert!(readme.contains("| method | sft |"), "{readme}");
    assert!(readme.contains(&card.markdown()), "{readme}");
    assert!(readme.contains("## Intended use") && readme.contains("## Known limitations"));
    assert!(readme.contains(env!("CARGO_PKG_VERSION")));
}
