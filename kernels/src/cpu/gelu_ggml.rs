//! GeGLU with the numerics of llama.cpp's CPU kernel (`ggml_vec_geglu_f32` with
//! `GGML_GELU_FP16`): the gate is rounded to f16 and looked up in a 65,536-entry table of
//! `f16(gelu(x))` (tanh approximation, computed in f32 as `ggml_gelu_f32`), widened and
//! multiplied by `up`; gates at or below −10 give 0, at or above 10 pass through.

use half::f16;
use std::sync::OnceLock;

const GELU_COEF_A: f32 = 0.044715;
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// `gelu(x)` with the tanh approximation, in f32 as ggml writes it (`1 + a·x·x` contracted to
/// an FMA, as its x86 build compiles it).
pub fn gelu_tanh_f32(x: f32) -> f32 {
    let inner = SQRT_2_OVER_PI * x * (GELU_COEF_A * x).mul_add(x, 1.0);
    0.5 * x * (1.0 + inner.tanh())
}

/// ggml's `ggml_table_gelu_f16`, built once.
fn table() -> &'static [f16] {
    static TABLE: OnceLock<Vec<f16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|i| f16::from_f32(gelu_tanh_f32(f16::from_bits(i).to_f32())))
            .collect()
    })
}

/// `gelu(x)` as ggml's CPU computes it for f32 tensors (the f16 table, see the module docs).
#[inline]
pub fn gelu_ggml(x: f32, table: &[f16]) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        table[f16::from_f32(x).to_bits() as usize].to_f32()
    }
}

/// `out[i] = gelu(gate[i]) · up[i]` with llama.cpp's numerics.
pub fn geglu_ggml(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(
        gate.len() == up.len() && up.len() == out.len(),
        "geglu_ggml: length mismatch"
    );
    let t = table();
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = if g <= -10.0 {
            0.0
        } else if g >= 10.0 {
            g * u
        } else {
            t[f16::from_f32(g).to_bits() as usize].to_f32() * u
        };
    }
}

/// The exact (f32, no table) `gelu(gate) · up`, for training forwards that differentiate it.
pub fn geglu_exact(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = gelu_tanh_f32(g) * u;
    }
}

/// The f16 table (for [`gelu_ggml`]).
pub fn gelu_table() -> &'static [f16] {
    table()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_gelu_is_the_f16_rounding_of_the_f32_formula() {
        let t = gelu_table();
        for &x in &[-9.5f32, -3.0, -0.5, 0.0, 0.1, 0.7, 1.0, 2.5, 9.0] {
            let want = f16::from_f32(gelu_tanh_f32(f16::from_f32(x).to_f32())).to_f32();
            assert_eq!(gelu_ggml(x, t), want);
            // And the table is close to the exact f64 definition.
            let xd = f64::from(f16::from_f32(x).to_f32());
            let exact = 0.5
                * xd
                * (1.0
                    + ((2.0 / std::f64::consts::PI).sqrt() * (xd + 0.044715 * xd.powi(3))).tanh());
            assert!(
                (f64::from(want) - exact).abs() <= 1e-3 * (1.0 + exact.abs()),
                "{x}"
            );
        }
        assert_eq!(gelu_ggml(-10.0, t), 0.0);
        assert_eq!(gelu_ggml(12.0, t), 12.0);
        let (g, u) = ([0.3f32, -11.0, 11.0], [2.0f32, 5.0, 0.5]);
        let mut o = [0.0; 3];
        geglu_ggml(&g, &u, &mut o);
        assert_eq!(o, [gelu_ggml(0.3, t) * 2.0, 0.0, 5.5]);
    }
}
