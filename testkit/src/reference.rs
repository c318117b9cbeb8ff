//! The f64 reference forward of a [`TinyModel`]: the families' equations written out plainly
//! (full recomputation over the sequence, no caches, no kernels), independent of graft's code.
//! It follows the tensors the model has (biases, q/k norms, `rope_freqs`) and the family's RoPE
//! layout, scaling and NoPE layers, as llama.cpp's graphs do.

use crate::{Tensor, TinyModel};
use std::collections::HashMap;
use std::f64::consts::PI;

/// RoPE of the reference, in f64.
struct Rope {
    /// Ignore the model's scaling (set by [`Rope::windowed`], applied in `with_base`'s caller).
    scaling_off: bool,
    neox: bool,
    n_rot: usize,
    base: f64,
    factors: Option<Vec<f64>>,
    freq_scale: f64,
    yarn: Option<[f64; 2]>,
}

impl Rope {
    fn of(m: &TinyModel, factors: Option<Vec<f64>>) -> Rope {
        Rope::with_base(m, factors, f64::from(m.rope_base))
    }

    /// Gemma 3's windowed layers: plain NEOX RoPE at their own base.
    fn windowed(m: &TinyModel) -> Rope {
        let base = f64::from(m.rope_base_swa.unwrap_or(10000.0));
        Rope {
            scaling_off: true,
            ..Rope::with_base(m, None, base)
        }
    }

    fn with_base(m: &TinyModel, factors: Option<Vec<f64>>, base: f64) -> Rope {
        let (mut freq_scale, mut yarn) = (1.0, None);
        if let Some((ty, factor)) = &m.rope_scaling {
            freq_scale = 1.0 / f64::from(*factor);
            if ty == "yarn" {
                let n = m.n_rot as f64;
                let dim =
                    |beta: f64| n * (m.n_ctx as f64 / (beta * 2.0 * PI)).ln() / (2.0 * base.ln());
                yarn = Some([dim(32.0).floor().max(0.0), dim(1.0).ceil().min(n - 1.0)]);
            }
        }
        Rope {
            scaling_off: false,
            neox: matches!(m.arch.as_str(), "qwen2" | "qwen3" | "gemma3" | "phi3"),
            n_rot: m.n_rot,
            base,
            factors,
            freq_scale,
            yarn,
        }
    }

    /// Rotates every head (`hd` wide) of `x` at position `pos`.
    fn apply(&self, x: &mut [f64], hd: usize, pos: usize) {
        let half = self.n_rot / 2;
        for h in x.chunks_exact_mut(hd) {
            for i in 0..half {
                let ff = self.factors.as_ref().map_or(1.0, |f| f[i]);
                let extrap = pos as f64 * self.base.powf(-2.0 * i as f64 / self.n_rot as f64) / ff;
                let fs = if self.scaling_off {
                    1.0
                } else {
                    self.freq_scale
                };
                let mut theta = fs * extrap;
                let mut mag = 1.0;
                if let Some([lo, hi]) = self.yarn.filter(|_| !self.scaling_off) {
                    let ramp = 1.0 - ((i as f64 - lo) / (hi - lo).max(0.001)).clamp(0.0, 1.0);
                    theta = theta * (1.0 - ramp) + extrap * ramp;
                    mag = 1.0 + 0.1 * (1.0 / self.freq_scale).ln();
                }
                let (s, c) = theta.sin_cos();
                let (i0, i1) = if self.neox {
                    (i, i + half)
                } else {
                    (2 * i, 2 * i + 1)
                };
                let (a, b) = (h[i0], h[i1]);
                h[i0] = mag * (a * c - b * s);
                h[i1] = mag * (a * s + b * c);
            }
        }
    }
}

/// Logits at every position of `tokens` for the model `m` holding `tensors` (as the file holds
/// them). `kv_f16` rounds keys and values to f16, as graft's and llama.cpp's KV cache stores them.
/// A LongRoPE model runs its short factors (a context within the original one).
pub fn logits(m: &TinyModel, tensors: &[Tensor], tokens: &[u32], kv_f16: bool) -> Vec<Vec<f64>> {
    logits_in(m, tensors, tokens, kv_f16, 0)
}

