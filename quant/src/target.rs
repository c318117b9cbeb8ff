//! llama-quantize's rules for choosing the type each tensor of a model is written as, shared
//! by `graft quantize` and adapter merging.
//!
//! A whole-model target is a [`FileType`]: one of llama.cpp's file types (`llama_ftype`) —
//! a plain type such as `q4_0` or `q8_0`, or a k-quant *mix* such as `q4_k_m` that gives the
//! tensors the model is most sensitive to more bits — or graft's own [`FileType::NF4`]. For the
//! llama.cpp file types, [`tensor_type`] reproduces `llama_tensor_get_type` (llama.cpp's
//! src/llama-quant.cpp, as vendored by llama-cpp-sys-2 0.1.160) for models quantized without an
//! importance matrix and without llama-quantize's overrides (`--pure`, `--output-tensor-type`,
//! `--token-embedding-type`, `--tensor-type`), so that `graft quantize` and `llama-quantize`
//! choose the same type for every tensor (and, since graft's quantizers match ggml's byte for
//! byte, write the same bytes: cli/tests/llama_parity.rs checks both test models in every type).
//!
//! # The rules, in order
//!
//! 1. **Which tensors are converted.** Only tensors of two or more dimensions whose names end in
//!    `weight` and that llama.cpp does not exempt (norms, MoE routers, positional/token-type
//!    embeddings, conv1d and other small tensors: see [`is_quantizable`]) change type; the rest
//!    keep theirs. A plain-float target (`f32`, `f16`) converts every such tensor to itself.
//! 2. **Output head.** `output.weight`, or `token_embd.weight` when the model has no separate
//!    output (tied embeddings), goes to Q8_0 when its rows are not a multiple of the target's
//!    block (or the model is Falcon), else to Q6_K, unless the target is already Q8_0.
//! 3. **Mix bumps** (k-quant mixes only), by tensor role:
//!    - `attn_v` (and fused `attn_qkv`, `attn_kv_b`), counted in llama.cpp's tensor order
//!      (`i` of `n`): Q2_K → Q4_K when the model has at least 4 query heads per KV head (GQA ≥ 4),
//!      else Q3_K; Q3_K_M → Q5_K for the first two, Q4_K after; Q3_K_L → Q5_K; Q4_K_M and
//!      Q5_K_M → Q6_K where [`use_more_bits`]`(i, n)`; Q4_K_S → Q5_K for the first four; any
//!      target → Q8_0 in 8-expert MoE models.
//!    - `attn_k`: Q8_0 in 8-expert MoE models.
//!    - `ffn_down` of layer `i` of `n` (`{arch}.block_count`): Q2_K → Q3_K; Q3_K_M → Q5_K below
//!      `n/16`, else Q4_K (Falcon: Q4_K where `use_more_bits`, else Q3_K); Q3_K_L → Q5_K (Falcon:
//!      Q4_K); Q4_K_M → Q6_K where `use_more_bits` (Falcon: Q6_K below `n/16`, Q5_K where
//!      `use_more_bits`); Q5_K_M → Q6_K where `use_more_bits`; Q4_K_S → Q5_K below `n/8` (not
//!      Falcon).
//!    - `attn_output`: Q2_K → Q3_K, Q3_K_M → Q4_K, Q3_K_L → Q5_K; in 8-expert MoE models
//!      Q2_K, Q3_K_S, Q3_K_M, Q4_K_S, Q4_K_M → Q5_K instead; Falcon: only Q3_K_L → Q4_K.
//!    - everything else (`attn_q`, `attn_k`, `ffn_gate`, `ffn_up`, an untied `token_embd`)
//!      keeps the mix's base type.
//! 4. **Row-size fallback** (llama.cpp's `tensor_type_fallback`): a type whose block does not
//!    divide the row length falls back to a 32-wide format — Q2_K and Q3_K → Q4_0, Q4_K → Q5_0,
//!    Q5_K → Q5_1, Q6_K → Q8_0 (NF4 → Q4_0) — and to F16 when even that does not divide it. On
//!    the small test models (rows of 576 and 640) this is what most tensors of a k-quant mix
//!    end up as.
//!
//! llama.cpp counts the `attn_v` and `ffn_down` tensors in the order it visits them (by layer
//! number, then name), not by the layer in their names; [`ModelLayout`] replays that count, so
//! models with layers that lack attention or have several `ffn_down` tensors get llama.cpp's
//! choice too. In MoE models (`{arch}.expert_count` > 1) the `ffn_down` layer is read from the
//! tensor name, as llama.cpp does.
//!
//! Not reproduced: the IQ, TQ, Q2_K_S and MXFP4 mixes (importance-matrix formats graft does not
//! write); llama.cpp's bump of `attn_v` to Q5_K for models it classifies as 70B; the GLM-5
//! specific exemptions. With an importance matrix ([`tensor_type_with_imatrix`]) llama.cpp's one
//! rule that concerns these file types is applied: `q4_0` / `q5_0` give the `ffn_down` tensors
//! of the first eighth of the layers Q4_1 / Q5_1.

use std::collections::HashMap;

