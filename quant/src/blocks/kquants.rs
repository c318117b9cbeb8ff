//! The 256-weight k-quant super-block formats: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.

// The ports below index several parallel arrays by the same sub-block number, as ggml does;
// keeping ggml's loop shape makes them easy to check against the C.
#![allow(clippy::needless_range_loop)]

use bytemuck::{Pod, Zeroable};
use half::f16;

use super::search::{
    make_q3_quants, make_qkx2_quants, make_qx_quants, nearest_int, Qkx2, GROUP_MAX_EPS,
};
use super::{check_lengths, BlockFormat, Quantize};
use crate::QuantType;

/// Weights per k-quant super-block.
pub const QK_K: usize = 256;

/// Q2_K: 16 sub-blocks of 16; each has a 4-bit scale and 4-bit min.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ2K {
    /// Sub-block scales (low nibble) and mins (high nibble).
    pub scales: [u8; QK_K / 16],
    /// 2-bit codes.
    pub qs: [u8; QK_K / 4],
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the mins.
    pub dmin: f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ2K>() == 84);

/// Q3_K: 16 sub-blocks of 16 with 6-bit scales; `x = d * scale * (q - 4 * !hbit)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ3K {
    /// High bit of each 3-bit code.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits of the codes.
    pub qs: [u8; QK_K / 4],
    /// 16 packed 6-bit scales.
    pub scales: [u8; 12],
    /// Super-block scale.
    pub d: f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ3K>() == 110);

/// Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins; `x = d * sc * q - dmin * m`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ4K {
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the mins.
    pub dmin: f16,
    /// 8 scales and 8 mins, 6 bits each, packed into 12 bytes.
    pub scales: [u8; 12],
    /// 4-bit codes.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144);

/// Q5_K: as Q4_K with a fifth bit per code in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ5K {
    /// Super-block scale for the scales.
    pub d: f16,
    /// Super-block scale for the mins.
    pub dmin: f16,
    /// 8 scales and 8 mins, 6 bits each, packed into 12 bytes.
    pub scales: [u8; 12],
    /// Fifth bits of the codes.
    pub qh: [u8; QK_K / 8],
    /// Low 4 bits of the codes.
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);

/// Q6_K: 16 sub-blocks of 16 with signed 8-bit scales; `x = d * sc * (q - 32)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ6K {
    /// Low 4 bits of the codes.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits of the codes.
    pub qh: [u8; QK_K / 4],
    /// Signed sub-block scales.
    pub scales: [i8; QK_K / 16],
    /// Super-block scale.
    pub d: f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210);

/// Q8_K: activations for k-quant dot products; `x = d * q`, plus sums of each 16 codes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ8K {
    /// Scale (f32, unlike the other formats).
    pub d: f32,
    /// Signed 8-bit codes.
    pub qs: [i8; QK_K],
    /// Sum of each group of 16 codes.
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == 292);

/// Scale and min of sub-block `j` (0..8) from the 12 packed bytes of Q4_K/Q5_K (ggml's
/// `get_scale_min_k4`): sub-blocks 0..4 use the low 6 bits of bytes `j` and `j+4`; 4..8 combine a
/// nibble of byte `j+4` with the top two bits of bytes `j-4` and `j`.
#[inline]
pub fn get_scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Packs eight 6-bit scales and mins into 12 bytes (inverse of [`get_scale_min_k4`]).
fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut q = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            q[j] = ls[j];
            q[j + 4] = lm[j];
        } else {
            q[j + 4] = (ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4);
            q[j - 4] |= (ls[j] >> 4) << 6;
            q[j] |= (lm[j] >> 4) << 6;
        }
    }
    q
}

/// Signed 6-bit scale `j` (0..16) of a Q3_K block, already offset by -32.
#[inline]
pub fn q3k_scale(scales: &[u8; 12], j: usize) -> i8 {
    let low = if j < 8 {
        scales[j] & 0x0f
    } else {
        scales[j - 8] >> 4
    };
    let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i8 - 32
}

