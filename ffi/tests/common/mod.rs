//! Shared helpers of the C-side tests: the real model, building libgraft and the C programs,
//! running them (optionally under valgrind), and reference generations from graft_runtime.

#![allow(dead_code)]

use graft_runtime::chat_template::{ChatMessage, ChatTemplate};
use graft_runtime::generate::{generate, GenerateParams};
use graft_runtime::lora::LoadedAdapter;
use graft_runtime::sampling::SamplerParams;
use graft_runtime::tokenizer::Tokenizer;
use graft_runtime::{Model, ModelParams, Session, SessionParams};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

/// The SmolLM2-135M-Instruct Q4_1 test model; panics with the fetch instruction if missing.
pub fn model_path() -> PathBuf {
    graft_quant::model_cache::test_model_path().unwrap_or_else(|msg| panic!("{msg}"))
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ffi/ has a parent")
        .to_path_buf()
}

/// Writes a tiny random model with the test model's real tokenizer and chat template into
/// `dir` and returns its path: 2 layers, width 128 (2 heads of 64, as SmolLM2's, one KV head),
/// FFN 256, Q4_1 projections and a Q8_0 tied embedding (the test model's formats). For the
/// runs under valgrind: the same C calls, tokenizer and kernels, but each token costs ~1/20 of
/// SmolLM2-135M's work (memcheck emulates each AVX2 FMA lane: a 10-token SmolLM2 prefill took
/// ~35 s under it), so the memcheck runs check the API and not the arithmetic's speed.
pub fn tiny_model_with_real_tokenizer(dir: &Path) -> PathBuf {
    let (n_vocab, extra) = graft_testkit::tokenizer_of(&model_path())
        .unwrap_or_else(|e| panic!("{}: {e}", model_path().display()));
    let m = graft_testkit::TinyModel {
        n_vocab,
        n_embd: 128,
        n_layer: 2,
        n_ff: 256,
        n_head: 2,
        n_head_kv: 1,
        n_rot: 64,
        n_ctx: 2048,
        tied: true,
        proj_type: graft_quant::QuantType::Q4_1,
        embd_type: graft_quant::QuantType::Q8_0,
        extra,
        ..graft_testkit::TinyModel::default()
    };
    let path = dir.join("tiny-smollm2-tokenizer.gguf");
    m.write(&path);
    path
}

/// Built artifacts, copied out of target/ so concurrent builds cannot change them under us.
pub struct Artifacts {
    /// Holds the copies and the compiled C programs: [`run_dir`].
    pub dir: PathBuf,
    /// Folder with libgraft.so only (for -L ... -lgraft).
    pub shared_dir: PathBuf,
    /// libgraft.a.
    pub static_lib: PathBuf,
    /// The `graft` CLI.
    pub graft_cli: PathBuf,
}

/// Set by `scripts/test.sh` around its `cargo test --workspace` runs: the C-side tests then
/// take libgraft and the `graft` binary from that very build (`cargo test --workspace
/// --no-run`, every unit already fresh) instead of building them per package. A per-package
/// build resolves another unit graph (fewer features, build-only proc-macro crates without
/// debug info), which rebuilds ~70 units — wgpu, tokenizers, every graft crate — and took
/// ~7 minutes of CI's 2 cores.
pub const FROM_WORKSPACE_TEST: &str = "GRAFT_TEST_ARTIFACTS_FROM_WORKSPACE";

/// Runs cargo with `args` plus `--message-format=json` and returns the artifact files it
/// reports (fresh or built).
fn cargo_artifacts(args: &[&str]) -> Vec<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace())
        .args(args)
        .arg("--message-format=json")
        .output()
        .expect("run cargo");
    assert!(
        out.status.success(),
        "cargo {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact" && v["target"]["name"] != "build-script-build" {
            if let Some(fs) = v["filenames"].as_array() {
                files.extend(fs.iter().filter_map(|f| f.as_str()).map(PathBuf::from));
            }
            if let Some(exe) = v["executable"].as_str() {
                files.push(PathBuf::from(exe));
            }
        }
    }
    files
}

/// libgraft and the graft CLI, built with the test profile: from the workspace test build
/// under [`FROM_WORKSPACE_TEST`], else `cargo build --profile test -p graft-ffi -p graft-cli`.
fn built_files() -> Vec<PathBuf> {
    if std::env::var_os(FROM_WORKSPACE_TEST).is_some() {
        cargo_artifacts(&["test", "--workspace", "--no-run"])
    } else {
        cargo_artifacts(&[
            "build",
            "--profile",
            "test",
            "-p",
            "graft-ffi",
            "-p",
            "graft-cli",
        ])
    }
}