use crate::gguf::GgufFile;
use crate::QuantType;

/// A whole-model target type: what `graft quantize --type` takes. Every variant but
/// [`FileType::NF4`] is one of llama.cpp's `llama_ftype`s and is written as llama-quantize
/// writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum FileType {
    /// Every weight matrix in f32.
    F32,
    /// Every weight matrix in f16.
    F16,
    /// Q4_0 (4.5 bits/weight), output head Q6_K.
    Q4_0,
    /// Q4_1 (5.0 bits/weight), output head Q6_K.
    Q4_1,
    /// Q5_0 (5.5 bits/weight), output head Q6_K.
    Q5_0,
    /// Q5_1 (6.0 bits/weight), output head Q6_K.
    Q5_1,
    /// Q8_0 (8.5 bits/weight), output head Q8_0 too.
    Q8_0,
    /// Q2_K base; `attn_v` Q3_K (Q4_K with GQA ≥ 4), `ffn_down` and `attn_output` Q3_K.
    Q2_K,
    /// Q3_K everywhere (output head Q6_K).
    Q3_K_S,
    /// Q3_K base; `attn_v` Q5_K (first two) / Q4_K, `ffn_down` Q5_K (first 1/16) / Q4_K,
    /// `attn_output` Q4_K.
    Q3_K_M,
    /// Q3_K base; `attn_v`, `ffn_down` and `attn_output` Q5_K.
    Q3_K_L,
    /// Q4_K base; the first four `attn_v` and the first 1/8 of `ffn_down` Q5_K.
    Q4_K_S,
    /// Q4_K base; `attn_v` and `ffn_down` Q6_K in the [`use_more_bits`] layers.
    Q4_K_M,
    /// Q5_K everywhere (output head Q6_K).
    Q5_K_S,
    /// Q5_K base; `attn_v` and `ffn_down` Q6_K in the [`use_more_bits`] layers.
    Q5_K_M,
    /// Q6_K everywhere.
    Q6_K,
    /// graft-native: QLoRA's NormalFloat-4 ([`QuantType::NF4`]) for every weight matrix, the
    /// output head Q6_K (Q8_0 when its rows are not a multiple of 64). llama.cpp cannot load it.
    NF4,
}

impl FileType {
    /// Every file type, in `llama_ftype` order (NF4 last).
    pub const ALL: [FileType; 17] = [
        FileType::F32,
        FileType::F16,
        FileType::Q4_0,
        FileType::Q4_1,
        FileType::Q8_0,
        FileType::Q5_0,
        FileType::Q5_1,
        FileType::Q2_K,
        FileType::Q3_K_S,
        FileType::Q3_K_M,
        FileType::Q3_K_L,
        FileType::Q4_K_S,
        FileType::Q4_K_M,
        FileType::Q5_K_S,
        FileType::Q5_K_M,
        FileType::Q6_K,
        FileType::NF4,
    ];

    /// The value graft writes as `general.file_type` for files whose tensors graft writes in
    /// this type that llama.cpp does not define ([`FileType::NF4`]): NF4's own tensor type id.
    pub const GRAFT_NF4_FILE_TYPE: u32 = QuantType::NF4_ID;

