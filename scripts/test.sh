#!/usr/bin/env bash
# graft's test command (what CI runs):
#   scripts/test.sh             # setup, fmt, clippy, the whole test suite, the full-disk tests
#   scripts/test.sh --parity    # also build llama.cpp (tools/llama-oracle) and run the parity tests
#   scripts/test.sh --cross     # also cross-compile the kernels for aarch64 and test them under qemu
#   scripts/test.sh --fuzz      # also a 30-second smoke run of every fuzz target (scripts/fuzz-smoke.sh)
#   scripts/test.sh --kld       # also build llama.cpp's llama-perplexity and run the KL-divergence
#                               # parity test (~6 min build + ~3 min test on 2 cores; not run by CI)
#   scripts/test.sh --metal     # also type-check the runtime's wgpu (Metal) build for
#                               # aarch64-apple-darwin (~5 min on 2 cores; not run by CI)
#   scripts/test.sh --slow      # also the checks CI leaves out to stay under 45 minutes:
#                               # --kld, llama-quantize parity on Gemma 3 (~2.5 min),
#                               # importance matrices against llama-imatrix/llama-quantize
#                               # (~30 s build after --kld's, ~5 min test),
#                               # graft-train's gradient tests on NEON under qemu (~7 min build
#                               # + 2.5 min); implies --parity --cross
# CI (CI=true) runs everything but --metal, --kld and --slow, and prints each step's time.
set -euo pipefail
cd "$(dirname "$0")/.."

parity=0
cross=0
fuzz=0
metal=0
kld=0
slow=0
if [ "${CI:-}" = "true" ]; then parity=1; cross=1; fuzz=1; fi
for a in "$@"; do
  case "$a" in
    --parity) parity=1 ;;
    --cross) cross=1 ;;
    --fuzz) fuzz=1 ;;
    --metal) metal=1; cross=1 ;;
    --kld) kld=1 ;;
    --slow) slow=1; kld=1; parity=1; cross=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done

setup_args=()
[ "$parity" = 1 ] && setup_args+=(--parity)
[ "$cross" = 1 ] && setup_args+=(--cross)
scripts/setup.sh "${setup_args[@]}"

# Each step prints the time the previous one took (and the total), so a slow CI run says why.
step_name=""
step_start=$SECONDS
step() {
  if [ -n "$step_name" ]; then
    echo "<== $step_name: $((SECONDS - step_start)) s (total $SECONDS s)"
  fi
  step_name="$*"
  step_start=$SECONDS
  echo; echo "==> $*"
}

# wgpu's Vulkan loader warns without a runtime directory (the GPU tests run on lavapipe).
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

# Incremental caches only help rebuilds; on a one-shot CI machine they cost gigabytes of disk.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi
step "disk"
df -h . | tail -1
# A disk that fills up mid-build does not say so: the linker dies with SIGBUS ("ld terminated
# with signal 7 [Bus error]"), as one CI run did. A whole CI run wrote ~4 GB into the clone
# (README), plus the cargo registry, apt packages and models on a fresh machine.
need_gb=8
free_gb=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
if [ "${free_gb:-0}" -lt "$need_gb" ]; then
  echo "WARNING: ${free_gb} GB free here; a whole run needs about ${need_gb} GB. A linker that" \
    "dies with SIGBUS below means the disk filled up."
fi

# The builds that only later steps need — the llama.cpp oracle (~7 min of C++ on 2 cores) and
# the fuzz targets (cargo-fuzz and an AddressSanitizer release build, ~5 min) — start now, side
# by side, in the background at the lowest priority: they take the CPU time that clippy and
# the test suite leave idle (single-crate stretches of the build, tests waiting on processes or
# on one thread) and yield it when those want it. Each later step waits for its build and
# then runs the same command in the foreground: a no-op when the background one finished,
# the build itself (with its errors on the terminal) when it failed. Logs: target/background/.
# Each runs in its own session (setsid), so that a run ending early (a failing step) stops
# them and their compilers instead of leaving them building in a tree that is going away.
bg_logs="target/background"
mkdir -p "$bg_logs"
rm -f "$bg_logs/llama-oracle.done" "$bg_logs/fuzz.done"
bg_groups=()
stop_background_builds() {
  for g in "${bg_groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
}
trap stop_background_builds EXIT
if [ "$parity" = 1 ]; then
  setsid bash -c 'nice -n 19 cargo build --release --manifest-path tools/llama-oracle/Cargo.toml \
    >"$1/llama-oracle.log" 2>&1; touch "$1/llama-oracle.done"' _ "$bg_logs" &
  bg_groups+=("$!")
