//! DPO and IPO: the pair losses against a direct implementation of their formulas (from the
//! logits, in f64), and the LoRA gradients of a micro-batch of pair rows against central
//! finite differences of the mean pair loss on a tiny random llama, with dropout and the
//! chunked, compacted output head (Gemma's soft-cap too).

mod model_common;

use graft_quant::QuantType;
use graft_testkit::TinyModel;
use graft_train::data::TokenizedExample;
use graft_train::model::{BaseMatmul, Batch, Checkpointing, LoraConfig, TrainOptions, Trainable};
use graft_train::preference::{
    eval_batch, pair_row, sequence_logps, train_micro_batch, PairLogps, PreferenceLoss, SeqLogp,
};
use model_common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DPO: PreferenceLoss = PreferenceLoss::Sigmoid {
    beta: 0.5,
    label_smoothing: 0.1,
    rpo_alpha: 0.0,
};
const IPO: PreferenceLoss = PreferenceLoss::Ipo {
    beta: 0.5,
    rpo_alpha: 0.0,
};
/// DPO with the chosen responses' NLL (RPO).
const RPO: PreferenceLoss = PreferenceLoss::Sigmoid {
    beta: 0.1,
    label_smoothing: 0.0,
    rpo_alpha: 1.0,
};

fn opts() -> TrainOptions {
    opts_with(BaseMatmul::Fast)
}

/// Quantized bases are differentiated through their tiled (dequantized, f32-activation)
/// matmul: the fast one rounds activations to 8 bits, a step function finite differences
/// cannot see through.
fn opts_with(base_matmul: BaseMatmul) -> TrainOptions {
    TrainOptions {
        threads: 1,
        checkpointing: Checkpointing::EveryN(2),
        base_matmul,
        head_chunk: 8,
        kv_f16: false,
        ..TrainOptions::default()
    }
}

fn lora_cfg() -> LoraConfig {
    LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.1,
        ..LoraConfig::default()
    }
}

/// Three pairs sharing a prompt per pair, responses of different lengths, packed one pair per
/// row (padding in the shorter rows).
fn pair_batch() -> Batch {
    let mut rng = StdRng::seed_from_u64(17);
    let mut ids =
        |n: usize| -> Vec<u32> { (0..n).map(|_| rng.gen_range(0..VOCAB as u32)).collect() };
    let side = |prompt: &[u32], resp: &[u32]| TokenizedExample {
        ids: [prompt, resp].concat(),
        mask: (0..prompt.len() + resp.len())
            .map(|i| i >= prompt.len())
            .collect(),
    };
    let mut rows = Vec::new();
    for (i, (p, c, r)) in [(6, 5, 9), (4, 7, 3), (9, 4, 4)].into_iter().enumerate() {
        let prompt = ids(p);
        let (chosen, rejected) = (ids(c), ids(r));
        let row =
            pair_row(i, &side(&prompt, &chosen), &side(&prompt, &rejected), 32).expect("pair fits");
        assert!(!row.truncated);
        rows.push(row.row);
    }
    let seq = rows.iter().map(|r| r.len()).max().unwrap_or(1);
    Batch::from_rows(&rows, seq).expect("batch")
}

/// The mean pair loss as the trainer differentiates it (dropout of the current step).
fn mean_loss(
    tr: &mut Trainable<'_>,
    batch: &Batch,
    reference: &[[SeqLogp; 2]],
    loss: PreferenceLoss,
) -> f64 {
    let policy = sequence_logps(tr, batch, true).expect("logps");
    let sum: f64 = policy
        .iter()
        .zip(reference)
        .map(|(p, r)| {
            loss.pair(&PairLogps {
                policy: *p,
                reference: *r,
            })
            .loss
        })
        .sum();
    sum / policy.len() as f64
}