    /// The lower-case name (llama-quantize's name in lower case: `q4_k_m`, `q8_0`, `nf4`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            FileType::F32 => "f32",
            FileType::F16 => "f16",
            FileType::Q4_0 => "q4_0",
            FileType::Q4_1 => "q4_1",
            FileType::Q5_0 => "q5_0",
            FileType::Q5_1 => "q5_1",
            FileType::Q8_0 => "q8_0",
            FileType::Q2_K => "q2_k",
            FileType::Q3_K_S => "q3_k_s",
            FileType::Q3_K_M => "q3_k_m",
            FileType::Q3_K_L => "q3_k_l",
            FileType::Q4_K_S => "q4_k_s",
            FileType::Q4_K_M => "q4_k_m",
            FileType::Q5_K_S => "q5_k_s",
            FileType::Q5_K_M => "q5_k_m",
            FileType::Q6_K => "q6_k",
            FileType::NF4 => "nf4",
        }
    }

    /// The file type named `name` (case-insensitive), including graft's older names `q4_k`
    /// (= `q4_k_s`) and `q5_k` (= `q5_k_s`), which predate the mixes. (llama-quantize's own
    /// aliases differ: its `Q4_K`, `Q5_K` and `Q3_K` mean the `_M` mixes; graft has no `q3_k`.)
    pub fn from_name(name: &str) -> Option<FileType> {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "q4_k" => Some(FileType::Q4_K_S),
            "q5_k" => Some(FileType::Q5_K_S),
            _ => Self::ALL.iter().copied().find(|t| t.name() == lower),
        }
    }

    /// The file type that writes every weight matrix in `ty` with no mix bumps: `Q4_K` and
    /// `Q5_K` are the `_S` mixes, `Q3_K` is Q3_K_S (whose only bump is the output head).
    /// `None` for types graft does not write whole models in.
    pub fn plain(ty: QuantType) -> Option<FileType> {
        Some(match ty {
            QuantType::F32 => FileType::F32,
            QuantType::F16 => FileType::F16,
            QuantType::Q4_0 => FileType::Q4_0,
            QuantType::Q4_1 => FileType::Q4_1,
            QuantType::Q5_0 => FileType::Q5_0,
            QuantType::Q5_1 => FileType::Q5_1,
            QuantType::Q8_0 => FileType::Q8_0,
            QuantType::Q2_K => FileType::Q2_K,
            QuantType::Q3_K => FileType::Q3_K_S,
            QuantType::Q4_K => FileType::Q4_K_S,
            QuantType::Q5_K => FileType::Q5_K_S,
            QuantType::Q6_K => FileType::Q6_K,
            QuantType::NF4 => FileType::NF4,
            _ => return None,
        })
    }

    /// The type every weight matrix gets unless a rule says otherwise (llama.cpp's
    /// `llama_ftype_get_default_type`).
    pub const fn base_type(self) -> QuantType {
        match self {
            FileType::F32 => QuantType::F32,
            FileType::F16 => QuantType::F16,
            FileType::Q4_0 => QuantType::Q4_0,
            FileType::Q4_1 => QuantType::Q4_1,
            FileType::Q5_0 => QuantType::Q5_0,
            FileType::Q5_1 => QuantType::Q5_1,
            FileType::Q8_0 => QuantType::Q8_0,
            FileType::Q2_K => QuantType::Q2_K,
            FileType::Q3_K_S | FileType::Q3_K_M | FileType::Q3_K_L => QuantType::Q3_K,
            FileType::Q4_K_S | FileType::Q4_K_M => QuantType::Q4_K,
            FileType::Q5_K_S | FileType::Q5_K_M => QuantType::Q5_K,
            FileType::Q6_K => QuantType::Q6_K,
            FileType::NF4 => QuantType::NF4,
        }
    }

    /// The `general.file_type` value written for this file type: llama.cpp's `llama_ftype`
    /// (`LLAMA_FTYPE_MOSTLY_Q4_K_M` = 15, ...), or [`FileType::GRAFT_NF4_FILE_TYPE`] for NF4.
    pub const fn file_type_id(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::Q4_0 => 2,
            FileType::Q4_1 => 3,
            FileType::Q8_0 => 7,
            FileType::Q5_0 => 8,
            FileType::Q5_1 => 9,
            FileType::Q2_K => 10,
            FileType::Q3_K_S => 11,
            FileType::Q3_K_M => 12,
            FileType::Q3_K_L => 13,
            FileType::Q4_K_S => 14,
            FileType::Q4_K_M => 15,
            FileType::Q5_K_S => 16,
            FileType::Q5_K_M => 17,
            FileType::Q6_K => 18,
            FileType::NF4 => Self::GRAFT_NF4_FILE_TYPE,
        }
    }

    /// Whether llama.cpp can load a file of this type.
    pub const fn llama_cpp_loads(self) -> bool {
        !matches!(self, FileType::NF4)
    }
}

impl std::fmt::Display for FileType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // llama-quantize prints Q4_K_M, F16, ...
        f.write_str(&self.name().to_ascii_uppercase())
    }
}

/// Parses a `--type` of `graft quantize` (a [`FileType`] name or an older alias), or returns a
/// message listing the accepted names.
pub fn parse_file_type(s: &str) -> Result<FileType, String> {
    FileType::from_name(s).ok_or_else(|| {
        format!(
            "unsupported target type '{s}'; expected one of: {} (q4_k and q5_k are q4_k_s and \
             q5_k_s)",
            FileType::ALL.map(FileType::name).join(", ")
        )
    })
}

/// Target types `graft merge` writes adapted tensors in (all load in llama.cpp).
pub const MODEL_TARGETS: [QuantType; 10] = [
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
    QuantType::F16,
    QuantType::F32,
];

/// Parses a target type name (`q4_0`, `f16`, ...) accepted by [`MODEL_TARGETS`], or returns a
/// message listing the accepted names.
pub fn parse_model_target(s: &str) -> Result<QuantType, String> {
    match QuantType::from_name(s) {
        Some(t) if MODEL_TARGETS.contains(&t) => Ok(t),
        _ => Err(format!(
            "unsupported target type '{s}'; expected one of: {}",
            MODEL_TARGETS.map(|t| t.name()).join(", ")
        )),
    }
}

/// llama.cpp's `use_more_bits(i, n)`: the layers the `_M` mixes give more bits to — the first
/// and last eighth of the `n` layers, and every third layer in between.
pub fn use_more_bits(i: usize, n: usize) -> bool {
    i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
}

/// What the type rules need to know about the whole model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelLayout {
    /// The model has a separate `output.weight` (else `token_embd.weight` is the output head).
    pub has_output: bool,
    /// Number of transformer layers (`{arch}.block_count`, else the number of `blk.N.` layers).
    pub n_layer: usize,
    /// Query heads per KV head in layer 0 (`head_count / head_count_kv`; 0 without KV heads).
    pub n_gqa: u32,
    /// Experts per MoE layer (`{arch}.expert_count`; 0 for dense models).
    pub n_expert: u32,
    /// The architecture is Falcon, whose mixes llama.cpp treats differently.
    pub falcon: bool,
    /// Number of `attn_v`-like tensors (`attn_v`, `attn_qkv`, `attn_kv_b`) in the model.
    pub n_attn_v: usize,
    /// For each quantizable `attn_v`-like or `ffn_down` tensor, its position among the tensors
    /// of its kind in llama.cpp's visiting order (by layer number, then name).
    counters: HashMap<String, usize>,
}