fi
if [ "$fuzz" = 1 ]; then
  setsid bash -c 'nice -n 19 scripts/fuzz-smoke.sh --build-only >"$1/fuzz.log" 2>&1
    touch "$1/fuzz.done"' _ "$bg_logs" &
  bg_groups+=("$!")
fi
# Waits for the background build whose marker is $1 (llama-oracle or fuzz).
wait_for_build() {
  echo "(waiting for the background build: $bg_logs/$1.log)"
  while [ ! -e "$bg_logs/$1.done" ]; do sleep 5; done
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
# With the `cuda` feature (cudarc, loaded at run time: no CUDA needed to build), so the CUDA
# code is linted too; the few `not(feature = "cuda")` lines are compiled by the test build.
cargo clippy --workspace --all-targets --features graft-kernels/cuda -- -D warnings

step "cargo test"
# The C-side tests (ffi/tests) take libgraft and the graft binary from this build instead of a
# per-package build, which would rebuild ~70 units (ffi/tests/common/mod.rs, FROM_WORKSPACE_TEST).
export GRAFT_TEST_ARTIFACTS_FROM_WORKSPACE=1
# `cargo test --workspace`, with the test binaries two at a time (one per core; see the script:
# several of the slowest spend minutes in one single-threaded test).
scripts/test-parallel.sh
if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
  # On AMX hosts the suite above ran the default path (AMX-INT8 prefill, within tolerance of
  # llama.cpp); the model tests that hold graft's x86 kernels to llama.cpp's bits run again on
  # the AVX-512 path.
  step "cargo test: bit-exact model tests on the AVX-512 path (GRAFT_ISA=avx512, AMX host)"
  GRAFT_ISA=avx512 scripts/test-parallel.sh --only model_smollm --only model_gemma3 \
    --only lora_smollm
fi

step "faults: a full disk (64 MiB tmpfs) while writing models, splits, adapters, checkpoints"
scripts/test-faults.sh

# The steps after the suite run side by side: on their own each leaves a core idle much of the
# time (the oracle's last C++ files and its link, a test binary alone at the end, the fuzz
# build's final crates and link, qemu running one test binary). Each writes its output to
# target/background/<step>.log, printed whole when all have ended. A failing step fails the run.
side_names=()
side_pids=()
side_logs=()
side_by_side() { # side_by_side NAME FUNCTION
  local log="$bg_logs/$2.log"
  rm -f "$log.end"
  (
    trap 'echo "$SECONDS" >"'"$log"'.end"' EXIT
    "$2"
  ) >"$log" 2>&1 &
  side_names+=("$1")
  side_pids+=("$!")
  side_logs+=("$log")
}

parity_step() {
  # Built from the repository root, so the oracle's own .cargo/config.toml (target-cpu=native)
  # does not apply: llama.cpp is built for the generic target, which is also what keeps CI safe
  # on Intel hosts with AMX (llama.cpp's native AMX matmul segfaults on multi-token batches,
  # shared/notes/facts.md). An AVX-512 build quantizes Q4_0 differently from ggml's reference
  # (graft_quantize_matches_llama_quantize fails with it), so do not add native flags here.
  wait_for_build llama-oracle
  cargo build --release --manifest-path tools/llama-oracle/Cargo.toml
  export GRAFT_LLAMA_ORACLE="$PWD/tools/llama-oracle/target/release/llama-oracle"
  # The bit-exactness tests against llama.cpp's x86 kernels (repacked Q4_K, tiled Q6_K) need
  # an AVX2/AVX-512 build of the oracle: scripts/test-native-parity.sh runs them.
  # Ignored tests that need something else are run by their own scripts: native_oracle
  # (test-native-parity.sh), small_fs (test-faults.sh), thread_sanitizer (soak.sh --tsan),
  # real_templates (a directory of real templates, see runtime/tests/chat_template.rs),
  # dpo_adapter_matches_llama_cpp_greedy (trains with the debug build, ~20 min on 2 cores: run
  # it with `GRAFT_LLAMA_ORACLE=... cargo test -p graft-cli --test llama_parity dpo_adapter --
  # --ignored` after changing the preference trainer or the adapter writer),
  # kl_divergence_matches_llama_perplexity (--kld below);
  # graft_quantize_matches_llama_quantize_on_gemma3 and llama_imatrix_* (--slow below).
  scripts/test-parallel.sh -- --ignored --skip native_oracle --skip small_fs \
    --skip thread_sanitizer --skip real_templates --skip dpo_adapter_matches_llama_cpp_greedy \
    --skip kl_divergence_matches_llama_perplexity \
    --skip graft_quantize_matches_llama_quantize_on_gemma3 --skip llama_imatrix_
}

fuzz_step() {
  wait_for_build fuzz
  scripts/fuzz-smoke.sh 30
}

cross_step() {
  # Its own target directory: cargo locks a target directory per build, and the parity step's
  # `cargo test --no-run` (a no-op) would otherwise wait for this whole cross build. The cost
  # is the host proc-macros built a second time (a few seconds).
  export CARGO_TARGET_DIR="$PWD/target/cross"
  # graft-train's gradient tests on NEON (step 3 of the script) cost ~10 min of CI's 2 cores
  # (building graft-runtime and graft-train for aarch64): --slow runs them.
  if [ "$slow" = 1 ]; then
    targets/aarch64-linux/test.sh
  else
    GRAFT_A64_TRAIN=0 targets/aarch64-linux/test.sh
  fi
}

[ "$parity" = 1 ] && side_by_side "llama.cpp parity (tools/llama-oracle)" parity_step
[ "$fuzz" = 1 ] && side_by_side "fuzz smoke: every target for 30 s (scripts/fuzz-smoke.sh)" fuzz_step
[ "$cross" = 1 ] && [ -x targets/aarch64-linux/test.sh ] &&
  side_by_side "aarch64 kernels under qemu" cross_step
if [ "${#side_pids[@]}" -gt 0 ]; then
  step "side by side: $(IFS=';'; echo "${side_names[*]}" | sed 's/;/; /g')"
  side_failed=()
  for i in "${!side_pids[@]}"; do
    rc=0
    wait "${side_pids[$i]}" || rc=$?
    echo
    echo "==> ${side_names[$i]}: ended at $(cat "${side_logs[$i]}.end" 2>/dev/null || echo '?') s of the run (output: ${side_logs[$i]})"
    cat "${side_logs[$i]}"
    if [ "$rc" != 0 ]; then
      echo "FAILED: ${side_names[$i]} (exit $rc)"
      side_failed+=("${side_names[$i]}")
    fi
  done
  if [ "${#side_failed[@]}" -gt 0 ]; then
    echo "failed: $(IFS=";"; echo "${side_failed[*]}" | sed "s/;/; /g")" >&2
    exit 1
  fi
fi

if [ "$slow" = 1 ]; then
  step "slow checks: llama-quantize parity on Gemma 3"
  export GRAFT_LLAMA_ORACLE="$PWD/tools/llama-oracle/target/release/llama-oracle"
  cargo test --workspace --test llama_parity -- --ignored --exact \
    graft_quantize_matches_llama_quantize_on_gemma3
fi

if [ "$kld" = 1 ]; then
  step "KL divergence parity with llama.cpp's llama-perplexity"
  # llama.cpp's own llama-perplexity (generic AVX2 build, no AMX) for cli/tests/kld_parity.rs;
  # the oracle crate does not ship its source, see the script. Not in CI: the build and the
  # test take ~10 min of CI's 2 cores, which the 45-minute budget has no room for.
  GRAFT_LLAMA_PERPLEXITY="$(scripts/build-llama-perplexity.sh)"
  export GRAFT_LLAMA_PERPLEXITY
  cargo test -p graft-cli --test kld_parity -- --ignored
fi

if [ "$slow" = 1 ]; then
  step "slow checks: importance matrices against llama-imatrix and llama-quantize --imatrix"
  # The same pinned llama.cpp tree and build folder as llama-perplexity above.
  GRAFT_LLAMA_BIN="$(scripts/build-llama-imatrix.sh)"
  export GRAFT_LLAMA_BIN
  cargo test -p graft-cli --test imatrix_parity -- --ignored
fi

if [ "$metal" = 1 ]; then
  step "Metal: the runtime with the wgpu backend type-checks for Apple silicon"
  cargo check -p graft-runtime --features wgpu --target aarch64-apple-darwin
fi

step "done"
