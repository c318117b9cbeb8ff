//! graft-native NF4 (QLoRA's 4-bit NormalFloat) with double-quantized block scales.
//!
//! Each block of [`NF4_BLOCK`] = 64 weights stores 4-bit indices into the 16 NormalFloat levels
//! of QLoRA ([`NF4_LEVELS`], the exact table of bitsandbytes, ascending in `[-1, 1]`) and one
//! block scale: `x = NF4_LEVELS[code] * scale`. The block scales are themselves quantized
//! ("double quantization") to 8 bits in groups of [`NF4_GROUP_BLOCKS`] = 256 blocks.
//!
//! Differences from bitsandbytes, both invisible to a reader of the format:
//! - Block scale: bitsandbytes uses the block's absmax. graft's quantizer starts from the absmax
//!   and keeps whichever of `absmax * {1.00, 0.99, ..., 0.60}` gives the least squared error,
//!   then refines it by alternating least-squares scale / nearest codes (a few % lower error on
//!   bell-shaped data; the largest weights may clip to ±scale).
//! - Double quantization uses a *linear* 8-bit code per group instead of bitsandbytes'
//!   mean-subtracted dynamic map: a group stores `offset = min(scales)` and
//!   `step = (max(scales) - min(scales)) / 255` as f32, and block `b` stores
//!   `c_b = round((scale_b - offset) / step)` (0 when `step == 0`), so the decoded scale is
//!   `offset + step * c_b`. The 4-bit codes are chosen against that *decoded* scale (the value
//!   the reader will use): each weight takes the nearest level.
//!
//! # Byte layout of an NF4 tensor of `n` elements (`n % 64 == 0`)
//!
//! With `B = n / 64` blocks and `G = ceil(B / 256)` groups, all little-endian, no padding, no
//! alignment requirement:
//!
//! | offset            | size      | contents                                                  |
//! |-------------------|-----------|-----------------------------------------------------------|
//! | `0`               | `n / 2`   | 4-bit codes: byte `i` holds element `2i` in its low nibble and element `2i + 1` in its high nibble |
//! | `n / 2`           | `B`       | one u8 scale code `c_b` per block, block order            |
//! | `n / 2 + B`       | `8 * G`   | per group, in group order: f32 `offset`, then f32 `step`  |
//!
//! Total: [`nf4_tensor_bytes`]`(n) = n/2 + B + 8G`, i.e. 4 + 8/64 + 64/16384 ≈ 4.13 bits per
//! weight. The last group may hold fewer than 256 blocks. Dequantizing element `k`:
//! `b = k / 64`, `g = b / 256`, `scale = offset[g] + step[g] * (c_b as f32)`,
//! `x = NF4_LEVELS[nibble(k)] * scale` (f32 arithmetic, in that order).

use super::QuantError;
use crate::QuantType;

/// Weights per NF4 block (one scale each).
pub const NF4_BLOCK: usize = 64;
/// NF4 blocks per double-quantization group (their scales share one f32 offset and step).
pub const NF4_GROUP_BLOCKS: usize = 256;

