//! Dynamic 8-bit quantization maps (bitsandbytes' `create_dynamic_map` construction) and
//! blockwise quantization with an absmax per block.

use std::sync::OnceLock;

/// Builds a dynamic map: for exponent `i` in 0..7, the midpoints of `linspace(0.1, 1, k+1)`
/// (k = 2^i values, 2^(i+1) when unsigned) scaled by 10^(i-6), mirrored to negatives when
/// signed; plus 0 and 1; sorted. 256 values, all distinct.
fn dynamic_map(signed: bool) -> [f32; 256] {
    const MAX_EXP_BITS: i32 = 7;
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for i in 0..MAX_EXP_BITS {
        let items = if signed {
            1usize << i
        } else {
            1usize << (i + 1)
        };
        // linspace(0.1, 1, items + 1) in f32 the way torch computes it (from the start for
        // the first half, from the end for the second half), then midpoints.
        let steps = items + 1;
        let step = (1.0f32 - 0.1f32) / items as f32;
        let bounds: Vec<f32> = (0..steps)
            .map(|k| {
                if k < steps / 2 {
                    0.1f32 + step * k as f32
                } else {
                    1.0f32 - step * (steps - 1 - k) as f32
                }
            })
            .collect();
        let scale = 10f64.powi(i - (MAX_EXP_BITS - 1)) as f32;
        for w in bounds.windows(2) {
            let mean = (w[0] + w[1]) / 2.0;
            let v = scale * mean;
            data.push(v);
            if signed {
                data.push(-v);
            }
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(f32::total_cmp);
    let mut out = [0f32; 256];
    out.copy_from_slice(&data);
    out
}

/// The signed dynamic map (first moment), sorted ascending, in [-1, 1].
pub fn signed_map() -> &'static [f32; 256] {
    static M: OnceLock<[f32; 256]> = OnceLock::new();
    M.get_or_init(|| dynamic_map(true))
}

/// The unsigned dynamic map (second moment), sorted ascending, in [0, 1].
pub fn unsigned_map() -> &'static [f32; 256] {
    static M: OnceLock<[f32; 256]> = OnceLock::new();
    M.get_or_init(|| dynamic_map(false))
}

/// Index of the map value nearest to `x` (binary search; ties go to the larger value).
#[inline]
pub fn nearest_code(map: &[f32; 256], x: f32) -> u8 {
    let i = map.partition_point(|&c| c < x);
    if i == 0 {
        0
    } else if i >= 256 {
        255
    } else if x - map[i - 1] < map[i] - x {
        (i - 1) as u8
    } else {
        i as u8
    }
}

/// Quantize one block: returns its absmax and writes the codes of `x / absmax`.
/// An all-zero block gets absmax 0 and the code of 0.
pub fn quantize_block(map: &[f32; 256], x: &[f32], codes: &mut [u8]) -> f32 {
    let absmax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let inv = if absmax > 0.0 { 1.0 / absmax } else { 0.0 };
    for (c, &v) in codes.iter_mut().zip(x) {
        *c = nearest_code(map, v * inv);
    }
    absmax
}

/// Like [`quantize_block`] for the unsigned map, but a positive value never gets the code
/// of 0 (it gets the smallest positive code instead).
pub fn quantize_block_nonzero(map: &[f32; 256], x: &[f32], codes: &mut [u8]) -> f32 {
    let absmax = quantize_block(map, x, codes);
    for (c, &v) in codes.iter_mut().zip(x) {
        if v > 0.0 && map[*c as usize] == 0.0 {
            *c += 1;
        }
    }
    absmax
}

/// Dequantize one block: `map[code] * absmax`.
pub fn dequantize_block(map: &[f32; 256], codes: &[u8], absmax: f32, out: &mut [f32]) {
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = map[c as usize] * absmax;
    }
}
