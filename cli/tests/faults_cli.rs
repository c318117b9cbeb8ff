//! A full disk while graft writes: every file that matters (a quantized model, a data split,
//! a trained adapter and its checkpoints, a PEFT export) is written atomically, so running out
//! of space (ENOSPC) leaves the previous version byte for byte, leaves no temporary behind,
//! and reports the error with the path; with space back, the same command succeeds.
//!
//! Needs a small filesystem of its own that the test may fill: `GRAFT_SMALL_FS` names a
//! directory on it (a 64 MiB tmpfs). `scripts/test-faults.sh` mounts one (as root, or through
//! sudo) and runs this test; CI runs that script. Ignored otherwise (it fills the filesystem
//! it is given, so it must never run on a real one).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .output()
        .expect("the graft binary runs")
}

/// The small filesystem's directory (`GRAFT_SMALL_FS`), checked to be a tmpfs or another
/// filesystem under 1 GiB so that filling it cannot hurt the machine.
fn small_fs() -> PathBuf {
    let dir = std::env::var_os("GRAFT_SMALL_FS")
        .map(PathBuf::from)
        .expect(
            "GRAFT_SMALL_FS is not set: run scripts/test-faults.sh (it mounts a 64 MiB tmpfs and \
         runs this test)",
        );
    let out = Command::new("df")
        .args(["-k", "--output=size", s(&dir)])
        .output()
        .expect("df runs");
    let kb: u64 = text(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df gives the size");
    assert!(
        kb < 1 << 20,
        "GRAFT_SMALL_FS={} is on a filesystem of {kb} KiB: this test fills it, give it a small one",
        dir.display()
    );
    dir
}

/// Fills the filesystem holding `dir` to the last byte; the filler is removed on drop.
struct Filler(PathBuf);

impl Filler {
    fn new(dir: &Path) -> Filler {
        let path = dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("create filler");
        let chunk = vec![0u8; 64 << 10];
        let mut small = vec![0u8; 512];
        loop {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        // The last partial chunk's worth, then single blocks, down to nothing.
        while !small.is_empty() {
            if f.write_all(&small).is_err() {
                small.truncate(small.len() / 2);
            }
        }
        let _ = f.sync_all();
        Filler(path)
    }
}

impl Drop for Filler {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Every file under `dir`, with its bytes (recursively), sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).expect("read");
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

/// Runs `args` with `dir` (on the small filesystem) holding the output of a previous successful
/// run: with the filesystem full it must fail naming the disk error, and leave `dir` exactly
/// as it was (no partial file, no temporary); with space back it must succeed.
fn full_disk_keeps_the_previous_output(what: &str, root: &Path, dir: &Path, args: &[&str]) {
    let o = graft(args);
    assert!(
        o.status.success(),
        "{what}: the first run (with space) failed: {}",
        text(&o.stderr)
    );
    let before = snapshot(dir);
    assert!(!before.is_empty(), "{what}: the first run wrote nothing");
    {
        let _full = Filler::new(root);
        let o = graft(args);
        let err = text(&o.stderr);
        eprintln!("{what} on a full disk: {}", err.trim());
        assert!(
            !o.status.success(),
            "{what}: succeeded on a full disk?\n{err}"
        );
        assert!(
            err.contains("No space left on device"),
            "{what}: the error does not say the disk is full:\n{err}"
        );
        assert!(
            err.contains(s(dir)),
            "{what}: the error does not name where it was writing ({}):\n{err}",
            dir.display()
        );
        let after = snapshot(dir);
        let names = |v: &[(PathBuf, Vec<u8>)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&after),
            names(&before),
            "{what}: the files changed (a partial file or temporary left behind?)"
        );
        for ((p, a), (_, b)) in after.iter().zip(&before) {
            assert!(a == b, "{what}: {} changed on a failed write", p.display());
        }
    }
    let o = graft(args);
    assert!(
        o.status.success(),
        "{what}: with space back the run failed: {}",
        text(&o.stderr)
    );
}

#[test]
#[ignore = "fills a filesystem: run by scripts/test-faults.sh on a small tmpfs it mounts"]
fn small_fs_a_full_disk_never_loses_the_previous_output() {
    let root = small_fs();
    let work = tempfile::tempdir_in(&root).expect("tempdir on the small fs");
    let inputs = tempfile::tempdir().expect("tempdir for the inputs");
    let model = match graft_quant::model_cache::test_model_path() {
        Ok(p) => p,
        Err(msg) => panic!("{msg}"),
    };

    // graft quantize: a tiny model, requantized to Q8_0.
    let tiny = inputs.path().join("tiny.gguf");
    graft_testkit::TinyModel::for_arch("llama").write(&tiny);
    let qdir = work.path().join("quantize");
    std::fs::create_dir(&qdir).expect("mkdir");
    let qout = qdir.join("tiny-q8_0.gguf");
    full_disk_keeps_the_previous_output(
        "quantize",
        &root,
        &qdir,
        &[
            "quantize",
            "--type",
            "q8_0",
            "--allow-requantize",
            "--threads",
            "1",
            s(&tiny),
            s(&qout),
        ],
    );

    // graft data split.
    let data_src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/support-triage/data/train.jsonl");
    let sdir = work.path().join("split");
    full_disk_keeps_the_previous_output(
        "data split",
        &root,
        &sdir,
        &["data", "split", s(&data_src), "--out", s(&sdir)],
    );

    // graft train: the adapter, its model card, metrics and checkpoints.
    let text_all = std::fs::read_to_string(&data_src).expect("example data");
    let data = inputs.path().join("train.jsonl");
    let mut small = String::new();
    for line in text_all.lines().take(8) {
        // Without the long system turn, so that --seq 64 keeps the scored answer.
        let mut v: serde_json::Value = serde_json::from_str(line).expect("example line is JSON");
        if let Some(msgs) = v.get_mut("messages").and_then(|m| m.as_array_mut()) {
            msgs.retain(|m| m["role"] != "system");
        }
        small.push_str(&v.to_string());
        small.push('\n');
    }
    std::fs::write(&data, small).expect("write data");
    let tdir = work.path().join("train");
    std::fs::create_dir(&tdir).expect("mkdir");
    let adapter = tdir.join("a.gguf");
    let ckpt = tdir.join("ckpt");
    full_disk_keeps_the_previous_output(
        "train",
        &root,
        &tdir,
        &[
            "train",
            "-m",
            s(&model),
            "--data",
            s(&data),
            "-o",
            s(&adapter),
            "--rank",
            "4",
            "--seq",
            "64",
            "--batch",
            "1",
            "--grad-accum",
            "2",
            "--max-steps",
            "2",
            "--save-every",
            "1",
            "--checkpoint-dir",
            s(&ckpt),
            "-t",
            "1",
            "--no-progress",
        ],
    );

    // graft adapter convert: a PEFT directory (written as a whole).
    let peft_in = inputs.path().join("a.gguf");
    std::fs::copy(&adapter, &peft_in).expect("copy adapter");
    let pdir = work.path().join("peft");
    std::fs::create_dir(&pdir).expect("mkdir");
    let peft = pdir.join("a-peft");
    full_disk_keeps_the_previous_output(
        "adapter convert",
        &root,
        &pdir,
        &[
            "adapter",
            "convert",
            s(&peft_in),
            s(&peft),
            "--to",
            "peft",
            "--base",
            s(&model),
        ],
    );
}
