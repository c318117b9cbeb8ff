//! rmsnorm, rope, swiglu and residual backward vs f64 central finite differences of
//! `Σ r ⊙ f(x)` on f64 reference forwards written here.

mod grad_common;
use grad_common::*;

use graft_kernels::cpu::{RopeParams, RopeStyle};
use graft_kernels::grad::{residual_backward, rmsnorm_backward, rope_backward, swiglu_backward};

/// f32 kernel vs f64 finite differences (FD error ~1e-9, so this is the kernel's f32 error).
const TOL: f64 = 1e-4;
const H: f64 = 1e-5;

fn rmsnorm64(x: &[f64], w: &[f64], dim: usize, eps: f64) -> Vec<f64> {
    let mut y = vec![0f64; x.len()];
    for (xr, yr) in x.chunks(dim).zip(y.chunks_mut(dim)) {
        let inv = 1.0 / (xr.iter().map(|v| v * v).sum::<f64>() / dim as f64 + eps).sqrt();
        for ((o, xv), wv) in yr.iter_mut().zip(xr).zip(w) {
            *o = xv * inv * wv;
        }
    }
    y
}

#[test]
fn rmsnorm_backward_vs_fd() {
    let (n_tok, dim, eps) = (4, 48, 1e-5f32);
    let mut rng = Rng::new(11);
    let x = rng.vec(n_tok * dim, 2.0);
    let w = rng.vec(dim, 1.5);
    let r = to64(&rng.vec(n_tok * dim, 1.0));
    let dy: Vec<f32> = r.iter().map(|&v| v as f32).collect();
    let base = rng.vec(n_tok * dim, 1.0);
    let mut dx = base.clone();
    rmsnorm_backward(&x, &w, &dy, &mut dx, dim, eps);
    let w6 = to64(&w);
    let g = fd_grad(&to64(&x), H, |p| {
        dotr(&r, &rmsnorm64(p, &w6, dim, f64::from(eps)))
    });
    let want: Vec<f64> = g
        .iter()
        .zip(&base)
        .map(|(a, &b)| a + f64::from(b))
        .collect();
    let got_delta: Vec<f32> = dx.iter().zip(&base).map(|(a, b)| a - b).collect();
    check("rmsnorm dx vs FD", &got_delta, &g, TOL);
    check("rmsnorm dx accumulates", &dx, &want, TOL);
}

fn rope64(x: &[f64], pos: &[usize], n_head: usize, hd: usize, base: f64, n_rot: usize) -> Vec<f64> {
    let mut y = x.to_vec();
    for (t, &p) in pos.iter().enumerate() {
        for h in 0..n_head {
            for i in 0..n_rot / 2 {
                let th = p as f64 * base.powf(-2.0 * i as f64 / n_rot as f64);
                let o = (t * n_head + h) * hd + 2 * i;
                let (a, b) = (x[o], x[o + 1]);
                y[o] = a * th.cos() - b * th.sin();
                y[o + 1] = a * th.sin() + b * th.cos();
            }
        }
    }
    y
}

#[test]
fn rope_backward_vs_fd() {
    rope_case(16);
    // Partial rotation: the last 4 dims of each head pass through.
    rope_case(12);
}

fn rope_case(n_rot: usize) {
    let (n_head, hd, base) = (3, 16, 10000.0f32);
    let pos = [0usize, 1, 2, 7, 31, 100];
    let n_tok = pos.len();
    let mut rng = Rng::new(12);
    let x = rng.vec(n_tok * n_head * hd, 1.0);
    let r = to64(&rng.vec(x.len(), 1.0));
    let mut g: Vec<f32> = r.iter().map(|&v| v as f32).collect();
    rope_backward(
        &mut g,
        &pos,
        n_head,
        hd,
        &RopeParams::plain(RopeStyle::Normal, base, n_rot),
    );
    let want = fd_grad(&to64(&x), H, |p| {
        dotr(&r, &rope64(p, &pos, n_head, hd, f64::from(base), n_rot))
    });
    check(&format!("rope n_rot {n_rot} dx vs FD"), &g, &want, TOL);
}

#[test]
fn swiglu_backward_vs_fd() {
    let n = 64;
    let mut rng = Rng::new(13);
    let g = rng.vec(n, 4.0);
    let u = rng.vec(n, 2.0);
    let r = to64(&rng.vec(n, 1.0));
    let dh: Vec<f32> = r.iter().map(|&v| v as f32).collect();
    let silu = |x: f64| x / (1.0 + (-x).exp());
    let (g6, u6) = (to64(&g), to64(&u));
    let fg = fd_grad(&g6, H, |p| {
        dotr(
            &r,
            &p.iter()
                .zip(&u6)
                .map(|(a, b)| silu(*a) * b)
                .collect::<Vec<_>>(),
        )
    });
    let fu = fd_grad(&u6, H, |p| {
        dotr(
            &r,
            &g6.iter()
                .zip(p)
                .map(|(a, b)| silu(*a) * b)
                .collect::<Vec<_>>(),
        )
    });
    let (mut dg, mut du) = (vec![f32::NAN; n], vec![f32::NAN; n]);
    swiglu_backward(&g, &u, &dh, &mut dg, &mut du);
    check("swiglu dg vs FD", &dg, &fg, TOL);
    check("swiglu du vs FD", &du, &fu, TOL);
}

#[test]
fn residual_backward_adds() {
    let mut rng = Rng::new(14);
    let dy = rng.vec(10, 1.0);
    let base = rng.vec(10, 1.0);
    let mut da = base.clone();
    residual_backward(&dy, &mut da);
    let want: Vec<f64> = dy
        .iter()
        .zip(&base)
        .map(|(a, b)| f64::from(*a) + f64::from(*b))
        .collect();
    check("residual", &da, &want, 1e-7);
}
