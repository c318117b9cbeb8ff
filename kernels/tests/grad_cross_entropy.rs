//! Masked cross-entropy: loss vs an f64 log-softmax reference; dlogits vs f64 central finite
//! differences of the mean masked loss; unmasked rows get zero gradient; bad targets error;
//! large logits stay finite; threaded = single-threaded.

mod grad_common;
use grad_common::*;

use graft_kernels::grad::{cross_entropy, GradError};

fn loss64(logits: &[f64], vocab: usize, targets: &[u32], mask: &[bool]) -> f64 {
    let n = mask.iter().filter(|&&m| m).count() as f64;
    let mut total = 0.0;
    for (t, row) in logits.chunks(vocab).enumerate() {
        if mask[t] {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
            total += lse - row[targets[t] as usize];
        }
    }
    total / n
}

#[test]
fn masked_loss_and_gradient_match_f64() {
    let (n_tok, vocab) = (6, 37);
    let mut rng = Rng::new(31);
    let logits = rng.vec(n_tok * vocab, 4.0);
    let targets: Vec<u32> = (0..n_tok).map(|_| rng.below(vocab as u32)).collect();
    let mask = [true, false, true, true, false, true];
    let l6 = to64(&logits);
    let want_loss = loss64(&l6, vocab, &targets, &mask);
    let want_grad = fd_grad(&l6, 1e-5, |p| loss64(p, vocab, &targets, &mask));
    for threads in [1, 4] {
        let mut g = logits.clone();
        let loss = cross_entropy(&mut g, vocab, &targets, &mask, &pool(threads)).expect("ce");
        let e = (f64::from(loss) - want_loss).abs() / want_loss.abs();
        println!("ce loss x{threads}: rel err {e:.3e} (tol 1e-6)");
        assert!(e <= 1e-6, "loss {loss} vs {want_loss}");
        check(
            &format!("ce dlogits x{threads} vs FD"),
            &g,
            &want_grad,
            1e-4,
        );
        for t in [1, 4] {
            assert!(
                g[t * vocab..(t + 1) * vocab].iter().all(|&v| v == 0.0),
                "row {t} masked out"
            );
        }
    }
}

#[test]
fn huge_logits_are_stable() {
    let mut g = vec![1000.0f32, -1000.0, 999.0, 0.0];
    let loss = cross_entropy(&mut g, 4, &[2], &[true], &pool(1)).expect("ce");
    // lse = 1000 + ln(1 + e^-1) (other terms underflow), loss = lse - 999.
    let want = 1.0 + (-1.0f64).exp().ln_1p();
    assert!(
        (f64::from(loss) - want).abs() < 1e-5,
        "loss {loss} vs {want}"
    );
    let p0 = 1.0 / (1.0 + (-1.0f64).exp());
    assert!((f64::from(g[0]) - p0).abs() < 1e-6, "{g:?}");
    assert!((f64::from(g[2]) - (1.0 - p0 - 1.0)).abs() < 1e-6, "{g:?}");
    assert!(g.iter().all(|v| v.is_finite()));
}

#[test]
fn nothing_masked_gives_zero() {
    let mut g = vec![1.0f32; 8];
    let loss = cross_entropy(&mut g, 4, &[0, 1], &[false, false], &pool(1)).expect("ce");
    assert_eq!(loss, 0.0);
    assert!(g.iter().all(|&v| v == 0.0));
}

#[test]
fn target_out_of_range_is_an_error() {
    let mut g = vec![0.0f32; 8];
    let e = cross_entropy(&mut g, 4, &[0, 9], &[true, true], &pool(1));
    assert_eq!(
        e,
        Err(GradError::TargetOutOfRange {
            token: 1,
            target: 9,
            vocab: 4
        })
    );
    // An unmasked row's target is not read.
    assert!(cross_entropy(&mut g, 4, &[0, 9], &[true, false], &pool(1)).is_ok());
}
