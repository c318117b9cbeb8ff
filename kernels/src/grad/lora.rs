//! LoRA adapter math for a batch of `T` tokens: `y += s · B (A x)` and its backward.
//! `A` is `[r, n_in]`, `B` is `[n_out, r]`, `x` is `[T, n_in]`, `y` is `[T, n_out]`, all f32
//! row-major. The SIMD paths (AVX2, AVX-512, NEON; picked at run time, `GRAFT_ISA` honoured) run
//! every product as a small GEMM on `matmul_t`'s register-blocked micro-kernel (6 tokens × a
//! 16/64-wide strip), with the transposes they need made once per call, spread over the
//! caller's thread pool (blocks of tokens, or of 64-column multiples for the rank-row products
//! `dA` and `dB`): the same bits on any thread count. The scalar reference
//! processes tokens 4 at a time so each row of `A`, `B`, `dA`, `dB` is read (and written) once
//! per 4 tokens. The small `r` (8–64) keeps `[T, r]` intermediates in cache.

use super::isa::{self, Isa};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
use super::small_gemm::gemm_par;
use super::vec::dot;
use crate::cpu::ThreadPool;

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
/// `s · u Bᵀ` to `y` (`[T, n_out]`), on `pool`'s threads.
#[allow(clippy::too_many_arguments)]
pub fn lora_forward(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    b: &[f32],
    s: f32,
    u: &mut [f32],
    y: &mut [f32],
    pool: &ThreadPool,
) {
    lora_forward_with(isa::detect(), sh, x, a, b, s, u, y, pool);
}

/// [`lora_forward`] on path `isa` (an unsupported one runs the scalar reference). The SIMD
/// paths run both products as small GEMMs on the register-blocked micro-kernel of
/// `matmul_t` (`Aᵀ` and `Bᵀ` as the tiles).
#[allow(clippy::too_many_arguments)]
pub fn lora_forward_with(
    isa: Isa,
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    b: &[f32],
    s: f32,
    u: &mut [f32],
    y: &mut [f32],
    pool: &ThreadPool,
) {
    let (u, y) = (&mut u[..sh.n_tok * sh.rank], &mut y[..sh.n_tok * sh.n_out]);
    let (x, a, b) = (
        &x[..sh.n_tok * sh.n_in],
        &a[..sh.rank * sh.n_in],
        &b[..sh.n_out * sh.rank],
    );
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if isa::supported(isa) && isa != Isa::Scalar {
        let (n_in, r, n_out, n) = (sh.n_in, sh.rank, sh.n_out, sh.n_tok);
        with_scratch(r * n_in + r * n_out + n * r, |buf| {
            let (at, rest) = buf.split_at_mut(r * n_in);
            let (bt, su) = rest.split_at_mut(r * n_out);
            transpose_into(a, r, n_in, at);
            transpose_into(b, n_out, r, bt);
            u.fill(0.0);
            gemm_par(pool, isa, at, n_in, r, x, n_in, u, r, n);
            su.iter_mut().zip(u.iter()).for_each(|(d, &v)| *d = s * v);
            gemm_par(pool, isa, bt, r, n_out, su, r, y, n_out, n);
        });
        return;
    }
    let _ = (isa, pool);
    // Bᵀ ([r, n_out]) so the output update is a contiguous axpy per rank component.
    let mut bt = vec![0f32; sh.rank * sh.n_out];
    transpose_into(b, sh.n_out, sh.rank, &mut bt);
    forward_body(sh, x, a, &bt, s, u, y);
}

/// `u = x Aᵀ` alone (`[T, r]`): the first half of [`lora_forward`], with its bits, for a
/// caller that adds `s · u Bᵀ` elsewhere (in the base product's tile pass:
/// [`super::matmul_fwd_bf16_lora`]).
pub fn lora_project(sh: LoraShape, x: &[f32], a: &[f32], u: &mut [f32], pool: &ThreadPool) {
    let isa = isa::detect();
    let u = &mut u[..sh.n_tok * sh.rank];
    let (x, a) = (&x[..sh.n_tok * sh.n_in], &a[..sh.rank * sh.n_in]);
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if isa::supported(isa) && isa != Isa::Scalar {
        let (n_in, r, n) = (sh.n_in, sh.rank, sh.n_tok);
        with_scratch(r * n_in, |at| {
            transpose_into(a, r, n_in, at);
            u.fill(0.0);
            gemm_par(pool, isa, at, n_in, r, x, n_in, u, r, n);
        });
        return;
    }
    let _ = (isa, pool);
    for (ut, xt) in u.chunks_exact_mut(sh.rank).zip(x.chunks_exact(sh.n_in)) {
        for (uk, ak) in ut.iter_mut().zip(a.chunks_exact(sh.n_in)) {
            *uk = dot(ak, xt);
        }
    }
}

thread_local! {
    /// The calling thread's LoRA scratch (transposes and `[T, r]` intermediates), kept between
    /// calls so a training step allocates nothing here.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on `n` floats of this thread's scratch (contents unspecified).
pub(super) fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with_borrow_mut(|s| {
        if s.len() < n {
            s.resize(n, 0.0);
        }
        f(&mut s[..n])
    })
}

/// `m[rows, cols]` → `t[cols, rows]`.
fn transpose_into(m: &[f32], rows: usize, cols: usize, t: &mut [f32]) {
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
}

/// `t[cols, rows] += m[rows, cols]ᵀ` (the gradient `dB` from its transposed `dBᵀ`).
fn add_transposed(m: &[f32], rows: usize, cols: usize, t: &mut [f32]) {
    for c in 0..cols {
        for r in 0..rows {
            t[c * rows + r] += m[r * cols + c];
        }
    }
}

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
    pool: &ThreadPool,
) {
    lora_backward_with(isa::detect(), sh, x, a, b, s, u, dy, da, db, dx, pool);
}

