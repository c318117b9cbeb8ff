//! LoRA on the real model (SmolLM2-135M-Instruct Q4_1) against llama.cpp.
//!
//! The adapters are rebuilt here deterministically (tests/lora_support/gen.rs, the same code
//! the `make-test-adapters` example ran when the goldens were made) and their files' sha256
//! must equal the golden's, so graft and llama.cpp ran the very same adapters.

mod lora_support;
mod model_common;

use graft_quant::QuantType;
use graft_runtime::lora::LoadedAdapter;
use graft_runtime::sampling::{Sampler, SamplerParams};
use graft_runtime::{Model, ModelParams, Session, SessionParams};
use lora_support::gen::{random_adapter, Dims, TEST_ADAPTERS};
use model_common::{golden, model_path, THREADS};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;

struct Fixture {
    dir: tempfile::TempDir,
    model: Model,
}

fn fixture() -> Fixture {
    let model = Model::load(model_path(), ModelParams { threads: THREADS }).expect("load model");
    let c = model.config();
    let dims = Dims {
        n_layer: c.n_layer,
        n_embd: c.n_embd,
        n_ff: c.n_ff,
        q_dim: c.q_dim(),
        kv_dim: c.kv_dim(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let g = golden("lora_golden.json");
    for (name, rank, alpha, seed) in TEST_ADAPTERS {
        let a = random_adapter(dims, rank, alpha, seed);
        let path = dir.path().join(name);
        a.save_gguf(&path, QuantType::F32).expect("save adapter");
        let sha = Sha256::digest(std::fs::read(&path).expect("read adapter"));
        let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            g["adapters"][name].as_str(),
            Some(hex.as_str()),
            "{name}: the rebuilt adapter differs from the one llama.cpp's golden was made with \
             (regenerate with scripts/gen-llama-goldens.sh lora)"
        );
    }
    Fixture { dir, model }
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn adapter(&self, name: &str) -> Arc<LoadedAdapter> {
        LoadedAdapter::load(&self.model, self.path(name)).expect("load adapter")
    }
    fn session(&self) -> Session<'_> {
        Session::new(
            &self.model,
            SessionParams {
                n_ctx: 320,
                n_batch: 64,
            },
        )
        .expect("session")
    }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id array")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn argmax(l: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in l.iter().enumerate() {
        if x > l[best] {
            best = i;
        }
    }
    best as u32
}

#[test]
fn logits_and_greedy_agree_with_llama_cpp() {
    let f = fixture();
    let g = golden("lora_golden.json");
    let nv = f.model.config().n_vocab;
    let mut report = Vec::new();
    // For scale: the base model's agreement with llama.cpp on the same positions.
    {
        let base_g = golden("logits_golden.json");
        let toks = ids(&g["runs"][0]["logits"]["ids"]);
        let mut s = f.session();
        let logits = s.eval_all(&toks).expect("eval").to_vec();
        let agree = (0..toks.len())
            .filter(|&p| {
                argmax(&logits[p * nv..(p + 1) * nv]) as u64
                    == base_g["positions"][p]["argmax"].as_u64().expect("argmax")
            })
            .count();
        report.push(format!(
            "base model: top-1 agreement {agree}/{} on the same positions",
            toks.len()
        ));
    }
    for run in g["runs"].as_array().expect("runs") {
        let name = run["adapter"].as_str().expect("adapter");
        let scale = run["scale"].as_f64().expect("scale") as f32;
        let a = f.adapter(name);
        let mut s = f.session();
        s.set_adapters(&[(a, scale)]).expect("set");
        // Logits over a fixed id sequence.
        let toks = ids(&run["logits"]["ids"]);
        let logits = s.eval_all(&toks).expect("eval").to_vec();
        let pos = run["logits"]["positions"].as_array().expect("positions");
        assert_eq!(pos.len(), toks.len());
        let (mut agree, mut max_diff) = (0usize, 0.0f32);
        let mut miss_margins = Vec::new();
        for (p, want) in pos.iter().enumerate() {
            let row = &logits[p * nv..(p + 1) * nv];
            if argmax(row) as u64 == want["argmax"].as_u64().expect("argmax") {
                agree += 1;
            } else {
                let top = want["top"].as_array().expect("top");
                let m = top[0]["logit"].as_f64().expect("logit")
                    - top[1]["logit"].as_f64().expect("logit");
                miss_margins.push(format!("{m:.2}"));
            }
            for c in want["top"].as_array().expect("top") {
                let id = c["id"].as_u64().expect("id") as usize;
                let l = c["logit"].as_f64().expect("logit") as f32;
                max_diff = max_diff.max((row[id] - l).abs());
            }
        }
        let rate = agree as f64 / pos.len() as f64;
        // Greedy continuation of the chat prompt.
        let prompt = ids(&run["greedy"]["prompt_ids"]);
        let want = ids(&run["greedy"]["ids"]);
        s.reset();
        let mut sampler = Sampler::new(SamplerParams::greedy());
        let mut got = Vec::new();
        let mut l = s.eval(&prompt).expect("prefill").to_vec();
        for _ in 0..want.len() {
            let id = sampler.sample(&l);
            got.push(id);
            l = s.eval(&[id]).expect("decode").to_vec();
        }
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        report.push(format!(
            "{name} scale {scale}: top-1 agreement {agree}/{} = {rate:.3}, max |Δ top-10 logit| \
             {max_diff:.4}, greedy prefix {same}/{}; llama.cpp's top-1 margins where they \
             differ: [{}]",
            pos.len(),
            want.len(),
            miss_margins.join(", ")
        ));
        // llama.cpp's goldens come from its own LoRA rounding; no graft path reproduces it, and
        // near-tied positions flip between valid roundings. Measured (Intel Xeon, 2026-12-07;
        // r8 × 1, r8 × 0.5, r16 × 1, r16 × 0.5): AVX-512 0.953 / 0.961 / 0.984 / 0.977, scalar
        // 0.953 / 0.961 / 0.973 / 0.969, AMX 0.930 / 0.941 / 0.980 / 0.961, every greedy run
        // 8/8. 92% leaves each path a few positions below its lowest.
        assert!(rate >= 0.92, "{}", report.join("\n"));
        // Greedy ids equal llama.cpp's up to the first near-tie (margin < 0.1) in its run.
        let margins = run["greedy"]["margins"].as_array().expect("margins");
        let tie = margins
            .iter()
            .position(|m| m.as_f64().unwrap_or(0.0) < 0.1)
            .unwrap_or(want.len());
        assert!(
            same >= tie.min(want.len()),
            "{name} scale {scale}: greedy {got:?} vs llama.cpp {want:?} (first near-tie at {tie})"
        );
    }
    eprintln!("{}", report.join("\n"));
}