/// The 16 NormalFloat-4 levels (QLoRA / bitsandbytes `NF4` code), ascending, in `[-1, 1]`.
#[allow(clippy::excessive_precision)]
pub const NF4_LEVELS: [f32; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

/// Bytes of an NF4 tensor of `n` elements: 4-bit codes, one 8-bit scale code per block, and an
/// f32 offset plus f32 scale per group of [`NF4_GROUP_BLOCKS`] blocks.
pub const fn nf4_tensor_bytes(n: usize) -> Option<usize> {
    if !n.is_multiple_of(NF4_BLOCK) {
        return None;
    }
    let blocks = n / NF4_BLOCK;
    let groups = blocks.div_ceil(NF4_GROUP_BLOCKS);
    Some(n / 2 + blocks + groups * 8)
}

/// The index of the NF4 level nearest to `v` (a value already divided by the block scale).
#[inline]
pub fn nearest_level(v: f32) -> u8 {
    // Midpoints between consecutive levels; the answer is how many midpoints lie below v.
    let mut code = 0u8;
    for i in 0..15 {
        if v > 0.5 * (NF4_LEVELS[i] + NF4_LEVELS[i + 1]) {
            code += 1;
        }
    }
    code
}

/// Error of coding `xs` with NF4 levels at block scale `scale` (nearest level per weight).
fn block_sse(xs: &[f32], scale: f32) -> f32 {
    let inv = 1.0 / scale;
    xs.iter()
        .map(|&x| {
            let e = NF4_LEVELS[usize::from(nearest_level(x * inv))] * scale - x;
            e * e
        })
        .sum()
}

/// The block scale minimizing the squared error: the best of the absmax shrunk by
/// `1.00, 0.99, ..., 0.60` (clipping the largest weight often pays off on bell-shaped blocks),
/// then refined by alternating least-squares scale / nearest codes while the error drops.
fn best_scale(xs: &[f32]) -> f32 {
    let absmax = xs.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    if absmax == 0.0 {
        return 0.0;
    }
    let mut best = (absmax, block_sse(xs, absmax));
    for k in 1..=SCALE_STEPS {
        let s = absmax * (1.0 - 0.01 * k as f32);
        let e = block_sse(xs, s);
        if e < best.1 {
            best = (s, e);
        }
    }
    for _ in 0..4 {
        let inv = 1.0 / best.0;
        let (mut sxl, mut sll) = (0.0f32, 0.0f32);
        for &x in xs {
            let l = NF4_LEVELS[usize::from(nearest_level(x * inv))];
            sxl += x * l;
            sll += l * l;
        }
        if sll <= 0.0 || sxl <= 0.0 {
            break;
        }
        let s = sxl / sll;
        let e = block_sse(xs, s);
        if e < best.1 {
            best = (s, e);
        } else {
            break;
        }
    }
    best.0
}

/// Number of shrunken scales [`quantize`] tries per block besides the absmax.
const SCALE_STEPS: u32 = 40;

/// Quantizes `src` (length a multiple of [`NF4_BLOCK`]) into the NF4 byte layout above.
///
/// # Panics
/// If `src.len()` is not a multiple of [`NF4_BLOCK`] (the dynamic
/// [`crate::blocks::quantize`] checks this and returns an error instead).
pub fn quantize(src: &[f32]) -> Vec<u8> {
    assert_eq!(src.len() % NF4_BLOCK, 0, "nf4: length not a multiple of 64");
    let n = src.len();
    let n_blocks = n / NF4_BLOCK;
    let mut out = vec![0u8; n / 2 + n_blocks + n_blocks.div_ceil(NF4_GROUP_BLOCKS) * 8];
    let (codes, rest) = out.split_at_mut(n / 2);
    let (scale_codes, group_params) = rest.split_at_mut(n_blocks);
    let scales: Vec<f32> = src.chunks_exact(NF4_BLOCK).map(best_scale).collect();
    for (g, blocks) in scales.chunks(NF4_GROUP_BLOCKS).enumerate() {
        let lo = blocks.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = blocks.iter().copied().fold(0.0f32, f32::max);
        let step = (hi - lo) / 255.0;
        group_params[8 * g..8 * g + 4].copy_from_slice(&lo.to_le_bytes());
        group_params[8 * g + 4..8 * g + 8].copy_from_slice(&step.to_le_bytes());
        for (i, &a) in blocks.iter().enumerate() {
            let b = g * NF4_GROUP_BLOCKS + i;
            let c = if step > 0.0 {
                ((a - lo) / step).round().clamp(0.0, 255.0) as u8
            } else {
                0
            };
            scale_codes[b] = c;
            let decoded = lo + step * f32::from(c);
            let inv = if decoded > 0.0 { 1.0 / decoded } else { 0.0 };
            let xs = &src[b * NF4_BLOCK..(b + 1) * NF4_BLOCK];
            let cs = &mut codes[b * NF4_BLOCK / 2..(b + 1) * NF4_BLOCK / 2];
            for (byte, pair) in cs.iter_mut().zip(xs.chunks_exact(2)) {
                *byte = nearest_level(pair[0] * inv) | (nearest_level(pair[1] * inv) << 4);
            }
        }
    }
    out
}

/// Dequantizes an NF4 tensor (layout above) into `dst`; `bytes` must be exactly
/// [`nf4_tensor_bytes`]`(dst.len())` long.
pub fn dequantize(bytes: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    let n = dst.len();
    let expected = nf4_tensor_bytes(n).ok_or(QuantError::NotWholeBlocks {
        ty: QuantType::NF4,
        elements: n,
        block: NF4_BLOCK,
    })?;
    if bytes.len() != expected {
        return Err(QuantError::ByteLength {
            ty: QuantType::NF4,
            bytes: bytes.len(),
            elements: n,
            expected,
        });
    }
    let n_blocks = n / NF4_BLOCK;
    let (codes, rest) = bytes.split_at(n / 2);
    let (scale_codes, group_params) = rest.split_at(n_blocks);
    for (g, params) in group_params.chunks_exact(8).enumerate() {
        let offset = f32::from_le_bytes([params[0], params[1], params[2], params[3]]);
        let step = f32::from_le_bytes([params[4], params[5], params[6], params[7]]);
        let first = g * NF4_GROUP_BLOCKS;
        let last = (first + NF4_GROUP_BLOCKS).min(n_blocks);
        for b in first..last {
            let block_scale = offset + step * f32::from(scale_codes[b]);
            let cs = &codes[b * NF4_BLOCK / 2..(b + 1) * NF4_BLOCK / 2];
            let ys = &mut dst[b * NF4_BLOCK..(b + 1) * NF4_BLOCK];
            for (pair, &byte) in ys.chunks_exact_mut(2).zip(cs) {
                pair[0] = NF4_LEVELS[usize::from(byte & 0x0f)] * block_scale;
                pair[1] = NF4_LEVELS[usize::from(byte >> 4)] * block_scale;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_themselves() {
        for (i, &l) in NF4_LEVELS.iter().enumerate() {
            assert_eq!(usize::from(nearest_level(l)), i);
        }
        assert_eq!(nearest_level(2.0), 15);
        assert_eq!(nearest_level(-2.0), 0);
    }

    #[test]
    fn layout_sizes_and_exact_round_trip_of_levels() -> Result<(), QuantError> {
        // Three groups, the last one partial (4 blocks).
        let n = NF4_BLOCK * (2 * NF4_GROUP_BLOCKS + 4);
        let src: Vec<f32> = (0..n)
            .map(|i| NF4_LEVELS[i % 16] * (1 + (i / NF4_BLOCK) % 4) as f32)
            .collect();
        let bytes = quantize(&src);
        assert_eq!(Some(bytes.len()), nf4_tensor_bytes(n));
        let mut out = vec![0.0; n];
        dequantize(&bytes, &mut out)?;
        // absmax per block is 1..=4, exactly representable by the linear code (offset 1,
        // scale 3/255, codes 0/85/170/255), so values come back to within f32 rounding.
        for (a, b) in src.iter().zip(&out) {
            assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0), "{a} vs {b}");
        }
        assert!(dequantize(&bytes[1..], &mut out).is_err());
        Ok(())
    }
}
