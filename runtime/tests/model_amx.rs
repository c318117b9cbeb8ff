//! The AMX path (`Isa::Amx`: prefill of the 32-element formats on AMX-INT8 tiles) against the
//! AVX-512 path, on the real models: SmolLM2-135M-Instruct Q4_1 (Q4_1 and Q8_0 matmuls) and
//! Gemma 3 270M Q4_K_M (its Q5_0 and Q8_0 tensors), 510 positions of GPL-3 each.
//!
//! The bar is measured in the same run, as `gpu_model.rs` does for the GPU: Q8 activations
//! turn ulp-level differences into whole quantization steps, so two valid roundings of a model
//! disagree on near-tied positions. graft's scalar kernels (another f32 order, the same integer
//! sums) are that other valid rounding: the AMX path must agree with the AVX-512 path at least
//! as well as the scalar path does, less two points, and its perplexity may be as far from the
//! AVX-512 path's as the scalar path's is, plus half a point. Measured on the Intel Xeon
//! (2026-12-07): SmolLM2 AMX 494/510, perplexity 22.1467 vs 22.1313; scalar 491/510, 22.0148.
//! Gemma 3 (more sensitive) AMX 484/510, 31.1738 vs 31.7727; scalar 483/510, 31.2816.

mod model_common;
mod tok_common;

use graft_kernels::cpu::Isa;
use graft_runtime::backend::CpuBackend;
use graft_runtime::perplexity::NllAccumulator;
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::{Model, ModelParams};
use model_common::{logits_on, model_path, THREADS};
use tok_common::gemma_path;

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |x| x.0)
}

/// The AMX and scalar paths' top-1 agreement with the AVX-512 path and perplexities over 510
/// positions of GPL-3 (two windows of 256, with the BOS the model expects).
fn compare(path: std::path::PathBuf) {
    let m = Model::load(&path, ModelParams { threads: THREADS }).expect("load the model");
    let backend = |isa| CpuBackend::with_isa(THREADS, isa).expect("kernels");
    let (amx, avx512, scalar) = (
        backend(Isa::Amx),
        backend(Isa::Avx512),
        backend(Isa::Scalar),
    );
    let text = std::fs::read_to_string("/usr/share/common-licenses/GPL-3")
        .expect("/usr/share/common-licenses/GPL-3 (Debian's base-files)");
    let tok = Tokenizer::from_gguf(m.gguf().metadata()).expect("tokenizer");
    // With the BOS the model expects (Gemma's attention leans on it; SmolLM2 adds none).
    let ids = tok.encode(&text, true, false);
    let (n_ctx, windows) = (256, 2);
    assert!(ids.len() >= n_ctx * windows);
    let nv = m.config().n_vocab;
    let (mut agree_amx, mut agree_scalar, mut total) = (0usize, 0usize, 0usize);
    let mut nll = [
        NllAccumulator::default(),
        NllAccumulator::default(),
        NllAccumulator::default(),
    ];
    for w in 0..windows {
        let win = &ids[w * n_ctx..(w + 1) * n_ctx];
        let la = logits_on(&amx, &m, win);
        let lv = logits_on(&avx512, &m, win);
        let ls = logits_on(&scalar, &m, win);
        for t in 0..n_ctx - 1 {
            let row = |l: &[f32]| l[t * nv..(t + 1) * nv].to_vec();
            let (ra, rv, rs) = (row(&la), row(&lv), row(&ls));
            agree_amx += (argmax(&ra) == argmax(&rv)) as usize;
            agree_scalar += (argmax(&rs) == argmax(&rv)) as usize;
            total += 1;
            nll[0].add_row(&ra, win[t + 1]);
            nll[1].add_row(&rv, win[t + 1]);
            nll[2].add_row(&rs, win[t + 1]);
        }
    }
    let [pa, pv, ps] = nll.map(|n| n.ppl().0);
    eprintln!(
        "{}: top-1 agreement with AVX-512: AMX {agree_amx}/{total}, scalar \
         {agree_scalar}/{total}; perplexity AMX {pa:.4}, AVX-512 {pv:.4}, scalar {ps:.4}",
        path.display()
    );
    assert!(
        (agree_amx + total / 50) >= agree_scalar,
        "AMX agrees with AVX-512 on {agree_amx}/{total}, the scalar path on {agree_scalar}"
    );
    let bar = (ps / pv - 1.0).abs() + 0.005;
    assert!(
        (pa / pv - 1.0).abs() <= bar,
        "perplexity AMX {pa} vs AVX-512 {pv}: more than {:.2}% apart (scalar {ps})",
        100.0 * bar
    );
}

#[test]
fn smollm2_amx_prefill_agrees_with_avx512() {
    if !Isa::Amx.is_available() {
        eprintln!("no AMX on this CPU (kernels/tests/int8_tiles.rs checks detection)");
        return;
    }
    compare(model_path());
}

#[test]
fn gemma3_amx_prefill_agrees_with_avx512() {
    if !Isa::Amx.is_available() {
        eprintln!("no AMX on this CPU (kernels/tests/int8_tiles.rs checks detection)");
        return;
    }
    compare(gemma_path());
}
