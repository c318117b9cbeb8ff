//! One conformance suite for the op traits (after ggml's `test-backend-ops`): every
//! [`ForwardOps`] op over a table of shapes and options against an f64 reference, and every
//! [`GradOps`] backward against central finite differences of that f64 reference.
//!
//! Rows are data: a new op or spec option is a new row, and a new device runs the same rows
//! through [`devices`] (a device whose views are not host slices stages through host copies, as
//! ggml's suite compares each backend with the CPU).

use graft_kernels::grad::{AttnShape, LoraShape, Precision};
use graft_quant::QuantType;
use graft_runtime::backend::{
    CpuBackend, ForwardOps, LoraInput, LoraMats, Positions, RopeParams, RopeStyle,
};
use graft_runtime::spec::Activation;
use graft_runtime::weights::Matrix;
use graft_train::model::{Accumulate, GradOps};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The devices under test, with their names.
fn devices() -> Vec<(String, CpuBackend)> {
    [1, 3]
        .into_iter()
        .map(|t| {
            let cpu = CpuBackend::new(t).expect("cpu backend");
            (format!("cpu/{t} threads"), cpu)
        })
        .collect()
}

fn rnd(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| rng.gen_range(-1.0f32..1.0) * scale)
        .collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Largest |got − want| relative to max(1, max |want|).
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length");
    let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - w).abs())
        .fold(0.0, f64::max)
        / scale
}

fn check(what: &str, got: &[f32], want: &[f64], tol: f64) {
    let e = rel_err(got, want);
    assert!(e <= tol, "{what}: error {e:.3e} > {tol:.0e}");
}

// ---- f64 references ---------------------------------------------------------------------

fn rmsnorm_ref(x: &[f64], w: &[f64], dim: usize, eps: f64) -> Vec<f64> {
    x.chunks(dim)
        .flat_map(|r| {
            let inv = 1.0 / (r.iter().map(|v| v * v).sum::<f64>() / dim as f64 + eps).sqrt();
            r.iter().zip(w).map(move |(a, b)| a * inv * b)
        })
        .collect()
}

/// RoPE in f64 from its definition (ggml's `rope_yarn` with the angle in f64): pairs by style,
/// angle `p · base^(−2i/n_rot) / factor_i`, linear scaling, YaRN's ramp and magnitude.
fn rope_ref(x: &[f64], pos: &[usize], n_heads: usize, hd: usize, rope: &RopeParams) -> Vec<f64> {
    let mut y = x.to_vec();
    let half = rope.n_rot / 2;
    for (t, &p) in pos.iter().enumerate() {
        for h in 0..n_heads {
            let o = (t * n_heads + h) * hd;
            for i in 0..half {
                let ff = rope.factors.as_ref().map_or(1.0, |f| f64::from(f[i]));
                let extrap = p as f64
                    * f64::from(rope.freq_base).powf(-2.0 * i as f64 / rope.n_rot as f64)
                    / ff;
                let fs = f64::from(rope.freq_scale);
                let mut th = fs * extrap;
                let mut m = f64::from(rope.attn_factor);
                if rope.ext_factor != 0.0 {
                    let [lo, hi] = rope.corr_dims.map(f64::from);
                    let ramp = 1.0 - ((i as f64 - lo) / (hi - lo).max(0.001)).clamp(0.0, 1.0);
                    let mix = ramp * f64::from(rope.ext_factor);
                    th = th * (1.0 - mix) + extrap * mix;
                    m *= 1.0 + 0.1 * (1.0 / fs).ln();
                }
                let (s, c) = th.sin_cos();
                let (i0, i1) = match rope.style {
                    RopeStyle::Normal => (2 * i, 2 * i + 1),
                    RopeStyle::Neox => (i, i + half),
                };
                let (a, b) = (x[o + i0], x[o + i1]);
                y[o + i0] = m * (a * c - b * s);
                y[o + i1] = m * (a * s + b * c);
            }
        }
    }
    y
}

