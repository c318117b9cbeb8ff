//! AdamW against a scalar f64 reference; parameter-set checks.

use graft_train::data::rng::SplitMix64;
use graft_train::optim::{AdamW, AdamW8bit, AdamWConfig, OptimError, Optimizer, ParamTensor};

fn uniform(r: &mut SplitMix64) -> f64 {
    (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The textbook AdamW (Loshchilov & Hutter, PyTorch's form) in f64, one scalar.
struct RefAdamW {
    p: f64,
    m: f64,
    v: f64,
}

impl RefAdamW {
    fn step(&mut self, g: f64, t: i32, lr: f64, c: &AdamWConfig) {
        let (b1, b2) = (f64::from(c.beta1), f64::from(c.beta2));
        self.p -= lr * f64::from(c.weight_decay) * self.p;
        self.m = b1 * self.m + (1.0 - b1) * g;
        self.v = b2 * self.v + (1.0 - b2) * g * g;
        let mhat = self.m / (1.0 - b1.powi(t));
        let vhat = self.v / (1.0 - b2.powi(t));
        self.p -= lr * mhat / (vhat.sqrt() + f64::from(c.eps));
    }
}

#[test]
fn adamw_matches_scalar_f64_reference() {
    let cfg = AdamWConfig {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.05,
    };
    let mut r = SplitMix64::new(5);
    let sizes = [1usize, 7, 300, 5000];
    let mut params: Vec<ParamTensor> = sizes
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let vals = (0..n)
                .map(|_| {
                    let s = if r.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
                    (s * (0.5 + uniform(&mut r))) as f32
                })
                .collect();
            ParamTensor::new(format!("t{k}"), vals)
        })
        .collect();
    let mut reference: Vec<Vec<RefAdamW>> = params
        .iter()
        .map(|p| {
            p.values
                .iter()
                .map(|&x| RefAdamW {
                    p: f64::from(x),
                    m: 0.0,
                    v: 0.0,
                })
                .collect()
        })
        .collect();
    let mut opt = AdamW::new(cfg).expect("valid config");
    let lrs = [1e-3f32, 3e-3, 1e-2, 5e-3, 2e-3, 1e-3, 1e-4, 1e-2];
    for (t, &lr) in lrs.iter().enumerate() {
        for (p, rp) in params.iter_mut().zip(&reference) {
            for (i, g) in p.grad.iter_mut().enumerate() {
                // Gradients over several magnitudes, some exactly zero.
                let scale = 10f64.powi((i % 5) as i32 - 3);
                *g = if i % 11 == 3 {
                    0.0
                } else {
                    (scale * (uniform(&mut r) * 2.0 - 1.0) + 0.1 * rp[i].p) as f32
                };
            }
        }
        opt.step(&mut params, lr).expect("step");
        for (p, rp) in params.iter().zip(reference.iter_mut()) {
            for (i, x) in rp.iter_mut().enumerate() {
                x.step(f64::from(p.grad[i]), t as i32 + 1, f64::from(lr), &cfg);
            }
        }
        let mut worst = 0f64;
        for (p, rp) in params.iter().zip(&reference) {
            for (a, b) in p.values.iter().zip(rp) {
                let rel = (f64::from(*a) - b.p).abs() / b.p.abs();
                worst = worst.max(rel);
            }
        }
        assert!(
            worst <= 1e-6,
            "step {}: worst relative error {worst:e}",
            t + 1
        );
    }
    assert_eq!(opt.steps_taken(), lrs.len() as u64);
    // Moments too.
    for (s, rp) in opt.states().iter().zip(&reference) {
        let (m, v) = s.moments_f32();
        for i in 0..rp.len() {
            let (em, ev) = (rp[i].m, rp[i].v);
            // m can cancel to ~0, so its tolerance is relative to the gradient scale.
            let gscale = 10f64.powi((i % 5) as i32 - 3);
            assert!(
                (f64::from(m[i]) - em).abs() <= 1e-6 * em.abs().max(gscale),
                "m {i}"
            );
            assert!((f64::from(v[i]) - ev).abs() <= 1e-6 * ev, "v {i}");
        }
    }
}

#[test]
fn small_tensors_in_8bit_optimizer_are_exactly_f32_adamw() {
    let cfg = AdamWConfig {
        weight_decay: 0.01,
        ..AdamWConfig::default()
    };
    let mk = || {
        vec![
            ParamTensor::new("a", (0..4095).map(|i| (i as f32 * 0.37).sin()).collect()),
            ParamTensor::new("b", (0..10).map(|i| i as f32).collect()),
        ]
    };
    let (mut p1, mut p2) = (mk(), mk());
    let mut a = AdamW::new(cfg).expect("cfg");
    let mut b = AdamW8bit::new(cfg).expect("cfg");
    for step in 0..5 {
        for p in p1.iter_mut().chain(p2.iter_mut()) {
            for (i, g) in p.grad.iter_mut().enumerate() {
                *g = ((i + step) as f32 * 0.11).cos();
            }
        }
        a.step(&mut p1, 1e-2).expect("step");
        b.step(&mut p2, 1e-2).expect("step");
    }
    assert_eq!(p1, p2, "bit-identical below the 4096-element threshold");
    assert_eq!(a.state_bytes(), b.state_bytes());
    assert_eq!(a.state_bytes(), 8 * (4095 + 10));
}

#[test]
fn parameter_set_changes_are_errors() {
    let mut opt = AdamW::new(AdamWConfig::default()).expect("cfg");
    let mut ps = vec![ParamTensor::new("w", vec![1.0; 4])];
    opt.step(&mut ps, 0.1).expect("first step");
    let mut other = vec![ParamTensor::new("w2", vec![1.0; 4])];
    assert!(matches!(
        opt.step(&mut other, 0.1),
        Err(OptimError::ParamMismatch { index: 0, .. })
    ));
    let mut longer = vec![ParamTensor::new("w", vec![1.0; 5])];
    assert!(matches!(
        opt.step(&mut longer, 0.1),
        Err(OptimError::ParamMismatch { .. })
    ));
    let mut two = vec![
        ParamTensor::new("w", vec![1.0; 4]),
        ParamTensor::new("x", vec![0.0]),
    ];
    assert!(matches!(
        opt.step(&mut two, 0.1),
        Err(OptimError::ParamCount { state: 1, got: 2 })
    ));
    let mut bad_grad = vec![ParamTensor {
        name: "w".into(),
        values: vec![1.0; 4],
        grad: vec![0.0; 3],
    }];
    let err = opt.step(&mut bad_grad, 0.1).expect_err("grad shape");
    assert!(
        err.to_string()
            .contains("`w`: 4 values but 3 gradient entries"),
        "{err}"
    );
    assert_eq!(opt.steps_taken(), 1, "failed steps do not count");
    assert!(AdamW::new(AdamWConfig {
        beta1: 1.0,
        ..AdamWConfig::default()
    })
    .is_err());
}
