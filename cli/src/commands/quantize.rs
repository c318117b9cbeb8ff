//! `graft quantize IN.gguf OUT.gguf --type TYPE`: llama-quantize's job, in graft.
//!
//! `TYPE` is a [`target::FileType`]: llama.cpp's plain types (`q4_0`, `q4_1`, `q5_0`, `q5_1`,
//! `q8_0`, `q6_k`, `f16`, `f32`), its k-quant mixes (`q2_k`, `q3_k_s`, `q3_k_m`, `q3_k_l`,
//! `q4_k_s`, `q4_k_m`, `q5_k_s`, `q5_k_m`; `q4_k`/`q5_k` are kept as the older names of
//! `q4_k_s`/`q5_k_s`), or graft's own `nf4`. The per-tensor type choice (graft_quant::target,
//! whose module docs list the rules) reproduces llama.cpp's `llama_tensor_get_type`
//! (src/llama-quant.cpp) for models quantized without an importance matrix, so that
//! `graft quantize` and `llama-quantize` write the same types and, since graft's quantizers
//! match ggml's byte for byte, the same bytes: cli/tests/llama_parity.rs checks every type,
//! tensor by tensor, against llama.cpp's `llama_model_quantize` on SmolLM2-135M and Gemma 3
//! 270M. In short:
//!
//! - only weight matrices are converted (two or more dimensions, a name ending in `weight`,
//!   not one of llama.cpp's exempt tensors such as norms or MoE routers); the rest are copied;
//!   a tensor already of its chosen type is copied as is; converting an already quantized
//!   tensor needs `--allow-requantize`;
//! - the output head (`output.weight`, or `token_embd.weight` when the model ties them) goes
//!   to Q6_K for quantized targets (Q8_0 when its rows do not fit the target's block, and a
//!   Q8_0 target keeps Q8_0);
//! - the mixes give `attn_v`, `ffn_down` and `attn_output` more bits (`_M`: in the first and
//!   last eighth of the layers and every third layer between; `_L`: everywhere);
//! - a k-quant whose 256-wide block does not divide a tensor's rows falls back to a 32-wide
//!   type (Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0), then to F16.
//!
//! With `--imatrix FILE` (llama.cpp's GGUF imatrix, as `graft imatrix` or `llama-imatrix`
//! writes it) the tensors are quantized as `llama-quantize --imatrix FILE` does: each weight
//! matrix with an entry in the file is quantized with ggml's importance-weighted searches
//! (graft_quant::blocks::weighted: the k-quants and Q4_0/Q4_1/Q5_0/Q5_1; Q8_0 and the float
//! types ignore the weights), matrices without an entry are quantized plainly, an entry whose
//! size is not the matrix's columns is an error (except for `token_embd`, which llama.cpp
//! skips), `q4_0`/`q5_0` give the first eighth of the `ffn_down` tensors Q4_1/Q5_1, and the
//! output gets llama-quantize's `quantize.imatrix.file`, `.dataset`, `.entries_count` and
//! `.chunks_count` keys. None of the file types graft writes requires an importance matrix (in
//! llama.cpp only the IQ types and Q2_K_S do).
//!
//! Not reproduced: llama.cpp's IQ, TQ, Q2_K_S and MXFP4 types; the 70B `attn_v` bump;
//! the legacy `.dat` imatrix format; `--include-weights`/`--exclude-weights`; `--pure`, `--output-tensor-type`, `--token-embedding-type`,
//! `--tensor-type` and `--prune-layers`. Metadata is carried over with `general.file_type`
//! (llama.cpp's `llama_ftype`, e.g. 15 for Q4_K_M; NF4's tensor type id for `nf4`) and
//! `general.quantization_version` updated; tensors stay in the input's order (llama-quantize
//! sorts them by layer, then name). The output is written atomically.
//!
//! `nf4` files are graft-native: llama.cpp refuses them (NF4 is not a ggml type). There is no
//! graft-native mix: which one is worth having should follow from measured quality per bit, and
//! on the small test models most tensors of llama.cpp's mixes are their 32-wide row fallbacks.
//!
//! The work is graft_quant::quantize_file's (the quality bench calls it too); this command
//! reads the files, calls it and prints the summary.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use graft_quant::gguf::GgufFile;
use graft_quant::imatrix::Imatrix;
use graft_quant::quantize_file::{quantize_file, ImatrixInput, QuantizeOptions};
use graft_quant::target;

/// Arguments of `graft quantize`.
#[derive(clap::Args)]
pub struct Args {
    /// Input GGUF model.
    input: PathBuf,
    /// Output GGUF file (written atomically: temp file + rename).
    output: PathBuf,
    /// Target type: f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q6_k; llama.cpp's mixes q2_k,
    /// q3_k_s, q3_k_m, q3_k_l, q4_k_s (alias q4_k), q4_k_m, q5_k_s (alias q5_k), q5_k_m;
    /// graft's nf4.
    #[arg(long = "type", short = 't', value_parser = target::parse_file_type)]
    ty: target::FileType,
    /// Allow converting tensors that are already quantized (quality loss compounds).
    #[arg(long)]
    allow_requantize: bool,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Importance matrix (llama.cpp's GGUF imatrix format, from `graft imatrix` or
    /// `llama-imatrix`): quantize as `llama-quantize --imatrix` does.
    #[arg(long, value_name = "FILE")]
    imatrix: Option<PathBuf>,
}

/// Runs `graft quantize`.
pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let input = GgufFile::open(&args.input)
        .with_context(|| format!("cannot read GGUF file {}", args.input.display()))?;
    let imatrix = match &args.imatrix {
        Some(path) => Some(
            Imatrix::read(path)
                .with_context(|| format!("cannot load importance matrix {}", path.display()))?,
        ),
        None => None,
    };
    let options = QuantizeOptions {
        file_type: args.ty,
        allow_requantize: args.allow_requantize,
        threads: args.threads,
        imatrix: match (&imatrix, &args.imatrix) {
            (Some(imatrix), Some(path)) => Some(ImatrixInput { imatrix, path }),
            _ => None,
        },
    };
    let report = quantize_file(&input, &args.output, &options)?;
    eprintln!(
        "quantized {} of {} tensors to {} ({}): {:.1} MB -> {:.1} MB in {:.1} s; wrote {}",
        report.converted,
        report.tensors,
        args.ty,
        report.mix(),
        report.bytes_in as f64 / 1e6,
        report.bytes_out as f64 / 1e6,
        start.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}
