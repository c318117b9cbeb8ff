//! Causal GQA attention (n_head 4, n_kv 2), with and without packed-sequence segments:
//! forward (out, lse) vs an f64 reference; backward (dq, dk, dv) vs f64 central finite
//! differences of `Σ r ⊙ out`.

mod grad_common;
use grad_common::*;

use graft_kernels::grad::{attention_backward, attention_forward, AttnShape};

/// f32 kernel vs f64 finite differences (FD error ~1e-9, so this is the kernel's f32 error).
const TOL: f64 = 1e-4;

fn run(seg: Option<&[u32]>, seed: u64, threads: usize) {
    run_with(seg, seed, threads, None, None)
}

fn run_with(
    seg: Option<&[u32]>,
    seed: u64,
    threads: usize,
    scale: Option<f32>,
    window: Option<usize>,
) {
    let sh = AttnShape {
        n_tok: seg.map_or(7, |s| s.len()),
        n_head: 4,
        n_kv: 2,
        head_dim: 8,
        scale,
        window,
    };
    let mut rng = Rng::new(seed);
    let q = rng.vec(sh.n_tok * sh.n_head * sh.head_dim, 1.5);
    let k = rng.vec(sh.n_tok * sh.n_kv * sh.head_dim, 1.5);
    let v = rng.vec(k.len(), 1.0);
    let r = to64(&rng.vec(q.len(), 1.0));
    let (q6, k6, v6) = (to64(&q), to64(&k), to64(&v));

    let mut out = vec![0f32; q.len()];
    let mut lse = vec![0f32; sh.n_tok * sh.n_head];
    attention_forward(sh, &q, &k, &v, seg, &mut out, &mut lse, &pool(threads));
    let (o64, l64) = attn64(sh, &q6, &k6, &v6, seg);
    let tag = format!(
        "{} scale {scale:?} window {window:?} x{threads}",
        if seg.is_some() { "segments" } else { "causal" }
    );
    check(&format!("attn {tag} out"), &out, &o64, 1e-5);
    check(&format!("attn {tag} lse"), &lse, &l64, 1e-5);

    let dout: Vec<f32> = r.iter().map(|&x| x as f32).collect();
    let (mut dq, mut dk, mut dv) = (
        vec![0f32; q.len()],
        vec![0f32; k.len()],
        vec![0f32; v.len()],
    );
    attention_backward(
        sh,
        &q,
        &k,
        &v,
        seg,
        &out,
        &lse,
        &dout,
        &mut dq,
        &mut dk,
        &mut dv,
        &pool(threads),
    );
    let h = 1e-5;
    let gq = fd_grad(&q6, h, |p| dotr(&r, &attn64(sh, p, &k6, &v6, seg).0));
    let gk = fd_grad(&k6, h, |p| dotr(&r, &attn64(sh, &q6, p, &v6, seg).0));
    let gv = fd_grad(&v6, h, |p| dotr(&r, &attn64(sh, &q6, &k6, p, seg).0));
    check(&format!("attn {tag} dq vs FD"), &dq, &gq, TOL);
    check(&format!("attn {tag} dk vs FD"), &dk, &gk, TOL);
    check(&format!("attn {tag} dv vs FD"), &dv, &gv, TOL);
}

#[test]
fn gqa_sliding_window_and_scale() {
    // Windows shorter and longer than the 16-key tiles, with and without packed segments.
    let seg: Vec<u32> = (0..40u32).map(|t| t / 13).collect();
    run_with(None, 27, 1, Some(0.3), Some(5));
    run_with(Some(&seg), 28, 2, None, Some(5));
    run_with(Some(&[1u32; 40]), 29, 3, Some(1.0), Some(19));
}

#[test]
fn gqa_causal() {
    run(None, 21, 1);
    run(None, 21, 3);
}

#[test]
fn gqa_packed_segments() {
    // Three packed sequences of 3, 2 and 2 tokens.
    let seg = [0u32, 0, 0, 1, 1, 2, 2];
    run(Some(&seg), 22, 1);
    run(Some(&seg), 22, 3);
}

#[test]
fn gqa_packed_segments_longer_than_a_query_block() {
    // 40 tokens (> the kernel's 16-row query blocks, so whole earlier sequences are skipped),
    // runs of 10, 15, 15, the last reusing id 0 (ids need not be contiguous: tokens with the
    // same id see each other, as in the reference).
    let seg: Vec<u32> = (0..40u32)
        .map(|t| match t {
            0..=9 => 0,
            10..=24 => 1,
            _ => 0,
        })
        .collect();
    run(Some(&seg), 24, 2);
    let seg: Vec<u32> = (0..40u32).map(|t| t / 13).collect();
    run(Some(&seg), 25, 1);
    // One segment = plain causal over 40 tokens (several query blocks, diagonal tails).
    run(Some(&[5u32; 40]), 26, 3);
}

#[test]
fn segments_actually_isolate() {
    // Changing a token of sequence 0 must not change the outputs of sequence 1.
    let sh = AttnShape {
        n_tok: 4,
        n_head: 2,
        n_kv: 1,
        head_dim: 4,
        scale: None,
        window: None,
    };
    let seg = [0u32, 0, 1, 1];
    let mut rng = Rng::new(23);
    let q = rng.vec(4 * 2 * 4, 1.0);
    let mut k = rng.vec(4 * 4, 1.0);
    let mut v = rng.vec(4 * 4, 1.0);
    let (mut o1, mut o2, mut l) = (vec![0f32; q.len()], vec![0f32; q.len()], vec![0f32; 8]);
    attention_forward(sh, &q, &k, &v, Some(&seg), &mut o1, &mut l, &pool(1));
    k[0] += 1.0;
    v[1] += 1.0;
    attention_forward(sh, &q, &k, &v, Some(&seg), &mut o2, &mut l, &pool(1));
    assert_eq!(o1[16..], o2[16..], "sequence 1 saw sequence 0");
    assert_ne!(
        o1[..16],
        o2[..16],
        "perturbation had no effect on sequence 0"
    );
}