impl BlockFormat for BlockQ2K {
    const TYPE: QuantType = QuantType::Q2_K;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
            // Sub-block `is` (16 weights) = half `is / 8`, shift `2 * ((is / 2) % 4)`, and the
            // first or second 16 code bytes of that half (`is % 2`).
            for (is, y) in y.chunks_exact_mut(16).enumerate() {
                let start = 32 * (is / 8) + 16 * (is % 2);
                let q = &b.qs[start..start + 16];
                let shift = 2 * ((is / 2) % 4);
                let sc = b.scales[is];
                let dl = d * f32::from(sc & 0x0f);
                let ml = min * f32::from(sc >> 4);
                for (v, &qb) in y.iter_mut().zip(q) {
                    *v = dl * f32::from((qb >> shift) & 3) - ml;
                }
            }
        }
    }
}

impl Quantize for BlockQ2K {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        let p = Qkx2 {
            nmax: 3,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: true,
        };
        const Q4SCALE: f32 = 15.0;
        for (x, b) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            let mut l = [0u8; QK_K];
            let mut scales = [0f32; 16];
            let mut mins = [0f32; 16];
            let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
            for j in 0..16 {
                let xs = &x[16 * j..16 * j + 16];
                let mut w = [0f32; 16];
                for (wi, v) in w.iter_mut().zip(xs) {
                    *wi = v.abs();
                }
                let (sc, mn) = make_qkx2_quants(&p, xs, &w, &mut l[16 * j..16 * j + 16]);
                scales[j] = sc;
                mins[j] = mn;
                max_scale = if sc > max_scale { sc } else { max_scale };
                max_min = if mn > max_min { mn } else { max_min };
            }
            if max_scale > 0.0 {
                let iscale = Q4SCALE / max_scale;
                for j in 0..16 {
                    b.scales[j] = nearest_int(iscale * scales[j]) as u8;
                }
                b.d = f16::from_f32(max_scale / Q4SCALE);
            } else {
                b.scales = [0; 16];
                b.d = f16::from_f32(0.0);
            }
            if max_min > 0.0 {
                let iscale = Q4SCALE / max_min;
                for j in 0..16 {
                    b.scales[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
                }
                b.dmin = f16::from_f32(max_min / Q4SCALE);
            } else {
                b.dmin = f16::from_f32(0.0);
            }
            for j in 0..16 {
                let d = b.d.to_f32() * f32::from(b.scales[j] & 0x0f);
                if d == 0.0 {
                    continue;
                }
                let dm = b.dmin.to_f32() * f32::from(b.scales[j] >> 4);
                for ii in 0..16 {
                    l[16 * j + ii] = nearest_int((x[16 * j + ii] + dm) / d).clamp(0, 3) as u8;
                }
            }
            pack_2bit(&l, &mut b.qs);
        }
    }
}

impl BlockFormat for BlockQ3K {
    const TYPE: QuantType = QuantType::Q3_K;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d_all = b.d.to_f32();
            // Sub-block `is` as in Q2_K; its high bits are bit `is / 2` of the 16 hmask bytes
            // at offset `16 * (is % 2)` (hmask is not advanced per half, unlike qs).
            for (is, y) in y.chunks_exact_mut(16).enumerate() {
                let start = 32 * (is / 8) + 16 * (is % 2);
                let q = &b.qs[start..start + 16];
                let hm = &b.hmask[16 * (is % 2)..16 * (is % 2) + 16];
                let shift = 2 * ((is / 2) % 4);
                let bit = is / 2;
                let dl = d_all * f32::from(q3k_scale(&b.scales, is));
                for ((v, &qb), &h) in y.iter_mut().zip(q).zip(hm) {
                    let low = i32::from((qb >> shift) & 3);
                    let sub = 4 - 4 * i32::from((h >> bit) & 1);
                    *v = dl * (low - sub) as f32;
                }
            }
        }
    }
}

