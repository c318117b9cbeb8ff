#!/usr/bin/env bash
# Regenerates graft's llama.cpp golden data in runtime/tests/data/llama/.
#
# It builds the parity oracle (tools/llama-oracle: llama.cpp through the llama-cpp-2 crate,
# its own cargo workspace, compiled with target-cpu=native; needs cmake, clang, libclang-dev;
# a clean build takes ~5-12 minutes on 2 cores) and runs it on the test model
# (SmolLM2-135M-Instruct Q4_1, fetched by scripts/fetch-model.sh) to write:
#
#   tokenizer_golden.json   ~65 texts (tools/llama-oracle/inputs/tokenizer_texts.json) with
#                           llama.cpp's prompt tokenization (special tokens parsed, BOS per
#                           model) and the detokenized text (special tokens rendered)
#   tokenizer_gpl3.json     llama.cpp's ids for all of /usr/share/common-licenses/GPL-3
#                           (7,639 tokens; catches whitespace-before-digit splits)
#   greedy_golden.json      8 prompts (inputs/greedy_prompts.json; chat-templated and raw),
#                           up to 48 greedy tokens each (ids + text; stops at end-of-generation)
#   logits_golden.json      the head of GPL-3 + a prose paragraph (inputs/logits_prose.txt),
#                           >= 520 positions: per position argmax, log-sum-exp and the top-10
#                           (id, logit, logprob)
#   perplexity_golden.json  llama.cpp's perplexity method on /usr/share/common-licenses/GPL-3
#                           with -c 256, and GPL-3's token count under llama.cpp's tokenizer
#   lora_golden.json        the two deterministic random LoRA adapters written by
#                           `cargo run -p graft-runtime --example make-test-adapters` (rank 8
#                           and 16, all seven projections; their sha256 is recorded, the files
#                           are not committed: the tests rebuild them) at scales 1.0 and 0.5:
#                           top-10 logits over the first 256 ids of logits_golden.json, and 24
#                           greedy tokens for the France chat prompt
#
# Usage:
#   scripts/gen-llama-goldens.sh                 # everything
#   scripts/gen-llama-goldens.sh tokenizer greedy  # only some steps
#                                                  # (tokenizer greedy logits perplexity lora)
# Env: GRAFT_MODELS (model dir, default ~/.cache/graft/models), THREADS (default: all cores),
#      ORACLE_BIN (a built llama-oracle to use instead of building tools/llama-oracle).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ORACLE_DIR="$ROOT/tools/llama-oracle"
ORACLE="${ORACLE_BIN:-$ORACLE_DIR/target/release/llama-oracle}"
INPUTS="$ORACLE_DIR/inputs"
OUT="$ROOT/runtime/tests/data/llama"
GPL3=/usr/share/common-licenses/GPL-3
THREADS="${THREADS:-$(nproc)}"

command -v jq >/dev/null || { echo "needs jq (apt-get install -y jq)" >&2; exit 1; }
MODEL="$("$ROOT/scripts/fetch-model.sh")"
MODEL_NAME="$(basename "$MODEL")"
MODEL_SHA="$(sha256sum "$MODEL" | cut -d' ' -f1)"

if [ -z "${ORACLE_BIN:-}" ]; then
  echo "building llama-oracle ..." >&2
  (cd "$ORACLE_DIR" && cargo build --release --quiet)
fi
mkdir -p "$OUT"

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tokenizer greedy logits perplexity)

# Wrap the oracle's JSON with provenance; writes atomically.
emit() { # emit NAME [jq flags] < json
  local name="$1" tmp
  shift
  tmp="$(mktemp)"
  jq "$@" --arg model "$MODEL_NAME" --arg sha "$MODEL_SHA" \
    '{source: "llama.cpp via llama-cpp-2 =0.1.160 (tools/llama-oracle)", model: $model,
      model_sha256: $sha, generator: "scripts/gen-llama-goldens.sh"} + .' >"$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$OUT/$name"
  echo "wrote $OUT/$name ($(wc -c <"$OUT/$name") bytes)" >&2
}

