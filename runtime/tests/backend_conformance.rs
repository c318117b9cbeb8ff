//! The backend conformance suite (ggml's `test-backend-ops` is the model): every [`Backend`] op,
//! for every weight format and a spread of shapes (odd sizes, one token, many tokens, long
//! caches, grouped heads, sliding windows), on the GPU against the CPU backend, with the NMSE
//! thresholds stated next to each op.
//!
//! Runs on the first GPU adapter wgpu finds, software ones included: Mesa's lavapipe in CI
//! (`apt-get install mesa-vulkan-drivers`), where `GRAFT_CONFORMANCE=small` keeps the shapes
//! small; in full wherever a real GPU is present. Without any adapter the test fails and says how
//! to get one.
#![cfg(feature = "wgpu")]

use graft_kernels::wgpu::{AdapterChoice, FORMATS};
use graft_quant::QuantType;
use graft_runtime::backend::{
    AttnOpts, AttnShape, Backend, CpuBackend, ForwardOps, GpuBackend, LoraInput, LoraMats,
    Positions, RopeParams, RopeStyle,
};
use graft_runtime::weights::Matrix;
use rand::{Rng, SeedableRng};

/// Matmul and get_rows against the CPU's (which rounds activations to 8 bits for quantized
/// weights): test-backend-ops' bound for mul_mat.
const NMSE_MATMUL: f64 = 1e-6;
/// Element-wise ops, norms, RoPE: both sides in f32.
const NMSE_F32: f64 = 1e-7;
/// Attention over the f16 cache (the CPU rounds differently inside its softmax).
const NMSE_ATTN: f64 = 1e-7;

fn gpu() -> GpuBackend {
    GpuBackend::new(AdapterChoice::First).unwrap_or_else(|e| {
        panic!(
            "no GPU adapter for the conformance suite ({e}); install a Vulkan driver, e.g. \
             Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1"
        )
    })
}

fn cpu() -> CpuBackend {
    CpuBackend::new(2).expect("cpu backend")
}

fn small() -> bool {
    std::env::var("GRAFT_CONFORMANCE").is_ok_and(|v| v == "small")
}

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

fn randn(r: &mut impl Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| (r.gen::<f32>() * 2.0 - 1.0) * scale)
        .collect()
}

/// `Σ(a-b)² / Σb²`.
fn nmse(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let (mut e, mut n) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        assert!(g.is_finite(), "non-finite output {g}");
        e += (g as f64 - w as f64).powi(2);
        n += (w as f64).powi(2);
    }
    e / n.max(1e-30)
}

fn check(what: &str, got: &[f32], want: &[f32], max: f64) {
    let e = nmse(got, want);
    eprintln!("{what}: NMSE {e:.2e}");
    assert!(e <= max, "{what}: NMSE {e:.3e} > {max:.0e}");
}

fn up(g: &GpuBackend, v: &[f32]) -> <GpuBackend as Backend>::Buffer {
    let mut b = g.alloc(v.len()).expect("alloc");
    g.write(&mut b, 0, v).expect("write");
    b
}

fn down(g: &GpuBackend, b: &<GpuBackend as Backend>::Buffer, n: usize) -> Vec<f32> {
    let mut v = vec![0.0; n];
    g.read(b, 0, &mut v).expect("read");
    v
}

/// Random weights of `rows × cols` in format `ty` (quantized by graft's own quantizer).
fn weights(r: &mut impl Rng, ty: QuantType, rows: usize, cols: usize) -> Vec<u8> {
    let v = randn(r, rows * cols, 1.0);
    graft_quant::blocks::quantize(ty, &v).expect("quantize")
}

fn formats(cpu: &CpuBackend) -> Vec<QuantType> {
    FORMATS.into_iter().filter(|&t| cpu.supports(t)).collect()
}

fn cols_for(ty: QuantType, base: usize) -> usize {
    base.next_multiple_of(ty.block_size().max(32))
}

