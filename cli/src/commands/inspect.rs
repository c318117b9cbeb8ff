//! `graft inspect MODEL.gguf [--json] [--tensors]`: what a GGUF file holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use graft_quant::gguf::{Array, GgufFile, Metadata, TensorInfo, Value};
use graft_quant::QuantType;
use serde_json::{json, Map, Value as Json};

/// Arrays longer than this are summarised (type and length) instead of printed in full.
const MAX_ARRAY_PRINT: usize = 16;

/// Arguments of `graft inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// The GGUF file.
    model: PathBuf,
    /// Print one JSON object (keys: architecture, n_params, n_tensors, metadata, tensors, ...).
    #[arg(long)]
    json: bool,
    /// List every tensor (name, type, shape, offset) in the text report.
    #[arg(long)]
    tensors: bool,
    /// Print long metadata arrays (vocabularies, merges) in full in JSON.
    #[arg(long)]
    full_arrays: bool,
}

/// The hyperparameters `inspect` reports, as `<arch>.<suffix>` keys.
const HPARAMS: [(&str, &str); 10] = [
    ("n_layers", "block_count"),
    ("context_length", "context_length"),
    ("d_model", "embedding_length"),
    ("d_ffn", "feed_forward_length"),
    ("n_heads", "attention.head_count"),
    ("n_kv_heads", "attention.head_count_kv"),
    ("rope_freq_base", "rope.freq_base"),
    ("rope_dim", "rope.dimension_count"),
    ("rms_eps", "attention.layer_norm_rms_epsilon"),
    ("vocab_size", "vocab_size"),
];

/// Per-type totals.
#[derive(Default)]
struct TypeStats {
    tensors: usize,
    params: u64,
    bytes: u64,
}

/// What `inspect` reports on: a file's header (or a writer's plan of one).
pub(crate) struct Header<'a> {
    /// Where it is (or will be).
    pub path: String,
    /// GGUF version.
    pub version: u32,
    /// Its metadata.
    pub md: &'a Metadata,
    /// Its tensors, offsets relative to the data section.
    pub tensors: Vec<&'a TensorInfo>,
    /// Byte offset of the data section.
    pub data_offset: u64,
    /// Size of the whole file.
    pub file_size: u64,
}

/// Runs `graft inspect`.
pub fn run(args: Args) -> Result<()> {
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("cannot read GGUF file {}", args.model.display()))?;
    let header = Header {
        path: args.model.display().to_string(),
        version: file.version(),
        md: file.metadata(),
        tensors: file.tensor_infos().iter().collect(),
        data_offset: file.data_offset() as u64,
        file_size: file.as_bytes().len() as u64,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&header, args.full_arrays))?
        );
        return Ok(());
    }
    print_report(&header, args.tensors);
    Ok(())
}

/// Per-type totals and the parameter count.
fn type_stats(h: &Header<'_>) -> (BTreeMap<QuantType, TypeStats>, u64) {
    let mut by_type: BTreeMap<QuantType, TypeStats> = BTreeMap::new();
    let mut n_params: u64 = 0;
    for t in &h.tensors {
        let n: u64 = t.shape.iter().product();
        n_params += n;
        let s = by_type.entry(t.ty).or_default();
        s.tensors += 1;
        s.params += n;
        s.bytes += t.n_bytes as u64;
    }
    (by_type, n_params)
}

/// What both reports show of a header.
struct Summary {
    by_type: BTreeMap<QuantType, TypeStats>,
    n_params: u64,
    arch: String,
    hparams: Vec<(&'static str, Json)>,
    vocab_len: Option<usize>,
}

fn summary(h: &Header<'_>) -> Summary {
    let (by_type, n_params) = type_stats(h);
    let (arch, hparams) = hparams(h.md);
    let vocab_len =
        h.md.get("tokenizer.ggml.tokens")
            .and_then(Value::as_array)
            .map(Array::len);
    Summary {
        by_type,
        n_params,
        arch,
        hparams,
        vocab_len,
    }
}

/// The architecture and the hyperparameters present, as labelled JSON values.
fn hparams(md: &Metadata) -> (String, Vec<(&'static str, Json)>) {
    let arch = md
        .get_str("general.architecture")
        .unwrap_or("unknown")
        .to_string();
    let hparams = HPARAMS
        .iter()
        .filter_map(|(label, suffix)| {
            md.get(&format!("{arch}.{suffix}"))
                .map(|v| (*label, value_to_json(v, true)))
        })
        .collect();
    (arch, hparams)
}

/// The `--json` report: one object with the stable keys `architecture`, `n_params`,
/// `n_tensors`, `metadata`, `tensors` (plus `hparams`, `tokenizer`, `chat_template`, `types`,
/// `file_size`, `gguf_version`, `path`, `name`).
pub(crate) fn report_json(h: &Header<'_>, full_arrays: bool) -> Json {
    let md = h.md;
    let Summary {
        by_type,
        n_params,
        arch,
        hparams,
        vocab_len,
    } = summary(h);
    let tokenizer_model = md.get_str("tokenizer.ggml.model").ok().map(str::to_string);
    let tokenizer_pre = md.get_str("tokenizer.ggml.pre").ok().map(str::to_string);
    let tensors: Vec<Json> = h
        .tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ty.to_string(),
                "shape": t.shape,
                "offset": h.data_offset + t.offset,
                "n_bytes": t.n_bytes,
            })
        })
        .collect();
    let types: Map<String, Json> = by_type
        .iter()
        .map(|(ty, s)| {
            (
                ty.to_string(),
                json!({"tensors": s.tensors, "params": s.params, "bytes": s.bytes}),
            )
        })
        .collect();
    json!({
        "path": h.path,
        "gguf_version": h.version,
        "file_size": h.file_size,
        "architecture": arch,
        "name": md.get_str("general.name").ok(),
        "n_params": n_params,
        "n_tensors": h.tensors.len(),
        "hparams": hparams.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>(),
        "tokenizer": {"model": tokenizer_model, "pre": tokenizer_pre, "vocab_size": vocab_len},
        "chat_template": md.get("tokenizer.chat_template").is_some(),
        "types": types,
        "metadata": metadata_to_json(md, !full_arrays),
        "tensors": tensors,
    })
}

