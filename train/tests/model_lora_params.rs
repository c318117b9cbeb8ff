//! LoRA parameters: PEFT initialisation (A kaiming-uniform a=√5 → U(±1/√n_in), B = 0), scales,
//! target selection, and export to adapter files that load back unchanged (GGUF and PEFT).

mod model_common;

use graft_quant::QuantType;
use graft_runtime::adapter::LoraAdapter;
use graft_train::model::{LoraConfig, LoraParams, Target};
use model_common::*;

#[test]
fn init_is_peft_like_and_seeded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "m.gguf",
        2,
        QuantType::F32,
        QuantType::F32,
        true,
    );
    let cfg = LoraConfig {
        rank: 8,
        ..LoraConfig::default()
    };
    let p = LoraParams::new(model.config(), cfg.clone()).expect("params");
    assert_eq!(p.tensors().len(), 2 * 7 * 2);
    for l in 0..2 {
        for t in Target::ALL {
            let (a, b) = p.pair(l, t).expect("pair");
            let (n_out, n_in) = t.dims(model.config());
            assert_eq!((a.len(), b.len()), (8 * n_in, n_out * 8), "{t:?}");
            let bound = 1.0 / (n_in as f32).sqrt();
            assert!(a.values.iter().all(|v| v.abs() <= bound), "{}", a.name);
            let max = a.values.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(
                max > 0.9 * bound,
                "{}: A should span its range ({max} of {bound})",
                a.name
            );
            let mean = a.values.iter().map(|&v| f64::from(v)).sum::<f64>() / a.len() as f64;
            assert!(
                mean.abs() < 0.1 * f64::from(bound),
                "{}: mean {mean}",
                a.name
            );
            assert!(b.values.iter().all(|&v| v == 0.0), "{}", b.name);
        }
    }
    let again = LoraParams::new(model.config(), cfg.clone()).expect("params");
    assert_eq!(again.tensors(), p.tensors());
    let other = LoraParams::new(model.config(), LoraConfig { seed: 1, ..cfg }).expect("params");
    assert_ne!(other.tensors()[0].values, p.tensors()[0].values);
    // Different (layer, target) streams differ.
    assert_ne!(p.tensors()[0].values[..8], p.tensors()[2].values[..8]);
}

#[test]
fn scales_targets_and_validation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "m.gguf",
        2,
        QuantType::F32,
        QuantType::F32,
        true,
    );
    let cfg = LoraConfig {
        rank: 16,
        alpha: 32.0,
        targets: vec![Target::Q, Target::V],
        ..LoraConfig::default()
    };
    let p = LoraParams::new(model.config(), cfg.clone()).expect("params");
    assert_eq!(p.scale(), 2.0);
    assert!(p.slot(0, Target::K).is_none() && p.slot(1, Target::V).is_some());
    assert_eq!(
        p.n_params(),
        2 * (16 * D + N_HEAD * HD * 16 + 16 * D + N_KV * HD * 16)
    );
    let rs = LoraParams::new(
        model.config(),
        LoraConfig {
            rslora: true,
            ..cfg.clone()
        },
    )
    .expect("params");
    assert_eq!(rs.scale(), 8.0);
    for bad in [
        LoraConfig {
            rank: 0,
            ..cfg.clone()
        },
        LoraConfig {
            dropout: 1.0,
            ..cfg.clone()
        },
        LoraConfig {
            targets: vec![],
            ..cfg
        },
    ] {
        assert!(LoraParams::new(model.config(), bad).is_err());
    }
}

#[test]
fn export_round_trips_through_gguf_and_peft() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, _) = tiny_model(
        dir.path(),
        "m.gguf",
        2,
        QuantType::F32,
        QuantType::F32,
        true,
    );
    for rslora in [false, true] {
        let cfg = LoraConfig {
            rank: 4,
            alpha: 8.0,
            rslora,
            ..LoraConfig::default()
        };
        let p = lora_nonzero(&model, cfg, 3);
        let ad = p.to_adapter();
        assert_eq!(ad.tensors.len(), 14);
        let pair = &ad.tensors["blk.1.ffn_down.weight"];
        assert_eq!((pair.n_out, pair.n_in, pair.rank), (D, FF, 4));
        assert_eq!(pair.scale_factor, p.scale());
        let g = dir.path().join(format!("a{rslora}.gguf"));
        ad.save_gguf(&g, QuantType::F32).expect("save gguf");
        let back = LoraAdapter::load(&g).expect("load gguf");
        let peft = dir.path().join(format!("peft{rslora}"));
        ad.save_peft(&peft, QuantType::F32).expect("save peft");
        let back_peft = LoraAdapter::load_with_base(&peft, model.gguf()).expect("load peft");
        for loaded in [&back, &back_peft] {
            assert_eq!(loaded.tensors.len(), 14);
            for (name, want) in &ad.tensors {
                let got = &loaded.tensors[name];
                assert_eq!((&got.a, &got.b), (&want.a, &want.b), "{name}");
                assert!(
                    (got.scale_factor - want.scale_factor).abs() <= 1e-6 * want.scale_factor,
                    "{name}: scale {} vs {}",
                    got.scale_factor,
                    want.scale_factor
                );
            }
        }
    }
}