#[test]
fn matmul_matches_the_cpu_for_every_format_and_shape() {
    let (g, c) = (gpu().with_max_binding(64 << 10), cpu());
    let shapes: &[(usize, usize, usize)] = if small() {
        &[(1, 256, 1), (37, 256, 3), (70, 512, 9)]
    } else {
        &[
            (1, 256, 1),
            (37, 256, 3),
            (70, 512, 9),
            (129, 768, 17),
            (300, 1536, 1),
        ]
    };
    let mut r = rng(1);
    for ty in formats(&c) {
        for &(rows, cols0, n) in shapes {
            let cols = cols_for(ty, cols0);
            let bytes = weights(&mut r, ty, rows, cols);
            let w = Matrix {
                name: format!("w.{ty:?}"),
                ty,
                rows,
                cols,
                bytes: &bytes,
            };
            let x = randn(&mut r, n * cols, 1.0);
            let mut want = vec![0.0; n * rows];
            c.matmul(&w, &x, n, &mut want).expect("cpu matmul");
            let xb = up(&g, &x);
            let mut yb = g.alloc(n * rows).expect("alloc");
            g.matmul(
                &w,
                g.view(&xb, 0, n * cols),
                n,
                g.view_mut(&mut yb, 0, n * rows),
            )
            .expect("gpu matmul");
            let got = down(&g, &yb, n * rows);
            check(
                &format!("matmul {ty:?} {rows}x{cols} n={n}"),
                &got,
                &want,
                NMSE_MATMUL,
            );
        }
    }
}

#[test]
fn get_rows_matches_the_cpu_for_every_format() {
    let (g, c) = (gpu().with_max_binding(16 << 10), cpu());
    let mut r = rng(2);
    for ty in formats(&c) {
        let (rows, cols) = (97, cols_for(ty, 320));
        let bytes = weights(&mut r, ty, rows, cols);
        let w = Matrix {
            name: "emb".into(),
            ty,
            rows,
            cols,
            bytes: &bytes,
        };
        let ids = [0u32, 96, 5, 5, 50, 1, 95];
        let mut want = vec![0.0; ids.len() * cols];
        c.get_rows(&w, &ids, &mut want).expect("cpu get_rows");
        let mut ob = g.alloc(ids.len() * cols).expect("alloc");
        g.get_rows(&w, &ids, g.view_mut(&mut ob, 0, ids.len() * cols))
            .expect("gpu get_rows");
        check(
            &format!("get_rows {ty:?}"),
            &down(&g, &ob, ids.len() * cols),
            &want,
            1e-12,
        );
        let e = g
            .get_rows(&w, &[97], g.view_mut(&mut ob, 0, cols))
            .expect_err("row past the table");
        assert!(e.to_string().contains("97"), "{e}");
    }
}

#[test]
fn rmsnorm_matches_the_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut r = rng(3);
    for &(n, dim) in &[(1usize, 64usize), (5, 576), (3, 1000), (33, 256)] {
        let x = randn(&mut r, n * dim, 3.0);
        let w = randn(&mut r, dim, 1.0);
        let mut want = vec![0.0; n * dim];
        c.rmsnorm(&x, &w, 1e-5, n, dim, &mut want).expect("cpu");
        let (xb, wb) = (up(&g, &x), up(&g, &w));
        let mut ob = g.alloc(n * dim).expect("alloc");
        g.rmsnorm(
            g.view(&xb, 0, n * dim),
            g.view(&wb, 0, dim),
            1e-5,
            n,
            dim,
            g.view_mut(&mut ob, 0, n * dim),
        )
        .expect("gpu");
        check(
            &format!("rmsnorm {n}x{dim}"),
            &down(&g, &ob, n * dim),
            &want,
            NMSE_F32,
        );
    }
}

#[test]
fn rope_matches_the_cpu_in_both_styles_with_factors_and_partial_rotation() {
    let (g, c) = (gpu(), cpu());
    let mut r = rng(4);
    let mut factors = RopeParams::plain(RopeStyle::Neox, 500000.0, 64);
    factors.factors = Some((0..32).map(|i| 1.0 + i as f32 * 0.3).collect());
    factors.freq_scale = 0.25;
    let cases = [
        (RopeParams::plain(RopeStyle::Normal, 10000.0, 64), 64, 3, 1),
        (RopeParams::plain(RopeStyle::Neox, 1e6, 128), 128, 7, 4),
        (RopeParams::plain(RopeStyle::Normal, 10000.0, 32), 80, 2, 5),
        (factors, 64, 5, 3),
    ];
    for (i, (rope, hd, heads, n)) in cases.into_iter().enumerate() {
        let len = n * heads * hd;
        let x = randn(&mut r, len, 2.0);
        let list: Vec<usize> = (0..n).map(|t| 3 * t + 1000 * i).collect();
        for pos in [Positions::From(17 + 900 * i), Positions::List(&list)] {
            let mut want = x.clone();
            c.rope(&mut want, n, heads, hd, pos, &rope).expect("cpu");
            let mut xb = up(&g, &x);
            g.rope(g.view_mut(&mut xb, 0, len), n, heads, hd, pos, &rope)
                .expect("gpu");
            check(
                &format!("rope case {i}"),
                &down(&g, &xb, len),
                &want,
                NMSE_F32,
            );
        }
    }
}