/// The text report (with every tensor when `tensors`).
pub(crate) fn print_report(h: &Header<'_>, tensors: bool) {
    let md = h.md;
    let Summary {
        by_type,
        n_params,
        arch,
        hparams,
        vocab_len,
    } = summary(h);
    println!(
        "file:            {} ({} bytes, GGUF v{})",
        h.path, h.file_size, h.version
    );
    println!("architecture:    {arch}");
    if let Ok(name) = md.get_str("general.name") {
        println!("name:            {name}");
    }
    for (label, v) in &hparams {
        println!("{:<16} {v}", format!("{label}:"));
    }
    println!(
        "tokenizer:       {} (pre: {}), {} tokens",
        md.get_str("tokenizer.ggml.model").unwrap_or("none"),
        md.get_str("tokenizer.ggml.pre").unwrap_or("none"),
        vocab_len.map_or("?".to_string(), |n| n.to_string())
    );
    println!(
        "chat template:   {}",
        if md.get("tokenizer.chat_template").is_some() {
            "yes"
        } else {
            "no"
        }
    );
    println!("tensors:         {}", h.tensors.len());
    println!(
        "parameters:      {n_params} ({:.1} M)",
        n_params as f64 / 1e6
    );
    println!("by type:");
    for (ty, s) in &by_type {
        println!(
            "  {:<6} {:>4} tensors {:>12} params {:>12} bytes ({:.2} bits/weight)",
            ty.to_string(),
            s.tensors,
            s.params,
            s.bytes,
            s.bytes as f64 * 8.0 / s.params.max(1) as f64
        );
    }
    if tensors {
        println!(
            "{:<40} {:<6} {:<20} {:>12}",
            "name", "type", "shape", "offset"
        );
        for t in &h.tensors {
            println!(
                "{:<40} {:<6} {:<20} {:>12}",
                t.name,
                t.ty.to_string(),
                format!("{:?}", t.shape),
                h.data_offset + t.offset
            );
        }
    }
}

/// All metadata as a JSON object, in file order; long arrays summarised when `summarise`.
fn metadata_to_json(md: &Metadata, summarise: bool) -> Json {
    let mut map = Map::new();
    for (key, value) in md.iter() {
        map.insert(key.to_string(), value_to_json(value, summarise));
    }
    Json::Object(map)
}

pub(crate) fn value_to_json(v: &Value, summarise: bool) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => f32_to_json(*x),
        Value::F64(x) => json!(x),
        Value::Bool(x) => json!(x),
        Value::String(s) => json!(s),
        Value::Array(a) => array_to_json(a, summarise),
    }
}

/// An f32 as the JSON number with its shortest decimal form (1e-5, not 9.99999974737875e-6).
fn f32_to_json(x: f32) -> Json {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Json::Null, Json::Number)
}

fn array_to_json(a: &Array, summarise: bool) -> Json {
    if summarise && a.len() > MAX_ARRAY_PRINT {
        return json!({"array_of": array_elem_name(a), "len": a.len()});
    }
    match a {
        Array::U8(v) => json!(v),
        Array::I8(v) => json!(v),
        Array::U16(v) => json!(v),
        Array::I16(v) => json!(v),
        Array::U32(v) => json!(v),
        Array::I32(v) => json!(v),
        Array::U64(v) => json!(v),
        Array::I64(v) => json!(v),
        Array::F32(v) => Json::Array(v.iter().map(|x| f32_to_json(*x)).collect()),
        Array::F64(v) => json!(v),
        Array::Bool(v) => json!(v),
        Array::String(v) => json!(v),
        Array::Array(v) => Json::Array(v.iter().map(|x| array_to_json(x, summarise)).collect()),
    }
}

fn array_elem_name(a: &Array) -> &'static str {
    match a {
        Array::U8(_) => "u8",
        Array::I8(_) => "i8",
        Array::U16(_) => "u16",
        Array::I16(_) => "i16",
        Array::U32(_) => "u32",
        Array::I32(_) => "i32",
        Array::U64(_) => "u64",
        Array::I64(_) => "i64",
        Array::F32(_) => "f32",
        Array::F64(_) => "f64",
        Array::Bool(_) => "bool",
        Array::String(_) => "string",
        Array::Array(_) => "array",
    }
}