/// The roles the rules tell apart (llama.cpp's `tensor_category`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Output,
    TokenEmbd,
    AttnV,
    AttnK,
    AttnOutput,
    FfnDown,
    Other,
}

/// The role of tensor `name` (llama.cpp's `tensor_get_category`, first match wins; `attn_q`,
/// `ffn_up` and `ffn_gate` have no rules for the mixes graft writes and are `Other`).
fn role(name: &str) -> Role {
    if name == "output.weight" {
        Role::Output
    } else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
        Role::TokenEmbd
    } else if name.contains("attn_qkv.weight")
        || name.contains("attn_kv_b.weight")
        || name.contains("attn_v.weight")
    {
        Role::AttnV
    } else if name.contains("attn_k.weight") {
        Role::AttnK
    } else if name.contains("attn_q.weight") {
        Role::Other
    } else if name.contains("attn_output.weight") {
        Role::AttnOutput
    } else if name.contains("ffn_up") || name.contains("ffn_gate") {
        Role::Other
    } else if name.contains("ffn_down") {
        Role::FfnDown
    } else {
        Role::Other
    }
}

/// Name fragments of 2-D `…weight` tensors llama.cpp never quantizes (its
/// `tensor_allows_quantization`, without the GLM-5 specific ones).
const NEVER_QUANTIZED: [&str; 34] = [
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
];

/// Whether llama-quantize converts tensor `name` of ggml `shape` at all: two or more
/// dimensions (not counting trailing dimensions of size 1, as `ggml_n_dims`), a name ending in
/// `weight`, and none of llama.cpp's exemptions (norms, MoE
/// routers, positional and token-type embeddings, small conv/RWKV/vision/audio tensors).
pub fn is_quantizable(name: &str, shape: &[u64]) -> bool {
    // ggml_n_dims: trailing dimensions of size 1 do not count ([576, 1] is 1-D).
    let n_dims = shape.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1);
    n_dims >= 2
        && name.ends_with("weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
        && !name.contains("mm.a.code_embd")
        && !NEVER_QUANTIZED.iter().any(|frag| name.contains(frag))
}

/// The layer number llama.cpp reads from a tensor name (`sscanf(name, "blk.%d.")`), or -1.
fn llama_layer(name: &str) -> i64 {
    let Some(rest) = name.strip_prefix("blk.") else {
        return -1;
    };
    let rest = rest.trim_start();
    let (sign, digits) = match rest.as_bytes().first() {
        Some(b'-') => (-1, &rest[1..]),
        Some(b'+') => (1, &rest[1..]),
        _ => (1, rest),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().map_or(-1, |v| sign * v)
}

/// The layer number `N` of a tensor named `blk.N.…`.
fn layer_of(name: &str) -> Option<usize> {
    usize::try_from(llama_layer(name)).ok()
}

impl ModelLayout {
    /// The layout of a model with these tensors (name and ggml shape, any order), with
    /// `n_layer` counted from the `blk.N.` names and no GQA, MoE or Falcon information (set
    /// those fields, or use [`ModelLayout::of`] for a GGUF file).
    pub fn from_tensors<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [u64])>) -> Self {
        let mut tensors: Vec<(&str, &[u64])> = tensors.into_iter().collect();
        // llama.cpp visits tensors by layer number (non-layer tensors first), then by name.
        tensors.sort_by(|a, b| (llama_layer(a.0), a.0).cmp(&(llama_layer(b.0), b.0)));
        let mut layout = ModelLayout {
            has_output: tensors.iter().any(|t| t.0 == "output.weight"),
            n_layer: tensors
                .iter()
                .filter_map(|t| layer_of(t.0))
                .max()
                .map_or(0, |n| n + 1),
            ..ModelLayout::default()
        };
        let (mut i_attn_v, mut i_ffn_down) = (0, 0);
        for (name, shape) in tensors {
            let role = role(name);
            if role == Role::AttnV {
                layout.n_attn_v += 1;
            }
            if !is_quantizable(name, shape) {
                continue;
            }
            let counter = match role {
                Role::AttnV => &mut i_attn_v,
                Role::FfnDown => &mut i_ffn_down,
                _ => continue,
            };
            layout.counters.insert(name.to_string(), *counter);
            *counter += 1;
        }
        layout
    }

    /// The layout of a GGUF model: its tensor names, `{arch}.block_count`, the head counts of
    /// layer 0, `{arch}.expert_count` and whether it is Falcon.
    pub fn of(file: &GgufFile) -> ModelLayout {
        let mut layout = Self::from_tensors(
            file.tensor_infos()
                .iter()
                .map(|t| (t.name.as_str(), t.shape.as_slice())),
        );
        let md = file.metadata();
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        // A number, or the first element of a per-layer array.
        let first = |key: &str| -> Option<u64> {
            let v = md.get(&format!("{arch}.{key}"))?;
            v.as_u64().or_else(|| {
                v.as_array()?
                    .to_i64s()?
                    .first()
                    .and_then(|&x| u64::try_from(x).ok())
            })
        };
        if let Some(n) = first("block_count").and_then(|n| usize::try_from(n).ok()) {
            layout.n_layer = n;
        }
        let n_head = first("attention.head_count").unwrap_or(0);
        let n_head_kv = first("attention.head_count_kv").unwrap_or(n_head);
        layout.n_gqa = n_head
            .checked_div(n_head_kv)
            .and_then(|g| u32::try_from(g).ok())
            .unwrap_or(0);
        layout.n_expert = first("expert_count")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        layout.falcon = arch == "falcon";
        layout
    }

    /// The position of `name` among the tensors of its kind in llama.cpp's order; for names the
    /// layout does not know, their layer number.
    fn counter(&self, name: &str) -> usize {
        self.counters
            .get(name)
            .copied()
            .or_else(|| layer_of(name))
            .unwrap_or(0)
    }
}