#[test]
fn element_wise_ops_match_the_cpu() {
    let (g, c) = (gpu(), cpu());
    let mut r = rng(5);
    for len in [1usize, 63, 4097, 70_001] {
        let a = randn(&mut r, len, 4.0);
        let b = randn(&mut r, len, 4.0);
        let (ab, bb) = (up(&g, &a), up(&g, &b));
        // swiglu / geglu
        for gelu in [false, true] {
            let mut want = vec![0.0; len];
            if gelu {
                c.geglu(&a, &b, len, &mut want).expect("cpu");
            } else {
                c.swiglu(&a, &b, len, &mut want).expect("cpu");
            }
            let mut ob = g.alloc(len).expect("alloc");
            let (av, bv, ov) = (
                g.view(&ab, 0, len),
                g.view(&bb, 0, len),
                g.view_mut(&mut ob, 0, len),
            );
            if gelu {
                g.geglu(av, bv, len, ov).expect("gpu");
            } else {
                g.swiglu(av, bv, len, ov).expect("gpu");
            }
            // The CPU takes GELU from ggml's f16 table and SiLU through its own expf.
            let bound = 1e-12;
            check(
                &format!("glu gelu={gelu} len={len}"),
                &down(&g, &ob, len),
                &want,
                bound,
            );
        }
        // add, scale, softcap (in place on a copy of a)
        let mut want = a.clone();
        c.add(&mut want, &b, len).expect("cpu");
        let mut xb = up(&g, &a);
        g.add(g.view_mut(&mut xb, 0, len), g.view(&bb, 0, len), len)
            .expect("gpu");
        check(
            &format!("add len={len}"),
            &down(&g, &xb, len),
            &want,
            NMSE_F32,
        );
        let mut want = a.clone();
        c.scale(&mut want, 0.125, len).expect("cpu");
        let mut xb = up(&g, &a);
        g.scale(g.view_mut(&mut xb, 0, len), 0.125, len)
            .expect("gpu");
        check(
            &format!("scale len={len}"),
            &down(&g, &xb, len),
            &want,
            NMSE_F32,
        );
        let mut want = a.clone();
        c.softcap(&mut want, 3.0, len).expect("cpu");
        let mut xb = up(&g, &a);
        g.softcap(g.view_mut(&mut xb, 0, len), 3.0, len)
            .expect("gpu");
        check(
            &format!("softcap len={len}"),
            &down(&g, &xb, len),
            &want,
            1e-6,
        );
    }
    // add_bias over rows
    let (n, width) = (7, 300);
    let x = randn(&mut r, n * width, 1.0);
    let bias = randn(&mut r, width, 1.0);
    let mut want = x.clone();
    c.add_bias(&mut want, &bias, n, width).expect("cpu");
    let (mut xb, bb) = (up(&g, &x), up(&g, &bias));
    g.add_bias(
        g.view_mut(&mut xb, 0, n * width),
        g.view(&bb, 0, width),
        n,
        width,
    )
    .expect("gpu");
    check("add_bias", &down(&g, &xb, n * width), &want, NMSE_F32);
}

/// One attention call on both backends after filling the cache with `pos0 + n` random rows.
fn attention_case(g: &GpuBackend, c: &CpuBackend, s: AttnShape, seed: u64) {
    let mut r = rng(seed);
    let kvd = s.n_head_kv * s.head_dim;
    let n_ctx = s.pos0 + s.n_tokens + 3;
    let total = (s.pos0 + s.n_tokens) * kvd;
    let (k, v) = (randn(&mut r, total, 1.0), randn(&mut r, total, 1.0));
    let nq = s.n_tokens * s.n_head * s.head_dim;
    let q = randn(&mut r, nq, 1.0);
    // CPU
    let (mut kc, mut vc) = (
        c.alloc_kv(n_ctx * kvd).expect("kv"),
        c.alloc_kv(n_ctx * kvd).expect("kv"),
    );
    c.store_kv(&k, &mut kc, 0, total).expect("store");
    c.store_kv(&v, &mut vc, 0, total).expect("store");
    let mut want = vec![0.0; nq];
    let mut qc = q.clone();
    c.attention(&mut qc, &kc, &vc, s, &mut want)
        .expect("cpu attention");
    // GPU: the cache filled in two stores (earlier positions, then this call's), as a session.
    let (mut kg, mut vg) = (
        g.alloc_kv(n_ctx * kvd).expect("kv"),
        g.alloc_kv(n_ctx * kvd).expect("kv"),
    );
    let (kb, vb) = (up(g, &k), up(g, &v));
    let split = s.pos0 * kvd;
    for (off, len) in [(0, split), (split, total - split)] {
        if len > 0 {
            g.store_kv(g.view(&kb, off, len), &mut kg, off, len)
                .expect("store k");
            g.store_kv(g.view(&vb, off, len), &mut vg, off, len)
                .expect("store v");
        }
    }
    let mut qb = up(g, &q);
    let mut ob = g.alloc(nq).expect("alloc");
    g.attention(
        g.view_mut(&mut qb, 0, nq),
        &kg,
        &vg,
        s,
        g.view_mut(&mut ob, 0, nq),
    )
    .expect("gpu attention");
    check(
        &format!("attention {s:?}"),
        &down(g, &ob, nq),
        &want,
        NMSE_ATTN,
    );
}

