//! Applying LoRA adapters at run time.
//!
//! Every adapted linear layer computes `W x + Σ_i s_i · B_i (A_i x)` with `W` untouched in its
//! block format (llama.cpp's `build_lora_mm`), `s_i = user_scale_i × alpha_i / r_i`. Several
//! adapters can be active at once, each with its own scale.
//!
//! - [`LoadedAdapter`]: an adapter checked against a model and laid out per layer (A/B in f32).
//! - [`AdapterSet`]: the registry of loaded adapters kept alongside a [`crate::Model`]
//!   (`Model::adapters()`); adapters are `Arc`-shared and can be added and dropped while the
//!   base stays mapped.
//! - [`ActiveAdapters`]: what a [`crate::Session`] applies; set it with
//!   `Session::set_adapters`. Changing the set or any scale empties the session's KV cache, so
//!   a session never mixes cache entries computed under different adapters.
//!
//! Targets: the seven projections of every block (`attn_q/k/v/output`, `ffn_gate/up/down`),
//! `output.weight` (untied models), and `token_embd.weight`, which is applied to the embedding
//! lookup exactly as llama.cpp's `llm_build_inp_embd` does: `x[t] += s · B · A[:, id_t]`. On a
//! model with a tied output head a `token_embd` adapter changes the lookup only, not the head.

mod active;
mod loaded;
mod registry;

pub use active::{ActiveAdapters, Proj, Target};
pub use loaded::LoadedAdapter;
pub use registry::{AdapterId, AdapterSet};
