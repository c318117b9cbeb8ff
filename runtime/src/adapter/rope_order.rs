//! The rotary row order of llama-family q/k projections: Hugging Face vs GGUF.
//!
//! Hugging Face llama checkpoints rotate pairs `(i, i + d/2)` of each head ("rotate half");
//! llama.cpp rotates adjacent pairs `(2i, 2i + 1)`. Its converter (`convert_hf_to_gguf.py`,
//! `LlamaModel.permute`) therefore reorders the output rows of `q_proj` (with `n_head` heads)
//! and `k_proj` (with `n_head_kv` heads): viewing the rows as `[heads, 2, d/2]`, it swaps the
//! last two axes. For a LoRA pair only B (whose rows are the output rows) is reordered; A is
//! unchanged. `convert_lora_to_gguf.py` does the same through its `LoraTorchTensor`.

use super::error::AdapterError;

/// Head counts of a base model, needed to reorder q/k rows between PEFT and GGUF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLayout {
    /// Query heads (`<arch>.attention.head_count`).
    pub n_head: usize,
    /// Key/value heads (`<arch>.attention.head_count_kv`).
    pub n_head_kv: usize,
}

/// Whether llama.cpp's converter permutes q/k rows for architecture `arch`.
pub fn arch_permutes_qk(arch: &str) -> bool {
    match crate::spec::Family::from_arch(arch) {
        Some(f) => f.permutes_qk(),
        None => matches!(arch, "granite" | "granitemoe" | "deci"),
    }
}

/// Checks that `n_rows` rows can be split into `heads` heads of even size.
fn head_dim(name: &str, n_rows: usize, heads: usize) -> Result<usize, AdapterError> {
    if heads == 0 || !n_rows.is_multiple_of(heads) || !(n_rows / heads).is_multiple_of(2) {
        return Err(AdapterError::BadShape {
            name: name.to_string(),
            shape: vec![n_rows as u64],
            message: format!(
                "{n_rows} output rows cannot be split into {heads} heads of even size"
            ),
        });
    }
    Ok(n_rows / heads)
}

/// Reorders the rows (each `row_len` long) of a row-major matrix from Hugging Face order to
/// GGUF order, as `LlamaModel.permute` does.
pub fn hf_to_gguf_rows(
    name: &str,
    data: &[f32],
    row_len: usize,
    heads: usize,
) -> Result<Vec<f32>, AdapterError> {
    permute_rows(name, data, row_len, heads, true)
}

/// The inverse of [`hf_to_gguf_rows`].
pub fn gguf_to_hf_rows(
    name: &str,
    data: &[f32],
    row_len: usize,
    heads: usize,
) -> Result<Vec<f32>, AdapterError> {
    permute_rows(name, data, row_len, heads, false)
}

fn permute_rows(
    name: &str,
    data: &[f32],
    row_len: usize,
    heads: usize,
    to_gguf: bool,
) -> Result<Vec<f32>, AdapterError> {
    let n_rows = data.len().checked_div(row_len).unwrap_or(0);
    let hd = head_dim(name, n_rows, heads)?;
    let half = hd / 2;
    let mut out = vec![0.0f32; data.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                // GGUF row (h, i, j) holds HF row (h, j, i).
                let gguf_row = h * hd + i * 2 + j;
                let hf_row = h * hd + j * half + i;
                let (dst, src) = if to_gguf {
                    (gguf_row, hf_row)
                } else {
                    (hf_row, gguf_row)
                };
                out[dst * row_len..(dst + 1) * row_len]
                    .copy_from_slice(&data[src * row_len..(src + 1) * row_len]);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn permutation_matches_reshape_swapaxes_and_inverts() {
        // 2 heads of dim 4, rows tagged by their HF index; row_len 1.
        let hf: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let g = hf_to_gguf_rows("t", &hf, 1, 2).unwrap();
        // reshape(2, 2, 2).swapaxes(1, 2): head 0 -> [0, 2, 1, 3], head 1 -> [4, 6, 5, 7].
        assert_eq!(g, vec![0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
        assert_eq!(gguf_to_hf_rows("t", &g, 1, 2).unwrap(), hf);
        assert!(hf_to_gguf_rows("t", &hf, 1, 3).is_err());
    }
}
