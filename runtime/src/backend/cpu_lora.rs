//! The CPU LoRA update: `A x` for all tokens (a small GEMM of dot products), then `B`.

use super::lora::{LoraInput, LoraMats};

/// Dot product with 8 independent accumulators (vectorizes; order fixed, so deterministic).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

/// `y[t] += m.scale · B · (A · x[t])` for `t < n_tokens`; `tmp` holds at least
/// `n_tokens × rank` floats. Shapes are checked when the adapter is attached.
pub(super) fn lora_add(
    m: &LoraMats<'_>,
    x: LoraInput<'_, &[f32]>,
    n_tokens: usize,
    tmp: &mut [f32],
    y: &mut [f32],
) {
    let (r, n_in, n_out) = (m.rank, m.n_in, m.n_out);
    let u = &mut tmp[..n_tokens * r];
    match x {
        LoraInput::Dense(x) => {
            for (t, ut) in u.chunks_exact_mut(r).enumerate() {
                let xt = &x[t * n_in..(t + 1) * n_in];
                for (k, uk) in ut.iter_mut().enumerate() {
                    *uk = dot(&m.a[k * n_in..(k + 1) * n_in], xt);
                }
            }
        }
        LoraInput::Ids(ids) => {
            for (ut, &id) in u.chunks_exact_mut(r).zip(ids) {
                for (k, uk) in ut.iter_mut().enumerate() {
                    *uk = m.a[k * n_in + id as usize];
                }
            }
        }
    }
    for (t, ut) in u.chunks_exact(r).enumerate() {
        let yt = &mut y[t * n_out..(t + 1) * n_out];
        for (o, yo) in yt.iter_mut().enumerate() {
            *yo += m.scale * dot(&m.b[o * r..(o + 1) * r], ut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_f64() {
        let (r, n_in, n_out, n) = (3, 13, 5, 4);
        let f = |i: usize| ((i * 37 % 17) as f32 - 8.0) / 9.0;
        let a: Vec<f32> = (0..r * n_in).map(f).collect();
        let b: Vec<f32> = (0..n_out * r).map(|i| f(i + 5)).collect();
        let x: Vec<f32> = (0..n * n_in).map(|i| f(i + 11)).collect();
        let m = LoraMats {
            cache_key: None,
            a: &a,
            b: &b,
            rank: r,
            n_in,
            n_out,
            scale: 0.75,
        };
        let mut y = vec![1.0f32; n * n_out];
        let mut tmp = vec![0.0f32; n * r];
        lora_add(&m, LoraInput::Dense(&x), n, &mut tmp, &mut y);
        let ids = [0u32, 12, 7, 3];
        let mut ye = vec![0.0f32; n * n_out];
        lora_add(&m, LoraInput::Ids(&ids), n, &mut tmp, &mut ye);
        for t in 0..n {
            for o in 0..n_out {
                let mut want = 0.0f64;
                let mut want_e = 0.0f64;
                for k in 0..r {
                    let ax: f64 = (0..n_in)
                        .map(|i| a[k * n_in + i] as f64 * x[t * n_in + i] as f64)
                        .sum();
                    want += b[o * r + k] as f64 * ax;
                    want_e += b[o * r + k] as f64 * a[k * n_in + ids[t] as usize] as f64;
                }
                assert!((y[t * n_out + o] as f64 - (1.0 + 0.75 * want)).abs() < 1e-5);
                assert!((ye[t * n_out + o] as f64 - 0.75 * want_e).abs() < 1e-5);
            }
        }
    }
}
