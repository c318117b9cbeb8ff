//! Quantized block formats, laid out exactly as ggml's `ggml-common.h`.
//!
//! Each format is one `#[repr(C)]` [`bytemuck::Pod`] struct with a compile-time size assert, so a
//! tensor's bytes in the mmap can be viewed as `&[Block]` without copying.

pub mod kquants;
pub mod legacy;
pub mod nf4;

pub use kquants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, QK_K};
pub use legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1, QK4_0, QK8_0};
