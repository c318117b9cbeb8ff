//! Q8_K for a group of four token rows: the activation side of graft's grouped Q4_K product
//! (llama.cpp's `ggml_quantize_mat_q8_K_4x8` on x86, in a layout of graft's own).
//!
//! Each row's codes and scale are Q8_K's ([`super::act_quant::quantize_row_q8_k`]) except for
//! one rule, llama.cpp's AVX2 one: when both `+amax` and `-amax` occur in a block, the scale's
//! sign is taken from `+amax` (which maps to -127); the per-row quantizer takes the first one.
//!
//! A group block covers 256 elements of each of the four rows in [`GROUP_BLOCK_BYTES`] (= four
//! Q8_K blocks, so a group of four rows takes exactly four rows' bytes):
//!
//! | bytes        | content                                                                 |
//! |--------------|-------------------------------------------------------------------------|
//! | 0..16        | `d[t]`, f32, for rows t = 0..4                                          |
//! | 16..1040     | codes, dword-interleaved: byte `16 + 16p + 4t + k` is row t's element `4p + k` |
//! | 1040..1104   | for each 64-element part j (0..4) and row t: i16 sums of the row's codes in sub-blocks `2j` and `2j + 1` (32 each), at `1040 + 16j + 4t` and `+ 2` |
//! | 1104..1168   | zero                                                                    |

/// Bytes of one group block (256 elements of four rows).
pub const GROUP_BLOCK_BYTES: usize = 4 * 292;
/// Offset of the interleaved codes in a group block.
pub const GROUP_QS: usize = 16;
/// Offset of the sub-block sums in a group block.
pub const GROUP_SUMS: usize = 1040;

/// Quantizes four rows of `cols` elements (`x.len() = 4 * cols`, `cols` a multiple of 256) into
/// `cols / 256` group blocks (`out.len() = cols / 256 * GROUP_BLOCK_BYTES`).
pub fn quantize_q8_k_x4(x: &[f32], cols: usize, out: &mut [u8]) {
    assert!(
        cols.is_multiple_of(256) && x.len() == 4 * cols,
        "quantize_q8_k_x4: shape"
    );
    assert_eq!(
        out.len(),
        cols / 256 * GROUP_BLOCK_BYTES,
        "quantize_q8_k_x4: output length"
    );
    for (b, ob) in out.chunks_exact_mut(GROUP_BLOCK_BYTES).enumerate() {
        ob.fill(0);
        for t in 0..4 {
            let xb = &x[t * cols + 256 * b..t * cols + 256 * b + 256];
            let mut codes = [0i8; 256];
            let d = quantize_block(xb, &mut codes);
            ob[4 * t..4 * t + 4].copy_from_slice(&d.to_le_bytes());
            for (e, &q) in codes.iter().enumerate() {
                ob[GROUP_QS + 16 * (e / 4) + 4 * t + e % 4] = q as u8;
            }
            for j in 0..4 {
                for h in 0..2 {
                    let s: i32 = codes[64 * j + 32 * h..64 * j + 32 * h + 32]
                        .iter()
                        .map(|&q| q as i32)
                        .sum();
                    let o = GROUP_SUMS + 16 * j + 4 * t + 2 * h;
                    ob[o..o + 2].copy_from_slice(&(s as i16).to_le_bytes());
                }
            }
        }
    }
}

/// One block of 256 → codes; returns `d`. All zero (d = 0) when the block is all zero.
fn quantize_block(xb: &[f32], codes: &mut [i8; 256]) -> f32 {
    let amax = xb
        .iter()
        .fold(0.0f32, |m, v| if v.abs() > m { v.abs() } else { m });
    if amax == 0.0 {
        codes.fill(0);
        return 0.0;
    }
    let max = if xb.contains(&amax) { amax } else { -amax };
    let iscale = -127.0 / max;
    for (q, v) in codes.iter_mut().zip(xb) {
        *q = ((iscale * v).round_ties_even() as i32).min(127) as i8;
    }
    1.0 / iscale
}
