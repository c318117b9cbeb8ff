//! Learning-rate schedules, gradient clipping and gradient accumulation.

use graft_train::optim::{
    clip_grad_norm, global_grad_norm, GradAccumulator, LrSchedule, OptimError, ParamTensor,
    ScheduleKind, Warmup,
};

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() <= 1e-6 * b.abs().max(1e-9)
}

#[test]
fn cosine_with_warmup_at_known_steps() {
    // peak 1e-3, 10 warmup steps, 110 total: 100 decay steps.
    let s = LrSchedule::cosine(1e-3, Warmup::Steps(10), 110).expect("valid");
    assert_eq!(s.warmup_steps(), 10);
    // The ramp is (step + 1) / (warmup + 1): the first step already learns.
    assert!(close(s.lr_at(0), 1e-3 / 11.0));
    assert!(close(s.lr_at(5), 6e-3 / 11.0));
    assert!(close(s.lr_at(9), 10e-3 / 11.0));
    assert!(close(s.lr_at(10), 1e-3));
    assert!(close(s.lr_at(60), 0.5e-3), "half way: {}", s.lr_at(60));
    // progress 0.25: 0.5 * (1 + cos(pi/4)) = 0.853553...
    assert!(close(
        s.lr_at(35),
        1e-3 * 0.5 * (1.0 + std::f64::consts::FRAC_1_SQRT_2)
    ));
    assert!(s.lr_at(109) > 0.0 && s.lr_at(109) < 1e-6);
    assert_eq!(s.lr_at(110), 0.0);
    assert_eq!(s.lr_at(10_000), 0.0);
    // Monotone decreasing after warmup.
    assert!((10..110).all(|t| s.lr_at(t + 1) <= s.lr_at(t)));
}

#[test]
fn linear_constant_min_lr_and_fractional_warmup() {
    let s = LrSchedule::new(
        ScheduleKind::Linear,
        2e-4,
        2e-5,
        Warmup::Fraction(0.1),
        1000,
    )
    .expect("valid");
    assert_eq!(s.warmup_steps(), 100);
    assert!(close(s.lr_at(50), 2e-4 * 51.0 / 101.0));
    assert!(close(s.lr_at(100), 2e-4));
    // progress 0.5 => min + (peak - min) * 0.5 = 1.1e-4
    assert!(close(s.lr_at(550), 1.1e-4));
    assert!(close(s.lr_at(1000), 2e-5));

    // Fraction rounds up: 3% of 50 = 1.5 -> 2 steps.
    let c = LrSchedule::new(
        ScheduleKind::Constant,
        5e-4,
        0.0,
        Warmup::Fraction(0.03),
        50,
    )
    .expect("valid");
    assert_eq!(c.warmup_steps(), 2);
    assert!(close(c.lr_at(0), 5e-4 / 3.0));
    assert!(close(c.lr_at(1), 5e-4 * 2.0 / 3.0));
    assert_eq!(c.lr_at(2), 5e-4);
    assert_eq!(c.lr_at(49), 5e-4);

    let cos_min =
        LrSchedule::new(ScheduleKind::Cosine, 1.0, 0.1, Warmup::Steps(0), 100).expect("valid");
    assert_eq!(cos_min.lr_at(0), 1.0);
    assert!(close(cos_min.lr_at(50), 0.55));
    assert!(close(cos_min.lr_at(100), 0.1));

    for bad in [
        LrSchedule::cosine(1e-3, Warmup::Steps(10), 0),
        LrSchedule::cosine(1e-3, Warmup::Steps(11), 10),
        LrSchedule::cosine(1e-3, Warmup::Fraction(1.5), 10),
        LrSchedule::cosine(-1.0, Warmup::Steps(0), 10),
        LrSchedule::new(ScheduleKind::Linear, 1e-3, 1e-2, Warmup::Steps(0), 10),
    ] {
        assert!(matches!(bad, Err(OptimError::InvalidOption(_))));
    }
}

#[test]
fn clipping_scales_to_the_max_norm() {
    let mut ps = vec![
        ParamTensor {
            name: "a".into(),
            values: vec![0.0; 2],
            grad: vec![3.0, 0.0],
        },
        ParamTensor {
            name: "b".into(),
            values: vec![0.0; 1],
            grad: vec![4.0],
        },
    ];
    assert_eq!(global_grad_norm(&ps), 5.0);
    let norm = clip_grad_norm(&mut ps, 1.0);
    assert_eq!(norm, 5.0);
    let after = global_grad_norm(&ps);
    assert!((after - 1.0).abs() < 1e-6, "{after}");
    // Direction kept.
    assert!((ps[0].grad[0] / ps[1].grad[0] - 0.75).abs() < 1e-6);
    // Under the limit: untouched.
    let snapshot = ps.clone();
    let norm = clip_grad_norm(&mut ps, 2.0);
    assert!((norm - 1.0).abs() < 1e-6);
    assert_eq!(ps, snapshot);
    // Non-finite: reported, untouched.
    ps[0].grad[1] = f32::NAN;
    let snapshot = ps.clone();
    assert!(clip_grad_norm(&mut ps, 1.0).is_nan());
    assert_eq!(ps[0].grad[0], snapshot[0].grad[0]);
    assert_eq!(ps[1].grad, snapshot[1].grad);
}

#[test]
fn accumulation_averages_micro_batches() {
    let mut ps = vec![ParamTensor::new("w", vec![0.0; 3])];
    let mut acc = GradAccumulator::new(4).expect("valid");
    let micro = [
        [1.0f32, 2.0, 3.0],
        [3.0, 2.0, 1.0],
        [0.0, 0.0, 4.0],
        [4.0, 4.0, 4.0],
    ];
    for (i, g) in micro.iter().enumerate() {
        ps[0].grad = g.to_vec();
        let ready = acc.add(&ps).expect("add");
        assert_eq!(ready, i == 3);
    }
    acc.finish(&mut ps).expect("finish");
    assert_eq!(ps[0].grad, vec![2.0, 2.0, 3.0]);
    assert_eq!(acc.seen(), 0);
    // A short final accumulation is scaled by what was seen.
    ps[0].grad = vec![2.0, 4.0, 6.0];
    acc.add(&ps).expect("add");
    ps[0].grad = vec![0.0, 0.0, 0.0];
    acc.add(&ps).expect("add");
    acc.finish(&mut ps).expect("finish");
    assert_eq!(ps[0].grad, vec![1.0, 2.0, 3.0]);
    // Errors.
    assert!(acc.finish(&mut ps).is_err());
    assert!(GradAccumulator::new(0).is_err());
    acc.add(&ps).expect("add");
    let mut two = vec![
        ParamTensor::new("w", vec![0.0; 3]),
        ParamTensor::new("x", vec![0.0]),
    ];
    assert!(acc.add(&two).is_err());
    assert!(acc.finish(&mut two).is_err());
}
