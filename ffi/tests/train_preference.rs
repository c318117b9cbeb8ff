//! Preference tuning through the C API (called from Rust through the rlib) on the real test
//! model: a DPO run on 4 pairs reports finite margin/accuracy to the callback and writes the
//! adapter; that adapter as `init_adapter` is the reference (first margin 0); an unknown method,
//! a bad beta and a missing `init_adapter` are refused with their status and a message naming
//! them.

mod common;

use common::{model_path, workspace};
use graft::*;
use std::ffi::{c_void, CStr, CString};
use std::path::{Path, PathBuf};

fn last_error() -> String {
    // SAFETY: graft_last_error returns a valid NUL-terminated string.
    unsafe { CStr::from_ptr(graft_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn cstr(p: &Path) -> CString {
    CString::new(p.to_str().expect("UTF-8 path")).expect("no NUL")
}

struct Model(*mut graft_model);

impl Model {
    fn open() -> Self {
        let path = cstr(&model_path());
        let mut mp = graft_model_params_default();
        mp.threads = 1;
        let mut model = std::ptr::null_mut();
        // SAFETY: valid C string, params and out pointer.
        let st = unsafe { graft_model_open(path.as_ptr(), &mp, &mut model) };
        assert_eq!(st, graft_status::GRAFT_OK, "{}", last_error());
        Model(model)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        assert_eq!(graft_model_close(self.0), graft_status::GRAFT_OK);
    }
}

/// The first `n` pairs of examples/triage-preference/data/train.jsonl without the system turn
/// (so that a pair row fits in 160 tokens), written to `dir/train.jsonl`.
fn pairs_file(dir: &Path, n: usize) -> PathBuf {
    let src = workspace().join("examples/triage-preference/data/train.jsonl");
    let text = std::fs::read_to_string(src).expect("example pairs are readable");
    let mut out = String::new();
    for line in text.lines().take(n) {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("pair line is JSON");
        if let Some(msgs) = v.get_mut("prompt").and_then(|m| m.as_array_mut()) {
            msgs.retain(|m| m["role"] != "system");
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    let p = dir.join("train.jsonl");
    std::fs::write(&p, out).expect("write pairs");
    p
}

/// Plain DPO (no RPO term, no anchor: the first loss is exactly ln 2) at tiny settings.
fn dpo_params() -> graft_train_params {
    let mut p = graft_train_params_default();
    p.method = GRAFT_TRAIN_METHOD_DPO;
    p.rpo_alpha = 0.0;
    p.anchor = 0.0;
    p.rank = 4;
    p.alpha = 8.0;
    p.seq = 160;
    p.batch = 2;
    p.grad_accum = 1;
    p.epochs = 1;
    p.lr = 2e-3;
    p.threads = 1;
    p
}

/// One optimizer step of `method` on one row of `seq` tokens, rank 2, one thread; every other
/// field the default.
fn one_step(method: i32, seq: u32) -> graft_train_params {
    let mut p = graft_train_params_default();
    p.method = method;
    p.rank = 2;
    p.seq = seq;
    p.batch = 1;
    p.grad_accum = 1;
    p.max_steps = 1;
    p.threads = 1;
    p
}

/// What the callback saw, one entry per step.
#[derive(Default)]
struct Seen(Vec<graft_train_progress>);

unsafe extern "C" fn record(p: *const graft_train_progress, user: *mut c_void) -> bool {
    // SAFETY: `user` is the `Seen` passed to graft_train; `p` is valid during the call.
    unsafe { (*user.cast::<Seen>()).0.push(*p) };
    true
}

/// Runs graft_train with the recording callback; the status and what the callback saw.
fn train(
    model: &Model,
    data: &Path,
    out: &Path,
    params: &graft_train_params,
) -> (graft_status, Vec<graft_train_progress>, graft_train_result) {
    let (data, out) = (cstr(data), cstr(out));
    let mut seen = Seen::default();
    let mut result = graft_train_result {
        steps: 0,
        final_loss: f64::NAN,
        final_val_loss: f64::NAN,
        tokens_per_sec: 0.0,
        elapsed_secs: 0.0,
        peak_rss_mb: 0.0,
    };
    // SAFETY: live model, valid C strings and params, a callback of the documented signature
    // with its user data alive for the call, a valid result pointer.
    let st = unsafe {
        graft_train(
            model.0,
            data.as_ptr(),
            std::ptr::null(),
            out.as_ptr(),
            params,
            Some(record),
            std::ptr::addr_of_mut!(seen).cast(),
            &mut result,
        )
    };
    (st, seen.0, result)
}

#[test]
fn params_default_is_sft_with_the_cli_beta() {
    let p = graft_train_params_default();
    assert_eq!(p.method, GRAFT_TRAIN_METHOD_SFT);
    assert_eq!(p.beta, graft_train::trainer::DEFAULT_BETA);
    assert_eq!(p.label_smoothing, 0.0);
    assert!(p.init_adapter.is_null());
    assert!(
        p.anchor < 0.0 && p.rpo_alpha < 0.0,
        "anchor {} and rpo_alpha {} say 'the method's default'",
        p.anchor,
        p.rpo_alpha
    );
    assert_eq!(
        (
            GRAFT_TRAIN_METHOD_SFT,
            GRAFT_TRAIN_METHOD_DPO,
            GRAFT_TRAIN_METHOD_IPO
        ),
        (0, 1, 2)
    );
}

#[test]
fn dpo_through_the_c_api_reports_margin_and_writes_the_adapter() {
    let model = Model::open();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pairs_file(dir.path(), 4);
    let out = dir.path().join("dpo.gguf");
    let (st, seen, res) = train(&model, &data, &out, &dpo_params());
    assert_eq!(st, graft_status::GRAFT_OK, "{}", last_error());
    assert_eq!(res.steps, 2, "4 pairs, batch 2, 1 epoch");
    assert_eq!(seen.len(), 2);
    for p in &seen {
        assert!(
            p.margin.is_finite() && (0.0..=1.0).contains(&p.accuracy),
            "step {}: margin {} accuracy {}",
            p.step,
            p.margin,
            p.accuracy
        );
        assert!(p.val_accuracy.is_nan(), "no validation set");
        assert!(p.loss.is_finite());
    }
    // The policy starts as the reference: the loss is ln 2 up to dropout's noise.
    assert!(
        (seen[0].loss - std::f64::consts::LN_2).abs() < 0.1,
        "first loss {}",
        seen[0].loss
    );
    assert!(
        std::fs::metadata(&out).expect("adapter written").len() > 0,
        "empty adapter"
    );

    // That adapter as the starting point is also the reference: without dropout the first
    // step's margin is 0 and its loss ln 2.
    let init = cstr(&out);
    let mut p = dpo_params();
    p.dropout = 0.0;
    p.max_steps = 1;
    p.init_adapter = init.as_ptr();
    let (st, seen, _) = train(&model, &data, &dir.path().join("again.gguf"), &p);
    assert_eq!(st, graft_status::GRAFT_OK, "{}", last_error());
    assert_eq!(seen.len(), 1);
    assert!(seen[0].margin.abs() < 1e-6, "margin {}", seen[0].margin);
    assert!(
        (seen[0].loss - std::f64::consts::LN_2).abs() < 1e-6,
        "loss {}",
        seen[0].loss
    );
}

#[test]
fn sft_progress_has_nan_preference_fields() {
    let model = Model::open();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("sft.jsonl");
    std::fs::write(
        &data,
        "{\"prompt\":\"Say hi.\",\"completion\":\"hi\"}\n{\"prompt\":\"Say yes.\",\"completion\":\"yes\"}\n",
    )
    .expect("write");
    let p = one_step(GRAFT_TRAIN_METHOD_SFT, 32);
    let (st, seen, _) = train(&model, &data, &dir.path().join("sft.gguf"), &p);
    assert_eq!(st, graft_status::GRAFT_OK, "{}", last_error());
    assert_eq!(seen.len(), 1);
    let s = seen[0];
    assert!(
        s.margin.is_nan() && s.accuracy.is_nan() && s.val_accuracy.is_nan(),
        "{s:?}"
    );
}

#[test]
fn bad_method_precision_beta_and_missing_init_adapter_are_refused() {
    let model = Model::open();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = pairs_file(dir.path(), 2);
    let out = dir.path().join("never.gguf");

    let mut p = dpo_params();
    p.method = 7;
    let (st, seen, _) = train(&model, &data, &out, &p);
    assert_eq!(st, graft_status::GRAFT_ERR_INVALID_ARG);
    let e = last_error();
    assert!(
        e.contains("method = 7") && e.contains("GRAFT_TRAIN_METHOD_"),
        "{e}"
    );
    assert!(seen.is_empty());

    let mut p = dpo_params();
    p.precision = 5;
    let (st, seen, _) = train(&model, &data, &out, &p);
    assert_eq!(st, graft_status::GRAFT_ERR_INVALID_ARG);
    let e = last_error();
    assert!(
        e.contains("precision = 5") && e.contains("GRAFT_PRECISION_"),
        "{e}"
    );
    assert!(seen.is_empty());

    let mut p = dpo_params();
    p.beta = -1.0;
    let (st, _, _) = train(&model, &data, &out, &p);
    assert_eq!(st, graft_status::GRAFT_ERR_INVALID_ARG);
    let e = last_error();
    assert!(e.contains("beta") && e.contains("-1"), "{e}");

    let mut p = dpo_params();
    p.label_smoothing = 0.5;
    let (st, _, _) = train(&model, &data, &out, &p);
    assert_eq!(st, graft_status::GRAFT_ERR_INVALID_ARG);
    let e = last_error();
    assert!(e.contains("label smoothing") && e.contains("0.5"), "{e}");

    let missing = dir.path().join("no-such-adapter.gguf");
    let missing_c = cstr(&missing);
    let mut p = dpo_params();
    p.init_adapter = missing_c.as_ptr();
    let (st, seen, _) = train(&model, &data, &out, &p);
    assert_eq!(st, graft_status::GRAFT_ERR_IO);
    let e = last_error();
    assert!(
        e.contains("init_adapter") && e.contains("no-such-adapter.gguf"),
        "{e}"
    );
    assert!(seen.is_empty());
    assert!(!out.exists(), "no adapter after a refusal");
}

/// The adapter's `graft.train.*` value of `key` as f64 (any numeric type).
fn train_key(adapter: &Path, key: &str) -> f64 {
    let f = graft_quant::gguf::GgufFile::open(adapter).expect("adapter is a GGUF file");
    let md = f.metadata();
    let k = format!("graft.train.{key}");
    md.get_f64(&k).unwrap_or_else(|e| panic!("{k}: {e}"))
}

#[test]
fn negative_anchor_and_rpo_alpha_take_the_methods_defaults_as_the_cli_does() {
    let model = Model::open();
    let dir = tempfile::tempdir().expect("tempdir");
    let pairs = pairs_file(dir.path(), 2);
    let sft = dir.path().join("sft.jsonl");
    std::fs::write(&sft, "{\"prompt\":\"Say hi.\",\"completion\":\"hi\"}\n").expect("write");
    for (method, data, anchor, rpo) in [
        (
            GRAFT_TRAIN_METHOD_DPO,
            &pairs,
            graft_train::trainer::PREFERENCE_DEFAULT_ANCHOR,
            Some(graft_train::trainer::PREFERENCE_DEFAULT_RPO_ALPHA),
        ),
        (
            GRAFT_TRAIN_METHOD_IPO,
            &pairs,
            graft_train::trainer::PREFERENCE_DEFAULT_ANCHOR,
            Some(graft_train::trainer::PREFERENCE_DEFAULT_RPO_ALPHA),
        ),
        (
            GRAFT_TRAIN_METHOD_SFT,
            &sft,
            graft_train::trainer::DEFAULT_ANCHOR,
            None,
        ),
    ] {
        let p = one_step(method, 160);
        let out = dir.path().join(format!("m{method}.gguf"));
        let (st, _, _) = train(&model, data, &out, &p);
        assert_eq!(st, graft_status::GRAFT_OK, "{}", last_error());
        assert_eq!(
            train_key(&out, "anchor"),
            f64::from(anchor),
            "method {method}"
        );
        if let Some(rpo) = rpo {
            assert_eq!(train_key(&out, "rpo_alpha"), rpo, "method {method}");
        }
    }
}
