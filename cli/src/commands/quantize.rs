//! `graft quantize IN.gguf OUT.gguf --type TYPE`: llama-quantize's job, in graft.
//!
//! The per-tensor type choice (graft_quant::target) reproduces llama.cpp's `llama_tensor_get_type` (src/llama-quant.cpp)
//! for the file types graft writes — `q4_0`, `q4_1`, `q5_0`, `q5_1`, `q8_0`, `q4_k` (llama.cpp's
//! `Q4_K_S`), `q5_k` (`Q5_K_S`), `q6_k`, `f16` — on dense (non-MoE) models without an importance
//! matrix, so that `graft quantize` and `llama-quantize` write the same types and, since graft's
//! quantizers match ggml's byte for byte, the same bytes (checked tensor by tensor against
//! llama.cpp by cli/tests/llama_parity.rs):
//!
//! - only tensors of two or more dimensions whose names end in `weight` are converted; 1-D
//!   tensors (norms, biases) are copied unchanged; a tensor already of its chosen type is copied
//!   as is; converting an already quantized tensor needs `--allow-requantize`;
//! - for quantized targets the output head (`output.weight`, or `token_embd.weight` when the
//!   model ties them) goes to Q8_0 when its rows are not a multiple of the target's block, else
//!   to Q6_K (unless the target is Q8_0, which it keeps);
//! - `q4_k` (Q4_K_S): the first 4 `attn_v` tensors and the `ffn_down` tensors of layers
//!   `< n_layer / 8` go to Q5_K;
//! - k-quant choices fall back to a 32-wide format for tensors whose rows are not a multiple of
//!   256 (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0), and to F16 when even that does not divide
//!   the row (llama.cpp's `tensor_type_fallback`); every other weight matrix gets the target type.
//!
//! Not reproduced: llama.cpp's `_M`/`_L`, Q2_K/Q3_K and IQ mixes; the rules for 8-expert MoE
//! models (attn_v/attn_k to Q8_0, attn_output to Q5_K), 70B models (attn_v bumped) and Falcon;
//! imatrix-dependent rules; `--pure`, `--output-tensor-type`, `--token-embedding-type` and
//! `--tensor-type` overrides; llama.cpp's per-architecture list of tensors never quantized
//! (e.g. RWKV `time_mix_*`, T5 `attn_rel_b`, vision position embeddings). llama.cpp counts the
//! `attn_v` and `ffn_down` tensors in file order and takes `n_layer` from the model; graft uses
//! the layer number in the tensor name (`blk.N.`) and the number of `blk.N.` layers, which is
//! the same for the dense models graft runs. Metadata is carried over with `general.file_type`
//! and `general.quantization_version` updated. The output is written atomically.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use graft_quant::blocks;
use graft_quant::gguf::{GgufFile, GgufWriter, TensorView, Value};
use graft_quant::{target, QuantType};
use rayon::prelude::*;

/// Arguments of `graft quantize`.
#[derive(clap::Args)]
pub struct Args {
    /// Input GGUF model.
    input: PathBuf,
    /// Output GGUF file (written atomically: temp file + rename).
    output: PathBuf,
    /// Target type: q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k, f16, f32.
    #[arg(long = "type", short = 't', value_parser = target::parse_model_target)]
    ty: QuantType,
    /// Allow converting tensors that are already quantized (quality loss compounds).
    #[arg(long)]
    allow_requantize: bool,
    /// Threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

/// The type a tensor is written as, following llama-quantize's rules.
/// the model has a separate `output.weight` (else `token_embd.weight` is also the output head).
fn target_for(t: &TensorView<'_>, want: QuantType, model: &target::ModelLayout) -> QuantType {
    target::tensor_target(t.name, t.shape, t.ty, want, model)
}

/// Runs `graft quantize`.
pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let input = GgufFile::open(&args.input)
        .with_context(|| format!("cannot read GGUF file {}", args.input.display()))?;
    let views: Vec<TensorView<'_>> = input.tensors().collect();

    let layout = target::ModelLayout::of(&input);
    let plan: Vec<QuantType> = views
        .iter()
        .map(|t| target_for(t, args.ty, &layout))
        .collect();
    for (t, &to) in views.iter().zip(&plan) {
        if to != t.ty && t.ty.is_quantized() && !args.allow_requantize {
            bail!(
                "tensor '{}' is already quantized ({}); converting it to {} loses quality twice — \
                 pass --allow-requantize to do it anyway",
                t.name,
                t.ty,
                to
            );
        }
        if to != t.ty && !blocks::can_quantize(to) {
            bail!("graft cannot write tensor '{}' as {}", t.name, to);
        }
    }

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads.unwrap_or(0))
        .build()
        .context("cannot start the quantization thread pool")?;
    let converted: Vec<Option<Vec<u8>>> = pool.install(|| {
        views
            .par_iter()
            .zip(plan.par_iter())
            .map(|(t, &to)| convert(t, to))
            .collect::<Result<Vec<_>>>()
    })?;

    let mut md = input.metadata().clone();
    md.insert(
        "general.file_type",
        Value::U32(target::llama_file_type(args.ty)),
    );
    md.insert("general.quantization_version", Value::U32(2));
    let mut writer =
        GgufWriter::new(md, input.alignment()).context("cannot start the output file")?;
    let (mut bytes_in, mut bytes_out) = (0usize, 0usize);
    for ((t, &to), new) in views.iter().zip(&plan).zip(&converted) {
        let data: &[u8] = new.as_deref().unwrap_or(t.bytes);
        bytes_in += t.bytes.len();
        bytes_out += data.len();
        writer
            .add_tensor(t.name, to, t.shape, data)
            .with_context(|| format!("cannot add tensor '{}' to the output", t.name))?;
    }
    // The library's error names the file and the operation.
    writer.write_file(&args.output)?;

    let changed = views
        .iter()
        .zip(&plan)
        .filter(|(t, &to)| t.ty != to)
        .count();
    eprintln!(
        "quantized {changed} of {} tensors to {}: {:.1} MB -> {:.1} MB in {:.1} s; wrote {}",
        views.len(),
        args.ty,
        bytes_in as f64 / 1e6,
        bytes_out as f64 / 1e6,
        start.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}

/// Converts one tensor to `to`; `None` when its bytes are copied unchanged.
fn convert(t: &TensorView<'_>, to: QuantType) -> Result<Option<Vec<u8>>> {
    if to == t.ty {
        return Ok(None);
    }
    let n = usize::try_from(t.n_elements()).context("tensor too large")?;
    let mut f32s = vec![0f32; n];
    blocks::dequantize(t.ty, t.bytes, &mut f32s)
        .with_context(|| format!("cannot read tensor '{}' ({})", t.name, t.ty))?;
    let out = blocks::quantize(to, &f32s)
        .with_context(|| format!("cannot quantize tensor '{}' to {}", t.name, to))?;
    Ok(Some(out))
}