/// The RoPE variants every device must compute: plain normal, NEOX, Llama 3 factors, linear
/// scaling, YaRN.
fn rope_variants(n_rot: usize) -> Vec<(&'static str, RopeParams)> {
    let plain = RopeParams::plain(RopeStyle::Normal, 10000.0, n_rot);
    let factors: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + 0.7 * i as f32).collect();
    let mut yarn = RopeParams {
        style: RopeStyle::Neox,
        freq_scale: 0.25,
        ext_factor: 1.0,
        attn_factor: 0.95,
        ..plain.clone()
    };
    yarn.corr_dims = yarn.yarn_corr_dims(32, 32.0, 1.0);
    vec![
        ("normal", plain.clone()),
        (
            "neox",
            RopeParams {
                style: RopeStyle::Neox,
                freq_base: 1e6,
                ..plain.clone()
            },
        ),
        (
            "factors",
            RopeParams {
                factors: Some(factors.into()),
                ..plain.clone()
            },
        ),
        (
            "linear",
            RopeParams {
                freq_scale: 0.5,
                ..plain
            },
        ),
        ("yarn", yarn),
    ]
}

fn geglu_ref(g: &[f64], u: &[f64]) -> Vec<f64> {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    g.iter()
        .zip(u)
        .map(|(&x, &u)| 0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh()) * u)
        .collect()
}

fn swiglu_ref(g: &[f64], u: &[f64]) -> Vec<f64> {
    g.iter()
        .zip(u)
        .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
        .collect()
}

/// `y = W x` per token, `W` `[rows × cols]`.
fn matmul_ref(w: &[f64], x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|xt| (0..rows).map(move |r| (0..cols).map(|c| w[r * cols + c] * xt[c]).sum()))
        .collect()
}

/// Causal attention within segments; returns `[T, n_head, hd]`.
fn attention_ref(sh: AttnShape, q: &[f64], k: &[f64], v: &[f64], seg: &[u32]) -> Vec<f64> {
    let (t_n, hd) = (sh.n_tok, sh.head_dim);
    let (qd, kvd) = (sh.n_head * hd, sh.n_kv * hd);
    let scale = 1.0 / (hd as f64).sqrt();
    let mut out = vec![0.0; t_n * qd];
    for i in 0..t_n {
        for h in 0..sh.n_head {
            let g = h / (sh.n_head / sh.n_kv);
            let qi = &q[i * qd + h * hd..][..hd];
            let keys: Vec<usize> = (0..=i).filter(|&j| seg[j] == seg[i]).collect();
            let s: Vec<f64> = keys
                .iter()
                .map(|&j| {
                    (0..hd)
                        .map(|d| qi[d] * k[j * kvd + g * hd + d])
                        .sum::<f64>()
                        * scale
                })
                .collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
            for (n, &j) in keys.iter().enumerate() {
                let p = (s[n] - mx).exp() / z;
                for d in 0..hd {
                    out[i * qd + h * hd + d] += p * v[j * kvd + g * hd + d];
                }
            }
        }
    }
    out
}

/// `∂(Σ c·f(x))/∂x_j` by central differences at `n_probe` random coordinates; returns
/// `(j, fd)` pairs.
fn fd_probe(
    f: &dyn Fn(&[f64]) -> Vec<f64>,
    x: &[f64],
    c: &[f64],
    n_probe: usize,
    rng: &mut StdRng,
) -> Vec<(usize, f64)> {
    let h = 1e-5;
    (0..n_probe)
        .map(|_| {
            let j = rng.gen_range(0..x.len());
            let mut xp = x.to_vec();
            xp[j] += h;
            let lp: f64 = f(&xp).iter().zip(c).map(|(a, b)| a * b).sum();
            xp[j] -= 2.0 * h;
            let lm: f64 = f(&xp).iter().zip(c).map(|(a, b)| a * b).sum();
            (j, (lp - lm) / (2.0 * h))
        })
        .collect()
}

fn check_fd(what: &str, grad: &[f32], probes: &[(usize, f64)], tol: f64) {
    let scale = probes.iter().fold(1e-3f64, |m, (_, g)| m.max(g.abs()));
    for &(j, want) in probes {
        let e = (f64::from(grad[j]) - want).abs() / scale;
        assert!(
            e <= tol,
            "{what}: d/dx[{j}] = {} vs {want} (err {e:.2e})",
            grad[j]
        );
    }
}

// ---- forward rows ---------------------------------------------------------------------