/// [`logits`] for a session of `n_ctx` positions (LongRoPE takes its long factors past the
/// original context).
pub fn logits_in(
    m: &TinyModel,
    tensors: &[Tensor],
    tokens: &[u32],
    kv_f16: bool,
    n_ctx: usize,
) -> Vec<Vec<f64>> {
    let mut owned: HashMap<String, Vec<f64>> = tensors
        .iter()
        .map(|x| {
            let v: Vec<f64> = x.values.iter().map(|&v| f64::from(v)).collect();
            (x.name.clone(), v)
        })
        .collect();
    // Fused tensors (Phi-3): split into the separate projections.
    let (d, hd) = (m.n_embd, m.head_dim());
    for l in 0..m.n_layer {
        if let Some(w) = owned.remove(&format!("blk.{l}.attn_qkv.weight")) {
            let (qd, kvd) = (m.n_head * hd * d, m.n_head_kv * hd * d);
            owned.insert(format!("blk.{l}.attn_q.weight"), w[..qd].to_vec());
            owned.insert(format!("blk.{l}.attn_k.weight"), w[qd..qd + kvd].to_vec());
            owned.insert(format!("blk.{l}.attn_v.weight"), w[qd + kvd..].to_vec());
        }
        if m.fused {
            let w = owned
                .remove(&format!("blk.{l}.ffn_up.weight"))
                .expect("fused ffn_up");
            let half = m.n_ff * d;
            owned.insert(format!("blk.{l}.ffn_gate.weight"), w[..half].to_vec());
            owned.insert(format!("blk.{l}.ffn_up.weight"), w[half..].to_vec());
        }
    }
    let factor_name = match m.long_rope {
        Some(orig) if n_ctx > orig => "rope_factors_long.weight",
        Some(_) => "rope_factors_short.weight",
        None => "rope_freqs.weight",
    };
    let t: HashMap<&str, Vec<f64>> = owned.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let get = |n: &str| -> &Vec<f64> { t.get(n).unwrap_or_else(|| panic!("no tensor {n}")) };
    let (nh, nkv) = (m.n_head, m.n_head_kv);
    let eps = f64::from(m.eps);
    let matvec = |w: &[f64], x: &[f64]| -> Vec<f64> {
        w.chunks_exact(x.len())
            .map(|r| r.iter().zip(x).map(|(a, b)| a * b).sum())
            .collect()
    };
    let rmsnorm = |x: &[f64], w: &[f64]| -> Vec<f64> {
        x.chunks_exact(w.len())
            .flat_map(|r| {
                let s = 1.0 / (r.iter().map(|v| v * v).sum::<f64>() / r.len() as f64 + eps).sqrt();
                r.iter().zip(w).map(move |(a, b)| a * s * b)
            })
            .collect()
    };
    let round = |v: Vec<f64>| -> Vec<f64> {
        if !kv_f16 {
            return v;
        }
        v.into_iter()
            .map(|x| half::f16::from_f64(x).to_f64())
            .collect()
    };
    let rope = Rope::of(m, t.get(factor_name).cloned());
    let rope_swa = Rope::windowed(m);
    let gemma = m.arch == "gemma3";
    let n = tokens.len();
    let emb = get("token_embd.weight");
    let embd_scale = if gemma { (d as f64).sqrt() } else { 1.0 };
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&tok| {
            emb[tok as usize * d..(tok as usize + 1) * d]
                .iter()
                .map(|v| v * embd_scale)
                .collect()
        })
        .collect();
    let gelu = |x: f64| 0.5 * x * (1.0 + ((2.0 / PI).sqrt() * (x + 0.044715 * x * x * x)).tanh());
    for l in 0..m.n_layer {
        let nm = |s: &str| format!("blk.{l}.{s}");
        let linear = |name: &str, x: &[f64]| -> Vec<f64> {
            let mut y = matvec(get(&nm(&format!("{name}.weight"))), x);
            if let Some(b) = t.get(nm(&format!("{name}.bias")).as_str()) {
                y.iter_mut().zip(b).for_each(|(a, c)| *a += c);
            }
            y
        };
        let rotary = m.arch != "smollm3" || !(l + 1).is_multiple_of(4);
        let window = if gemma { m.windowed(l) } else { None };
        let rope_l = if window.is_some() { &rope_swa } else { &rope };
        let post = |name: &str, y: Vec<f64>| -> Vec<f64> {
            match t.get(nm(&format!("{name}.weight")).as_str()) {
                Some(w) => rmsnorm(&y, w),
                None => y,
            }
        };
        let (mut qs, mut ks, mut vs) = (Vec::new(), Vec::new(), Vec::new());
        for (p, x) in xs.iter().enumerate() {
            let h = rmsnorm(x, get(&nm("attn_norm.weight")));
            let mut q = linear("attn_q", &h);
            let mut k = linear("attn_k", &h);
            if let Some(w) = t.get(nm("attn_q_norm.weight").as_str()) {
                q = rmsnorm(&q, w);
                k = rmsnorm(&k, get(&nm("attn_k_norm.weight")));
            }
            if rotary {
                rope_l.apply(&mut q, hd, p);
                rope_l.apply(&mut k, hd, p);
            }
            qs.push(q);
            ks.push(round(k));
            vs.push(round(linear("attn_v", &h)));
        }
        for p in 0..n {
            let mut att = vec![0.0; nh * hd];
            for h in 0..nh {
                let kh = h / (nh / nkv);
                let first = window.map_or(0, |w| (p + 1).saturating_sub(w));
                let sc: Vec<f64> = (first..=p)
                    .map(|j| {
                        (0..hd)
                            .map(|i| qs[p][h * hd + i] * ks[j][kh * hd + i])
                            .sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|s| (s - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, ej) in (first..=p).zip(&e) {
                    for i in 0..hd {
                        att[h * hd + i] += ej / z * vs[j][kh * hd + i];
                    }
                }
            }
            let o = post("post_attention_norm", linear("attn_output", &att));
            xs[p].iter_mut().zip(&o).for_each(|(a, b)| *a += b);
            let h = rmsnorm(&xs[p], get(&nm("ffn_norm.weight")));
            let g = linear("ffn_gate", &h);
            let u = linear("ffn_up", &h);
            let a: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(&g, u)| if gemma { gelu(g) } else { g / (1.0 + (-g).exp()) } * u)
                .collect();
            let dn = post("post_ffw_norm", linear("ffn_down", &a));
            xs[p].iter_mut().zip(&dn).for_each(|(a, b)| *a += b);
        }
    }
    let out = t
        .get("output.weight")
        .unwrap_or_else(|| get("token_embd.weight"));
    let cap = m.final_softcap.filter(|_| gemma).map(f64::from);
    xs.iter()
        .map(|x| {
            let z = matvec(out, &rmsnorm(x, get("output_norm.weight")));
            match cap {
                Some(c) => z.into_iter().map(|v| c * (v / c).tanh()).collect(),
                None => z,
            }
        })
        .collect()
}
