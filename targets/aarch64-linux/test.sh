#!/usr/bin/env bash
# Cross-compiles graft's kernel and gradient tests for aarch64 Linux and runs them under
# qemu-user (see README.md next to this script):
#   1. every graft-kernels test (forward and backward kernels) on qemu's default CPU, which has
#      the dot-product extension: the `sdot` NEON table, compared bit for bit with the
#      baseline-NEON one and with the scalar reference;
#   2. the NEON forward-kernel tests again on a Cortex-A53 (no dot-product extension), where
#      the baseline-NEON table is the one handed out;
#   3. graft-train's gradient tests on NEON: the op conformance suite (every backward op
#      against finite differences of an f64 reference) and the LoRA gradients of tiny models
#      on quantized bases against finite differences, at the tolerances x86_64 uses.
# Needs: rustup target add aarch64-unknown-linux-gnu
#        apt-get install -y gcc-aarch64-linux-gnu qemu-user
# With arguments, only `cargo test -p graft-kernels <arguments>` runs (e.g. a test name filter);
# GRAFT_A64_TRAIN=0 skips step 3.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
runner="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$runner"
target=(--target aarch64-unknown-linux-gnu)
if [ $# -gt 0 ]; then
    exec cargo test -p graft-kernels "${target[@]}" "$@"
fi

step() { echo "== aarch64-linux/test.sh: $* ($(date +%T))"; }

step "1/3 graft-kernels, qemu default CPU (dotprod)"
cargo test -p graft-kernels "${target[@]}"

step "2/3 NEON forward kernels, Cortex-A53 (no dotprod)"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu cortex-a53 -L /usr/aarch64-linux-gnu" \
    cargo test -p graft-kernels "${target[@]}" \
    --test isa --test isa_variants --test matmul --test decode_rows --test q4k_group

if [ "${GRAFT_A64_TRAIN:-1}" = 0 ]; then
    step "3/3 skipped (GRAFT_A64_TRAIN=0)"
    exit 0
fi
# Building graft-train and graft-runtime for aarch64 costs ~4-7 min on 2 cores (cold).
step "3/3 graft-train gradient tests on NEON"
cargo test -p graft-train "${target[@]}" --test ops_conformance
# The quantized-base finite-difference checks (NEON forward and backward matmuls, LoRA,
# attention; checkpointing on and off): ~1.5 min under qemu. The whole file takes ~15 min.
cargo test -p graft-train "${target[@]}" --test model_grad_fd -- --exact \
    fd_q8_0_exact_base fd_q4_1_exact_base_untied fd_q4_1_tiled_base_every_layer
step "done"