/// This test process's folder for copies and C programs:
/// `$CARGO_TARGET_TMPDIR/c-programs/<pid>`, emptied first. It cannot be a `TempDir`: it lives in
/// a `static`, and statics are never dropped, so every run of every C-side test binary left
/// ~700 MB in /tmp (the static C programs are ~90 MB each) — 40 GB on one dev machine, and a
/// CI run's linker died of the full disk (SIGBUS). Instead each run removes the folders of
/// processes that are gone (`/proc/<pid>` absent), so at most one set per live run remains,
/// under target/ where `cargo clean` finds it.
fn run_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-programs");
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
    if let Ok(entries) = std::fs::read_dir(&root) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let gone = name
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists());
            if gone {
                // Best effort: another run may be sweeping the same folder.
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = root.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Builds libgraft (shared and static) and the graft CLI once per test binary.
pub fn artifacts() -> &'static Artifacts {
    static A: OnceLock<Artifacts> = OnceLock::new();
    A.get_or_init(|| {
        let files = built_files();
        let find = |files: &[PathBuf], name: &str| -> PathBuf {
            files
                .iter()
                .find(|f| f.file_name().is_some_and(|n| n == name))
                .unwrap_or_else(|| panic!("cargo did not report {name}: {files:?}"))
                .clone()
        };
        let dir = run_dir();
        let shared_dir = dir.join("shared");
        std::fs::create_dir(&shared_dir).expect("mkdir");
        std::fs::copy(find(&files, "libgraft.so"), shared_dir.join("libgraft.so"))
            .expect("copy .so");
        let static_lib = dir.join("libgraft.a");
        std::fs::copy(find(&files, "libgraft.a"), &static_lib).expect("copy .a");
        let graft_cli = dir.join("graft");
        std::fs::copy(find(&files, "graft"), &graft_cli).expect("copy graft");
        Artifacts {
            dir,
            shared_dir,
            static_lib,
            graft_cli,
        }
    })
}

/// An environment entry that hides the GPU drivers from wgpu (it finds no DX12 adapter on
/// Linux), for the memory checkers: Mesa's lavapipe and EGL drivers leak once-per-process state
/// (LeakSanitizer reports 128 bytes each from their pthread_once initialisers) and make memcheck
/// report errors while they load; with them hidden the checkers check graft.
pub const NO_GPU_DRIVERS: (&str, &str) = ("WGPU_BACKEND", "dx12");

/// The system libraries a program linked with libgraft.a needs (as in graft.pc's Libs.private).
pub const STATIC_DEPS: &[&str] = &[
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// How a C program is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Against libgraft.so.
    Shared,
    /// Against libgraft.a.
    Static,
}

/// A compiled C program.
pub struct CProgram {
    /// The executable.
    pub exe: PathBuf,
    /// How it was linked.
    pub link: Link,
}

/// Compiles `src` (relative to ffi/) with `cc -Wall -Werror` against include/graft.h.
pub fn compile(src: &str, link: Link) -> CProgram {
    compile_with(src, link, "", &[])
}