impl Quantize for BlockQ3K {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        for (x, b) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            let mut l = [0i8; QK_K];
            let mut scales = [0f32; 16];
            let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
            for j in 0..16 {
                scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..16 * j + 16]);
                if scales[j].abs() > amax {
                    amax = scales[j].abs();
                    max_scale = scales[j];
                }
            }
            b.scales = [0; 12];
            if max_scale != 0.0 {
                let iscale = -32.0 / max_scale;
                for j in 0..16 {
                    let lj = ((nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) + 32) as u8;
                    if j < 8 {
                        b.scales[j] = lj & 0x0f;
                    } else {
                        b.scales[j - 8] |= (lj & 0x0f) << 4;
                    }
                    b.scales[j % 4 + 8] |= (lj >> 4) << (2 * (j / 4));
                }
                b.d = f16::from_f32(1.0 / iscale);
            } else {
                b.d = f16::from_f32(0.0);
            }
            q3k_codes(x, &mut l, b);
        }
    }
}

/// The end of a Q3_K block once its scales are set (ggml's `quantize_row_q3_K_ref` and `_impl`
/// alike): every value requantized with its sub-block's final scale to 0..8, the high bits into
/// `hmask`, the low two bits packed into `qs`.
pub(crate) fn q3k_codes(x: &[f32], l: &mut [i8; QK_K], b: &mut BlockQ3K) {
    for j in 0..16 {
        let d = b.d.to_f32() * f32::from(q3k_scale(&b.scales, j));
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            l[16 * j + ii] = (nearest_int(x[16 * j + ii] / d).clamp(-4, 3) + 4) as i8;
        }
    }
    b.hmask = [0; QK_K / 8];
    let (mut m, mut hm) = (0usize, 1u8);
    for lj in l.iter_mut() {
        if *lj > 3 {
            b.hmask[m] |= hm;
            *lj -= 4;
        }
        m += 1;
        if m == QK_K / 8 {
            m = 0;
            hm <<= 1;
        }
    }
    let l: [u8; QK_K] = bytemuck::cast(*l);
    pack_2bit(&l, &mut b.qs);
}

/// Packs 256 two-bit codes as ggml's Q2_K/Q3_K `qs`: four codes 32 apart per byte, per half.
pub(crate) fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for half in 0..2 {
        let j = 128 * half;
        for k in 0..32 {
            qs[32 * half + k] =
                l[j + k] | (l[j + k + 32] << 2) | (l[j + k + 64] << 4) | (l[j + k + 96] << 6);
        }
    }
}

/// Shared Q4_K/Q5_K quantization: per 32-weight sub-block, ggml's `make_qkx2_quants` with weights
/// `rms(x) + |x|`, then 6-bit scales/mins relative to the largest, then codes re-derived from the
/// rounded scales. Returns `(d, dmin, packed scales, codes)`.
fn quantize_k4_like(x: &[f32], p: &Qkx2) -> (f16, f16, [u8; 12], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let sum_x2 = xs.iter().fold(0.0f32, |a, v| a + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        let mut w = [0f32; 32];
        for (wi, v) in w.iter_mut().zip(xs) {
            *wi = av_x + v.abs();
        }
        let (sc, mn) = make_qkx2_quants(p, xs, &w, &mut l[32 * j..32 * j + 32]);
        scales[j] = sc;
        mins[j] = mn;
        max_scale = if sc > max_scale { sc } else { max_scale };
        max_min = if mn > max_min { mn } else { max_min };
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..8 {
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    let packed = pack_scale_min_k4(&ls, &lm);
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &packed);
        let dj = d.to_f32() * f32::from(sc);
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * f32::from(m);
        for ii in 0..32 {
            l[32 * j + ii] = nearest_int((x[32 * j + ii] + dm) / dj).clamp(0, p.nmax) as u8;
        }
    }
    (d, dmin, packed, l)
}

