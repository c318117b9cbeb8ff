//! The inference attention against its definition (the f32 row kernels on the widened cache,
//! the old per-call conversion), against an f64 softmax, and across thread counts.

use super::super::{attn_row_ggml, attn_row_ggml_tiled, transpose_k_tiles};
use super::*;

fn rnd16(seed: &mut u32, n: usize) -> Vec<f16> {
    (0..n)
        .map(|_| {
            *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            f16::from_f32((*seed >> 8) as f32 / (1 << 24) as f32 - 0.5)
        })
        .collect()
}

fn rnd(seed: &mut u32, n: usize) -> Vec<f32> {
    rnd16(seed, n).iter().map(|x| x.to_f32() * 3.0).collect()
}

struct Case {
    p: AttnParams,
    q: Vec<f32>,
    k: Vec<f16>,
    v: Vec<f16>,
}

/// Random q and cache (two spare cache rows past the causal limit, which must be ignored).
fn case(n_tokens: usize, pos0: usize, n_head: usize, n_head_kv: usize, hd: usize) -> Case {
    let mut seed = (n_tokens * 31 + pos0 * 7 + hd) as u32;
    let p = AttnParams::new(n_tokens, pos0, n_head, n_head_kv, hd);
    let rows = pos0 + n_tokens + 2;
    Case {
        p,
        q: rnd(&mut seed, n_tokens * n_head * hd),
        k: rnd16(&mut seed, rows * n_head_kv * hd),
        v: rnd16(&mut seed, rows * n_head_kv * hd),
    }
}

fn run(c: &Case, threads: usize) -> Vec<f32> {
    let pool = ThreadPool::new(threads).expect("pool");
    let mut out = vec![f32::NAN; c.q.len()];
    attention(
        &pool,
        &c.p,
        &c.q,
        &c.k,
        &c.v,
        &mut out,
        &mut AttnScratch::default(),
    );
    out
}

/// Decode at a long context, short and long batches, and a head size off llama.cpp's kernels.
fn cases() -> Vec<Case> {
    vec![
        case(1, 0, 9, 3, 64),
        case(1, 3000, 9, 3, 64),
        case(20, 30, 4, 2, 32),
        case(150, 30, 4, 2, 32),
        case(64, 0, 2, 1, 16),
        case(40, 100, 4, 4, 12),
        windowed(case(1, 3000, 9, 3, 64), 512),
        windowed(case(20, 30, 4, 2, 32), 7),
        windowed(case(150, 30, 4, 2, 256), 64),
        windowed(case(40, 100, 4, 4, 12), 5),
        windowed(case(150, 30, 4, 2, 32), 180),
        windowed(case(100, 0, 4, 2, 64), 512),
    ]
}

/// `c` with a sliding window.
fn windowed(mut c: Case, w: usize) -> Case {
    c.p.window = Some(w);
    c
}

#[test]
fn cases_cover_both_sides_of_the_threshold() {
    let work = |p: &AttnParams| p.n_tokens * p.pos0 + p.n_tokens * (p.n_tokens + 1) / 2;
    let all = cases();
    assert!(all
        .iter()
        .any(|c| work(&c.p) * c.p.n_head * c.p.head_dim < PAR_MIN_WORK));
    let big = all
        .iter()
        .filter(|c| work(&c.p) * c.p.n_head * c.p.head_dim >= PAR_MIN_WORK);
    assert!(big.count() >= 3);
}

/// Results are bit-identical for 1, 3 and 16 threads (decode, short and long prefill, plain;
/// the units of work differ: 16 threads run a decode's heads one per unit).
#[test]
fn threaded_split_equals_single_thread() {
    assert_eq!(heads_per_unit(1, 9, 3, 1), 3);
    assert_eq!(heads_per_unit(1, 9, 3, 16), 1);
    for c in cases() {
        let one = run(&c, 1);
        assert!(one.iter().all(|x| x.is_finite()), "{:?}", c.p);
        for threads in [3, 16] {
            let many = run(&c, threads);
            assert_eq!(
                one.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                many.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{:?} threads {threads}",
                c.p
            );
        }
    }
}

/// The units of work: heads of one KV head, as many side by side as keeps threads busy.
#[test]
fn heads_per_unit_trades_sharing_for_threads() {
    // SmolLM2 decode (9 heads, groups of 3): side by side up to 8 threads.
    for threads in [1, 2, 3, 4, 8] {
        assert_eq!(heads_per_unit(1, 9, 3, threads), 3, "{threads}");
    }
    assert_eq!(heads_per_unit(1, 9, 3, 9), 1);
    // Groups of 8: four side by side; no GQA: lone rows; a prime group: lone rows.
    assert_eq!(heads_per_unit(20, 32, 8, 2), 4);
    assert_eq!(heads_per_unit(20, 8, 1, 2), 1);
    assert_eq!(heads_per_unit(5, 14, 7, 2), 1);
}