/// As [`compile`], with extra compiler flags (e.g. `-fsanitize=address`); `tag` goes into the
/// executable's name (with a per-call number: no build overwrites another).
pub fn compile_with(src: &str, link: Link, tag: &str, flags: &[&str]) -> CProgram {
    let a = artifacts();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stem = Path::new(src)
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("source name");
    // A fresh name per call: two tests compiling the same program at once must not write the
    // file the other is running (exec fails with ETXTBSY, or runs a half-written binary).
    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let exe = a.dir.join(format!("{stem}-{link:?}{tag}-{n}"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-O1"])
        .args(flags)
        .arg("-I")
        .arg(manifest.join("include"))
        .arg(manifest.join(src))
        .arg("-o")
        .arg(&exe);
    match link {
        Link::Shared => {
            cmd.arg("-L").arg(&a.shared_dir).arg("-lgraft");
            cmd.arg("-lm").arg("-lpthread");
        }
        Link::Static => {
            cmd.arg(&a.static_lib).args(STATIC_DEPS);
        }
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cc}: {e}"));
    assert!(
        out.status.success(),
        "{cc} {src} ({link:?}) failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    CProgram { exe, link }
}

/// Whether valgrind is installed.
pub fn have_valgrind() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

impl CProgram {
    fn command(&self, valgrind: bool) -> Command {
        let mut cmd = if valgrind {
            let mut c = Command::new("valgrind");
            c.args([
                "--error-exitcode=1",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite",
                "--show-leak-kinds=definite",
                "-q",
            ])
            .arg(&self.exe);
            c
        } else {
            Command::new(&self.exe)
        };
        if self.link == Link::Shared {
            cmd.env("LD_LIBRARY_PATH", &artifacts().shared_dir);
        }
        cmd
    }

    /// Runs it with `args` and extra environment variables; returns what it did, failed or not.
    pub fn output_env(&self, args: &[&str], valgrind: bool, env: &[(&str, &str)]) -> Output {
        self.command(valgrind)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("run C program")
    }

    /// Runs it with `args`; panics with its output if it fails.
    pub fn run(&self, args: &[&str], valgrind: bool) -> Output {
        self.run_env(args, valgrind, &[])
    }

    /// As [`Self::run`], with extra environment variables.
    #[allow(dead_code)]
    pub fn run_env(&self, args: &[&str], valgrind: bool, env: &[(&str, &str)]) -> Output {
        let out = self.output_env(args, valgrind, env);
        assert!(
            out.status.success(),
            "{} {args:?} (valgrind: {valgrind}) exited with {}:\nstdout:\n{}\nstderr:\n{}",
            self.exe.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// Runs `graft run --chat` greedily on the test model on the CPU (the device the C programs
/// open by default); returns its stdout.
pub fn graft_run_chat(prompt: &str, n: usize, lora: Option<(&Path, f32)>) -> String {
    let mut cmd = Command::new(&artifacts().graft_cli);
    cmd.arg("run")
        .arg("-m")
        .arg(model_path())
        .args([
            "--chat", "--temp", "0", "-t", "1", "-c", "512", "--device", "cpu", "-p", prompt,
        ])
        .args(["-n", &n.to_string()]);
    if let Some((path, scale)) = lora {
        cmd.arg("--lora-scaled").arg(path).arg(scale.to_string());
    }
    let out = cmd.output().expect("run graft");
    assert!(
        out.status.success(),
        "graft run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("graft run prints UTF-8")
}

/// The reference: graft_runtime directly, greedy, the prompt as a ChatML user turn.
pub struct Reference {
    /// The model (1 thread, as the C programs).
    pub model: Model,
    tok: Tokenizer,
}

impl Reference {
    /// Loads the test model.
    pub fn new() -> Self {
        Self::load(&model_path())
    }

    /// Loads the model at `path`.
    pub fn load(path: &Path) -> Self {
        let model = Model::load(path, ModelParams { threads: 1 }).expect("load model");
        let tok = Tokenizer::from_gguf(model.gguf().metadata()).expect("tokenizer");
        Reference { model, tok }
    }

    /// Greedy text for `prompt` as a chat user turn with `adapters` active.
    pub fn chat(&self, prompt: &str, n: usize, adapters: &[(Arc<LoadedAdapter>, f32)]) -> String {
        let text = ChatTemplate::chatml()
            .expect("chatml")
            .render(&[ChatMessage::new("user", prompt)], true)
            .expect("render");
        let ids = self.tok.encode(&text, true, true);
        let mut s = Session::new(
            &self.model,
            SessionParams {
                n_ctx: 512,
                ..SessionParams::default()
            },
        )
        .expect("session");
        s.set_adapters(adapters).expect("set adapters");
        let p = GenerateParams {
            max_tokens: n,
            stop: vec![],
            sampler: SamplerParams::greedy(),
        };
        generate(&mut s, &self.tok, &ids, &p, &mut |_| true)
            .expect("generate")
            .text
    }
}

#[path = "../../../runtime/tests/lora_support/gen.rs"]
mod gen;

/// Two deterministic random LoRA adapters for the test model (rank 8 and 16, alpha 16, the
/// runtime's LoRA test generator), written as GGUF into `dir`; returns their paths.
pub fn test_adapters(model: &Model, dir: &Path) -> [PathBuf; 2] {
    let c = model.config();
    let dims = gen::Dims {
        n_layer: c.n_layer,
        n_embd: c.n_embd,
        n_ff: c.n_ff,
        q_dim: c.q_dim(),
        kv_dim: c.kv_dim(),
    };
    gen::TEST_ADAPTERS.map(|(name, rank, alpha, seed)| {
        let path = dir.join(name);
        gen::random_adapter(dims, rank, alpha, seed)
            .save_gguf(&path, graft_quant::QuantType::F32)
            .expect("save adapter");
        path
    })
}

/// The first `n` examples of examples/support-triage/data/`src` without their system
/// messages (so each fits a 64-token row), written to `dir`/`src`.
pub fn small_data(dir: &Path, src: &str, n: usize) -> PathBuf {
    let from = workspace().join("examples/support-triage/data").join(src);
    let text = std::fs::read_to_string(&from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    let mut out = String::new();
    for line in text.lines().take(n) {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("example line is JSON");
        if let Some(msgs) = v.get_mut("messages").and_then(|m| m.as_array_mut()) {
            msgs.retain(|m| m["role"] != "system");
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    let p = dir.join(src);
    std::fs::write(&p, out).expect("write data");
    p
}
