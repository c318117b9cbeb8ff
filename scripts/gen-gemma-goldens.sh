#!/usr/bin/env bash
# Regenerates graft's llama.cpp goldens for Gemma 3's tokenizer and for the built-in chat
# templates, with the parity oracle (tools/llama-oracle) on Gemma 3 270M Q4_K_M (fetched by
# `scripts/fetch-model.sh gemma3-270m`):
#
#   runtime/tests/data/gemma3/tokenizer_golden.json
#       the 65 texts of tools/llama-oracle/inputs/tokenizer_texts.json plus the Gemma ones of
#       inputs/tokenizer_texts_gemma.json (<start_of_turn>/<end_of_turn>, <bos>, user-defined
#       whitespace and HTML tokens, ...): llama.cpp's prompt tokenization (special tokens
#       parsed, BOS per model: Gemma adds <bos>) and the detokenized text (specials rendered)
#   runtime/tests/data/gemma3/tokenizer_gpl3.json
#       llama.cpp's ids for all of /usr/share/common-licenses/GPL-3
#   runtime/tests/data/gemma3/greedy_golden.json
#       the 8 prompts of inputs/greedy_prompts.json (raw, and chat-templated with llama.cpp's
#       built-in `gemma` template: the file has no template of its own), 32 greedy tokens each
#       (ids, text, prompt ids, margins), for the gemma3 forward's parity tests
#   runtime/tests/data/chat_templates_golden.json
#       llama.cpp's llama_chat_apply_template output for every conversation of
#       inputs/chat_conversations.json under each built-in template graft implements
#
# Usage:
#   scripts/gen-gemma-goldens.sh                  # everything
#   scripts/gen-gemma-goldens.sh tokenizer        # only some steps (tokenizer greedy templates)
# Env: GRAFT_MODELS (model dir), THREADS (default: all cores), ORACLE_BIN (a built llama-oracle to use instead of building
#      tools/llama-oracle from the repository root, i.e. for the generic x86-64 target, without
#      AMX, whose matmul segfaults on multi-token batches on Intel hosts).
#      The committed greedy goldens were made with an oracle built for AVX-512 without AMX, the
#      build closest to graft's kernels (the generic build rounds differently):
#        CARGO_TARGET_DIR=/tmp/oracle-native RUSTFLAGS="-C target-cpu=x86-64-v4 -C target-feature=+avx512vnni,+avx512bf16,+avx512vbmi,+avxvnni,+f16c,+fma,+bmi2" \
#          cargo build --release --manifest-path tools/llama-oracle/Cargo.toml
#        ORACLE_BIN=/tmp/oracle-native/release/llama-oracle scripts/gen-gemma-goldens.sh greedy
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ORACLE_DIR="$ROOT/tools/llama-oracle"
ORACLE="${ORACLE_BIN:-$ORACLE_DIR/target/release/llama-oracle}"
INPUTS="$ORACLE_DIR/inputs"
DATA="$ROOT/runtime/tests/data"
GPL3=/usr/share/common-licenses/GPL-3
THREADS="${THREADS:-$(nproc)}"
# The built-in templates graft implements (runtime/src/chat_template/builtin.rs).
TEMPLATES=(chatml llama2 llama2-sys llama2-sys-bos llama2-sys-strip llama3 gemma phi3 phi4
  mistral-v7 mistral-v7-tekken zephyr)

command -v jq >/dev/null || { echo "needs jq (apt-get install -y jq)" >&2; exit 1; }
MODEL="$("$ROOT/scripts/fetch-model.sh" gemma3-270m)"
MODEL_NAME="$(basename "$MODEL")"
MODEL_SHA="$(sha256sum "$MODEL" | cut -d' ' -f1)"

if [ -z "${ORACLE_BIN:-}" ]; then
  echo "building llama-oracle ..." >&2
  cargo build --release --quiet --manifest-path "$ORACLE_DIR/Cargo.toml"
fi
mkdir -p "$DATA/gemma3"

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tokenizer greedy templates)

# Wrap the oracle's JSON with provenance; writes atomically.
emit() { # emit PATH [jq flags] < json
  local path="$1" tmp
  shift
  tmp="$(mktemp)"
  jq "$@" --arg model "$MODEL_NAME" --arg sha "$MODEL_SHA" \
    '{source: "llama.cpp via llama-cpp-2 =0.1.160 (tools/llama-oracle)", model: $model,
      model_sha256: $sha, generator: "scripts/gen-gemma-goldens.sh"} + .' >"$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$path"
  echo "wrote $path ($(wc -c <"$path") bytes)" >&2
}

for step in "${steps[@]}"; do
  case "$step" in
    tokenizer)
      texts="$(mktemp)"
      jq -s '.[0] + .[1]' "$INPUTS/tokenizer_texts.json" "$INPUTS/tokenizer_texts_gemma.json" \
        >"$texts"
      "$ORACLE" tokenize -m "$MODEL" --texts-json "$texts" \
        | emit "$DATA/gemma3/tokenizer_golden.json"
      rm -f "$texts"
      gpl_sha="$(sha256sum "$GPL3" | cut -d' ' -f1)"
      "$ORACLE" tokenize -m "$MODEL" --file "$GPL3" \
        | jq --arg f "$GPL3" --arg sha "$gpl_sha" \
          '{file: $f, file_sha256: $sha, count: (.ids | length), add_bos, parse_special, ids}' \
        | emit "$DATA/gemma3/tokenizer_gpl3.json" -c
      ;;
    greedy)
      "$ORACLE" generate -m "$MODEL" --prompts-json "$INPUTS/greedy_prompts.json" -n 32 \
        --chat-template gemma -t "$THREADS" | jq '{chat_template: "gemma"} + .' \
        | emit "$DATA/gemma3/greedy_golden.json"
      ;;
    templates)
      args=()
      for t in "${TEMPLATES[@]}"; do args+=(--template "$t"); done
      "$ORACLE" chat-template -m "$MODEL" "${args[@]}" \
        --conversations-json "$INPUTS/chat_conversations.json" \
        | emit "$DATA/chat_templates_golden.json"
      ;;
    *) echo "unknown step '$step' (tokenizer greedy templates)" >&2; exit 2 ;;
  esac
done