fn fd_check(m: &TinyModel, name: &str, loss: PreferenceLoss, mode: BaseMatmul) {
    let opts = || opts_with(mode);
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = load_tiny(dir.path(), name, m);
    let batch = pair_batch();
    // The reference: another adapter, without dropout (as the trainer computes it once).
    let mut reference_tr =
        Trainable::new(&model, lora_nonzero(&model, lora_cfg(), 3), opts()).expect("trainable");
    let reference = sequence_logps(&mut reference_tr, &batch, false).expect("reference");
    drop(reference_tr);
    let mut tr =
        Trainable::new(&model, lora_nonzero(&model, lora_cfg(), 4), opts()).expect("trainable");
    tr.set_dropout_step(5);
    tr.lora_mut().zero_grad();
    let st = train_micro_batch(&mut tr, &batch, &reference, loss).expect("step");
    let l0 = mean_loss(&mut tr, &batch, &reference, loss);
    assert!(
        (st.loss() - l0).abs() <= 1e-5 * l0.abs().max(1.0),
        "training forward's loss {} vs the no-gradient one {l0}",
        st.loss()
    );
    let grads: Vec<Vec<f32>> = tr.lora().tensors().iter().map(|t| t.grad.clone()).collect();
    let mut failures = Vec::new();
    let mut max_rel = 0f64;
    for (ti, g) in grads.iter().enumerate() {
        let name = tr.lora().tensors()[ti].name.clone();
        let norm = g.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
        assert!(norm > 1e-6, "{name}: zero gradient");
        // Along the tensor's normalised gradient the directional derivative is ‖g‖.
        let h = (2e-3 / norm) as f32;
        let orig = tr.lora().tensors()[ti].values.clone();
        let at = |k: f32, tr: &mut Trainable<'_>| {
            for ((v, &o), &gv) in tr.lora_mut().tensors_mut()[ti]
                .values
                .iter_mut()
                .zip(&orig)
                .zip(g)
            {
                *v = o + k * (f64::from(gv) / norm) as f32;
            }
            mean_loss(tr, &batch, &reference, loss)
        };
        let lp = at(h, &mut tr);
        let lm = at(-h, &mut tr);
        tr.lora_mut().tensors_mut()[ti].values = orig;
        let dd = (lp - lm) / (2.0 * f64::from(h));
        let rel = (dd - norm).abs() / norm;
        max_rel = max_rel.max(rel);
        if rel > 5e-3 {
            failures.push(format!(
                "{name}: |g| {norm:.6e}, directional difference {dd:.6e}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{name}: {} tensors, max rel err along the gradient {max_rel:.3e}",
        grads.len()
    );
}

#[test]
fn dpo_gradient_equals_finite_differences() {
    let f = QuantType::F32;
    fd_check(
        &tiny("llama", 7, 3, f, f, true),
        "llama.gguf",
        DPO,
        BaseMatmul::Fast,
    );
}

#[test]
fn ipo_gradient_equals_finite_differences_on_a_quantized_base() {
    fd_check(
        &tiny("llama", 8, 3, QuantType::Q8_0, QuantType::Q8_0, false),
        "q8.gguf",
        IPO,
        BaseMatmul::Tiled,
    );
}

#[test]
fn rpo_gradient_equals_finite_differences() {
    let f = QuantType::F32;
    fd_check(
        &tiny("llama", 9, 3, f, f, true),
        "rpo.gguf",
        RPO,
        BaseMatmul::Fast,
    );
}

#[test]
fn dpo_gradient_through_gemma_softcap() {
    let f = QuantType::F32;
    fd_check(
        &TinyModel {
            final_softcap: Some(4.0),
            ..tiny("gemma3", 7, 3, f, f, true)
        },
        "gemma3.gguf",
        DPO,
        BaseMatmul::Fast,
    );
}

/// `−log σ(x)` written out, no stabilisation.
fn neg_log_sigmoid(x: f64) -> f64 {
    -(1.0 / (1.0 + (-x).exp())).ln()
}

/// Log-softmax of the target, summed per side, straight from every logit.
fn direct_logps(tr: &mut Trainable<'_>, batch: &Batch) -> Vec<[(f64, usize); 2]> {
    let logits = tr.logits(batch).expect("logits");
    let mut out = vec![[(0.0, 0usize); 2]; batch.n_rows];
    for t in 0..batch.n_tokens() {
        if !batch.mask[t] {
            continue;
        }
        let row = &logits[t * VOCAB..(t + 1) * VOCAB];
        let z: f64 = row.iter().map(|&v| f64::from(v).exp()).sum();
        let lp = f64::from(row[batch.targets[t] as usize]) - z.ln();
        let s = &mut out[t / batch.seq_len][batch.segments[t] as usize];
        s.0 += lp;
        s.1 += 1;
    }
    out
}

#[test]
fn losses_equal_a_direct_implementation_of_the_formulas() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = QuantType::F32;
    let (model, _) = load_tiny(dir.path(), "m.gguf", &tiny("llama", 7, 2, f, f, true));
    let batch = pair_batch();
    let mut r = Trainable::new(&model, lora_nonzero(&model, lora_cfg(), 3), opts()).expect("tr");
    let reference = sequence_logps(&mut r, &batch, false).expect("reference");
    let direct_ref = direct_logps(&mut r, &batch);
    drop(r);
    let mut tr = Trainable::new(&model, lora_nonzero(&model, lora_cfg(), 4), opts()).expect("tr");
    let direct_pol = direct_logps(&mut tr, &batch);
    for (beta, eps) in [(0.1, 0.0), (0.5, 0.2)] {
        let loss = PreferenceLoss::Sigmoid {
            beta,
            label_smoothing: eps,
            rpo_alpha: 0.0,
        };
        let st = eval_batch(&mut tr, &batch, &reference, loss).expect("eval");
        let (mut want, mut correct, mut margin) = (0.0, 0, 0.0);
        for (p, r) in direct_pol.iter().zip(&direct_ref) {
            let h = (p[0].0 - r[0].0) - (p[1].0 - r[1].0);
            want += (1.0 - eps) * neg_log_sigmoid(beta * h) + eps * neg_log_sigmoid(-beta * h);
            correct += usize::from(h > 0.0);
            margin += beta * h;
        }
        let n = direct_pol.len() as f64;
        assert!(
            (st.loss() - want / n).abs() < 1e-6,
            "DPO β {beta} ε {eps}: {} vs {}",
            st.loss(),
            want / n
        );
        assert!((st.margin() - margin / n).abs() < 1e-6);
        assert_eq!(st.correct, correct);
        assert_eq!(st.pairs, 3);
    }
    let st = eval_batch(&mut tr, &batch, &reference, IPO).expect("eval");
    let want: f64 = direct_pol
        .iter()
        .zip(&direct_ref)
        .map(|(p, r)| {
            let h = (p[0].0 - r[0].0) / p[0].1 as f64 - (p[1].0 - r[1].0) / p[1].1 as f64;
            (h - 1.0 / (2.0 * 0.5)).powi(2)
        })
        .sum::<f64>()
        / 3.0;
    assert!(
        (st.loss() - want).abs() < 1e-6,
        "IPO: {} vs {want}",
        st.loss()
    );
    // RPO: DPO plus α times the chosen response's mean negative log-likelihood.
    let st = eval_batch(&mut tr, &batch, &reference, RPO).expect("eval");
    let want: f64 = direct_pol
        .iter()
        .zip(&direct_ref)
        .map(|(p, r)| {
            let h = (p[0].0 - r[0].0) - (p[1].0 - r[1].0);
            neg_log_sigmoid(0.1 * h) - p[0].0 / p[0].1 as f64
        })
        .sum::<f64>()
        / 3.0;
    assert!(
        (st.loss() - want).abs() < 1e-6,
        "RPO: {} vs {want}",
        st.loss()
    );
}

#[test]
fn pair_loss_derivatives_equal_differences_of_the_formula() {
    let base = PairLogps {
        policy: [
            SeqLogp {
                sum: -12.5,
                tokens: 5,
            },
            SeqLogp {
                sum: -9.0,
                tokens: 3,
            },
        ],
        reference: [
            SeqLogp {
                sum: -13.0,
                tokens: 5,
            },
            SeqLogp {
                sum: -8.0,
                tokens: 3,
            },
        ],
    };
    for loss in [
        DPO,
        IPO,
        PreferenceLoss::Sigmoid {
            beta: 3.0,
            label_smoothing: 0.0,
            rpo_alpha: 0.0,
        },
        RPO,
    ] {
        let pl = loss.pair(&base);
        for side in 0..2 {
            let e = 1e-5;
            let mut p = base;
            p.policy[side].sum += e;
            let up = loss.pair(&p).loss;
            p.policy[side].sum -= 2.0 * e;
            let dn = loss.pair(&p).loss;
            let fd = (up - dn) / (2.0 * e);
            assert!(
                (fd - pl.d_policy[side]).abs() < 1e-7,
                "{loss:?} side {side}: {} vs {fd}",
                pl.d_policy[side]
            );
        }
    }
    // Far in the tails the loss stays finite and its gradient vanishes or saturates.
    let mut far = base;
    far.policy[0].sum = 1e4;
    let pl = DPO.pair(&far);
    assert!(pl.loss.is_finite() && pl.d_policy[0].is_finite());
    far.policy[0].sum = -1e4;
    let pl = DPO.pair(&far);
    assert!(pl.loss.is_finite() && (pl.d_policy[0] + 0.9 * 0.5).abs() < 1e-9);
}

#[test]
fn pair_rows_fit_the_row_length_and_keep_both_responses() {
    let side = |p: usize, r: usize| TokenizedExample {
        ids: (0..(p + r) as u32).collect(),
        mask: (0..p + r).map(|i| i >= p).collect(),
    };
    let row = pair_row(0, &side(10, 10), &side(10, 30), 40).expect("fits");
    assert!(row.truncated);
    assert_eq!(row.row.boundaries, vec![0, 20, 40]);
    assert_eq!(&row.row.positions[18..22], &[18, 19, 0, 1]);
    assert_eq!(row.row.seq_ids.iter().filter(|&&s| s == 1).count(), 20);
    // A prompt longer than the side's share leaves nothing to score: refused.
    assert!(pair_row(0, &side(30, 5), &side(30, 5), 40).is_none());
    let row = pair_row(0, &side(3, 2), &side(3, 4), 40).expect("fits");
    assert!(!row.truncated);
    assert_eq!(row.row.len(), 12);
}
