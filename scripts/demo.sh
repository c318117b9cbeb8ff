#!/usr/bin/env bash
# graft's main job, end to end on the test model: fetch it, inspect it, quantize it, and run it.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=$(scripts/fetch-model.sh)
cargo build --release -q -p graft-cli
GRAFT=target/release/graft
OUT=${GRAFT_DEMO_OUT:-$(mktemp -d)}

echo "== inspect"
$GRAFT inspect "$MODEL"

echo
echo "== quantize Q4_1 -> Q4_K (llama-quantize rules; norms stay f32, the tied head stays Q8_0)"
$GRAFT quantize "$MODEL" "$OUT/smollm2-q4_k.gguf" --type q4_k --allow-requantize
$GRAFT inspect "$OUT/smollm2-q4_k.gguf" | sed -n '/by type/,$p'

echo
echo "== run: greedy chat on the CPU"
$GRAFT run -m "$MODEL" --chat --temp 0 -n 32 -p "What is the capital of France?"
echo
echo "== perplexity on a licence text (llama.cpp's method, -c 256)"
$GRAFT perplexity -m "$MODEL" -f /usr/share/common-licenses/GPL-3 -c 256
