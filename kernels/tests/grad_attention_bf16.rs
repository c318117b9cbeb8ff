//! The training attention in bf16 products on AMX tiles (`attention_forward_bf16`,
//! `attention_backward_bf16`) on inputs that bf16 holds exactly (multiples of 1/16 below 4), so
//! the scores are exact products with f32 sums and the only roundings left are the kernel's own:
//! `P` and `dS` rounded to bf16 (relative 2⁻⁹) as operands of the next product. The forward is
//! checked against the f64 reference, the backward against the f32 kernel's gradients (which
//! `grad_attention.rs` checks against finite differences); a key masked wrongly or a block
//! skipped moves a row by ~p·|v − out| (p ≈ 1/n, n ≤ 256 here), above the tolerances (observed
//! errors are ~1e-3 for `out`, ≤ 2.7e-3 for the gradients). Causal, ragged lengths,
//! packed segments (one run per id, and an id reused by a later row), a sliding window with its
//! own scale; head sizes 32, 64 and 128; 1–3 threads give the same bits. Where bf16 products do
//! not run on AMX tiles both decline and touch nothing.

mod grad_common;
use grad_common::*;

use graft_kernels::grad::{
    attention_backward, attention_backward_bf16, attention_forward, attention_forward_bf16,
    AttnShape,
};

/// A value bf16 holds exactly: a multiple of 1/16 in (−4, 4).
fn exact(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    rng.vec(n, scale)
        .into_iter()
        .map(|x| (x * 16.0).round() / 16.0)
        .collect()
}

fn case(sh: AttnShape, seg: Option<&[u32]>, seed: u64) {
    let mut rng = Rng::new(seed);
    let q = exact(&mut rng, sh.n_tok * sh.n_head * sh.head_dim, 2.0);
    let k = exact(&mut rng, sh.n_tok * sh.n_kv * sh.head_dim, 2.0);
    let v = exact(&mut rng, k.len(), 2.0);
    let dout = exact(&mut rng, q.len(), 2.0);
    // f64 of bf16-exact values: the reference's products are the kernel's, exactly.
    let (o64, l64) = attn64(sh, &to64(&q), &to64(&k), &to64(&v), seg);
    let tag = format!(
        "T={} hd={} {:?} window {:?}",
        sh.n_tok,
        sh.head_dim,
        seg.map(|_| "segments"),
        sh.window
    );
    // The f32 kernel's gradients (at its own forward) as the backward's reference.
    let (mut out32, mut lse32) = (vec![0f32; q.len()], vec![0f32; sh.n_tok * sh.n_head]);
    let p1 = pool(1);
    attention_forward(sh, &q, &k, &v, seg, &mut out32, &mut lse32, &p1);
    let mut g32 = [
        vec![0f32; q.len()],
        vec![0f32; k.len()],
        vec![0f32; v.len()],
    ];
    {
        let [dq, dk, dv] = &mut g32;
        attention_backward(sh, &q, &k, &v, seg, &out32, &lse32, &dout, dq, dk, dv, &p1);
    }
    let mut first: Option<Vec<Vec<f32>>> = None;
    for threads in [1, 2, 3] {
        let p = pool(threads);
        let (mut out, mut lse) = (
            vec![f32::NAN; q.len()],
            vec![f32::NAN; sh.n_tok * sh.n_head],
        );
        if !attention_forward_bf16(sh, &q, &k, &v, seg, &mut out, &mut lse, &p) {
            assert!(
                out.iter().chain(&lse).all(|x| x.is_nan()),
                "declined but wrote"
            );
            let mut dq = vec![0f32; q.len()];
            let (mut dk, mut dv) = (vec![0f32; k.len()], vec![0f32; v.len()]);
            assert!(!attention_backward_bf16(
                sh, &q, &k, &v, seg, &out32, &lse32, &dout, &mut dq, &mut dk, &mut dv, &p
            ));
            assert!(dq.iter().chain(&dk).chain(&dv).all(|&x| x == 0.0));
            println!("bf16 products do not run on AMX here: the bf16 attention declines");
            return;
        }
        let name = format!("{tag} x{threads}");
        check(&format!("out {name}"), &out, &o64, 4e-3);
        check(&format!("lse {name}"), &lse, &l64, 1e-5);
        // Gradients accumulate: start from 1 and take it off again.
        let mut g = [
            vec![1f32; q.len()],
            vec![1f32; k.len()],
            vec![1f32; v.len()],
        ];
        {
            let [dq, dk, dv] = &mut g;
            assert!(attention_backward_bf16(
                sh, &q, &k, &v, seg, &out, &lse, &dout, dq, dk, dv, &p
            ));
        }
        for (what, (got, want)) in ["dq", "dk", "dv"].iter().zip(g.iter().zip(&g32)) {
            let got: Vec<f32> = got.iter().map(|x| x - 1.0).collect();
            check(&format!("{what} {name}"), &got, &to64(want), 5e-3);
        }
        let all: Vec<Vec<f32>> = [out, lse].into_iter().chain(g).collect();
        match &first {
            None => first = Some(all),
            Some(f) => assert!(
                all.iter()
                    .zip(f)
                    .all(|(a, b)| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())),
                "{name}: differs from one thread's"
            ),
        }
    }
}

#[test]
fn causal_ragged_and_long() {
    case(AttnShape::causal(45, 4, 2, 32), None, 1);
    case(AttnShape::causal(256, 3, 1, 64), None, 2);
}

#[test]
fn packed_segments() {
    // Rows of 70, 100, 30 and 56 tokens: several independent ranges, blocks that straddle rows.
    let seg: Vec<u32> = (0..256u32)
        .map(|t| match t {
            0..70 => 0,
            70..170 => 1,
            170..200 => 2,
            _ => 3,
        })
        .collect();
    case(AttnShape::causal(256, 4, 2, 64), Some(&seg), 3);
    // An id reused by a later row: the per-key visibility path.
    let reused: Vec<u32> = (0..96u32).map(|t| [5, 1, 5][t as usize / 32]).collect();
    case(AttnShape::causal(96, 2, 1, 64), Some(&reused), 4);
}

#[test]
fn sliding_window_with_a_scale() {
    let sh = AttnShape {
        window: Some(20),
        scale: Some(0.1),
        ..AttnShape::causal(100, 2, 2, 128)
    };
    case(sh, None, 5);
}
