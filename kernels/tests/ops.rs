//! rmsnorm, rope, softmax, swiglu, attention and get_rows against direct f64 formulas.

mod common;

use common::*;
use graft_kernels::attention::{attention, AttnParams, AttnScratch, GGML_FA_TILE_Q};
use graft_kernels::cpu::{get_rows, rmsnorm_rows_ggml, rope_normal, softmax, swiglu, ThreadPool};
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

/// Causal GQA attention in f64: query `t` (position `pos0 + t`) over cache rows `0..=pos0 + t`.
fn naive_attention(p: &AttnParams, q: &[f64], k: &[f64], v: &[f64]) -> Vec<f64> {
    let (nh, nkv, hd) = (p.n_head, p.n_head_kv, p.head_dim);
    let mut out = vec![0.0f64; q.len()];
    for t in 0..p.n_tokens {
        for h in 0..nh {
            let kh = h * nkv / nh;
            let len = p.pos0 + t + 1;
            let s: Vec<f64> = (0..len)
                .map(|j| {
                    (0..hd)
                        .map(|i| q[t * nh * hd + h * hd + i] * k[j * nkv * hd + kh * hd + i])
                        .sum::<f64>()
                        * p.scale as f64
                })
                .collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            let z: f64 = s.iter().map(|&v| (v - m).exp()).sum();
            for i in 0..hd {
                out[t * nh * hd + h * hd + i] = (0..len)
                    .map(|j| (s[j] - m).exp() / z * v[j * nkv * hd + kh * hd + i])
                    .sum();
            }
        }
    }
    out
}

/// The inference attention (f16 cache read in place) against f64 attention on the same cache:
/// decode and short batches (llama.cpp's per-row kernel: the query and the value accumulator
/// are f16, so the reference takes the f16-rounded query and the tolerance is f16's), long
/// batches (its tiled f32 kernel) and a head size off llama.cpp's kernels (plain f32), at f32
/// accuracy; on 1 and 2 threads.
#[test]
fn attention_matches_naive() {
    let mut r = rng(14);
    let cases = [
        (9usize, 3usize, 64usize, 0usize, 1usize),
        (9, 3, 64, 0, 5),
        (9, 3, 64, 7, 1),
        (9, 3, 64, 20, 3),
        (9, 3, 64, 300, 1),
        (9, 3, 64, 3, 70),
        (4, 2, 6, 11, 4),
    ];
    for (nh, nkv, hd, pos0, n) in cases {
        let p = AttnParams::new(n, pos0, nh, nkv, hd);
        let rows = pos0 + n + 2; // rows past the causal limit must be ignored
        let q = randn(&mut r, n * nh * hd, 1.0);
        let k16: Vec<f16> = randn(&mut r, rows * nkv * hd, 1.0)
            .iter()
            .map(|&x| f16::from_f32(x))
            .collect();
        let v16: Vec<f16> = randn(&mut r, rows * nkv * hd, 1.0)
            .iter()
            .map(|&x| f16::from_f32(x))
            .collect();
        let f16_rows = hd % 8 == 0 && n < GGML_FA_TILE_Q;
        let qr: Vec<f64> = q
            .iter()
            .map(|&x| {
                if f16_rows {
                    f16::from_f32(x).to_f64()
                } else {
                    x as f64
                }
            })
            .collect();
        let kr: Vec<f64> = k16.iter().map(|x| x.to_f64()).collect();
        let vr: Vec<f64> = v16.iter().map(|x| x.to_f64()).collect();
        let want = naive_attention(&p, &qr, &kr, &vr);
        let tol = if f16_rows { 5e-3 } else { 1e-5 };
        for threads in [1, 2] {
            let pool = ThreadPool::new(threads).expect("pool");
            let mut out = vec![f32::NAN; q.len()];
            attention(
                &pool,
                &p,
                &q,
                &k16,
                &v16,
                &mut out,
                &mut AttnScratch::default(),
            );
            close(
                &out,
                &want,
                tol,
                &format!("attention {p:?} threads {threads}"),
            );
        }
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
