#!/usr/bin/env bash
# Builds llama.cpp's own `llama-imatrix` and `llama-quantize` (the oracles of graft's
# `imatrix` file layout and of `quantize --imatrix` byte-identity) from the same pinned
# llama.cpp tree as scripts/build-llama-perplexity.sh, in the same build folder and with the
# same CPU flags (generic x86-64 AVX2/FMA/F16C, not native, no AMX). Prints the folder that
# holds both binaries on stdout.
#
#   scripts/build-llama-imatrix.sh            # -> target/llama-perplexity/bin/
#   JOBS=1 scripts/build-llama-imatrix.sh     # parallel compile jobs (default: all cores)
#
# Idempotent: finished binaries of the same pinned version are reused. The first call builds
# llama-perplexity too (that script fetches and configures the tree); afterwards only the two
# tools' own objects compile (about a minute on 2 cores).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${LLAMA_PERPLEXITY_DIR:-$ROOT/target/llama-perplexity}"
JOBS="${JOBS:-$(nproc)}"

# Fetches, configures and builds the pinned tree (a no-op when it is already built).
"$ROOT/scripts/build-llama-perplexity.sh" >/dev/null
want="$(cat "$DIR/bin/.source")"

for tool in llama-imatrix llama-quantize; do
  bin="$DIR/bin/$tool"
  if [ -x "$bin" ] && [ "$(cat "$bin.source" 2>/dev/null)" = "$want" ]; then
    continue
  fi
  echo "building $tool with $JOBS jobs ..." >&2
  cmake --build "$DIR/build" --target "$tool" -j "$JOBS" >"$DIR/build-$tool.log" 2>&1 ||
    { tail -30 "$DIR/build-$tool.log" >&2; echo "error: build failed ($DIR/build-$tool.log)" >&2; exit 1; }
  cp -f "$DIR/build/bin/$tool" "$bin.tmp"
  mv -f "$bin.tmp" "$bin"
  echo "$want" >"$bin.source"
done
echo "$DIR/bin"
