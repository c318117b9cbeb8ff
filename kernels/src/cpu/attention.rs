//! Causal grouped-query attention of a few query tokens against a KV cache.

use half::f16;

/// Head layout of an attention call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (`n_heads` is a multiple of it; query head `h` reads KV head
    /// `h / (n_heads / n_kv_heads)`, as llama.cpp).
    pub n_kv_heads: usize,
    /// Elements per head.
    pub head_dim: usize,
}

/// Causal GQA attention with an f32 KV cache.
///
/// - `q`: `n_tokens` rows of `n_heads * head_dim` (RoPE already applied); query `t` sits at
///   position `pos0 + t`.
/// - `k`, `v`: the cache, position-major: row `p` (0..n_kv) holds `n_kv_heads * head_dim`
///   values for position `p`. Rows `0..=pos0 + t` must be filled; `n_kv >= pos0 + n_tokens`.
/// - `scale`: multiplies `q·k` before the softmax (usually `1 / sqrt(head_dim)`).
/// - `out`: `n_tokens` rows of `n_heads * head_dim`.
///
/// Query `t` attends to positions `0..=pos0 + t` (causal mask).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    shape: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    n_kv: usize,
    pos0: usize,
    scale: f32,
    out: &mut [f32],
) {
    attention_impl(shape, q, k, v, n_kv, pos0, scale, out)
}

/// As [`attention`] with an f16 KV cache.
#[allow(clippy::too_many_arguments)]
pub fn attention_f16(
    shape: AttnShape,
    q: &[f32],
    k: &[f16],
    v: &[f16],
    n_kv: usize,
    pos0: usize,
    scale: f32,
    out: &mut [f32],
) {
    attention_impl(shape, q, k, v, n_kv, pos0, scale, out)
}

/// A KV cache element type: rows are read as f32 (f16 rows are converted in bulk).
trait KvElem: Copy {
    /// `row` as f32: borrowed as is for f32, converted into `buf` for f16.
    fn row<'a>(row: &'a [Self], buf: &'a mut [f32]) -> &'a [f32];
}
impl KvElem for f32 {
    #[inline(always)]
    fn row<'a>(row: &'a [f32], _buf: &'a mut [f32]) -> &'a [f32] {
        row
    }
}
impl KvElem for f16 {
    #[inline(always)]
    fn row<'a>(row: &'a [f16], buf: &'a mut [f32]) -> &'a [f32] {
        use half::slice::HalfFloatSliceExt;
        row.convert_to_f32_slice(&mut buf[..row.len()]);
        &buf[..row.len()]
    }
}

/// Dot product with eight independent partial sums (vectorizes without fast-math).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = acc.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Runs [`attention_body`] compiled for the widest float SIMD this CPU has (the body is
/// plain Rust; on x86_64 with AVX2+FMA it is compiled a second time with those features).
#[allow(clippy::too_many_arguments)]
fn attention_impl<T: KvElem>(
    shape: AttnShape,
    q: &[f32],
    k: &[T],
    v: &[T],
    n_kv: usize,
    pos0: usize,
    scale: f32,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if super::isa::Isa::Avx2.is_available() {
        // SAFETY: AVX2, FMA and F16C were detected just above.
        unsafe { attention_avx2(shape, q, k, v, n_kv, pos0, scale, out) };
        return;
    }
    attention_body(shape, q, k, v, n_kv, pos0, scale, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn attention_avx2<T: KvElem>(
    shape: AttnShape,
    q: &[f32],
    k: &[T],
    v: &[T],
    n_kv: usize,
    pos0: usize,
    scale: f32,
    out: &mut [f32],
) {
    attention_body(shape, q, k, v, n_kv, pos0, scale, out)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attention_body<T: KvElem>(
    shape: AttnShape,
    q: &[f32],
    k: &[T],
    v: &[T],
    n_kv: usize,
    pos0: usize,
    scale: f32,
    out: &mut [f32],
) {
    let AttnShape {
        n_heads,
        n_kv_heads,
        head_dim: hd,
    } = shape;
    assert!(
        n_kv_heads > 0 && n_heads % n_kv_heads == 0,
        "attention: bad head counts"
    );
    let qrow = n_heads * hd;
    let kvrow = n_kv_heads * hd;
    let n_tokens = q.len() / qrow.max(1);
    assert!(q.len() == n_tokens * qrow, "attention: q length");
    assert!(out.len() == q.len(), "attention: out length");
    assert!(pos0 + n_tokens <= n_kv, "attention: n_kv < pos0 + n_tokens");
    assert!(
        k.len() >= n_kv * kvrow && v.len() >= n_kv * kvrow,
        "attention: cache too short"
    );
    let group = n_heads / n_kv_heads;
    let mut scores = vec![0.0f32; pos0 + n_tokens];
    let mut acc = vec![0.0f32; hd];
    let mut buf = vec![0.0f32; hd];
    for t in 0..n_tokens {
        let len = pos0 + t + 1;
        for h in 0..n_heads {
            let kh = h / group;
            let qh = &q[t * qrow + h * hd..][..hd];
            let s = &mut scores[..len];
            for (p, sp) in s.iter_mut().enumerate() {
                let kr = T::row(&k[p * kvrow + kh * hd..][..hd], &mut buf);
                *sp = dot(qh, kr) * scale;
            }
            super::softmax::softmax_inline(s);
            acc.fill(0.0);
            for (p, &sp) in s.iter().enumerate() {
                let vr = T::row(&v[p * kvrow + kh * hd..][..hd], &mut buf);
                for (a, b) in acc.iter_mut().zip(vr) {
                    *a += sp * b;
                }
            }
            out[t * qrow + h * hd..][..hd].copy_from_slice(&acc);
        }
    }
}
