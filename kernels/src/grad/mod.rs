//! Backward primitives for LoRA training on a frozen quantized base (all f32, row-major
//! `[T, dim]` activations for a batch of `T` tokens).
//!
//! Convention: every function that produces the gradient of an *input* **accumulates** into
//! the caller's buffer (`dx += ...`), so contributions from several consumers sum without
//! temporaries; callers zero the buffer first when they want a plain result. The exceptions
//! are [`rope::rope_backward`] (in place on the gradient) and
//! [`cross_entropy::cross_entropy`] (writes `dlogits` over the logits).
//!
//! Kernels trust their callers for shapes except where a value comes from data (targets,
//! quantized byte lengths), which return [`GradError`].

mod base_span;
pub mod bf16;
pub mod cross_entropy;
mod error;
pub mod isa;
pub mod lora;
pub mod lora_bf16;
pub mod matmul_bf16;
pub mod matmul_fwd;
pub mod matmul_t;
mod matmul_t_simd;
mod neon;
pub mod parallel;
pub mod residual;
pub mod rmsnorm;
pub mod rope;
pub(crate) mod small_gemm;
pub mod swiglu;
pub(crate) mod vec;

pub use crate::attention::train::{
    attention_backward, attention_backward_bf16, attention_forward, attention_forward_bf16,
    AttnShape,
};
pub use bf16::{Bf16Path, Precision};
pub use cross_entropy::cross_entropy;
pub use error::GradError;
pub use isa::{available as available_isas, Isa};
pub use lora::{
    lora_backward, lora_backward_g, lora_backward_with, lora_forward, lora_forward_with,
    lora_project, LoraShape,
};
pub use lora_bf16::{
    lora_backward_bf16, lora_backward_g_bf16, lora_project_bf16, lora_weight_grads_bf16,
};
pub use matmul_bf16::{
    matmul_fwd_bf16, matmul_fwd_bf16_lora, matmul_fwd_bf16_lora_project, matmul_fwd_bf16_with,
    matmul_t_bf16, matmul_t_bf16_lora, matmul_t_bf16_lora_project, matmul_t_bf16_set,
    matmul_t_bf16_with, LoraTail, PackedBf16, PackedFor, LORA_TAIL_MAX_RANK,
};
pub use matmul_fwd::{matmul_fwd, matmul_fwd_with};
pub use matmul_t::{matmul_t, matmul_t_with};
pub use residual::residual_backward;
pub use rmsnorm::rmsnorm_backward;
pub use rope::rope_backward;
pub use swiglu::{geglu_backward, swiglu_backward};