fn run_ids(s: &mut Session<'_>, toks: &[u32]) -> Vec<f32> {
    let mut all = s.eval_all(&toks[..20]).expect("prefill").to_vec();
    for &t in &toks[20..] {
        all.extend_from_slice(s.eval(&[t]).expect("decode"));
    }
    all
}

fn test_ids() -> Vec<u32> {
    let g = golden("lora_golden.json");
    ids(&g["runs"][0]["logits"]["ids"])[..28].to_vec()
}

#[test]
fn scale_zero_equals_base_and_adapters_change_logits() {
    let f = fixture();
    let toks = test_ids();
    let base = run_ids(&mut f.session(), &toks);
    let a = f.adapter("lora-r16.gguf");
    let mut s = f.session();
    s.set_adapters(&[(a.clone(), 0.0)]).expect("set");
    assert_eq!(run_ids(&mut s, &toks), base);
    s.set_adapters(&[(a, 1.0)]).expect("set");
    let on = run_ids(&mut s, &toks);
    let d = on
        .iter()
        .zip(&base)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(d > 0.5, "adapter changes the logits by only {d}");
}

#[test]
fn peft_loaded_equals_gguf_loaded() {
    let f = fixture();
    let toks = test_ids();
    let gguf = f.adapter("lora-r8.gguf");
    let raw =
        graft_runtime::adapter::LoraAdapter::load_with_base(f.path("lora-r8.gguf"), f.model.gguf())
            .expect("load");
    let peft_dir = f.dir.path().join("peft-r8");
    raw.save_peft(&peft_dir, QuantType::F32).expect("save peft");
    let peft = LoadedAdapter::load(&f.model, &peft_dir).expect("load peft");
    let mut s = f.session();
    s.set_adapters(&[(gguf, 1.0)]).expect("set");
    let want = run_ids(&mut s, &toks);
    s.set_adapters(&[(peft, 1.0)]).expect("set");
    assert_eq!(run_ids(&mut s, &toks), want);
}

#[test]
fn hot_swap_on_one_session_equals_fresh_sessions() {
    let f = fixture();
    let toks = test_ids();
    let a = f.adapter("lora-r8.gguf");
    let b = f.adapter("lora-r16.gguf");
    let fresh = |list: &[(Arc<LoadedAdapter>, f32)]| {
        let mut s = f.session();
        s.set_adapters(list).expect("set");
        run_ids(&mut s, &toks)
    };
    let ra = fresh(&[(a.clone(), 1.0)]);
    let rb = fresh(&[(b.clone(), 0.5)]);
    let rn = fresh(&[]);
    let mut s = f.session();
    for (list, want) in [
        (vec![(a.clone(), 1.0)], &ra),
        (vec![(b.clone(), 0.5)], &rb),
        (vec![(a.clone(), 1.0)], &ra),
        (vec![], &rn),
    ] {
        s.set_adapters(&list).expect("set");
        assert_eq!(&run_ids(&mut s, &toks), want);
    }
}
