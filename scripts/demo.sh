#!/usr/bin/env bash
# graft's main job, end to end on the test model and the example task (examples/support-triage):
# fetch the model, look at the data as training sees it, then fine-tune a LoRA adapter on the CPU
# the way the fine-tuning guides say (their settings, graft's defaults for the rest, 300
# examples), with the base model and a 4-shot prompt baseline evaluated on the held-out test set
# first and the adapter after (one report card), and chat with it. Then the inference tour:
# inspect, quantize, run, perplexity.
#
#   scripts/demo.sh            # the whole job (~15 min on 2 idle cores: training ~8, evals ~6)
#   GRAFT_DEMO_QUICK=1 scripts/demo.sh   # 10 training steps, 16 test examples (a smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=$(scripts/fetch-model.sh)
cargo build --release -q -p graft-cli
GRAFT=target/release/graft
OUT=${GRAFT_DEMO_OUT:-$(mktemp -d)}
mkdir -p "$OUT"
DATA=examples/support-triage/data
TEST="$DATA/test.jsonl"
if [ -n "${GRAFT_DEMO_QUICK:-}" ]; then
  TRAIN_LIMIT=(--max-steps 10)
  head -n 16 "$DATA/test.jsonl" > "$OUT/test16.jsonl"
  TEST="$OUT/test16.jsonl"
else
  TRAIN_LIMIT=()
fi
# The example cut to 300 training examples: a small set, the common case on a device.
head -n 300 "$DATA/train.jsonl" > "$OUT/train300.jsonl"

echo "== check the data, and look at two examples as training sees them ([[scored]])"
$GRAFT data check "$OUT/train300.jsonl"
$GRAFT data sample "$OUT/train300.jsonl" -m "$MODEL" -n 2

echo
echo "== fine-tune with the guides' settings; --test evaluates base, 4-shot prompt and adapter"
$GRAFT train -m "$MODEL" --data "$OUT/train300.jsonl" --val "$DATA/val.jsonl" \
  -o "$OUT/triage.gguf" --peft "$OUT/triage-peft" \
  --epochs 2 --rank 16 --alpha 32 --lr 2e-4 --optimizer adamw8bit --checkpointing layer \
  --test "$TEST" --few-shot 4 --general /usr/share/common-licenses/GPL-3 \
  "${TRAIN_LIMIT[@]}"
echo "model card: $OUT/triage.README.md"

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
