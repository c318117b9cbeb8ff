//! `graft quantize IN.gguf OUT.gguf --type TYPE`: llama-quantize's job, in graft.
//!
//! The rules follow llama.cpp's `llama-quantize`: only tensors of two or more dimensions whose
//! names end in `weight` are converted; 1-D tensors (norms, biases) are copied unchanged; a
//! tensor already of the target type is copied as is; k-quant targets fall back to a 32-wide
//! format for tensors whose rows are not a multiple of 256 (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K →
//! Q8_0, as llama.cpp's `convert_incompatible_tensor` does); the output head (`output.weight`,
//! or `token_embd.weight` when the model ties them) goes to Q6_K for quantized targets other than
//! Q8_0 (then through the same fallback), as llama.cpp does; every other weight matrix gets the
//! target type (llama.cpp's `_M` mixes are not reproduced); converting an already quantized
//! tensor needs `--allow-requantize`. Metadata is carried over with `general.file_type` and
//! `general.quantization_version` updated. The output is written atomically.

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

/// The type a tensor is written as, following llama-quantize's rules. `has_output` says whether
/// the model has a separate `output.weight` (else `token_embd.weight` is also the output head).
fn target_for(t: &TensorView<'_>, want: QuantType, has_output: bool) -> QuantType {
    target::tensor_target(t.name, t.shape, t.ty, want, has_output)
}

/// Runs `graft quantize`.
pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let input = GgufFile::open(&args.input)
        .with_context(|| format!("cannot read GGUF file {}", args.input.display()))?;
    let views: Vec<TensorView<'_>> = input.tensors().collect();

    let has_output = input.tensor("output.weight").is_some();
    let plan: Vec<QuantType> = views
        .iter()
        .map(|t| target_for(t, args.ty, has_output))
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
    writer
        .write_file(&args.output)
        .with_context(|| format!("cannot write {}", args.output.display()))?;

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