#[test]
fn forward_ops_match_f64_references() {
    let mut rng = StdRng::seed_from_u64(1);
    for (dev, ops) in devices() {
        // rmsnorm: (tokens, dim) rows, including a row count past one parallel piece.
        for (n, dim) in [(1, 64), (7, 96), (70, 32)] {
            let (x, w) = (rnd(&mut rng, n * dim, 2.0), rnd(&mut rng, dim, 1.0));
            let mut y = vec![0.0; n * dim];
            ops.rmsnorm(&x, &w, 1e-5, n, dim, &mut y).expect("rmsnorm");
            let want = rmsnorm_ref(&f64s(&x), &f64s(&w), dim, 1e-5);
            check(&format!("{dev} rmsnorm {n}x{dim}"), &y, &want, 1e-5);
        }
        // rope: consecutive and listed positions, full and partial rotation, every variant.
        for (n, heads, hd, n_rot, list) in [
            (3, 4, 16, 16, false),
            (5, 2, 32, 12, true),
            (1, 3, 64, 64, false),
        ] {
            for (name, rope) in rope_variants(n_rot) {
                let x = rnd(&mut rng, n * heads * hd, 1.0);
                let pos: Vec<usize> = (0..n)
                    .map(|t| if list { (t * 7) % 5 } else { 40 + t })
                    .collect();
                let p = if list {
                    Positions::List(&pos)
                } else {
                    Positions::From(40)
                };
                let mut y = x.clone();
                ops.rope(&mut y, n, heads, hd, p, &rope).expect("rope");
                let want = rope_ref(&f64s(&x), &pos, heads, hd, &rope);
                check(
                    &format!("{dev} rope {name} n_rot {n_rot} list {list}"),
                    &y,
                    &want,
                    1e-5,
                );
            }
        }
        // add_bias: every row gets the bias.
        for (n, width) in [(1, 8), (9, 96)] {
            let (x, bias) = (rnd(&mut rng, n * width, 1.0), rnd(&mut rng, width, 1.0));
            let mut y = x.clone();
            ops.add_bias(&mut y, &bias, n, width).expect("add_bias");
            let want: Vec<f64> = (0..n * width)
                .map(|i| f64::from(x[i]) + f64::from(bias[i % width]))
                .collect();
            check(&format!("{dev} add_bias {n}x{width}"), &y, &want, 1e-6);
        }
        // swiglu and add.
        for len in [5, 1536, 40000] {
            let (g, u) = (rnd(&mut rng, len, 4.0), rnd(&mut rng, len, 1.0));
            let mut y = vec![0.0; len];
            ops.swiglu(&g, &u, len, &mut y).expect("swiglu");
            check(
                &format!("{dev} swiglu {len}"),
                &y,
                &swiglu_ref(&f64s(&g), &f64s(&u)),
                1e-5,
            );
            let mut s = g.clone();
            ops.add(&mut s, &u, len).expect("add");
            let want: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(&a, &b)| f64::from(a) + f64::from(b))
                .collect();
            check(&format!("{dev} add {len}"), &s, &want, 1e-6);
        }
        // geglu: ggml's f16 table (2^-11 relative) and the exact training variant; scale;
        // softcap.
        let exact = CpuBackend::new(2)
            .expect("cpu")
            .with_exact_activations(true);
        for len in [7, 40000] {
            let (g, u) = (rnd(&mut rng, len, 12.0), rnd(&mut rng, len, 1.0));
            let want = geglu_ref(&f64s(&g), &f64s(&u));
            let mut y = vec![0.0; len];
            ops.geglu(&g, &u, len, &mut y).expect("geglu");
            check(&format!("{dev} geglu (table) {len}"), &y, &want, 2e-3);
            exact.geglu(&g, &u, len, &mut y).expect("geglu");
            check(&format!("{dev} geglu (exact) {len}"), &y, &want, 1e-5);
            let mut y = g.clone();
            ops.scale(&mut y, 0.37, len).expect("scale");
            let want: Vec<f64> = g.iter().map(|&v| f64::from(v) * 0.37).collect();
            check(&format!("{dev} scale {len}"), &y, &want, 1e-6);
            let mut y = g.clone();
            ops.softcap(&mut y, 3.0, len).expect("softcap");
            let want: Vec<f64> = g
                .iter()
                .map(|&v| 3.0 * (f64::from(v) / 3.0).tanh())
                .collect();
            check(&format!("{dev} softcap {len}"), &y, &want, 1e-5);
        }
        // matmul over block formats (quantized formats round activations to 8 bits).
        for (ty, tol) in [
            (QuantType::F32, 1e-5),
            (QuantType::F16, 1e-2),
            (QuantType::Q8_0, 2e-2),
            (QuantType::Q4_0, 2e-2),
            (QuantType::Q4_1, 2e-2),
            (QuantType::Q4_K, 2e-2),
            (QuantType::Q6_K, 2e-2),
        ] {
            let (rows, cols, n) = (48, 256, 3);
            let w = rnd(&mut rng, rows * cols, 1.0);
            let bytes = graft_quant::blocks::quantize(ty, &w).expect("quantize");
            let mut wd = vec![0.0; w.len()];
            graft_quant::blocks::dequantize(ty, &bytes, &mut wd).expect("dequantize");
            let m = Matrix {
                name: format!("w.{ty}"),
                ty,
                rows,
                cols,
                bytes: &bytes,
            };
            let x = rnd(&mut rng, n * cols, 1.0);
            let mut y = vec![0.0; n * rows];
            ops.matmul(&m, &x, n, &mut y).expect("matmul");
            let want = matmul_ref(&f64s(&wd), &f64s(&x), rows, cols);
            check(&format!("{dev} matmul {ty}"), &y, &want, tol);
            // matmul_group: this matrix with a Q8_0 one of 20 rows on the same input, for one
            // token (the CPU's one-pass path) and for n (one matmul per matrix): the bits of
            // matmul on each.
            let w2 = rnd(&mut rng, 20 * cols, 1.0);
            let bytes2 = graft_quant::blocks::quantize(QuantType::Q8_0, &w2).expect("quantize");
            let m2 = Matrix {
                name: "w2.q8_0".into(),
                ty: QuantType::Q8_0,
                rows: 20,
                cols,
                bytes: &bytes2,
            };
            // An empty group is nothing to do; a group with fewer outputs than matrices is
            // an error, not a panic.
            ops.matmul_group(&[], &x[..cols], 1, &mut [])
                .expect("empty matmul_group");
            let mut only = vec![0.0; rows];
            assert!(ops
                .matmul_group(&[&m, &m2], &x[..cols], 1, &mut [&mut only])
                .is_err());
            for nt in [1, n] {
                let (mut g1, mut g2) = (vec![f32::NAN; nt * rows], vec![f32::NAN; nt * 20]);
                ops.matmul_group(&[&m, &m2], &x[..nt * cols], nt, &mut [&mut g1, &mut g2])
                    .expect("matmul_group");
                let (mut s1, mut s2) = (vec![0.0; nt * rows], vec![0.0; nt * 20]);
                ops.matmul(&m, &x[..nt * cols], nt, &mut s1)
                    .expect("matmul");
                ops.matmul(&m2, &x[..nt * cols], nt, &mut s2)
                    .expect("matmul");
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&g1),
                    bits(&s1),
                    "{dev} matmul_group {ty} ({nt} tokens)"
                );
                assert_eq!(
                    bits(&g2),
                    bits(&s2),
                    "{dev} matmul_group q8_0 ({nt} tokens)"
                );
            }
        }
        // lora on activations and on token ids.
        let (r, n_in, n_out, n) = (4, 40, 24, 5);
        let (a, b) = (rnd(&mut rng, r * n_in, 1.0), rnd(&mut rng, n_out * r, 1.0));
        let m = LoraMats {
            cache_key: None,
            a: &a,
            b: &b,
            rank: r,
            n_in,
            n_out,
            scale: 0.5,
        };
        let x = rnd(&mut rng, n * n_in, 1.0);
        let ids: Vec<u32> = (0..n as u32).map(|t| (t * 11) % n_in as u32).collect();
        for dense in [true, false] {
            let xin: Vec<f32> = if dense {
                x.clone()
            } else {
                ids.iter()
                    .flat_map(|&id| {
                        (0..n_in).map(move |i| if i == id as usize { 1.0 } else { 0.0 })
                    })
                    .collect()
            };
            let input = if dense {
                LoraInput::Dense(&x[..])
            } else {
                LoraInput::Ids(&ids)
            };
            let (mut u, mut y) = (vec![0.0; n * r], vec![0.0; n * n_out]);
            ops.lora(&m, input, n, &mut u, &mut y).expect("lora");
            let uw = matmul_ref(&f64s(&a), &f64s(&xin), r, n_in);
            let yw: Vec<f64> = matmul_ref(&f64s(&b), &uw, n_out, r)
                .iter()
                .map(|v| 0.5 * v)
                .collect();
            check(&format!("{dev} lora u dense {dense}"), &u, &uw, 1e-5);
            check(&format!("{dev} lora y dense {dense}"), &y, &yw, 1e-5);
        }
        // training attention (packed segments) values.
        let sh = AttnShape {
            n_tok: 20,
            n_head: 4,
            n_kv: 2,
            head_dim: 16,
            scale: None,
            window: None,
        };
        let seg: Vec<u32> = (0..20).map(|t| if t < 9 { 0 } else { 1 }).collect();
        let q = rnd(&mut rng, 20 * 64, 1.0);
        let k = rnd(&mut rng, 20 * 32, 1.0);
        let v = rnd(&mut rng, 20 * 32, 1.0);
        let (mut out, mut lse) = (vec![0.0; 20 * 64], vec![0.0; 20 * 4]);
        ops.attention_train(Precision::F32, sh, &q, &k, &v, &seg, &mut out, &mut lse);
        let want = attention_ref(sh, &f64s(&q), &f64s(&k), &f64s(&v), &seg);
        check(&format!("{dev} attention_train"), &out, &want, 1e-4);
    }
}

