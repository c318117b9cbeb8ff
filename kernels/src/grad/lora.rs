//! LoRA adapter math for a batch of `T` tokens: `y += s · B (A x)` and its backward.
//! `A` is `[r, n_in]`, `B` is `[n_out, r]`, `x` is `[T, n_in]`, `y` is `[T, n_out]`, all f32
//! row-major. Tokens are processed 4 at a time so each row of `A`, `B`, `dA`, `dB` is read
//! (and written) once per 4 tokens; every inner loop runs over a contiguous dimension and the
//! bodies are compiled a second time for AVX2+FMA, picked at run time (`GRAFT_ISA=scalar`
//! forces the baseline build). The small `r` (8–64) keeps `[T, r]` intermediates in cache.

#[cfg(target_arch = "x86_64")]
use super::isa::{self, Isa};
use super::vec::dot;

/// Tokens per register/cache block.
const MR: usize = 4;

/// Shape of one LoRA adapter applied to `n_tok` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoraShape {
    /// Tokens in the batch.
    pub n_tok: usize,
    /// Input features (columns of `A`).
    pub n_in: usize,
    /// Output features (rows of `B`).
    pub n_out: usize,
    /// Rank `r`.
    pub rank: usize,
}

/// Forward: writes `u = x Aᵀ` (`[T, r]`, keep it for [`lora_backward`]) and adds
/// `s · u Bᵀ` to `y` (`[T, n_out]`).
pub fn lora_forward(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    b: &[f32],
    s: f32,
    u: &mut [f32],
    y: &mut [f32],
) {
    // Bᵀ ([r, n_out]) so the output update is a contiguous axpy per rank component.
    let mut bt = vec![0f32; sh.rank * sh.n_out];
    for o in 0..sh.n_out {
        for k in 0..sh.rank {
            bt[k * sh.n_out + o] = b[o * sh.rank + k];
        }
    }
    #[cfg(target_arch = "x86_64")]
    if isa::detect() != Isa::Scalar {
        // SAFETY: a non-scalar ISA is only ever detected with AVX2 and FMA present.
        unsafe { forward_avx2(sh, x, a, &bt, s, u, y) };
        return;
    }
    forward_body(sh, x, a, &bt, s, u, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_avx2(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    bt: &[f32],
    s: f32,
    u: &mut [f32],
    y: &mut [f32],
) {
    forward_body(sh, x, a, bt, s, u, y);
}

#[inline(always)]
fn forward_body(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    bt: &[f32],
    s: f32,
    u: &mut [f32],
    y: &mut [f32],
) {
    let LoraShape {
        n_tok,
        n_in,
        n_out,
        rank,
    } = sh;
    for t0 in (0..n_tok).step_by(MR) {
        let m = MR.min(n_tok - t0);
        for k in 0..rank {
            let ak = &a[k * n_in..(k + 1) * n_in];
            for i in 0..m {
                u[(t0 + i) * rank + k] = dot(ak, &x[(t0 + i) * n_in..][..n_in]);
            }
        }
        for i in 0..m {
            let t = t0 + i;
            let yt = &mut y[t * n_out..(t + 1) * n_out];
            for k in 0..rank {
                let c = s * u[t * rank + k];
                for (yo, &bv) in yt.iter_mut().zip(&bt[k * n_out..(k + 1) * n_out]) {
                    *yo += c * bv;
                }
            }
        }
    }
}

/// Backward of [`lora_forward`] given `dy` (`[T, n_out]`), `x` and `u = x Aᵀ`:
/// `dA += s · gᵀ x`, `dB += s · dyᵀ u`, `dx += s · g A` where `g = dy B` (`[T, r]`).
/// `dx` may be `None` when the input needs no gradient (e.g. the first layer's input).
#[allow(clippy::too_many_arguments)]
pub fn lora_backward(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    b: &[f32],
    s: f32,
    u: &[f32],
    dy: &[f32],
    da: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    #[cfg(target_arch = "x86_64")]
    if isa::detect() != Isa::Scalar {
        // SAFETY: a non-scalar ISA is only ever detected with AVX2 and FMA present.
        unsafe { backward_avx2(sh, x, a, b, s, u, dy, da, db, dx) };
        return;
    }
    backward_body(sh, x, a, b, s, u, dy, da, db, dx);
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
unsafe fn backward_avx2(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    b: &[f32],
    s: f32,
    u: &[f32],
    dy: &[f32],
    da: &mut [f32],
    db: &mut [f32],
    dx: Option<&mut [f32]>,
) {
    backward_body(sh, x, a, b, s, u, dy, da, db, dx);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn backward_body(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    b: &[f32],
    s: f32,
    u: &[f32],
    dy: &[f32],
    da: &mut [f32],
    db: &mut [f32],
    mut dx: Option<&mut [f32]>,
) {
    let LoraShape {
        n_tok,
        n_in,
        n_out,
        rank,
    } = sh;
    // Bᵀ and dBᵀ ([r, n_out]): both products with dy become long contiguous loops.
    let mut bt = vec![0f32; rank * n_out];
    for o in 0..n_out {
        for k in 0..rank {
            bt[k * n_out + o] = b[o * rank + k];
        }
    }
    let mut dbt = vec![0f32; rank * n_out];
    // g for a block of MR tokens, pre-multiplied by s.
    let mut g = vec![0f32; MR * rank];
    for t0 in (0..n_tok).step_by(MR) {
        let m = MR.min(n_tok - t0);
        for k in 0..rank {
            let btk = &bt[k * n_out..(k + 1) * n_out];
            let dbk = &mut dbt[k * n_out..(k + 1) * n_out];
            for i in 0..m {
                let dyi = &dy[(t0 + i) * n_out..][..n_out];
                // g_i[k] = dy_i · B[:, k];  dBᵀ[k, :] += s u_i[k] dy_i.
                g[i * rank + k] = dot(dyi, btk);
                let c = s * u[(t0 + i) * rank + k];
                for (dv, &d) in dbk.iter_mut().zip(dyi) {
                    *dv += c * d;
                }
            }
        }
        g.iter_mut().for_each(|v| *v *= s);
        // dA[k, :] += Σ_i g_i[k] x_i (one read/write of each dA row per block).
        for k in 0..rank {
            let dak = &mut da[k * n_in..(k + 1) * n_in];
            for i in 0..m {
                let c = g[i * rank + k];
                for (dv, &xv) in dak.iter_mut().zip(&x[(t0 + i) * n_in..][..n_in]) {
                    *dv += c * xv;
                }
            }
        }
        // dx_i += Σ_k g_i[k] A[k, :] (one read of each A row per block).
        if let Some(dx) = dx.as_deref_mut() {
            for k in 0..rank {
                let ak = &a[k * n_in..(k + 1) * n_in];
                for i in 0..m {
                    let c = g[i * rank + k];
                    for (dv, &av) in dx[(t0 + i) * n_in..][..n_in].iter_mut().zip(ak) {
                        *dv += c * av;
                    }
                }
            }
        }
    }
    for o in 0..n_out {
        for k in 0..rank {
            db[o * rank + k] += dbt[k * n_out + o];
        }
    }
}
