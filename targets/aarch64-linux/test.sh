#!/usr/bin/env bash
# Cross-compiles graft-kernels' tests for aarch64 Linux and runs them under qemu-user.
# Needs: rustup target add aarch64-unknown-linux-gnu
#        apt-get install -y gcc-aarch64-linux-gnu qemu-user
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
exec cargo test -p graft-kernels --target aarch64-unknown-linux-gnu "$@"
