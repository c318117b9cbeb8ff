//! The thread count only changes who computes what, not the math: LoRA gradients with 1, 2
//! and 3 threads are bitwise identical (every kernel splits independent rows, panels or heads
//! over the pool, never a reduction), and the loss agrees to f64 summation order.

mod model_common;

use graft_quant::QuantType;
use graft_train::model::{BaseMatmul, Checkpointing, LoraConfig, TrainOptions, Trainable};
use model_common::*;

#[test]
fn thread_count_gives_identical_gradients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "q41.gguf",
        2,
        QuantType::Q4_1,
        QuantType::Q8_0,
        true,
    );
    // 48 tokens: more than one piece of the row-wise ops (32 rows each).
    let batch = packed_batch();
    for base_matmul in [BaseMatmul::Tiled, BaseMatmul::Fast] {
        let mut results = Vec::new();
        for threads in [1, 2, 3] {
            let cfg = LoraConfig {
                rank: 4,
                alpha: 8.0,
                dropout: 0.1,
                ..LoraConfig::default()
            };
            let lora = lora_nonzero(&model, cfg, 5);
            let opts = TrainOptions {
                threads,
                checkpointing: Checkpointing::Off,
                base_matmul,
                head_chunk: 7,
                kv_f16: false,
                ..TrainOptions::default()
            };
            let mut tr = Trainable::new(&model, lora, opts).expect("trainable");
            tr.set_dropout_step(2);
            results.push((threads, gradients(&mut tr, &batch)));
        }
        let (_, (loss1, g1)) = &results[0];
        assert!(g1.iter().flatten().any(|&v| v != 0.0));
        for (threads, (loss, g)) in &results[1..] {
            let rel = (loss - loss1).abs() / loss1.abs();
            assert!(
                rel <= 1e-6,
                "{base_matmul:?} x{threads}: loss {loss} vs {loss1}"
            );
            assert_same_bits(&format!("{base_matmul:?} x{threads}"), g, g1);
        }
    }
}

/// Batches of changing length (micro-batches are as long as their longest row) reuse the
/// activation buffers in place: every step must give what a fresh model gives, whatever
/// lengths came before it (checkpointing on, so the saved segment inputs are re-laid out too).
#[test]
fn changing_batch_length_gives_fresh_results() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "q41.gguf",
        3,
        QuantType::Q4_1,
        QuantType::Q8_0,
        true,
    );
    let long = packed_batch();
    let short_ids: Vec<u32> = (0..11u32).map(|i| (i * 7 + 3) % 32).collect();
    let short = graft_train::model::Batch::single(&short_ids).expect("batch");
    let cfg = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        ..LoraConfig::default()
    };
    let opts = TrainOptions {
        threads: 2,
        checkpointing: Checkpointing::EveryN(2),
        base_matmul: BaseMatmul::Tiled,
        head_chunk: 7,
        kv_f16: false,
        ..TrainOptions::default()
    };
    let fresh = |b: &graft_train::model::Batch| {
        let mut tr =
            Trainable::new(&model, lora_nonzero(&model, cfg.clone(), 5), opts).expect("trainable");
        gradients(&mut tr, b)
    };
    let (want_long, want_short) = (fresh(&long), fresh(&short));
    let mut tr =
        Trainable::new(&model, lora_nonzero(&model, cfg.clone(), 5), opts).expect("trainable");
    for (name, b, want) in [
        ("long", &long, &want_long),
        ("short after long", &short, &want_short),
        ("long after short", &long, &want_long),
        ("short again", &short, &want_short),
    ] {
        let got = gradients(&mut tr, b);
        assert_eq!(got.0.to_bits(), want.0.to_bits(), "{name}: loss");
        assert_same_bits(name, &got.1, &want.1);
    }
}
