#!/usr/bin/env bash
# Builds llama.cpp's own `llama-perplexity` (the oracle of graft's `perplexity --kl-divergence`
# parity test) and prints the binary's path on stdout.
#
#   scripts/build-llama-perplexity.sh            # -> target/llama-perplexity/bin/llama-perplexity
#   LLAMA_PERPLEXITY_DIR=/some/dir scripts/build-llama-perplexity.sh
#   JOBS=1 scripts/build-llama-perplexity.sh     # parallel compile jobs (default: all cores)
#
# Where the source comes from: the llama.cpp that the `llama-cpp-sys-2` crate vendors (the one
# tools/llama-oracle links) ships only README files under tools/, not perplexity.cpp, so this
# script takes the whole llama.cpp tree from the sdist of the PyPI package llama-cpp-python
# (pinned below, sha256 checked), which vendors llama.cpp complete. pip downloads it (no code
# from it runs); only vendor/llama.cpp is unpacked, and only the llama-perplexity target is built.
#
# CPU flags: generic x86-64 with AVX2/FMA/F16C (plus AVX-512 when the host has it), NOT native
# and WITHOUT AMX: on Intel hosts with AMX, llama.cpp's AMX matmul segfaults on multi-token
# batches (shared/notes/facts.md), and a native build would pick it. Needs cmake and a C++
# compiler (scripts/setup.sh --parity installs them). Idempotent: a finished build of the same
# pinned version is reused. About 6 minutes on 2 cores (the oracle build's own cost).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

PKG_VERSION="0.3.36"
PKG_SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
PKG_FILE="llama_cpp_python-$PKG_VERSION.tar.gz"

DIR="${LLAMA_PERPLEXITY_DIR:-$ROOT/target/llama-perplexity}"
BIN="$DIR/bin/llama-perplexity"
STAMP="$DIR/bin/.source"
JOBS="${JOBS:-$(nproc)}"

if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "llama-cpp-python==$PKG_VERSION" ]; then
  echo "$BIN"
  exit 0
fi

command -v cmake >/dev/null || { echo "error: cmake not found (scripts/setup.sh --parity)" >&2; exit 1; }

mkdir -p "$DIR"
src="$DIR/src"
if [ ! -f "$src/.complete" ] || [ "$(cat "$src/.complete")" != "$PKG_VERSION" ]; then
  rm -rf "$src"
  work=$(mktemp -d "$DIR/.fetch.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  echo "fetching llama-cpp-python==$PKG_VERSION (sdist) from PyPI ..." >&2
  "${PYTHON:-python3}" -m pip download --quiet --no-deps --no-binary llama-cpp-python \
    -d "$work" "llama-cpp-python==$PKG_VERSION" >&2
  got=$(sha256sum "$work/$PKG_FILE" | cut -d' ' -f1)
  if [ "$got" != "$PKG_SHA256" ]; then
    echo "error: sha256 mismatch for $PKG_FILE: expected $PKG_SHA256, got $got" >&2
    exit 1
  fi
  tar -xzf "$work/$PKG_FILE" -C "$work" "llama_cpp_python-$PKG_VERSION/vendor/llama.cpp"
  mv "$work/llama_cpp_python-$PKG_VERSION/vendor/llama.cpp" "$src"
  echo "$PKG_VERSION" >"$src/.complete"
  rm -rf "$work"
  trap - EXIT
fi

x86_flags=()
if [ "$(uname -m)" = x86_64 ]; then
  x86_flags=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
    -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
  if grep -q avx512f /proc/cpuinfo; then
    x86_flags+=(-DGGML_AVX512=ON)
  fi
fi

build="$DIR/build"
echo "configuring llama.cpp (flags: ${x86_flags[*]:-generic}) ..." >&2
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DGGML_NATIVE=OFF "${x86_flags[@]}" \
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >"$DIR/configure.log" 2>&1 ||
  { tail -30 "$DIR/configure.log" >&2; echo "error: cmake configure failed ($DIR/configure.log)" >&2; exit 1; }
echo "building llama-perplexity with $JOBS jobs ..." >&2
cmake --build "$build" --target llama-perplexity -j "$JOBS" >"$DIR/build.log" 2>&1 ||
  { tail -30 "$DIR/build.log" >&2; echo "error: build failed ($DIR/build.log)" >&2; exit 1; }

mkdir -p "$DIR/bin"
cp -f "$build/bin/llama-perplexity" "$BIN.tmp"
mv -f "$BIN.tmp" "$BIN"
echo "llama-cpp-python==$PKG_VERSION" >"$STAMP"
echo "$BIN"