/// Forward and backward of the kernel: (out, lse, dq, dk, dv).
#[allow(clippy::type_complexity)]
fn fwd_bwd(
    sh: AttnShape,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dout: &[f32],
    seg: Option<&[u32]>,
    threads: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let pool = pool(threads);
    let mut out = vec![0f32; q.len()];
    let mut lse = vec![0f32; sh.n_tok * sh.n_head];
    attention_forward(sh, q, k, v, seg, &mut out, &mut lse, &pool);
    let (mut dq, mut dk, mut dv) = (
        vec![0f32; q.len()],
        vec![0f32; k.len()],
        vec![0f32; v.len()],
    );
    attention_backward(
        sh, q, k, v, seg, &out, &lse, dout, &mut dq, &mut dk, &mut dv, &pool,
    );
    (out, lse, dq, dk, dv)
}

#[test]
fn long_packed_batches_split_into_independent_rows() {
    // Four rows of 80 tokens (the second holds two sequences): the kernel cuts the batch at
    // the row boundaries (ranges of ≥ 64 tokens that no later query sees into) and hands the
    // (head, row) items to the threads. The packed call must equal each row run on its own,
    // bit for bit, forward and backward, on 1-3 threads (rows of 80 are not cut further).
    let (rows, len) = (4usize, 80usize);
    let seg: Vec<u32> = (0..rows * len)
        .map(|t| {
            let (r, i) = (t / len, t % len);
            if r == 1 && i >= 30 {
                100
            } else {
                r as u32
            }
        })
        .collect();
    let sh = AttnShape {
        n_tok: rows * len,
        n_head: 4,
        n_kv: 2,
        head_dim: 8,
        scale: None,
        window: None,
    };
    let (qw, kw) = (sh.n_head * sh.head_dim, sh.n_kv * sh.head_dim);
    let mut rng = Rng::new(31);
    let q = rng.vec(sh.n_tok * qw, 1.5);
    let k = rng.vec(sh.n_tok * kw, 1.5);
    let v = rng.vec(k.len(), 1.0);
    let dout = rng.vec(q.len(), 1.0);
    let row_sh = AttnShape { n_tok: len, ..sh };
    for threads in 1..=3 {
        let (out, lse, dq, dk, dv) = fwd_bwd(sh, &q, &k, &v, &dout, Some(&seg), threads);
        for r in 0..rows {
            let (a, b) = (r * len, (r + 1) * len);
            let (o1, l1, dq1, dk1, dv1) = fwd_bwd(
                row_sh,
                &q[a * qw..b * qw],
                &k[a * kw..b * kw],
                &v[a * kw..b * kw],
                &dout[a * qw..b * qw],
                Some(&seg[a..b]),
                1,
            );
            let what = format!("row {r}, x{threads}");
            assert_eq!(out[a * qw..b * qw], o1[..], "out, {what}");
            assert_eq!(lse[a * sh.n_head..b * sh.n_head], l1[..], "lse, {what}");
            assert_eq!(dq[a * qw..b * qw], dq1[..], "dq, {what}");
            assert_eq!(dk[a * kw..b * kw], dk1[..], "dk, {what}");
            assert_eq!(dv[a * kw..b * kw], dv1[..], "dv, {what}");
        }
        let (o64, l64) = attn64(sh, &to64(&q), &to64(&k), &to64(&v), Some(&seg));
        check(&format!("packed rows x{threads} out"), &out, &o64, 1e-5);
        check(&format!("packed rows x{threads} lse"), &lse, &l64, 1e-5);
    }
}

#[test]
fn a_sequence_id_reused_by_a_later_row_keeps_the_rows_together() {
    // Rows 0 and 2 share id 7, so row 2's tokens see row 0's: the batch may be cut only
    // after row 2 (at 240), and the forward must still match the f64 reference, which reads
    // the mask as given. A sliding window of 100 over single-sequence rows cuts nothing
    // that the window would cross either.
    let len = 80usize;
    let seg: Vec<u32> = (0..4 * len).map(|t| [7u32, 1, 7, 2][t / len]).collect();
    for (window, seg) in [(None, Some(&seg[..])), (Some(100), None)] {
        let sh = AttnShape {
            n_tok: 4 * len,
            n_head: 4,
            n_kv: 2,
            head_dim: 8,
            scale: None,
            window,
        };
        let mut rng = Rng::new(32);
        let q = rng.vec(sh.n_tok * sh.n_head * sh.head_dim, 1.5);
        let k = rng.vec(sh.n_tok * sh.n_kv * sh.head_dim, 1.5);
        let v = rng.vec(k.len(), 1.0);
        let (o64, l64) = attn64(sh, &to64(&q), &to64(&k), &to64(&v), seg);
        for threads in [1, 2] {
            let mut out = vec![0f32; q.len()];
            let mut lse = vec![0f32; sh.n_tok * sh.n_head];
            attention_forward(sh, &q, &k, &v, seg, &mut out, &mut lse, &pool(threads));
            let tag = format!("window {window:?} x{threads}");
            check(&format!("{tag} out"), &out, &o64, 1e-5);
            check(&format!("{tag} lse"), &lse, &l64, 1e-5);
        }
    }
}
