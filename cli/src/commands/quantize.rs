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

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use graft_quant::blocks;
use graft_quant::gguf::{GgufFile, GgufWriter, TensorView, Value};
use graft_quant::imatrix::Imatrix;
use graft_quant::{target, QuantType};
use rayon::prelude::*;

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

/// The type a tensor is written as, following llama-quantize's rules.
fn target_for(
    t: &TensorView<'_>,
    want: target::FileType,
    model: &target::ModelLayout,
    has_imatrix: bool,
) -> QuantType {
    target::tensor_type_with_imatrix(t.name, t.shape, t.ty, want, model, has_imatrix)
}

/// The importance weights llama-quantize uses for tensor `t` (converted to `to`): the file's
/// entry for it when its size is the tensor's columns times its matrices, none when the file
/// has no entry; a size mismatch is an error except for `token_embd.weight`, which llama.cpp
/// skips.
fn importance_for(
    imatrix: Option<&Imatrix>,
    t: &TensorView<'_>,
    path: &std::path::Path,
) -> Result<Option<Vec<f32>>> {
    let Some(w) = imatrix.and_then(|m| m.importance(t.name)) else {
        return Ok(None);
    };
    let cols = t.shape.first().copied().unwrap_or(0);
    let n_mat = t.shape.get(2).copied().unwrap_or(1);
    if w.len() as u64 == cols * n_mat {
        return Ok(Some(w));
    }
    if t.name == "token_embd.weight" {
        return Ok(None);
    }
    bail!(
        "importance matrix {}: entry for '{}' has {} values, but the tensor has {} columns{}",
        path.display(),
        t.name,
        w.len(),
        cols,
        if n_mat > 1 {
            format!(" x {n_mat} matrices")
        } else {
            String::new()
        }
    )
}

/// Runs `graft quantize`.
pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    let input = GgufFile::open(&args.input)
        .with_context(|| format!("cannot read GGUF file {}", args.input.display()))?;
    let views: Vec<TensorView<'_>> = input.tensors().collect();

    let imatrix = match &args.imatrix {
        Some(path) => Some(
            Imatrix::read(path)
                .with_context(|| format!("cannot load importance matrix {}", path.display()))?,
        ),
        None => None,
    };
    let layout = target::ModelLayout::of(&input);
    let plan: Vec<QuantType> = views
        .iter()
        .map(|t| target_for(t, args.ty, &layout, imatrix.is_some()))
        .collect();
    let mut weights: Vec<Option<Vec<f32>>> = Vec::with_capacity(views.len());
    for (t, &to) in views.iter().zip(&plan) {
        weights.push(match (&args.imatrix, to != t.ty) {
            (Some(path), true) => importance_for(imatrix.as_ref(), t, path)?,
            _ => None,
        });
    }
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
            .zip(weights.par_iter())
            .map(|((t, &to), w)| convert(t, to, w.as_deref()))
            .collect::<Result<Vec<_>>>()
    })?;

    let mut md = input.metadata().clone();
    md.insert("general.file_type", Value::U32(args.ty.file_type_id()));
    md.insert("general.quantization_version", Value::U32(2));
    if let (Some(path), Some(m)) = (&args.imatrix, &imatrix) {
        // llama-quantize's keys (kv overrides: strings cut to 127 bytes, counts as u32).
        let cut = |s: &str| {
            let mut end = s.len().min(127);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_string()
        };
        md.insert(
            "quantize.imatrix.file",
            Value::String(cut(&path.to_string_lossy())),
        );
        if let Some(first) = m.datasets.first() {
            md.insert("quantize.imatrix.dataset", Value::String(cut(first)));
        }
        md.insert(
            "quantize.imatrix.entries_count",
            Value::U32(m.entries.len() as u32),
        );
        if m.chunk_count > 0 {
            md.insert("quantize.imatrix.chunks_count", Value::U32(m.chunk_count));
        }
    }
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
    // How many tensors of each type the output has (the mix, after the row fallbacks).
    let mut per_type = std::collections::BTreeMap::<QuantType, usize>::new();
    for &to in &plan {
        *per_type.entry(to).or_default() += 1;
    }
    let mix: Vec<String> = per_type.iter().map(|(t, n)| format!("{n} {t}")).collect();
    eprintln!(
        "quantized {changed} of {} tensors to {} ({}): {:.1} MB -> {:.1} MB in {:.1} s; wrote {}",
        views.len(),
        args.ty,
        mix.join(", "),
        bytes_in as f64 / 1e6,
        bytes_out as f64 / 1e6,
        start.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}

/// Converts one tensor to `to` (with importance weights per column when given); `None` when
/// its bytes are copied unchanged.
fn convert(
    t: &TensorView<'_>,
    to: QuantType,
    importance: Option<&[f32]>,
) -> Result<Option<Vec<u8>>> {
    if to == t.ty {
        return Ok(None);
    }
    let n = usize::try_from(t.n_elements()).context("tensor too large")?;
    let mut f32s = vec![0f32; n];
    blocks::dequantize(t.ty, t.bytes, &mut f32s)
        .with_context(|| format!("cannot read tensor '{}' ({})", t.name, t.ty))?;
    let out = match importance {
        Some(w) => quantize_weighted(t, to, &f32s, w),
        None => blocks::quantize(to, &f32s).map_err(Into::into),
    }
    .with_context(|| format!("cannot quantize tensor '{}' to {}", t.name, to))?;
    Ok(Some(out))
}

/// Quantizes a tensor's floats with importance weights: each matrix (`shape[2]` of them, one
/// importance row of `shape[0]` weights each) as ggml's `ggml_quantize_chunk` with its imatrix.
fn quantize_weighted(
    t: &TensorView<'_>,
    to: QuantType,
    f32s: &[f32],
    w: &[f32],
) -> Result<Vec<u8>> {
    let cols = usize::try_from(t.shape.first().copied().unwrap_or(0)).context("tensor too wide")?;
    if cols == 0 || w.is_empty() || !w.len().is_multiple_of(cols) {
        bail!("importance weights do not match the tensor's rows");
    }
    let n_mat = w.len() / cols;
    let per_mat = f32s.len() / n_mat;
    let mut out = Vec::new();
    for (x, wm) in f32s.chunks_exact(per_mat).zip(w.chunks_exact(cols)) {
        out.extend(blocks::quantize_weighted(to, x, cols, wm)?);
    }
    Ok(out)
}