/// Reading the f16 cache in place gives the bits of the f32 row kernels on the cache widened
/// to f32 (what the runtime computed before, converting the prefix on every call).
#[test]
fn in_place_equals_the_widened_cache_definition() {
    for c in cases()
        .into_iter()
        .filter(|c| c.p.head_dim.is_multiple_of(8) && !window_bites(&c.p))
    {
        let AttnParams {
            n_tokens: n,
            pos0,
            n_head,
            n_head_kv,
            head_dim: hd,
            scale,
            ..
        } = c.p;
        let kw: Vec<f32> = c.k.iter().map(|x| x.to_f32()).collect();
        let vw: Vec<f32> = c.v.iter().map(|x| x.to_f32()).collect();
        let (qd, kvd) = (n_head * hd, n_head_kv * hd);
        let mut want = vec![0.0; n * qd];
        for t in 0..n {
            for h in 0..n_head {
                let off = h / (n_head / n_head_kv) * hd;
                let qh = &c.q[t * qd + h * hd..][..hd];
                let o = &mut want[t * qd + h * hd..][..hd];
                let n_kv = pos0 + t + 1;
                if n >= GGML_FA_TILE_Q {
                    let mut kt = Vec::new();
                    transpose_k_tiles(&kw[off..], kvd, hd, pos0 + n, &mut kt);
                    attn_row_ggml_tiled(qh, &kt, &vw[off..], kvd, n_kv, scale, o);
                } else {
                    attn_row_ggml(qh, &kw[off..], &vw[off..], kvd, n_kv, scale, o);
                }
            }
        }
        for threads in [1, 2] {
            assert_eq!(run(&c, threads), want, "{:?} threads {threads}", c.p);
        }
    }
}

/// Every row against a softmax in f64 on the same (f16) cache: f32 accuracy on the tiled and
/// plain paths; the short-batch path rounds q and its accumulator to f16 as llama.cpp does.
#[test]
fn matches_f64_softmax() {
    for c in cases() {
        let AttnParams {
            n_tokens: n,
            pos0,
            n_head,
            n_head_kv,
            head_dim: hd,
            scale,
            window,
        } = c.p;
        let got = run(&c, 2);
        let (qd, kvd) = (n_head * hd, n_head_kv * hd);
        // Calls whose window bites take the short-batch (f16) kernel at any length.
        let f16_rows = hd.is_multiple_of(8) && (n < GGML_FA_TILE_Q || window_bites(&c.p));
        let tol = if f16_rows { 4e-3 } else { 2e-5 };
        for t in 0..n {
            for h in 0..n_head {
                let off = h / (n_head / n_head_kv) * hd;
                let n_kv = pos0 + t + 1;
                let first = window.map_or(0, |w| n_kv.saturating_sub(w));
                let qh: Vec<f64> = c.q[t * qd + h * hd..][..hd]
                    .iter()
                    .map(|&x| {
                        if f16_rows {
                            f16::from_f32(x).to_f64()
                        } else {
                            x as f64
                        }
                    })
                    .collect();
                let s: Vec<f64> = (first..n_kv)
                    .map(|j| {
                        (0..hd)
                            .map(|i| qh[i] * c.k[j * kvd + off + i].to_f64())
                            .sum::<f64>()
                            * scale as f64
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
                for i in 0..hd {
                    let want: f64 = (first..n_kv)
                        .map(|j| (s[j - first] - mx).exp() / z * c.v[j * kvd + off + i].to_f64())
                        .sum();
                    let g = got[t * qd + h * hd + i] as f64;
                    assert!(
                        (g - want).abs() < tol,
                        "{:?} t {t} h {h} i {i}: {g} vs {want}",
                        c.p
                    );
                }
            }
        }
    }
}

/// A window that hides no key (every position of the call inside it) changes nothing: the
/// call gives the bits of the same call without a window, on the tiled path for long batches.
#[test]
fn a_window_that_does_not_bite_changes_nothing() {
    for c in cases()
        .into_iter()
        .filter(|c| c.p.window.is_some() && !window_bites(&c.p))
    {
        let mut plain = Case {
            p: c.p,
            q: c.q.clone(),
            k: c.k.clone(),
            v: c.v.clone(),
        };
        plain.p.window = None;
        for threads in [1, 2] {
            assert_eq!(run(&c, threads), run(&plain, threads), "{:?}", c.p);
        }
    }
    assert!(window_bites(&windowed(case(64, 0, 1, 1, 8), 63).p));
    assert!(!window_bites(&windowed(case(64, 0, 1, 1, 8), 64).p));
    assert!(!window_bites(&windowed(case(60, 4, 1, 1, 8), 64).p));
    assert!(window_bites(&windowed(case(60, 5, 1, 1, 8), 64).p));
}