impl BlockFormat for BlockQ4K {
    const TYPE: QuantType = QuantType::Q4_K;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
            for (c, y) in y.chunks_exact_mut(64).enumerate() {
                let q = &b.qs[32 * c..32 * c + 32];
                let (sc1, m1) = get_scale_min_k4(2 * c, &b.scales);
                let (sc2, m2) = get_scale_min_k4(2 * c + 1, &b.scales);
                let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
                let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
                let (lo, hi) = y.split_at_mut(32);
                for l in 0..32 {
                    lo[l] = d1 * f32::from(q[l] & 0x0f) - m1;
                    hi[l] = d2 * f32::from(q[l] >> 4) - m2;
                }
            }
        }
    }
}

impl Quantize for BlockQ4K {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        let p = Qkx2 {
            nmax: 15,
            rmin: -1.0,
            rdelta: 0.1,
            nstep: 20,
            use_mad: false,
        };
        for (x, b) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            let (d, dmin, scales, l) = quantize_k4_like(x, &p);
            b.d = d;
            b.dmin = dmin;
            b.scales = scales;
            for c in 0..4 {
                for k in 0..32 {
                    b.qs[32 * c + k] = l[64 * c + k] | (l[64 * c + k + 32] << 4);
                }
            }
        }
    }
}

impl BlockFormat for BlockQ5K {
    const TYPE: QuantType = QuantType::Q5_K;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
            for (c, y) in y.chunks_exact_mut(64).enumerate() {
                let ql = &b.qs[32 * c..32 * c + 32];
                let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
                let (sc1, m1) = get_scale_min_k4(2 * c, &b.scales);
                let (sc2, m2) = get_scale_min_k4(2 * c + 1, &b.scales);
                let (d1, m1) = (d * f32::from(sc1), min * f32::from(m1));
                let (d2, m2) = (d * f32::from(sc2), min * f32::from(m2));
                let (lo, hi) = y.split_at_mut(32);
                for l in 0..32 {
                    let h1 = if b.qh[l] & u1 != 0 { 16 } else { 0 };
                    let h2 = if b.qh[l] & u2 != 0 { 16 } else { 0 };
                    lo[l] = d1 * f32::from((ql[l] & 0x0f) + h1) - m1;
                    hi[l] = d2 * f32::from((ql[l] >> 4) + h2) - m2;
                }
            }
        }
    }
}

impl Quantize for BlockQ5K {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        let p = Qkx2 {
            nmax: 31,
            rmin: -0.5,
            rdelta: 0.1,
            nstep: 15,
            use_mad: false,
        };
        for (x, b) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            let (d, dmin, scales, l) = quantize_k4_like(x, &p);
            b.d = d;
            b.dmin = dmin;
            b.scales = scales;
            b.qh = [0; QK_K / 8];
            for c in 0..4 {
                let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
                for k in 0..32 {
                    let mut l1 = l[64 * c + k];
                    if l1 > 15 {
                        l1 -= 16;
                        b.qh[k] |= m1;
                    }
                    let mut l2 = l[64 * c + k + 32];
                    if l2 > 15 {
                        l2 -= 16;
                        b.qh[k] |= m2;
                    }
                    b.qs[32 * c + k] = l1 | (l2 << 4);
                }
            }
        }
    }
}

impl BlockFormat for BlockQ6K {
    const TYPE: QuantType = QuantType::Q6_K;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            let d = b.d.to_f32();
            for (h, y) in y.chunks_exact_mut(128).enumerate() {
                let ql = &b.ql[64 * h..64 * h + 64];
                let qh = &b.qh[32 * h..32 * h + 32];
                let sc = &b.scales[8 * h..8 * h + 8];
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i8 - 32;
                    let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                    let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                    let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                    y[l] = d * f32::from(sc[is]) * f32::from(q1);
                    y[l + 32] = d * f32::from(sc[is + 2]) * f32::from(q2);
                    y[l + 64] = d * f32::from(sc[is + 4]) * f32::from(q3);
                    y[l + 96] = d * f32::from(sc[is + 6]) * f32::from(q4);
                }
            }
        }
    }
}

