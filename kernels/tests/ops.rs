//! rmsnorm, rope, softmax, swiglu, attention and get_rows against direct f64 formulas.

mod common;

use common::*;
use graft_kernels::cpu::{
    attention, attention_f16, get_rows, rmsnorm_rows_ggml, rope_normal, softmax, swiglu, AttnShape,
};
use graft_quant::QuantType;
use half::f16;

fn close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs() / (1.0 + w.abs());
        assert!(err < tol, "{what}[{i}]: got {g} want {w} (err {err:e})");
    }
}

#[test]
fn rmsnorm_matches_formula() {
    let mut r = rng(11);
    for n in [1usize, 7, 576, 1000] {
        let x = randn(&mut r, n, 3.0);
        let w = randn(&mut r, n, 1.0);
        let mut out = vec![0.0; n];
        rmsnorm_rows_ggml(&x, &w, 1e-5, &mut out, n);
        let ms: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n as f64;
        let s = 1.0 / (ms + 1e-5).sqrt();
        let want: Vec<f64> = x
            .iter()
            .zip(&w)
            .map(|(&a, &b)| a as f64 * s * b as f64)
            .collect();
        close(&out, &want, 1e-5, "rmsnorm");
    }
}

#[test]
fn rope_matches_formula() {
    let mut r = rng(12);
    let (nh, hd) = (3usize, 64usize);
    for (pos, n_rot) in [(0usize, 64usize), (1, 64), (37, 64), (1000, 64), (5, 32)] {
        let x0 = randn(&mut r, nh * hd, 1.0);
        let mut x = x0.clone();
        rope_normal(&mut x, nh, hd, pos, 10000.0, n_rot);
        let mut want = vec![0.0f64; nh * hd];
        for h in 0..nh {
            for i in 0..hd / 2 {
                let (a, b) = (x0[h * hd + 2 * i] as f64, x0[h * hd + 2 * i + 1] as f64);
                if 2 * i < n_rot {
                    let th = pos as f64 * 10000f64.powf(-2.0 * i as f64 / n_rot as f64);
                    want[h * hd + 2 * i] = a * th.cos() - b * th.sin();
                    want[h * hd + 2 * i + 1] = a * th.sin() + b * th.cos();
                } else {
                    want[h * hd + 2 * i] = a;
                    want[h * hd + 2 * i + 1] = b;
                }
            }
        }
        // f32 angles at pos 1000 carry ~1e-4 absolute error, as in ggml.
        close(&x, &want, 2e-3, &format!("rope pos {pos}"));
    }
}

#[test]
fn softmax_and_swiglu_match_formula() {
    let mut r = rng(13);
    let x0 = randn(&mut r, 100, 5.0);
    let mut x = x0.clone();
    softmax(&mut x);
    let m = x0.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
    let s: f64 = x0.iter().map(|&v| (v as f64 - m).exp()).sum();
    let want: Vec<f64> = x0.iter().map(|&v| (v as f64 - m).exp() / s).collect();
    close(&x, &want, 1e-6, "softmax");
    let mut y = vec![f32::NEG_INFINITY, 0.0];
    softmax(&mut y);
    assert_eq!(y, vec![0.0, 1.0]);

    let g = randn(&mut r, 77, 4.0);
    let u = randn(&mut r, 77, 1.0);
    let mut o = vec![0.0; 77];
    swiglu(&g, &u, &mut o);
    let want: Vec<f64> = g
        .iter()
        .zip(&u)
        .map(|(&g, &u)| g as f64 / (1.0 + (-(g as f64)).exp()) * u as f64)
        .collect();
    close(&o, &want, 1e-6, "swiglu");
}

fn naive_attention(
    sh: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    pos0: usize,
    scale: f32,
) -> Vec<f64> {
    let (nh, nkv, hd) = (sh.n_heads, sh.n_kv_heads, sh.head_dim);
    let n = q.len() / (nh * hd);
    let mut out = vec![0.0f64; q.len()];
    for t in 0..n {
        for h in 0..nh {
            let kh = h * nkv / nh;
            let len = pos0 + t + 1;
            let s: Vec<f64> = (0..len)
                .map(|p| {
                    (0..hd)
                        .map(|i| {
                            q[t * nh * hd + h * hd + i] as f64
                                * k[p * nkv * hd + kh * hd + i] as f64
                        })
                        .sum::<f64>()
                        * scale as f64
                })
                .collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = s.iter().map(|&v| (v - m).exp()).sum();
            for i in 0..hd {
                out[t * nh * hd + h * hd + i] = (0..len)
                    .map(|p| (s[p] - m).exp() / z * v[p * nkv * hd + kh * hd + i] as f64)
                    .sum();
            }
        }
    }
    out
}

#[test]
fn attention_matches_naive() {
    let mut r = rng(14);
    let sh = AttnShape {
        n_heads: 9,
        n_kv_heads: 3,
        head_dim: 64,
    };
    for (pos0, n) in [(0usize, 1usize), (0, 5), (7, 1), (20, 3)] {
        let n_kv = pos0 + n + 2; // extra rows past the causal limit must be ignored
        let q = randn(&mut r, n * 9 * 64, 1.0);
        let k = randn(&mut r, n_kv * 3 * 64, 1.0);
        let v = randn(&mut r, n_kv * 3 * 64, 1.0);
        let scale = 1.0 / 8.0;
        let want = naive_attention(sh, &q, &k, &v, pos0, scale);
        let mut out = vec![0.0; q.len()];
        attention(sh, &q, &k, &v, n_kv, pos0, scale, &mut out);
        close(&out, &want, 1e-5, "attention f32");
        // f16 cache: compare with the naive result on the f16-rounded cache.
        let k16: Vec<f16> = k.iter().map(|&v| f16::from_f32(v)).collect();
        let v16: Vec<f16> = v.iter().map(|&v| f16::from_f32(v)).collect();
        let kr: Vec<f32> = k16.iter().map(|v| v.to_f32()).collect();
        let vr: Vec<f32> = v16.iter().map(|v| v.to_f32()).collect();
        let want16 = naive_attention(sh, &q, &kr, &vr, pos0, scale);
        attention_f16(sh, &q, &k16, &v16, n_kv, pos0, scale, &mut out);
        close(&out, &want16, 1e-5, "attention f16");
    }
}

#[test]
fn get_rows_matches_reference_dequantize() {
    let mut r = rng(15);
    for ty in FORMATS {
        let cols = if ty.block_size() == 256 { 512 } else { 576 };
        let rows = 9;
        let (w, deq) = weights(&mut r, ty, rows, cols);
        let (wb, off) = misaligned(&w);
        let ids = [3u32, 0, 8, 3];
        let mut out = vec![0.0f32; ids.len() * cols];
        get_rows(ty, &wb[off..], cols, &ids, &mut out).expect("get_rows");
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(
                out[i * cols..(i + 1) * cols],
                deq[id as usize * cols..(id as usize + 1) * cols],
                "{ty} row {id}"
            );
        }
        assert!(get_rows(ty, &w, cols, &[9], &mut out[..cols]).is_err());
    }
    assert!(get_rows(QuantType::Q4_1, &[0u8; 40], 48, &[0], &mut [0.0; 48]).is_err());
}
