//! NEON Q4_K · Q8_K for a group of four tokens (the layout of [`crate::cpu::act_quant_x4`]:
//! four bytes of each token per 16-byte row, so one `sdot` step of four broadcast weights
//! against one such row yields the four tokens' sums in its four lanes). The order is the
//! scalar group definition's (`scalar/q4k_group.rs`), so the results equal it bit for bit.

use super::dot4::{f16_at, ld_s8, ld_u8, Dot4};
use crate::cpu::act_quant_x4::{GROUP_BLOCK_BYTES, GROUP_QS, GROUP_SUMS};
use crate::cpu::scalar::kquants_scale_min as scale_min_k4;
use std::arch::aarch64::*;

/// Σ over the 16 weights `q` (elements `e0..e0 + 16` of group block `g`) of `q · y_t` in
/// lane `t`, added to `acc`.
///
/// # Safety
/// The CPU must have `D`'s instructions.
#[inline(always)]
unsafe fn sum16<D: Dot4>(acc: int32x4_t, q: uint8x16_t, g: &[u8], e0: usize) -> int32x4_t {
    let o = GROUP_QS + 4 * e0;
    let (y0, y1, y2, y3) = (
        ld_s8(g, o),
        ld_s8(g, o + 16),
        ld_s8(g, o + 32),
        ld_s8(g, o + 48),
    );
    // SAFETY: forwarded from the caller (D's instructions); baseline NEON otherwise.
    unsafe {
        let q = vreinterpretq_s32_u8(q);
        let b = |v: int32x4_t| vreinterpretq_s8_s32(v);
        let acc = D::dot4(acc, b(vdupq_laneq_s32::<0>(q)), y0);
        let acc = D::dot4(acc, b(vdupq_laneq_s32::<1>(q)), y1);
        let acc = D::dot4(acc, b(vdupq_laneq_s32::<2>(q)), y2);
        D::dot4(acc, b(vdupq_laneq_s32::<3>(q)), y3)
    }
}

/// One Q4_K row `w` · the four-token group `act`; `out[t]` for token `t`.
///
/// # Safety
/// The CPU must have `D`'s instructions.
#[inline(always)]
unsafe fn group<D: Dot4>(w: &[u8], act: &[u8], out: &mut [f32; 4]) {
    let n = w.len() / 144;
    assert!(act.len() >= n * GROUP_BLOCK_BYTES, "Q4_K group too short");
    // SAFETY: forwarded from the caller (D's instructions); the loads are bounds-checked
    // helpers or read 16 bytes inside the group block `g` (offsets below 1168); baseline
    // NEON otherwise.
    unsafe {
        let mut acc = vdupq_n_f32(0.0);
        let mut accm = vdupq_n_f32(0.0);
        for (wb, g) in w.chunks_exact(144).zip(act.chunks_exact(GROUP_BLOCK_BYTES)) {
            let (d, dmin) = (f16_at(wb, 0), f16_at(wb, 2));
            let yd = vld1q_f32(g[..16].as_ptr() as *const f32);
            let (dyd, myd) = (vmulq_n_f32(yd, d), vmulq_n_f32(yd, dmin));
            let m4 = vdupq_n_u8(0x0F);
            for j in 0..4 {
                let (sa, ma) = scale_min_k4(2 * j, &wb[4..16]);
                let (sb, mb) = scale_min_k4(2 * j + 1, &wb[4..16]);
                let (q0, q1) = (ld_u8(wb, 16 + 32 * j), ld_u8(wb, 32 + 32 * j));
                let zero = vdupq_n_s32(0);
                let ia = sum16::<D>(zero, vandq_u8(q0, m4), g, 64 * j);
                let ia = sum16::<D>(ia, vandq_u8(q1, m4), g, 64 * j + 16);
                let ib = sum16::<D>(zero, vshrq_n_u8::<4>(q0), g, 64 * j + 32);
                let ib = sum16::<D>(ib, vshrq_n_u8::<4>(q1), g, 64 * j + 48);
                let isum = vmlaq_n_s32(vmulq_n_s32(ia, sa as i32), ib, sb as i32);
                // Sums of sub-blocks 2j, 2j + 1 per token: [t0a, t0b, t1a, t1b, ...].
                let s = &g[GROUP_SUMS + 16 * j..][..16];
                let sums = vld1q_s16(s.as_ptr() as *const i16);
                let (ma, mb) = (ma as i16, mb as i16);
                let mv = [ma, mb, ma, mb, ma, mb, ma, mb];
                let mins = vld1q_s16(mv.as_ptr());
                let imin = vpaddq_s32(
                    vmull_s16(vget_low_s16(sums), vget_low_s16(mins)),
                    vmull_high_s16(sums, mins),
                );
                acc = vfmaq_f32(acc, vcvtq_f32_s32(isum), dyd);
                accm = vfmaq_f32(accm, vcvtq_f32_s32(imin), myd);
            }
        }
        vst1q_f32(out.as_mut_ptr(), vsubq_f32(acc, accm));
    }
}

/// Safe table entries for both product paths.
macro_rules! entry {
    ($m:ident, $d:ty, $why:literal) => {
        /// Table entries of one product path.
        pub(crate) mod $m {
            /// The grouped four-token kernel (`stride`, one activation row's bytes, is implied
            /// by the group layout and unused).
            #[doc = $why]
            pub(crate) fn x4(w: &[u8], act: &[u8], _stride: usize, out: &mut [f32; 4]) {
                // SAFETY: the path's instructions are present (see the doc comment).
                unsafe { super::group::<$d>(w, act, out) }
            }
        }
    };
}

entry!(
    plain,
    crate::cpu::neon::dot4::Widen,
    "Baseline NEON only: present on every aarch64 CPU."
);
entry!(
    sdot,
    crate::cpu::neon::dot4::Sdot,
    "Reachable only through the dot-product table, handed out after `dotprod` was detected."
);