#[test]
fn attention_matches_the_cpu_over_short_and_long_caches_gqa_and_windows() {
    let (g, c) = (gpu(), cpu());
    let shape = |n_tokens, pos0, n_head, n_head_kv, head_dim, window, scale| AttnShape {
        n_tokens,
        pos0,
        n_head,
        n_head_kv,
        head_dim,
        opts: AttnOpts { window, scale },
    };
    let mut cases = vec![
        shape(1, 0, 4, 4, 64, None, None),
        shape(1, 130, 9, 3, 64, None, None),
        shape(7, 20, 4, 1, 256, None, Some(1.0)),
        shape(5, 40, 4, 2, 128, Some(16), None),
        shape(33, 0, 2, 2, 32, None, None),
    ];
    if !small() {
        cases.push(shape(1, 2000, 8, 2, 64, None, None));
        cases.push(shape(64, 500, 4, 4, 64, Some(512), None));
    }
    for (i, s) in cases.into_iter().enumerate() {
        attention_case(&g, &c, s, 10 + i as u64);
    }
}

#[test]
fn lora_matches_the_cpu_dense_and_on_token_ids_cached_or_not() {
    let (g, c) = (gpu(), cpu());
    let mut r = rng(6);
    let (rank, n_in, n_out, n) = (8, 200, 150, 5);
    let a = randn(&mut r, rank * n_in, 0.1);
    let b = randn(&mut r, n_out * rank, 0.1);
    let x = randn(&mut r, n * n_in, 1.0);
    let y0 = randn(&mut r, n * n_out, 1.0);
    let ids = [3u32, 199, 0, 3, 77];
    for key in [None, Some((9_999_999, 1))] {
        let m = LoraMats {
            a: &a,
            b: &b,
            rank,
            n_in,
            n_out,
            scale: 0.75,
            cache_key: key,
        };
        for dense in [true, false] {
            let mut want = y0.clone();
            let mut u = vec![0.0; n * rank];
            let input = if dense {
                LoraInput::Dense(&x[..])
            } else {
                LoraInput::Ids(&ids)
            };
            c.lora(&m, input, n, &mut u, &mut want).expect("cpu");
            let xb = up(&g, &x);
            let mut yb = up(&g, &y0);
            let input = if dense {
                LoraInput::Dense(g.view(&xb, 0, n * n_in))
            } else {
                LoraInput::Ids(&ids)
            };
            g.lora(&m, input, n, &mut u, g.view_mut(&mut yb, 0, n * n_out))
                .expect("gpu");
            check(
                &format!("lora dense={dense} key={key:?}"),
                &down(&g, &yb, n * n_out),
                &want,
                NMSE_F32,
            );
        }
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    let g = gpu();
    let mut small_buf = g.alloc(10).expect("alloc");
    let other = g.alloc(10).expect("alloc");
    let e = g
        .add(g.view_mut(&mut small_buf, 0, 10), g.view(&other, 0, 10), 11)
        .expect_err("too long");
    assert!(e.to_string().contains("add"), "{e}");
    let mut dst = vec![0.0; 11];
    assert!(g.read(&other, 0, &mut dst).is_err());
    assert!(g.write(&mut small_buf, 5, &[0.0; 6]).is_err());
    let mut kv = g.alloc_kv(8).expect("kv");
    assert!(g.store_kv(g.view(&other, 0, 10), &mut kv, 4, 6).is_err());
}
