#!/usr/bin/env bash
# Installs what graft's build and tests need on a fresh Debian machine (run as root, or with sudo),
# then fetches the test models (SmolLM2 and Gemma 3 270M). Idempotent: skips what is already there.
#
#   scripts/setup.sh            # base: model, cargo components, a C compiler + valgrind (C ABI
#                               # tests), Mesa's lavapipe (GPU tests on a software Vulkan device)
#   scripts/setup.sh --parity   # also cmake/clang for the llama.cpp oracle (tools/llama-oracle)
#   scripts/setup.sh --cross    # also the aarch64 cross linker and qemu-user
set -euo pipefail
cd "$(dirname "$0")/.."

want_parity=0
want_cross=0
for a in "$@"; do
  case "$a" in
    --parity) want_parity=1 ;;
    --cross) want_cross=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done

pkgs=()
need() { dpkg -s "$1" >/dev/null 2>&1 || pkgs+=("$1"); }
# The C ABI tests (ffi/) build the C examples with the system compiler and run them under valgrind.
need gcc; need libc6-dev; need pkg-config; need valgrind
# The GPU backend's conformance and model tests run on Mesa's lavapipe (software Vulkan).
need mesa-vulkan-drivers; need libvulkan1
if [ "$want_parity" = 1 ]; then need cmake; need clang; need libclang-dev; fi
if [ "$want_cross" = 1 ]; then need gcc-aarch64-linux-gnu; need libc6-dev-arm64-cross; need qemu-user; fi
if [ ${#pkgs[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "installing: ${pkgs[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true
if [ "$want_cross" = 1 ]; then
  rustup target add aarch64-unknown-linux-gnu >/dev/null
  # The Metal build of the GPU backend is type-checked for Apple silicon (no linking).
  rustup target add aarch64-apple-darwin >/dev/null
fi

scripts/fetch-model.sh >/dev/null
scripts/fetch-model.sh gemma3-270m >/dev/null
