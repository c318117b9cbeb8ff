//! Writes the deterministic random LoRA adapters of the real-model LoRA tests (rank 8 and 16,
//! all seven projections, f32 GGUF) for the test model, so llama.cpp's goldens can be made
//! from them: `cargo run -p graft-runtime --example make-test-adapters -- MODEL OUT_DIR`.
//! Prints `name sha256` per file.

#[path = "../tests/lora_support/gen.rs"]
mod gen;

use graft_quant::QuantType;
use graft_runtime::{Model, ModelParams};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: make-test-adapters MODEL.gguf OUT_DIR".into());
    };
    let model = Model::load(&model, ModelParams { threads: 1 })?;
    let c = model.config();
    let dims = gen::Dims {
        n_layer: c.n_layer,
        n_embd: c.n_embd,
        n_ff: c.n_ff,
        q_dim: c.q_dim(),
        kv_dim: c.kv_dim(),
    };
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;
    for (name, rank, alpha, seed) in gen::TEST_ADAPTERS {
        let a = gen::random_adapter(dims, rank, alpha, seed);
        let path = out.join(name);
        a.save_gguf(&path, QuantType::F32)?;
        let sha = Sha256::digest(std::fs::read(&path)?);
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        println!("{name} {hex}");
    }
    Ok(())
}