// ---- backward rows ----------------------------------------------------------------------

#[test]
fn grad_ops_match_finite_differences() {
    let mut rng = StdRng::seed_from_u64(2);
    for (dev, ops) in devices() {
        // rmsnorm backward.
        let (n, dim) = (6, 48);
        let (x, w, dy) = (
            rnd(&mut rng, n * dim, 2.0),
            rnd(&mut rng, dim, 1.0),
            rnd(&mut rng, n * dim, 1.0),
        );
        let mut dx = vec![0.0; n * dim];
        ops.rmsnorm_backward(&x, &w, &dy, &mut dx, dim, 1e-5);
        let wf = f64s(&w);
        let f = |x: &[f64]| rmsnorm_ref(x, &wf, dim, 1e-5);
        let probes = fd_probe(&f, &f64s(&x), &f64s(&dy), 24, &mut rng);
        check_fd(&format!("{dev} rmsnorm_backward"), &dx, &probes, 1e-4);
        // rope backward, partial rotation, listed positions, every variant.
        let (n, heads, hd) = (5, 3, 16);
        for (name, rope) in rope_variants(12) {
            let pos: Vec<usize> = vec![0, 1, 2, 0, 9];
            let mut g = rnd(&mut rng, n * heads * hd, 1.0);
            let c = g.clone();
            let x = rnd(&mut rng, n * heads * hd, 1.0);
            ops.rope_backward(&mut g, &pos, heads, hd, &rope);
            let f = |x: &[f64]| rope_ref(x, &pos, heads, hd, &rope);
            let probes = fd_probe(&f, &f64s(&x), &f64s(&c), 24, &mut rng);
            check_fd(&format!("{dev} rope_backward {name}"), &g, &probes, 1e-4);
        }
        // swiglu and geglu backward.
        let (len, width) = (3 * 40, 40);
        for (act, r) in [
            (
                Activation::Silu,
                swiglu_ref as fn(&[f64], &[f64]) -> Vec<f64>,
            ),
            (Activation::GeluTanh, geglu_ref),
        ] {
            let (ga, up, dh) = (
                rnd(&mut rng, len, 3.0),
                rnd(&mut rng, len, 1.0),
                rnd(&mut rng, len, 1.0),
            );
            // NaN-filled: the backward overwrites, reading nothing of what was there.
            let (mut dg, mut du) = (vec![f32::NAN; len], vec![f32::NAN; len]);
            ops.glu_backward(act, &ga, &up, &dh, &mut dg, &mut du, width);
            let upf = f64s(&up);
            let fg = |g: &[f64]| r(g, &upf);
            let probes = fd_probe(&fg, &f64s(&ga), &f64s(&dh), 16, &mut rng);
            check_fd(&format!("{dev} {act:?} backward gate"), &dg, &probes, 1e-4);
            let gf = f64s(&ga);
            let fu = |u: &[f64]| r(&gf, u);
            let probes = fd_probe(&fu, &f64s(&up), &f64s(&dh), 16, &mut rng);
            check_fd(&format!("{dev} {act:?} backward up"), &du, &probes, 1e-4);
        }
        // base Wᵀ dy (f32 weights: the exact transpose).
        let (rows, cols, n) = (24, 64, 3);
        let wv = rnd(&mut rng, rows * cols, 1.0);
        let bytes: Vec<u8> = wv.iter().flat_map(|v| v.to_le_bytes()).collect();
        let m = Matrix {
            name: "w".into(),
            ty: QuantType::F32,
            rows,
            cols,
            bytes: &bytes,
        };
        let dy = rnd(&mut rng, n * rows, 1.0);
        let mut dx = vec![0.0; n * cols];
        ops.base_matmul_t(Precision::F32, &m, &dy, n, &mut dx, Accumulate::Add)
            .expect("matmul_t");
        let wf = f64s(&wv);
        let f = |x: &[f64]| matmul_ref(&wf, x, rows, cols);
        let probes = fd_probe(&f, &vec![0.0; n * cols], &f64s(&dy), 24, &mut rng);
        check_fd(&format!("{dev} base_matmul_t"), &dx, &probes, 1e-5);
        // The same in bf16: the product of the bf16-rounded operands, f32 sums.
        let mut dx16 = vec![0.0; n * cols];
        ops.base_matmul_t(Precision::Bf16, &m, &dy, n, &mut dx16, Accumulate::Add)
            .expect("matmul_t bf16");
        // Overwriting gives the bits of adding to zeros, whatever the buffer held.
        for (p, want) in [(Precision::F32, &dx), (Precision::Bf16, &dx16)] {
            let mut set = vec![f32::NAN; n * cols];
            ops.base_matmul_t(p, &m, &dy, n, &mut set, Accumulate::Overwrite)
                .expect("matmul_t overwrite");
            assert!(
                set.iter()
                    .zip(want.iter())
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{dev} base_matmul_t {p:?} overwrite differs from adding to zeros"
            );
        }
        let r16 = |v: f32| f64::from(graft_kernels::grad::bf16::round_f32(v));
        for t in 0..n {
            for c in 0..cols {
                let want: f64 = (0..rows)
                    .map(|r| r16(wv[r * cols + c]) * r16(dy[t * rows + r]))
                    .sum();
                let got = f64::from(dx16[t * cols + c]);
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{dev} base_matmul_t bf16 [{t}, {c}]: {got} vs {want}"
                );
            }
        }
        // LoRA backward: dA, dB and dx.
        let sh = LoraShape {
            n_tok: 4,
            n_in: 20,
            n_out: 12,
            rank: 3,
        };
        let (x, a, b) = (
            rnd(&mut rng, 4 * 20, 1.0),
            rnd(&mut rng, 3 * 20, 1.0),
            rnd(&mut rng, 12 * 3, 1.0),
        );
        let mut u = vec![0.0; 4 * 3];
        let mut y = vec![0.0; 4 * 12];
        ops.lora_forward(sh, &x, &a, &b, 0.7, &mut u, &mut y);
        let dy = rnd(&mut rng, 4 * 12, 1.0);
        let (mut da, mut db, mut dx) = (vec![0.0; a.len()], vec![0.0; b.len()], vec![0.0; x.len()]);
        ops.lora_backward(
            Precision::F32,
            sh,
            &x,
            &a,
            &b,
            0.7,
            &u,
            &dy,
            &mut da,
            &mut db,
            Some(&mut dx),
        );
        let lora = |x: &[f64], a: &[f64], b: &[f64]| -> Vec<f64> {
            let u = matmul_ref(a, x, 3, 20);
            matmul_ref(b, &u, 12, 3).iter().map(|v| 0.7 * v).collect()
        };
        let (xf, af, bf, dyf) = (f64s(&x), f64s(&a), f64s(&b), f64s(&dy));
        let probes = fd_probe(&|x: &[f64]| lora(x, &af, &bf), &xf, &dyf, 16, &mut rng);
        check_fd(&format!("{dev} lora_backward dx"), &dx, &probes, 1e-4);
        let probes = fd_probe(&|a: &[f64]| lora(&xf, a, &bf), &af, &dyf, 16, &mut rng);
        check_fd(&format!("{dev} lora_backward dA"), &da, &probes, 1e-4);
        let probes = fd_probe(&|b: &[f64]| lora(&xf, &af, b), &bf, &dyf, 16, &mut rng);
        check_fd(&format!("{dev} lora_backward dB"), &db, &probes, 1e-4);
        // The same in bf16 products (AMX tiles where present, else the f32 kernels): within
        // bf16 rounding (2⁻⁸ relative per operand) of the f32 gradients.
        let (mut da16, mut db16, mut dx16) =
            (vec![0.0; a.len()], vec![0.0; b.len()], vec![0.0; x.len()]);
        ops.lora_backward(
            Precision::Bf16,
            sh,
            &x,
            &a,
            &b,
            0.7,
            &u,
            &dy,
            &mut da16,
            &mut db16,
            Some(&mut dx16),
        );
        for (name, got, want) in [("dA", &da16, &da), ("dB", &db16, &db), ("dx", &dx16, &dx)] {
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (g, w) in got.iter().zip(want.iter()) {
                assert!(
                    (g - w).abs() <= 2e-2 * scale,
                    "{dev} lora_backward bf16 {name}: {g} vs f32 {w}"
                );
            }
        }
        // attention backward over packed segments: dq, dk, dv.
        let sh = AttnShape {
            n_tok: 10,
            n_head: 4,
            n_kv: 2,
            head_dim: 8,
            scale: None,
            window: None,
        };
        let seg: Vec<u32> = (0..10).map(|t| u32::from(t >= 6)).collect();
        let (q, k, v) = (
            rnd(&mut rng, 10 * 32, 1.0),
            rnd(&mut rng, 10 * 16, 1.0),
            rnd(&mut rng, 10 * 16, 1.0),
        );
        let (mut out, mut lse) = (vec![0.0; 10 * 32], vec![0.0; 10 * 4]);
        ops.attention_train(Precision::F32, sh, &q, &k, &v, &seg, &mut out, &mut lse);
        let dout = rnd(&mut rng, 10 * 32, 1.0);
        let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
        ops.attention_backward(
            Precision::F32,
            sh,
            &q,
            &k,
            &v,
            &seg,
            &out,
            &lse,
            &dout,
            &mut dq,
            &mut dk,
            &mut dv,
        );
        let (qf, kf, vf, df) = (f64s(&q), f64s(&k), f64s(&v), f64s(&dout));
        let probes = fd_probe(
            &|q: &[f64]| attention_ref(sh, q, &kf, &vf, &seg),
            &qf,
            &df,
            16,
            &mut rng,
        );
        check_fd(&format!("{dev} attention_backward dq"), &dq, &probes, 1e-3);
        let probes = fd_probe(
            &|k: &[f64]| attention_ref(sh, &qf, k, &vf, &seg),
            &kf,
            &df,
            16,
            &mut rng,
        );
        check_fd(&format!("{dev} attention_backward dk"), &dk, &probes, 1e-3);
        let probes = fd_probe(
            &|v: &[f64]| attention_ref(sh, &qf, &kf, v, &seg),
            &vf,
            &df,
            16,
            &mut rng,
        );
        check_fd(&format!("{dev} attention_backward dv"), &dv, &probes, 1e-3);
        // cross-entropy: mean over masked rows, gradient written over the logits.
        let (n, vocab) = (5, 30);
        let logits = rnd(&mut rng, n * vocab, 3.0);
        let targets: Vec<u32> = vec![3, 29, 0, 7, 11];
        let mask = vec![true, false, true, true, true];
        let mut g = logits.clone();
        let loss = ops
            .cross_entropy(&mut g, vocab, &targets, &mask)
            .expect("cross_entropy");
        let ce = |l: &[f64]| -> Vec<f64> {
            let mut tot = 0.0;
            for (t, row) in l.chunks(vocab).enumerate() {
                if mask[t] {
                    let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = row.iter().map(|x| (x - mx).exp()).sum();
                    tot += mx + z.ln() - row[targets[t] as usize];
                }
            }
            vec![tot / 4.0]
        };
        let lf = f64s(&logits);
        assert!(
            (f64::from(loss) - ce(&lf)[0]).abs() < 1e-4,
            "{dev} cross_entropy loss"
        );
        let probes = fd_probe(&ce, &lf, &[1.0], 24, &mut rng);
        check_fd(&format!("{dev} cross_entropy grad"), &g, &probes, 1e-4);
    }
}
