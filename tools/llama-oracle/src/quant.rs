//! ggml's quantizers as an oracle: raw block (de)quantization and whole-model quantization.
//!
//! `quantize-blocks` / `dequantize-blocks` call ggml's `ggml_quantize_chunk` (no importance
//! matrix) and the type traits' `to_float`; `quantize` calls `llama_model_quantize`, the function
//! behind the `llama-quantize` tool. Only the FFI calls here are `unsafe`.

use std::ffi::CString;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_sys_2 as sys;
use serde::Serialize;

/// Row length used when the input length is a multiple of it: 256 values (a k-quant super-block).
const ROW: usize = 256;

/// The ggml type named `name` (graft's lower-case names) and whether `quantize_chunk` takes it.
pub fn block_type(name: &str) -> Result<sys::ggml_type> {
    Ok(match name {
        "q4_0" => sys::GGML_TYPE_Q4_0,
        "q4_1" => sys::GGML_TYPE_Q4_1,
        "q5_0" => sys::GGML_TYPE_Q5_0,
        "q5_1" => sys::GGML_TYPE_Q5_1,
        "q8_0" => sys::GGML_TYPE_Q8_0,
        "q2_k" => sys::GGML_TYPE_Q2_K,
        "q3_k" => sys::GGML_TYPE_Q3_K,
        "q4_k" => sys::GGML_TYPE_Q4_K,
        "q5_k" => sys::GGML_TYPE_Q5_K,
        "q6_k" => sys::GGML_TYPE_Q6_K,
        "f16" => sys::GGML_TYPE_F16,
        "bf16" => sys::GGML_TYPE_BF16,
        _ => bail!(
            "unsupported block type '{name}' (ggml_quantize_chunk takes q4_0 q4_1 q5_0 q5_1 q8_0 \
             q2_k q3_k q4_k q5_k q6_k f16 bf16; q8_1 and q8_K are activation-only types)"
        ),
    })
}

/// (block size in values, bytes per block) of `ty`.
fn block_geometry(ty: sys::ggml_type) -> (usize, usize) {
    // SAFETY: ggml_blck_size / ggml_type_size only index ggml's static type-traits table, and
    // `ty` comes from `block_type`, so it is a valid ggml_type.
    let (blck, size) = unsafe { (sys::ggml_blck_size(ty), sys::ggml_type_size(ty)) };
    (usize::try_from(blck).unwrap_or(1), size)
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut raw = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut raw)
        .context("reading stdin")?;
    Ok(raw)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).context("writing stdout")?;
    out.flush().context("writing stdout")
}

/// Quantizes `x` to `ty` with `ggml_quantize_chunk`: rows of 256 values when the length is a
/// multiple of 256, else one row (blocks are independent, so the split does not change bytes).
pub fn quantize_blocks(ty: sys::ggml_type, x: &[f32]) -> Result<Vec<u8>> {
    let (blck, size) = block_geometry(ty);
    ensure!(!x.is_empty(), "no input values");
    ensure!(
        x.len().is_multiple_of(blck),
        "{} values is not a multiple of the block size {blck}",
        x.len()
    );
    let n_per_row = if x.len().is_multiple_of(ROW) {
        ROW
    } else {
        x.len()
    };
    let nrows = x.len() / n_per_row;
    // SAFETY: reads ggml's static flag table for a valid type.
    ensure!(
        !unsafe { sys::ggml_quantize_requires_imatrix(ty) },
        "this type needs an importance matrix"
    );
    let mut out = vec![0u8; x.len() / blck * size];
    // SAFETY: ggml_quantize_init fills ggml's lookup tables for `ty` (a no-op for types without
    // any); it locks internally and may be called repeatedly.
    unsafe { sys::ggml_quantize_init(ty) };
    // SAFETY: `x` holds nrows * n_per_row f32 values; `out` holds nrows * n_per_row / blck blocks
    // of `size` bytes, exactly what ggml writes for these rows; start 0 is row-aligned; a null
    // imatrix is allowed for types where ggml_quantize_requires_imatrix is false (checked above).
    let written = unsafe {
        sys::ggml_quantize_chunk(
            ty,
            x.as_ptr(),
            out.as_mut_ptr().cast(),
            0,
            i64::try_from(nrows).context("too many rows")?,
            i64::try_from(n_per_row).context("row too long")?,
            std::ptr::null(),
        )
    };
    ensure!(
        written == out.len(),
        "ggml wrote {written} bytes, expected {}",
        out.len()
    );
    Ok(out)
}

/// Dequantizes `bytes` (whole blocks of `ty`) with the type traits' `to_float`.
pub fn dequantize_blocks(ty: sys::ggml_type, bytes: &[u8]) -> Result<Vec<f32>> {
    let (blck, size) = block_geometry(ty);
    ensure!(
        bytes.len().is_multiple_of(size),
        "{} bytes is not a multiple of the block size {size}",
        bytes.len()
    );
    let n = bytes.len() / size * blck;
    // SAFETY: ggml_get_type_traits returns a pointer into ggml's static traits table, valid for
    // the life of the program, for any valid type.
    let traits = unsafe { &*sys::ggml_get_type_traits(ty) };
    let to_float = traits
        .to_float
        .context("ggml has no to_float for this type")?;
    let mut out = vec![0f32; n];
    // SAFETY: `bytes` holds n / blck whole blocks and `out` has room for n floats, which is what
    // to_float reads and writes for k = n (a multiple of the block size).
    unsafe {
        to_float(
            bytes.as_ptr().cast(),
            out.as_mut_ptr(),
            i64::try_from(n).context("too many values")?,
        )
    };
    Ok(out)
}

