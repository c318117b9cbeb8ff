//! NEON NF4 · f32 (see `crate::cpu::nf4`): codes become f32 levels through a 64-byte table
//! lookup (`tbl` over the level table's bytes, four bytes per code), then one FMA per weight
//! into eight lanes and one per block for the scale — the scalar `dot_nf4` order, so the
//! result equals the scalar reference bit for bit.

use graft_quant::blocks::nf4::NF4_LEVELS;
use std::arch::aarch64::*;

/// NF4 row · f32 activations (the table's `nf4` entry; arguments as the scalar `dot_nf4`).
pub(crate) fn dot_nf4(codes: &[u8], scales: &[f32], x: &[f32]) -> f32 {
    let nb = x.len() / 64;
    assert!(codes.len() >= nb * 32 && scales.len() >= nb);
    // SAFETY: block b reads codes[32b..][..32] and x[64b..][..64], inside the slices (checked
    // above); the level table is 64 readable bytes; the rest is register-only baseline NEON.
    unsafe {
        let lp = NF4_LEVELS.as_ptr() as *const u8;
        let tbl = uint8x16x4_t(
            vld1q_u8(lp),
            vld1q_u8(lp.add(16)),
            vld1q_u8(lp.add(32)),
            vld1q_u8(lp.add(48)),
        );
        let m4 = vdupq_n_u8(0xF);
        let bytes = vld1q_u8([0u8, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3].as_ptr());
        let spread: [uint8x16_t; 4] = std::array::from_fn(|g| {
            let g = 4 * g as u8;
            let v = [
                g,
                g,
                g,
                g,
                g + 1,
                g + 1,
                g + 1,
                g + 1,
                g + 2,
                g + 2,
                g + 2,
                g + 2,
                g + 3,
                g + 3,
                g + 3,
                g + 3,
            ];
            vld1q_u8(v.as_ptr())
        });
        let (mut a0, mut a1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        for b in 0..nb {
            let cp = codes.as_ptr().add(32 * b);
            let xp = x.as_ptr().add(64 * b);
            let (mut b0, mut b1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
            for h in 0..2 {
                let c = vld1q_u8(cp.add(16 * h));
                let (lo, hi) = (vandq_u8(c, m4), vshrq_n_u8::<4>(c));
                for (q, n) in [vzip1q_u8(lo, hi), vzip2q_u8(lo, hi)]
                    .into_iter()
                    .enumerate()
                {
                    // 16 codes in element order: four groups of four, two groups per `v`.
                    for (g, sp) in spread.iter().enumerate() {
                        let idx = vaddq_u8(vshlq_n_u8::<2>(vqtbl1q_u8(n, *sp)), bytes);
                        let l = vreinterpretq_f32_u8(vqtbl4q_u8(tbl, idx));
                        let xv = vld1q_f32(xp.add(32 * h + 16 * q + 4 * g));
                        if g % 2 == 0 {
                            b0 = vfmaq_f32(b0, l, xv);
                        } else {
                            b1 = vfmaq_f32(b1, l, xv);
                        }
                    }
                }
            }
            let s = *scales.get_unchecked(b);
            a0 = vfmaq_n_f32(a0, b0, s);
            a1 = vfmaq_n_f32(a1, b1, s);
        }
        let r = vaddq_f32(a0, a1);
        (vgetq_lane_f32::<0>(r) + vgetq_lane_f32::<2>(r))
            + (vgetq_lane_f32::<1>(r) + vgetq_lane_f32::<3>(r))
    }
}
