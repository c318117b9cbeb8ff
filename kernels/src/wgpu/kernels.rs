//! The WGSL kernels, assembled once per process: `header.wgsl` + (for the weight kernels)
//! `weights.wgsl` and the format's `deq32` + the kernel body.

use super::pipelines::Kernel;
use graft_quant::QuantType;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

const HEADER: &str = include_str!("shaders/header.wgsl");
const WEIGHTS: &str = include_str!("shaders/weights.wgsl");
const K_SCALE: &str = include_str!("shaders/formats/k_scale.wgsl");

/// The `deq32` source of each weight format the GPU reads.
fn format_source(ty: QuantType) -> Option<&'static str> {
    Some(match ty {
        QuantType::F32 => include_str!("shaders/formats/f32.wgsl"),
        QuantType::F16 => include_str!("shaders/formats/f16.wgsl"),
        QuantType::BF16 => include_str!("shaders/formats/bf16.wgsl"),
        QuantType::Q4_0 => include_str!("shaders/formats/q4_0.wgsl"),
        QuantType::Q4_1 => include_str!("shaders/formats/q4_1.wgsl"),
        QuantType::Q5_0 => include_str!("shaders/formats/q5_0.wgsl"),
        QuantType::Q5_1 => include_str!("shaders/formats/q5_1.wgsl"),
        QuantType::Q8_0 => include_str!("shaders/formats/q8_0.wgsl"),
        QuantType::Q2_K => include_str!("shaders/formats/q2_k.wgsl"),
        QuantType::Q3_K => include_str!("shaders/formats/q3_k.wgsl"),
        QuantType::Q4_K => include_str!("shaders/formats/q4_k.wgsl"),
        QuantType::Q5_K => include_str!("shaders/formats/q5_k.wgsl"),
        QuantType::Q6_K => include_str!("shaders/formats/q6_k.wgsl"),
        _ => return None,
    })
}

/// Every weight format the GPU kernels read.
pub const FORMATS: [QuantType; 13] = [
    QuantType::F32,
    QuantType::F16,
    QuantType::BF16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q8_0,
    QuantType::Q2_K,
    QuantType::Q3_K,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
];

/// How activations are rounded before a matmul with weights of `ty`, as the CPU backend
/// quantizes them: `None` (f32), `Some(0)` (32-blocks, Q8_0), `Some(2)` (32-blocks with the
/// Q8_1 sum corrections), `Some(1)` (256-blocks, Q8_K).
pub(crate) fn act_rounding(ty: QuantType) -> Option<u32> {
    match ty {
        QuantType::Q4_0 | QuantType::Q5_0 | QuantType::Q8_0 => Some(0),
        QuantType::Q4_1 | QuantType::Q5_1 => Some(2),
        QuantType::Q2_K | QuantType::Q3_K | QuantType::Q4_K | QuantType::Q5_K | QuantType::Q6_K => {
            Some(1)
        }
        _ => None,
    }
}

/// Whether the GPU kernels read weights of type `ty`.
pub fn supports(ty: QuantType) -> bool {
    format_source(ty).is_some()
}

/// The kernels without a weight format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Plain {
    RmsNorm,
    Rope,
    StoreKv,
    Attention,
    Unary,
    Add,
    Glu,
    LoraA,
    LoraB,
    ActRound,
}

impl Plain {
    fn parts(self) -> (&'static str, &'static str, &'static [bool]) {
        match self {
            Plain::RmsNorm => (
                "rmsnorm",
                include_str!("shaders/rmsnorm.wgsl"),
                &[false, false, true],
            ),
            Plain::Rope => ("rope", include_str!("shaders/rope.wgsl"), &[true]),
            Plain::StoreKv => (
                "store_kv",
                include_str!("shaders/store_kv.wgsl"),
                &[false, true],
            ),
            Plain::Attention => (
                "attention",
                include_str!("shaders/attention.wgsl"),
                &[false, false, false, true],
            ),
            Plain::Unary => ("unary", include_str!("shaders/unary.wgsl"), &[true]),
            Plain::Add => ("add", include_str!("shaders/add.wgsl"), &[true, false]),
            Plain::Glu => (
                "glu",
                include_str!("shaders/glu.wgsl"),
                &[false, false, false, true],
            ),
            Plain::LoraA => (
                "lora_a",
                include_str!("shaders/lora_a.wgsl"),
                &[false, false, true],
            ),
            Plain::ActRound => (
                "act_round",
                include_str!("shaders/act_round.wgsl"),
                &[false, true],
            ),
            Plain::LoraB => (
                "lora_b",
                include_str!("shaders/lora_b.wgsl"),
                &[false, false, true],
            ),
        }
    }
}

/// A kernel reading weights of one format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Weighted {
    MatMul,
    /// `matmul_wide.wgsl`: the same sums as `MatMul`, in the software adapters' layout.
    MatMulWide,
    GetRows,
}

/// What names a kernel in the table: looked up on every dispatch, so a plain `Copy` value.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Plain(Plain),
    Weighted(Weighted, QuantType),
}

type Table = Mutex<HashMap<Key, &'static Kernel>>;

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| Mutex::new(HashMap::new()))
}

fn cached(key: Key, make: impl FnOnce() -> Kernel) -> &'static Kernel {
    let mut t = super::context::lock(table());
    if let Some(k) = t.get(&key) {
        return k;
    }
    // A bounded set (one per kernel and format), kept for the life of the process.
    let k: &'static Kernel = Box::leak(Box::new(make()));
    t.insert(key, k);
    k
}

/// The kernel `k`.
pub(crate) fn plain(k: Plain) -> &'static Kernel {
    let (name, body, writes) = k.parts();
    cached(Key::Plain(k), || Kernel {
        name: name.to_string(),
        source: format!("{HEADER}\n{body}"),
        writes: writes.to_vec(),
    })
}

/// The kernel `k` for weights of type `ty` (`None`: a format the GPU does not read).
pub(crate) fn weighted(k: Weighted, ty: QuantType) -> Option<&'static Kernel> {
    let fmt = format_source(ty)?;
    let (stem, body, writes): (&str, &str, &[bool]) = match k {
        Weighted::MatMul => (
            "matmul",
            include_str!("shaders/matmul.wgsl"),
            &[false, false, true],
        ),
        Weighted::MatMulWide => (
            "matmul_wide",
            include_str!("shaders/matmul_wide.wgsl"),
            &[false, false, true],
        ),
        Weighted::GetRows => (
            "get_rows",
            include_str!("shaders/get_rows.wgsl"),
            &[false, true],
        ),
    };
    Some(cached(Key::Weighted(k, ty), || Kernel {
        name: format!("{stem}_{}", ty.name().to_ascii_lowercase()),
        // The format's functions read `W`, declared by the body: WGSL resolves module-scope
        // names in any order.
        source: format!("{HEADER}\n{body}\n{WEIGHTS}\n{K_SCALE}\n{fmt}"),
        writes: writes.to_vec(),
    }))
}
