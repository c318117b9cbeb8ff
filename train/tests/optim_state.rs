//! Optimizer state save/load: bit-exact round trip, resume equals never stopping, errors.

use graft_train::data::rng::SplitMix64;
use graft_train::optim::{AdamW, AdamW8bit, AdamWConfig, OptimError, Optimizer, ParamTensor};

fn params() -> Vec<ParamTensor> {
    // A small tensor (f32 state even in 8-bit), a multi-block one with a partial last block.
    vec![
        ParamTensor::new("small", (0..100).map(|i| (i as f32 * 0.1).sin()).collect()),
        ParamTensor::new("big", (0..5000).map(|i| (i as f32 * 0.013).cos()).collect()),
    ]
}

fn set_grads(ps: &mut [ParamTensor], rng: &mut SplitMix64) {
    for p in ps.iter_mut() {
        for g in p.grad.iter_mut() {
            *g = ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
        }
    }
}

fn bits(ps: &[ParamTensor]) -> Vec<u32> {
    ps.iter()
        .flat_map(|p| p.values.iter().map(|v| v.to_bits()))
        .collect()
}

fn resume_equals_uninterrupted(mut make: impl FnMut() -> Box<dyn Optimizer>) {
    // Uninterrupted: 12 steps.
    let mut rng = SplitMix64::new(77);
    let mut ps = params();
    let mut opt = make();
    for s in 0..12 {
        set_grads(&mut ps, &mut rng);
        opt.step(&mut ps, 1e-2 / (1 + s) as f32).expect("step");
    }
    let full = bits(&ps);

    // Interrupted after 5 steps: save, drop, reload into a fresh optimizer, continue.
    let mut rng = SplitMix64::new(77);
    let mut ps = params();
    let mut opt = make();
    for s in 0..5 {
        set_grads(&mut ps, &mut rng);
        opt.step(&mut ps, 1e-2 / (1 + s) as f32).expect("step");
    }
    let mut saved = Vec::new();
    opt.save_state(&mut saved).expect("save");
    let bytes_before = opt.state_bytes();
    drop(opt);
    let mut opt = make();
    opt.load_state(&mut saved.as_slice()).expect("load");
    assert_eq!(opt.steps_taken(), 5);
    assert_eq!(opt.state_bytes(), bytes_before);
    let mut again = Vec::new();
    opt.save_state(&mut again).expect("save again");
    assert_eq!(saved, again, "save -> load -> save is byte-identical");
    for s in 5..12 {
        set_grads(&mut ps, &mut rng);
        opt.step(&mut ps, 1e-2 / (1 + s) as f32).expect("step");
    }
    assert_eq!(
        bits(&ps),
        full,
        "resumed run is bit-identical to the uninterrupted one"
    );
}

#[test]
fn adamw_resume_is_bit_exact() {
    resume_equals_uninterrupted(|| {
        Box::new(
            AdamW::new(AdamWConfig {
                weight_decay: 0.1,
                ..AdamWConfig::default()
            })
            .expect("cfg"),
        )
    });
}

#[test]
fn adamw8bit_resume_is_bit_exact() {
    resume_equals_uninterrupted(|| {
        Box::new(
            AdamW8bit::new(AdamWConfig {
                weight_decay: 0.1,
                ..AdamWConfig::default()
            })
            .expect("cfg"),
        )
    });
}

#[test]
fn state_size_on_disk_matches_state_bytes() {
    let mut ps = params();
    let mut rng = SplitMix64::new(1);
    set_grads(&mut ps, &mut rng);
    let mut opt = AdamW8bit::new(AdamWConfig::default()).expect("cfg");
    opt.step(&mut ps, 1e-3).expect("step");
    let mut saved = Vec::new();
    opt.save_state(&mut saved).expect("save");
    // Header 8 + 4 + 1 + 8 + 4; per tensor 4 + name + 8 + 1 (+ 4 block size for 8-bit).
    let overhead = 25 + (4 + 5 + 8 + 1) + (4 + 3 + 8 + 1 + 4);
    assert_eq!(saved.len(), opt.state_bytes() + overhead);
    assert_eq!(opt.state_bytes(), 8 * 100 + 2 * 5000 + 8 * 20);
}

#[test]
fn bad_state_is_rejected_and_leaves_the_optimizer_unchanged() {
    let mut ps = params();
    let mut rng = SplitMix64::new(2);
    set_grads(&mut ps, &mut rng);
    let mut a8 = AdamW8bit::new(AdamWConfig::default()).expect("cfg");
    a8.step(&mut ps, 1e-3).expect("step");
    let mut saved8 = Vec::new();
    a8.save_state(&mut saved8).expect("save");

    let mut a32 = AdamW::new(AdamWConfig::default()).expect("cfg");
    a32.step(&mut ps, 1e-3).expect("step");
    let mut before = Vec::new();
    a32.save_state(&mut before).expect("save");

    let expect_bad = |opt: &mut AdamW, data: &[u8], what: &str| {
        let err = opt.load_state(&mut &data[..]).expect_err(what);
        assert!(
            matches!(err, OptimError::BadState(_) | OptimError::Io(_)),
            "{what}: {err}"
        );
    };
    // Wrong optimizer kind.
    expect_bad(&mut a32, &saved8, "8-bit state into f32 AdamW");
    // Truncated.
    expect_bad(&mut a32, &before[..before.len() - 3], "truncated");
    // Bad magic.
    let mut bad = before.clone();
    bad[0] ^= 0xff;
    expect_bad(&mut a32, &bad, "bad magic");
    // Unchanged after the failures.
    let mut after = Vec::new();
    a32.save_state(&mut after).expect("save");
    assert_eq!(before, after);

    // An 8-bit state with another block size is refused.
    let mut other = AdamW8bit::with_block(AdamWConfig::default(), 128, 4096).expect("cfg");
    assert!(matches!(
        other.load_state(&mut saved8.as_slice()),
        Err(OptimError::BadState(_))
    ));

    // A reloaded state still checks the parameters it is stepped with.
    let mut fresh = AdamW::new(AdamWConfig::default()).expect("cfg");
    fresh.load_state(&mut before.as_slice()).expect("load");
    let mut wrong = vec![ParamTensor::new("other", vec![0.0; 100])];
    assert!(fresh.step(&mut wrong, 1e-3).is_err());
}