for step in "${steps[@]}"; do
  case "$step" in
    tokenizer)
      "$ORACLE" tokenize -m "$MODEL" --texts-json "$INPUTS/tokenizer_texts.json" \
        | emit tokenizer_golden.json
      gpl_sha="$(sha256sum "$GPL3" | cut -d' ' -f1)"
      "$ORACLE" tokenize -m "$MODEL" --file "$GPL3" \
        | jq --arg f "$GPL3" --arg sha "$gpl_sha" \
          '{file: $f, file_sha256: $sha, count: (.ids | length), add_bos, parse_special, ids}' \
        | emit tokenizer_gpl3.json -c
      ;;
    greedy)
      "$ORACLE" generate -m "$MODEL" --prompts-json "$INPUTS/greedy_prompts.json" -n 48 \
        -t "$THREADS" | emit greedy_golden.json
      ;;
    logits)
      text="$(mktemp)"; ids="$(mktemp)"
      { head -c 2000 "$GPL3"; printf '\n\n'; cat "$INPUTS/logits_prose.txt"; } >"$text"
      "$ORACLE" tokenize -m "$MODEL" --file "$text" | jq '{ids: .ids}' >"$ids"
      n="$(jq '.ids | length' "$ids")"
      [ "$n" -ge 520 ] || { echo "logits text gives only $n tokens (< 520)" >&2; exit 1; }
      "$ORACLE" logits -m "$MODEL" --ids-file "$ids" --top 10 -t "$THREADS" \
        | jq --arg text "$(cat "$text")" '{text: $text, top_k: 10} + .' \
        | emit logits_golden.json -c
      rm -f "$text" "$ids"
      ;;
    perplexity)
      gpl_sha="$(sha256sum "$GPL3" | cut -d' ' -f1)"
      "$ORACLE" perplexity -m "$MODEL" -f "$GPL3" -c 256 -t "$THREADS" \
        | jq --arg f "$GPL3" --arg sha "$gpl_sha" \
          '{file: $f, file_sha256: $sha, gpl3_token_count: .tokens_total} + .' \
        | emit perplexity_golden.json
      ;;
    lora)
      dir="$ROOT/target/lora-test-adapters"
      shas="$(cargo run -q -p graft-runtime --example make-test-adapters -- "$MODEL" "$dir")"
      work="$(mktemp -d)"
      jq -c '{ids: .ids[:256]}' "$OUT/logits_golden.json" >"$work/ids.json"
      for name in lora-r8.gguf lora-r16.gguf; do
        for scale in 1.0 0.5; do
          "$ORACLE" logits -m "$MODEL" --ids-file "$work/ids.json" --top 10 -t "$THREADS" \
            --lora "$dir/$name" --lora-scale "$scale" >"$work/l.json"
          "$ORACLE" generate -m "$MODEL" -p "What is the capital of France?" --chat -n 24 \
            -t "$THREADS" --lora "$dir/$name" --lora-scale "$scale" >"$work/g.json"
          jq -n -c --arg a "$name" --argjson s "$scale" --slurpfile l "$work/l.json" \
            --slurpfile g "$work/g.json" '{adapter: $a, scale: $s, logits: $l[0], greedy: $g[0]}' \
            >>"$work/runs.jsonl"
        done
      done
      jq -s --arg shas "$shas" \
        '{adapters: ($shas | split("\n") | map(select(length > 0) | split(" ") | {(.[0]): .[1]})
                     | add), top_k: 10, runs: .}' "$work/runs.jsonl" \
        | emit lora_golden.json -c
      rm -rf "$work"
      ;;
    *) echo "unknown step '$step' (tokenizer greedy logits perplexity lora)" >&2; exit 2 ;;
  esac
done
