//! The llama.cpp oracle (`tools/llama-oracle`) for parity tests: its path, from
//! `GRAFT_LLAMA_ORACLE`, and a call that parses its JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The oracle binary.
///
/// # Panics
/// With how to build it when `GRAFT_LLAMA_ORACLE` is unset or not a file (parity tests are
/// `#[ignore]`d and run from `scripts/test.sh --parity` and CI, which build it).
pub fn path() -> PathBuf {
    let path = std::env::var_os("GRAFT_LLAMA_ORACLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "GRAFT_LLAMA_ORACLE is not set: build the oracle with `cargo build --release \
                 --manifest-path tools/llama-oracle/Cargo.toml` and point GRAFT_LLAMA_ORACLE at \
                 tools/llama-oracle/target/release/llama-oracle (scripts/test.sh --parity does both)"
            )
        });
    assert!(
        path.is_file(),
        "GRAFT_LLAMA_ORACLE={} is not a file",
        path.display()
    );
    path
}

/// Runs the oracle with `args` and parses its JSON output.
///
/// # Panics
/// When the oracle fails or prints no JSON (the message carries its stderr).
pub fn run(args: &[&str]) -> serde_json::Value {
    let out = Command::new(path())
        .args(args)
        .output()
        .expect("run llama-oracle");
    assert!(
        out.status.success(),
        "llama-oracle {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("oracle JSON")
}

/// llama.cpp's logits report for `ids` on `model` (`logits` subcommand, every logit kept):
/// `positions[p].top` holds `{id, logit, logprob}` sorted by logit.
pub fn logits(model: &Path, ids: &[u32], dir: &Path) -> serde_json::Value {
    let ids_file = dir.join("oracle-ids.json");
    std::fs::write(&ids_file, serde_json::to_vec(ids).expect("ids JSON")).expect("write ids");
    run(&[
        "logits",
        "-m",
        &model.to_string_lossy(),
        "--ids-file",
        &ids_file.to_string_lossy(),
        "--top",
        "100000",
        "-t",
        "1",
    ])
}