impl Quantize for BlockQ6K {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        for (x, b) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            quantize_q6k_block(x, b, None);
        }
    }
}

/// One Q6_K block from 256 values: ggml's `quantize_row_q6_K_ref` without `quant_weights`,
/// `quantize_row_q6_K_impl` with them (importance weights, one per value, replace the `x²`
/// weights of `make_qx_quants`).
pub(crate) fn quantize_q6k_block(x: &[f32], b: &mut BlockQ6K, quant_weights: Option<&[f32]>) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for ib in 0..16 {
        let sc = make_qx_quants(
            32,
            &x[16 * ib..16 * ib + 16],
            &mut l[16 * ib..16 * ib + 16],
            1,
            quant_weights.map(|w| &w[16 * ib..16 * ib + 16]),
        );
        scales[ib] = sc;
        if sc.abs() > max_abs_scale {
            max_abs_scale = sc.abs();
            max_scale = sc;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        *b = BlockQ6K::zeroed();
        return;
    }
    let iscale = -128.0 / max_scale;
    b.d = f16::from_f32(1.0 / iscale);
    for ib in 0..16 {
        b.scales[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
    }
    for j in 0..16 {
        let d = b.d.to_f32() * f32::from(b.scales[j]);
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            l[16 * j + ii] = (nearest_int(x[16 * j + ii] / d).clamp(-32, 31) + 32) as i8;
        }
    }
    let l: [u8; QK_K] = bytemuck::cast(l);
    for h in 0..2 {
        let (j, ql, qh) = (128 * h, 64 * h, 32 * h);
        for k in 0..32 {
            let q1 = l[j + k] & 0x0f;
            let q2 = l[j + k + 32] & 0x0f;
            let q3 = l[j + k + 64] & 0x0f;
            let q4 = l[j + k + 96] & 0x0f;
            b.ql[ql + k] = q1 | (q3 << 4);
            b.ql[ql + k + 32] = q2 | (q4 << 4);
            b.qh[qh + k] = (l[j + k] >> 4)
                | ((l[j + k + 32] >> 4) << 2)
                | ((l[j + k + 64] >> 4) << 4)
                | ((l[j + k + 96] >> 4) << 6);
        }
    }
}

impl BlockFormat for BlockQ8K {
    const TYPE: QuantType = QuantType::Q8_K;
    fn dequantize(src: &[Self], dst: &mut [f32]) {
        check_lengths::<Self>(src.len(), dst.len());
        for (b, y) in src.iter().zip(dst.chunks_exact_mut(QK_K)) {
            for (v, &q) in y.iter_mut().zip(&b.qs) {
                *v = b.d * f32::from(q);
            }
        }
    }
}

impl Quantize for BlockQ8K {
    fn quantize(src: &[f32], dst: &mut [Self]) {
        check_lengths::<Self>(dst.len(), src.len());
        for (x, b) in src.chunks_exact(QK_K).zip(dst.iter_mut()) {
            let (mut max, mut amax) = (0.0f32, 0.0f32);
            for &v in x {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            if amax == 0.0 {
                *b = Self::zeroed();
                continue;
            }
            let iscale = -127.0 / max;
            for (q, &v) in b.qs.iter_mut().zip(x) {
                *q = nearest_int(iscale * v).min(127) as i8;
            }
            for (j, s) in b.bsums.iter_mut().enumerate() {
                *s = b.qs[16 * j..16 * j + 16]
                    .iter()
                    .map(|&q| i16::from(q))
                    .sum();
            }
            b.d = 1.0 / iscale;
        }
    }
}