/// The type tensor `name` (ggml `shape`, currently of type `current`) is written as when the
/// model (`model`) is converted to file type `want`, following llama.cpp's
/// `llama_tensor_get_type` (see the module docs for the rules).
pub fn tensor_type(
    name: &str,
    shape: &[u64],
    current: QuantType,
    want: FileType,
    model: &ModelLayout,
) -> QuantType {
    tensor_type_with_imatrix(name, shape, current, want, model, false)
}

/// [`tensor_type`] when the model is quantized with an importance matrix (`has_imatrix`):
/// llama.cpp then changes one rule for the file types graft writes — with a `q4_0` or `q5_0`
/// target, the `ffn_down` tensors of the first eighth of the layers go to Q4_1 / Q5_1
/// ("guard against craziness in the first few ffn_down layers"). With `has_imatrix = false`
/// this is [`tensor_type`].
pub fn tensor_type_with_imatrix(
    name: &str,
    shape: &[u64],
    current: QuantType,
    want: FileType,
    model: &ModelLayout,
    has_imatrix: bool,
) -> QuantType {
    if !is_quantizable(name, shape) {
        return current;
    }
    let base = want.base_type();
    if !base.is_quantized() {
        return base;
    }
    let chosen = mix_type(name, shape[0], want, model, has_imatrix);
    fallback(chosen, shape[0])
}

/// [`tensor_type`] for a target given as a single type (`graft merge --type`): the
/// [`FileType::plain`] file type of `want` (Q4_K means Q4_K_S), or `want` itself for every
/// weight matrix when graft has no file type for it.
pub fn tensor_target(
    name: &str,
    shape: &[u64],
    current: QuantType,
    want: QuantType,
    model: &ModelLayout,
) -> QuantType {
    match FileType::plain(want) {
        Some(ft) => tensor_type(name, shape, current, ft, model),
        None if is_quantizable(name, shape) => want,
        None => current,
    }
}

/// Step 2 and 3 of the rules: the output head and the mix bumps, before the row fallback.
fn mix_type(
    name: &str,
    row: u64,
    want: FileType,
    model: &ModelLayout,
    has_imatrix: bool,
) -> QuantType {
    use FileType as F;
    use QuantType as Q;
    let base = want.base_type();
    let role = role(name);
    let moe8 = model.n_expert == 8;
    let falcon = model.falcon;
    if role == Role::Output || (role == Role::TokenEmbd && !model.has_output) {
        return if falcon || !row.is_multiple_of(base.block_size() as u64) {
            Q::Q8_0
        } else if base != Q::Q8_0 {
            Q::Q6_K
        } else {
            base
        };
    }
    match role {
        Role::AttnV => {
            let (i, n) = (model.counter(name), model.n_attn_v);
            if moe8 {
                return Q::Q8_0;
            }
            match want {
                F::Q2_K if model.n_gqa >= 4 => Q::Q4_K,
                F::Q2_K => Q::Q3_K,
                F::Q3_K_M if i < 2 => Q::Q5_K,
                F::Q3_K_M => Q::Q4_K,
                F::Q3_K_L => Q::Q5_K,
                F::Q4_K_M | F::Q5_K_M if use_more_bits(i, n) => Q::Q6_K,
                F::Q4_K_S if i < 4 => Q::Q5_K,
                _ => base,
            }
        }
        Role::AttnK if moe8 => Q::Q8_0,
        Role::FfnDown => {
            let i = if model.n_expert > 1 {
                layer_of(name).unwrap_or(0)
            } else {
                model.counter(name)
            };
            let n = model.n_layer;
            let more = use_more_bits(i, n);
            match want {
                F::Q2_K => Q::Q3_K,
                F::Q3_K_M if i < n / 16 => Q::Q5_K,
                F::Q3_K_M if !falcon || more => Q::Q4_K,
                F::Q3_K_M => Q::Q3_K,
                F::Q3_K_L if falcon => Q::Q4_K,
                F::Q3_K_L => Q::Q5_K,
                F::Q4_K_M if falcon && i < n / 16 => Q::Q6_K,
                F::Q4_K_M if falcon && more => Q::Q5_K,
                F::Q4_K_M if !falcon && more => Q::Q6_K,
                F::Q5_K_M if more => Q::Q6_K,
                F::Q4_K_S if !falcon && i < n / 8 => Q::Q5_K,
                F::Q4_0 if has_imatrix && i < n / 8 => Q::Q4_1,
                F::Q5_0 if has_imatrix && i < n / 8 => Q::Q5_1,
                _ => base,
            }
        }
        Role::AttnOutput if falcon => match want {
            F::Q3_K_L => Q::Q4_K,
            _ => base,
        },
        Role::AttnOutput if moe8 => match want {
            F::Q2_K | F::Q3_K_S | F::Q3_K_M | F::Q4_K_S | F::Q4_K_M => Q::Q5_K,
            _ => base,
        },
        Role::AttnOutput => match want {
            F::Q2_K => Q::Q3_K,
            F::Q3_K_M => Q::Q4_K,
            F::Q3_K_L => Q::Q5_K,
            _ => base,
        },
        _ => base,
    }
}

