#!/usr/bin/env bash
# graft's test command (what CI runs):
#   scripts/test.sh             # setup, fmt, clippy, the whole test suite
#   scripts/test.sh --parity    # also build llama.cpp (tools/llama-oracle) and run the parity tests
#   scripts/test.sh --cross     # also cross-compile the kernels for aarch64 and test them under qemu
# CI (CI=true) runs all of it.
set -euo pipefail
cd "$(dirname "$0")/.."

parity=0
cross=0
if [ "${CI:-}" = "true" ]; then parity=1; cross=1; fi
for a in "$@"; do
  case "$a" in
    --parity) parity=1 ;;
    --cross) cross=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done

setup_args=()
[ "$parity" = 1 ] && setup_args+=(--parity)
[ "$cross" = 1 ] && setup_args+=(--cross)
scripts/setup.sh "${setup_args[@]}"

step() { echo; echo "==> $*"; }

# Incremental caches only help rebuilds; on a one-shot CI machine they cost gigabytes of disk.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi
step "disk"
df -h . | tail -1

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test"
cargo test --workspace

if [ "$parity" = 1 ]; then
  step "llama.cpp parity (tools/llama-oracle)"
  # On Intel hosts with AMX, llama.cpp built for the native CPU turns on its AMX matmul, which
  # segfaults on multi-token batches (ggml_backend_amx_mul_mat; see shared/notes/facts.md):
  # build the oracle for AVX-512 without AMX there. Elsewhere the build is unchanged (run from
  # the repository root, the oracle's own .cargo/config.toml does not apply).
  if grep -qw amx_int8 /proc/cpuinfo 2>/dev/null; then
    echo "AMX host: building the llama.cpp oracle without AMX (x86-64-v4 + VNNI/BF16)"
    oracle_flags="-C target-cpu=x86-64-v4 -C target-feature=+avx512vnni,+avx512bf16,+avx512vbmi,+avxvnni,+f16c,+fma,+bmi2"
    RUSTFLAGS="$oracle_flags" cargo build --release --manifest-path tools/llama-oracle/Cargo.toml
  else
    cargo build --release --manifest-path tools/llama-oracle/Cargo.toml
  fi
  export GRAFT_LLAMA_ORACLE="$PWD/tools/llama-oracle/target/release/llama-oracle"
  cargo test --workspace -- --ignored
fi

if [ "$cross" = 1 ] && [ -x targets/aarch64-linux/test.sh ]; then
  step "aarch64 kernels under qemu"
  targets/aarch64-linux/test.sh
fi
