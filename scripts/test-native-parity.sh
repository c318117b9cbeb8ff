#!/usr/bin/env bash
# Bit-exactness against llama.cpp's x86 SIMD kernels: builds the parity oracle (tools/llama-oracle)
# for x86-64-v4 plus VNNI/BF16/VBMI but WITHOUT AMX (llama.cpp's AMX matmul segfaults on
# multi-token batches on Intel hosts that have it: shared/notes/facts.md), then runs the
# `native_oracle` tests: tiny models with Q4_K projections and Gemma 3 270M Q4_K_M prefill, whose
# logits must equal llama.cpp's bit for bit (llama.cpp repacks Q4_K into q4_K_8x8_q8_K and runs
# Q6_K batches of 8+ through its tiled K-quant matmul on such builds; CI's generic oracle does
# neither, so these tests are not part of `scripts/test.sh --parity`).
#
#   scripts/test-native-parity.sh            # needs an x86-64 CPU with AVX-512 (x86-64-v4)
#   ORACLE_BIN=/path/llama-oracle scripts/test-native-parity.sh   # an oracle built already
#
# The build takes ~9 minutes on 2 cores; its target dir is target/oracle-native.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
if [ "$(uname -m)" != x86_64 ] || ! grep -q avx512f /proc/cpuinfo; then
  echo "test-native-parity: needs an x86-64 CPU with AVX-512 (this oracle build is x86-64-v4)" >&2
  exit 1
fi
ORACLE="${ORACLE_BIN:-}"
if [ -z "$ORACLE" ]; then
  CARGO_TARGET_DIR="$ROOT/target/oracle-native" \
  RUSTFLAGS="-C target-cpu=x86-64-v4 -C target-feature=+avx512vnni,+avx512bf16,+avx512vbmi,+avxvnni,+f16c,+fma,+bmi2" \
    cargo build --release --manifest-path tools/llama-oracle/Cargo.toml
  ORACLE="$ROOT/target/oracle-native/release/llama-oracle"
fi
scripts/fetch-model.sh gemma3-270m >/dev/null
# GRAFT_ISA=avx512: on an AMX host graft's default path runs prefill on AMX-INT8 tiles, whose
# f32 order over blocks is not llama.cpp's; the AVX-512 kernels are the ones that follow it.
GRAFT_ISA=avx512 GRAFT_LLAMA_ORACLE="$ORACLE" cargo test -p graft-runtime --release \
  --test tiny_parity --test model_gemma3 -- --ignored native_oracle