/// Step 4: llama.cpp's `tensor_type_fallback` for rows of `row` values.
fn fallback(chosen: QuantType, row: u64) -> QuantType {
    if row.is_multiple_of(chosen.block_size() as u64) {
        return chosen;
    }
    let narrower = match chosen {
        QuantType::Q2_K | QuantType::Q3_K | QuantType::NF4 => QuantType::Q4_0,
        QuantType::Q4_K => QuantType::Q5_0,
        QuantType::Q5_K => QuantType::Q5_1,
        QuantType::Q6_K => QuantType::Q8_0,
        other => other,
    };
    if row.is_multiple_of(narrower.block_size() as u64) {
        narrower
    } else {
        QuantType::F16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use QuantType as Q;

    fn layout(has_output: bool, n_layer: usize) -> ModelLayout {
        ModelLayout {
            has_output,
            n_layer,
            n_attn_v: n_layer,
            ..ModelLayout::default()
        }
    }

    #[test]
    fn rules_follow_llama_quantize() {
        let untied = layout(true, 30);
        let tied = layout(false, 30);
        let q = Q::Q4_K;
        let t = |name, shape: &[u64], model| tensor_target(name, shape, Q::F32, q, model);
        assert_eq!(t("a.weight", &[256, 4], &untied), q);
        assert_eq!(t("a.weight", &[576, 4], &untied), Q::Q5_0);
        assert_eq!(t("a.weight", &[48, 4], &untied), Q::F16);
        assert_eq!(t("norm.weight", &[576], &untied), Q::F32);
        assert_eq!(t("a.bias", &[576, 4], &untied), Q::F32);
        assert_eq!(t("blk.0.attn_norm.weight", &[576, 4], &untied), Q::F32);
        let tied_q4_0 = tensor_target("token_embd.weight", &[576, 4], Q::F32, Q::Q4_0, &tied);
        assert_eq!(tied_q4_0, Q::Q8_0);
        assert_eq!(t("output.weight", &[512, 4], &untied), Q::Q6_K);
        // Q4_K_S bumps: first four attn_v, ffn_down below n_layer / 8 (30 / 8 = 3).
        let t = |name| tensor_target(name, &[1536, 4], Q::F32, q, &untied);
        assert_eq!(t("blk.3.attn_v.weight"), Q::Q5_K);
        assert_eq!(t("blk.4.attn_v.weight"), q);
        assert_eq!(t("blk.2.ffn_down.weight"), Q::Q5_K);
        assert_eq!(t("blk.3.ffn_down.weight"), q);
        assert!(parse_model_target("q4_1").is_ok());
        assert!(parse_model_target("q2_k").is_err());
    }

    #[test]
    fn names_and_ids() {
        for ft in FileType::ALL {
            assert_eq!(FileType::from_name(ft.name()), Some(ft));
            assert_eq!(parse_file_type(&ft.to_string()), Ok(ft));
        }
        assert_eq!(FileType::from_name("q4_k"), Some(FileType::Q4_K_S));
        assert_eq!(FileType::from_name("Q5_K"), Some(FileType::Q5_K_S));
        assert!(parse_file_type("iq2_xs").is_err());
        assert!(parse_file_type("q3_k").is_err());
        assert_eq!(FileType::Q4_K_M.file_type_id(), 15);
        assert_eq!(FileType::Q3_K_L.file_type_id(), 13);
        assert_eq!(FileType::Q5_K_M.base_type(), Q::Q5_K);
        let ids: std::collections::HashSet<u32> =
            FileType::ALL.iter().map(|f| f.file_type_id()).collect();
        assert_eq!(ids.len(), FileType::ALL.len());
    }

    #[test]
    fn use_more_bits_matches_llama() {
        // n = 30: first 3 (i < 3), last 4 (i >= 26), and i = 5, 8, ..., 23 in between.
        let more: Vec<usize> = (0..30).filter(|&i| use_more_bits(i, 30)).collect();
        assert_eq!(more, [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]);
    }

    /// A synthetic dense model: `n` layers with rows of 256 (so no fallback hides the rules).
    fn synthetic(n: usize) -> (Vec<(String, Vec<u64>)>, ModelLayout) {
        let mut names = vec![
            ("token_embd.weight".to_string(), vec![256, 1000]),
            ("output.weight".to_string(), vec![256, 1000]),
            ("output_norm.weight".to_string(), vec![256]),
        ];
        for i in 0..n {
            for part in [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
            ] {
                names.push((format!("blk.{i}.{part}.weight"), vec![256, 512]));
            }
            names.push((format!("blk.{i}.attn_norm.weight"), vec![256]));
        }
        let layout = ModelLayout::from_tensors(names.iter().map(|(n, s)| (n.as_str(), &s[..])));
        (names, layout)
    }

    /// The types of layer `i`'s attn_v, ffn_down and attn_output, and of attn_q, under `ft`.
    fn layer_types(ft: FileType, layout: &ModelLayout, i: usize) -> [QuantType; 4] {
        let t = |part: &str| {
            tensor_type(
                &format!("blk.{i}.{part}.weight"),
                &[256, 512],
                Q::F32,
                ft,
                layout,
            )
        };
        [t("attn_v"), t("ffn_down"), t("attn_output"), t("attn_q")]
    }

    #[test]
    fn mixes_on_a_synthetic_model() {
        let (_, mut m) = synthetic(16);
        assert_eq!((m.n_layer, m.n_attn_v, m.has_output), (16, 16, true));
        // use_more_bits(i, 16): 0, 1, 4, 7, 10, 13, 14, 15.
        let cases: [(FileType, usize, [QuantType; 4]); 16] = [
            (FileType::Q2_K, 0, [Q::Q3_K, Q::Q3_K, Q::Q3_K, Q::Q2_K]),
            (FileType::Q3_K_S, 0, [Q::Q3_K; 4]),
            (FileType::Q3_K_M, 0, [Q::Q5_K, Q::Q5_K, Q::Q4_K, Q::Q3_K]),
            (FileType::Q3_K_M, 1, [Q::Q5_K, Q::Q4_K, Q::Q4_K, Q::Q3_K]),
            (FileType::Q3_K_M, 2, [Q::Q4_K, Q::Q4_K, Q::Q4_K, Q::Q3_K]),
            (FileType::Q3_K_L, 5, [Q::Q5_K, Q::Q5_K, Q::Q5_K, Q::Q3_K]),
            (FileType::Q4_K_S, 1, [Q::Q5_K, Q::Q5_K, Q::Q4_K, Q::Q4_K]),
            (FileType::Q4_K_S, 3, [Q::Q5_K, Q::Q4_K, Q::Q4_K, Q::Q4_K]),
            (FileType::Q4_K_S, 4, [Q::Q4_K; 4]),
            (FileType::Q4_K_M, 4, [Q::Q6_K, Q::Q6_K, Q::Q4_K, Q::Q4_K]),
            (FileType::Q4_K_M, 5, [Q::Q4_K; 4]),
            (FileType::Q4_K_M, 15, [Q::Q6_K, Q::Q6_K, Q::Q4_K, Q::Q4_K]),
            (FileType::Q5_K_S, 0, [Q::Q5_K; 4]),
            (FileType::Q5_K_M, 7, [Q::Q6_K, Q::Q6_K, Q::Q5_K, Q::Q5_K]),
            (FileType::Q5_K_M, 8, [Q::Q5_K; 4]),
            (FileType::Q6_K, 0, [Q::Q6_K; 4]),
        ];
        for (ft, i, want) in cases {
            assert_eq!(layer_types(ft, &m, i), want, "{ft} layer {i}");
        }
        // Q3_K_M: ffn_down below n/16 = 1 gets Q5_K.
        let mut n32 = synthetic(32).1;
        assert_eq!(layer_types(FileType::Q3_K_M, &n32, 1)[1], Q::Q5_K);
        assert_eq!(layer_types(FileType::Q3_K_M, &n32, 2)[1], Q::Q4_K);
        // Q2_K: attn_v gets Q4_K with GQA >= 4.
        m.n_gqa = 4;
        assert_eq!(layer_types(FileType::Q2_K, &m, 9)[0], Q::Q4_K);
        // 8-expert MoE: attn_v and attn_k Q8_0, attn_output Q5_K.
        n32.n_expert = 8;
        let k = tensor_type(
            "blk.3.attn_k.weight",
            &[256, 4],
            Q::F32,
            FileType::Q4_K_M,
            &n32,
        );
        assert_eq!(k, Q::Q8_0);
        assert_eq!(
            layer_types(FileType::Q4_K_M, &n32, 5)[..3],
            [Q::Q8_0, Q::Q4_K, Q::Q5_K]
        );
        // Output head, untied token embedding, norms.
        for ft in [
            FileType::Q2_K,
            FileType::Q4_K_M,
            FileType::Q4_0,
            FileType::NF4,
        ] {
            let out = tensor_type("output.weight", &[256, 1000], Q::F32, ft, &m);
            assert_eq!(out, Q::Q6_K, "{ft}");
            let emb = tensor_type("token_embd.weight", &[256, 1000], Q::F32, ft, &m);
            assert_eq!(emb, ft.base_type(), "{ft}");
            let norm = tensor_type("blk.0.attn_norm.weight", &[256], Q::F32, ft, &m);
            assert_eq!(norm, Q::F32);
        }
        let q8 = tensor_type("output.weight", &[256, 1000], Q::F32, FileType::Q8_0, &m);
        assert_eq!(q8, Q::Q8_0);
        let f16 = tensor_type("output.weight", &[256, 1000], Q::Q8_0, FileType::F16, &m);
        assert_eq!(f16, Q::F16);
    }

    #[test]
    fn fallbacks_for_narrow_rows() {
        let (_, m) = synthetic(8);
        let t = |name: &str, row: u64, ft| tensor_type(name, &[row, 8], Q::F32, ft, &m);
        // SmolLM2-like rows of 576: every k-quant choice falls back to a 32-wide type.
        assert_eq!(t("blk.5.attn_q.weight", 576, FileType::Q2_K), Q::Q4_0);
        assert_eq!(t("blk.5.attn_q.weight", 576, FileType::Q3_K_S), Q::Q4_0);
        assert_eq!(t("blk.5.attn_q.weight", 576, FileType::Q4_K_M), Q::Q5_0);
        assert_eq!(t("blk.5.attn_q.weight", 576, FileType::Q5_K_M), Q::Q5_1);
        assert_eq!(t("blk.0.attn_v.weight", 576, FileType::Q4_K_M), Q::Q8_0);
        assert_eq!(t("blk.5.attn_q.weight", 576, FileType::Q6_K), Q::Q8_0);
        // NF4 blocks are 64 wide: rows of 576 fit, rows of 32 fall back to Q4_0.
        assert_eq!(t("blk.5.attn_q.weight", 576, FileType::NF4), Q::NF4);
        assert_eq!(t("blk.5.attn_q.weight", 96, FileType::NF4), Q::Q4_0);
        // Rows no 32-wide type divides: F16.
        assert_eq!(t("blk.5.attn_q.weight", 48, FileType::Q4_K_M), Q::F16);
        assert_eq!(t("blk.5.attn_q.weight", 48, FileType::Q4_0), Q::F16);
        // The output head with rows of 576 is Q8_0 for k-quant targets (576 % 256 != 0).
        assert_eq!(t("output.weight", 576, FileType::Q4_K_M), Q::Q8_0);
        assert_eq!(t("output.weight", 576, FileType::Q4_0), Q::Q8_0);
    }

    #[test]
    fn counters_follow_llama_order() {
        // Layer 1 has no attention: the second attn_v tensor (layer 2) is attn_v number 1.
        let shape: &[u64] = &[256, 4];
        let names = [
            "blk.0.attn_v.weight",
            "blk.2.attn_v.weight",
            "blk.10.attn_v.weight",
            "blk.3.attn_v.weight",
            "blk.4.attn_v.weight",
            "blk.0.ffn_down.weight",
        ];
        let m = ModelLayout::from_tensors(names.iter().map(|&n| (n, shape)));
        assert_eq!(m.n_attn_v, 5);
        assert_eq!(m.counter("blk.2.attn_v.weight"), 1);
        assert_eq!(m.counter("blk.10.attn_v.weight"), 4);
        let t = |n| tensor_type(n, shape, Q::F32, FileType::Q3_K_M, &m);
        assert_eq!(t("blk.2.attn_v.weight"), Q::Q5_K);
        assert_eq!(t("blk.3.attn_v.weight"), Q::Q4_K);
        assert_eq!(llama_layer("blk.12.ffn_down.weight"), 12);
        assert_eq!(llama_layer("output.weight"), -1);
        assert!(!is_quantizable("blk.0.ffn_gate_inp.weight", shape));
        assert!(!is_quantizable("position_embd.weight", shape));
        assert!(!is_quantizable("blk.0.attn_v.weight", &[256, 1, 1]));
        assert!(is_quantizable("blk.0.attn_v.weight", &[256, 1, 4]));
        // With an importance matrix, q4_0/q5_0 give the first n/8 ffn_down Q4_1/Q5_1.
        let (_, m16) = synthetic(16);
        let ti = |n: &str, ft, imat| tensor_type_with_imatrix(n, &[256, 4], Q::F32, ft, &m16, imat);
        assert_eq!(ti("blk.1.ffn_down.weight", FileType::Q4_0, true), Q::Q4_1);
        assert_eq!(ti("blk.2.ffn_down.weight", FileType::Q4_0, true), Q::Q4_0);
        assert_eq!(ti("blk.1.ffn_down.weight", FileType::Q5_0, true), Q::Q5_1);
        assert_eq!(ti("blk.1.ffn_down.weight", FileType::Q4_0, false), Q::Q4_0);
        assert_eq!(ti("blk.1.attn_q.weight", FileType::Q4_0, true), Q::Q4_0);
    }
}
