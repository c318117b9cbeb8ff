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
            for (ti, (a, b)) in g.iter().zip(g1).enumerate() {
                for (j, (x, y)) in a.iter().zip(b).enumerate() {
                    assert_eq!(
                        x.to_bits(),
                        y.to_bits(),
                        "{base_matmul:?} x{threads}: tensor {ti} entry {j}: {x} vs {y}"
                    );
                }
            }
        }
    }
}