/// `quantize-blocks`: f32 (LE) on stdin → ggml's quantized bytes on stdout.
pub fn quantize_blocks_cmd(ty_name: &str) -> Result<()> {
    let ty = block_type(ty_name)?;
    let raw = read_stdin()?;
    ensure!(
        raw.len().is_multiple_of(4),
        "stdin length {} is not a multiple of 4",
        raw.len()
    );
    let x: Vec<f32> = raw
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    write_stdout(&quantize_blocks(ty, &x)?)
}

/// `dequantize-blocks`: ggml blocks on stdin → f32 (LE) on stdout.
pub fn dequantize_blocks_cmd(ty_name: &str) -> Result<()> {
    let ty = block_type(ty_name)?;
    let raw = read_stdin()?;
    let y = dequantize_blocks(ty, &raw)?;
    let bytes: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_stdout(&bytes)
}

/// llama-quantize's file type for a target named like graft's `--type` (llama-quantize's own
/// names, lower case: `q4_k_m`, `q3_k_l`, ...), or a raw `llama_ftype` number.
fn ftype(name: &str) -> Result<sys::llama_ftype> {
    Ok(match name {
        "f32" => sys::LLAMA_FTYPE_ALL_F32,
        "f16" => sys::LLAMA_FTYPE_MOSTLY_F16,
        "bf16" => sys::LLAMA_FTYPE_MOSTLY_BF16,
        "q4_0" => sys::LLAMA_FTYPE_MOSTLY_Q4_0,
        "q4_1" => sys::LLAMA_FTYPE_MOSTLY_Q4_1,
        "q5_0" => sys::LLAMA_FTYPE_MOSTLY_Q5_0,
        "q5_1" => sys::LLAMA_FTYPE_MOSTLY_Q5_1,
        "q8_0" => sys::LLAMA_FTYPE_MOSTLY_Q8_0,
        "q2_k" => sys::LLAMA_FTYPE_MOSTLY_Q2_K,
        "q3_k_s" => sys::LLAMA_FTYPE_MOSTLY_Q3_K_S,
        "q3_k_m" => sys::LLAMA_FTYPE_MOSTLY_Q3_K_M,
        "q3_k_l" => sys::LLAMA_FTYPE_MOSTLY_Q3_K_L,
        "q4_k" | "q4_k_s" => sys::LLAMA_FTYPE_MOSTLY_Q4_K_S,
        "q4_k_m" => sys::LLAMA_FTYPE_MOSTLY_Q4_K_M,
        "q5_k" | "q5_k_s" => sys::LLAMA_FTYPE_MOSTLY_Q5_K_S,
        "q5_k_m" => sys::LLAMA_FTYPE_MOSTLY_Q5_K_M,
        "q6_k" => sys::LLAMA_FTYPE_MOSTLY_Q6_K,
        n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n
            .parse::<sys::llama_ftype>()
            .with_context(|| format!("file type number '{n}' out of range"))?,
        _ => bail!(
            "unsupported target '{name}' (f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k_s q3_k_m \
             q3_k_l q4_k_s q4_k_m q5_k_s q5_k_m q6_k, or a llama_ftype number; q4_k/q5_k mean \
             Q4_K_S/Q5_K_S)"
        ),
    })
}

/// What `quantize` prints.
#[derive(Serialize)]
pub struct QuantizeOut {
    ok: bool,
    ftype: u32,
    ms: f64,
    size_bytes: u64,
}

/// `quantize`: `llama_model_quantize(input, output, params)` with llama-quantize's defaults.
pub fn quantize_model(
    input: &Path,
    output: &Path,
    ty_name: &str,
    allow_requantize: bool,
    threads: i32,
    verbose: bool,
) -> Result<QuantizeOut> {
    let ftype = ftype(ty_name)?;
    ensure!(
        input.is_file(),
        "model file {} not found (run scripts/fetch-model.sh)",
        input.display()
    );
    let mut backend = LlamaBackend::init().context("initialising the llama.cpp backend")?;
    if !verbose {
        backend.void_logs();
    }
    let c_in = CString::new(input.to_string_lossy().as_bytes()).context("input path has NUL")?;
    let c_out = CString::new(output.to_string_lossy().as_bytes()).context("output path has NUL")?;
    // SAFETY: returns a plain struct by value; no pointers are dereferenced.
    let mut params = unsafe { sys::llama_model_quantize_default_params() };
    params.ftype = ftype;
    params.nthread = threads;
    params.allow_requantize = allow_requantize;
    let t0 = Instant::now();
    // SAFETY: both paths are NUL-terminated C strings that outlive the call; `params` is a valid
    // struct from llama_model_quantize_default_params whose pointer fields stay null (no imatrix,
    // overrides or pruning).
    let rc = unsafe { sys::llama_model_quantize(c_in.as_ptr(), c_out.as_ptr(), &params) };
    drop(backend);
    ensure!(
        rc == 0,
        "llama_model_quantize failed (code {rc}); run with --verbose for llama.cpp's log"
    );
    let size_bytes = std::fs::metadata(output)
        .with_context(|| format!("reading {}", output.display()))?
        .len();
    Ok(QuantizeOut {
        ok: true,
        ftype,
        ms: t0.elapsed().as_secs_f64() * 1e3,
        size_bytes,
    })
}