/// [`lora_backward`] on path `isa` (an unsupported one runs the scalar reference). The SIMD
/// paths run the four products as small GEMMs on `matmul_t`'s micro-kernel.
#[allow(clippy::too_many_arguments)]
pub fn lora_backward_with(
    isa: Isa,
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
    pool: &ThreadPool,
) {
    backward_impl(isa, sh, x, a, b, s, u, dy, da, db, dx, None, pool)
}

/// [`lora_backward_with`], also copying `g = s · dy B` to `g_out` where given.
#[allow(clippy::too_many_arguments)]
fn backward_impl(
    isa: Isa,
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
    g_out: Option<&mut [f32]>,
    pool: &ThreadPool,
) {
    let LoraShape {
        n_tok,
        n_in,
        n_out,
        rank,
    } = sh;
    let (x, a, b, u, dy) = (
        &x[..n_tok * n_in],
        &a[..rank * n_in],
        &b[..n_out * rank],
        &u[..n_tok * rank],
        &dy[..n_tok * n_out],
    );
    let (da, db) = (&mut da[..rank * n_in], &mut db[..n_out * rank]);
    let dx = dx.map(|d| &mut d[..n_tok * n_in]);
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if isa::supported(isa) && isa != Isa::Scalar {
        let tr = n_tok * rank;
        with_scratch(3 * tr + rank * n_out, |buf| {
            let (g, rest) = buf.split_at_mut(tr);
            let (gt, rest) = rest.split_at_mut(tr);
            let (sut, dbt) = rest.split_at_mut(tr);
            // g = s · dy B  ([T, r]; B is already the [n_out, r] tile).
            g.fill(0.0);
            gemm_par(pool, isa, b, n_out, rank, dy, n_out, g, rank, n_tok);
            g.iter_mut().for_each(|v| *v *= s);
            // dA += gᵀ x: rows of gᵀ against x as the [T, n_in] tile.
            transpose_into(g, n_tok, rank, gt);
            gemm_par(pool, isa, x, n_tok, n_in, gt, n_tok, da, n_in, rank);
            // dBᵀ = s · uᵀ dy ([r, n_out]), then added transposed.
            transpose_into(u, n_tok, rank, sut);
            sut.iter_mut().for_each(|v| *v *= s);
            dbt.fill(0.0);
            gemm_par(pool, isa, dy, n_tok, n_out, sut, n_tok, dbt, n_out, rank);
            add_transposed(dbt, rank, n_out, db);
            // dx += g A (A is the [r, n_in] tile).
            if let Some(dx) = dx {
                gemm_par(pool, isa, a, rank, n_in, g, rank, dx, n_in, n_tok);
            }
            if let Some(go) = g_out {
                go[..tr].copy_from_slice(g);
            }
        });
        return;
    }
    let _ = (isa, pool);
    if let Some(go) = g_out {
        for (gt, dyt) in go[..n_tok * rank]
            .chunks_exact_mut(rank)
            .zip(dy.chunks_exact(n_out))
        {
            for (k, gk) in gt.iter_mut().enumerate() {
                let mut acc = 0f32;
                for (o, &d) in dyt.iter().enumerate() {
                    acc += d * b[o * rank + k];
                }
                *gk = s * acc;
            }
        }
    }
    backward_body(sh, x, a, b, s, u, dy, da, db, dx);
}

/// `dx += g A` (`g` `[T, r]`, `A` `[r, n_in]`, `dx` `[T, n_in]`): the input-gradient product of
/// [`lora_backward`], with its bits, for a caller that has `g` from elsewhere
/// ([`super::lora_bf16`]).
pub(super) fn input_grad(sh: LoraShape, g: &[f32], a: &[f32], dx: &mut [f32], pool: &ThreadPool) {
    let LoraShape {
        n_tok, n_in, rank, ..
    } = sh;
    let (g, a, dx) = (
        &g[..n_tok * rank],
        &a[..rank * n_in],
        &mut dx[..n_tok * n_in],
    );
    let isa = isa::detect();
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    if isa::supported(isa) && isa != Isa::Scalar {
        gemm_par(pool, isa, a, rank, n_in, g, rank, dx, n_in, n_tok);
        return;
    }
    let _ = (isa, pool);
    for (dxt, gt) in dx.chunks_exact_mut(n_in).zip(g.chunks_exact(rank)) {
        for (&c, ak) in gt.iter().zip(a.chunks_exact(n_in)) {
            for (d, &av) in dxt.iter_mut().zip(ak) {
                *d += c * av;
            }
        }
    }
}

/// [`lora_backward`] without its `dx` product: `dA`, `dB` as there, and `g = s · dy B`
/// (`[T, r]`) written to `g` for a caller that adds `g A` to `dx` elsewhere (in the base
/// backward's tile pass: [`super::matmul_t_bf16_lora`]). `g` has `lora_backward`'s bits.
#[allow(clippy::too_many_arguments)]
pub fn lora_backward_g(
    sh: LoraShape,
    x: &[f32],
    a: &[f32],
    b: &[f32],
    s: f32,
    u: &[f32],
    dy: &[f32],
    da: &mut [f32],
    db: &mut [f32],
    g: &mut [f32],
    pool: &ThreadPool,
) {
    backward_impl(
        isa::detect(),
        sh,
        x,
        a,
        b,
        s,
        u,
        dy,
        da,
        db,
        None,
        Some(g),
        pool,
    )
}

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
    transpose_into(b, n_out, rank, &mut bt);
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
    add_transposed(&dbt, rank, n_out, db);
}
