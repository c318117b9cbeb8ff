#!/usr/bin/env bash
# graft's main job, end to end on the test model and the example task (examples/support-triage):
# fetch the model, evaluate the base, train a LoRA adapter on the CPU, evaluate again, chat with it.
# Then the inference tour: inspect, quantize, run, perplexity.
#
#   scripts/demo.sh            # the whole job (training ~6 min on 2 idle cores, evals ~5 min)
#   GRAFT_DEMO_QUICK=1 scripts/demo.sh   # 10 training steps, 16 eval examples (a smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=$(scripts/fetch-model.sh)
cargo build --release -q -p graft-cli
GRAFT=target/release/graft
OUT=${GRAFT_DEMO_OUT:-$(mktemp -d)}
DATA=examples/support-triage/data
if [ -n "${GRAFT_DEMO_QUICK:-}" ]; then
  TRAIN_LIMIT=(--max-steps 10); EVAL_LIMIT=(--limit 16)
else
  TRAIN_LIMIT=(); EVAL_LIMIT=()
fi

echo "== check the data"
$GRAFT data check "$DATA/train.jsonl"

echo
echo "== evaluate the base model on the held-out test set"
$GRAFT eval -m "$MODEL" --data "$DATA/test.jsonl" "${EVAL_LIMIT[@]}"

echo
echo "== train a LoRA adapter on the CPU (Q4_1 base stays quantized and frozen; 8-bit AdamW)"
$GRAFT train -m "$MODEL" --data "$DATA/train.jsonl" --val "$DATA/val.jsonl" \
  -o "$OUT/triage.gguf" --peft "$OUT/triage-peft" \
  --seq 256 --batch 4 --grad-accum 1 --lr 1e-3 --epochs 1 --eval-every 27 --checkpointing off \
  "${TRAIN_LIMIT[@]}"

echo
echo "== evaluate again: base vs adapted, plus general-text perplexity as the regression check"
$GRAFT eval -m "$MODEL" --lora "$OUT/triage.gguf" --data "$DATA/test.jsonl" --compare \
  --general /usr/share/common-licenses/GPL-3 "${EVAL_LIMIT[@]}"

echo
echo "== chat with the adapter (one turn, greedy)"
PROMPT=$(head -n 1 "$DATA/test.jsonl" | python3 -c 'import json,sys; m=json.load(sys.stdin)["messages"]; print(m[1]["content"])')
SYSTEM=$(head -n 1 "$DATA/test.jsonl" | python3 -c 'import json,sys; m=json.load(sys.stdin)["messages"]; print(m[0]["content"])')
printf '%s\n' "$PROMPT"
$GRAFT run -m "$MODEL" --lora "$OUT/triage.gguf" --temp 0 -n 32 \
  -p "<|im_start|>system
$SYSTEM<|im_end|>
<|im_start|>user
$PROMPT<|im_end|>
<|im_start|>assistant
"

echo
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
echo
echo "outputs in $OUT"
