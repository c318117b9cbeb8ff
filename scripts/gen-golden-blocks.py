#!/usr/bin/env python3
"""Generate the golden block-format test data in quant/tests/data/ (deterministic).

Oracle: the PyPI `gguf` package (gguf-py, the reader/writer maintained in llama.cpp); its
gguf/quants.py has numpy (de)quantizers written to match ggml-quants.c.

    pip install gguf numpy
    scripts/fetch-model.sh            # SmolLM2-135M-Instruct.Q4_1.gguf
    python3 scripts/gen-golden-blocks.py [MODEL.gguf]

Writes, for each case, raw little-endian files `<name>.bin` (block bytes) and `<name>.f32`
(float32 values) plus `manifest.json` listing the cases:

  {"name", "type" (ggml name, e.g. "Q4_1"), "kind", "n" (elements), "bytes", "floats",
   "oracle"}

kind = "dequant": `floats` = oracle's dequantization of `bytes`.
  (a) real_*: the first rows of real tensors of every type in the test model (Q4_1, Q8_0, F32).
  (b) synth_*: seeded random blocks of every block type, random bytes with the f16 scale fields
      overwritten by valid finite f16 values, so every code pattern is exercised.
kind = "quant": `floats` = input values, `bytes` = oracle's quantization of them (for the types
  gguf-py can quantize: F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0). Inputs are seeded normal values
  of three magnitudes, ggml's test-quantize-fns data (0.1 + 2*cos(i)), exact zeros and ties.

kind = "quant" from ggml itself: gguf-py has no k-quant quantizer, so for Q2_K, Q3_K, Q4_K, Q5_K,
  Q6_K, Q8_K and Q8_1 the script compiles scripts/ggml-ref/kquant_ref.c against ggml's own
  src/ggml-quants.c (`cc -O2 -std=c11`, no -march: a plain scalar x86-64/aarch64 build, no FMA
  contraction on x86-64) and records its quantize_row_*_ref output (oracle
  "ggml-quants.c@<commit>"). Set GGML_SRC to a ggml checkout (github.com/ggml-org/ggml; the
  files in the repository came from the commit in the manifest) and optionally GGML_COMMIT if
  the checkout has no .git. Inputs: seeded normal values, ggml's cos data, zeros and real
  SmolLM2 weights.

gguf-py has no Q8_1 or Q8_K dequantizer: for those two the script computes `d * q` itself with
numpy (oracle "numpy d*q", recorded in the manifest) - a weaker check than for the others.
(gguf-py's size table also still lists Q8_1 as 40 bytes; the script uses ggml-common.h's 36.)

Everything is seeded (numpy default_rng(1234)) and the model file is fixed, so re-running gives
byte-identical files. Total size is kept well under 2 MB.
"""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf import quants

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "quant", "tests", "data")
MODEL = os.path.expanduser(
    os.path.join(os.environ.get("GRAFT_MODELS", "~/.cache/graft/models"),
                 "SmolLM2-135M-Instruct.Q4_1.gguf"))

# Byte offsets of the f16 scale fields in each block (ggml-common.h).
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0], T.Q8_1: [0, 2],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
# gguf-py's GGML_QUANT_SIZES still says 40 bytes for Q8_1 (the old f32 d/s layout); ggml-common.h
# has had two f16 fields (36 bytes) for years, so use that.
SIZES = dict(GGML_QUANT_SIZES)
SIZES[T.Q8_1] = (32, 36)
QUANTIZABLE = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]

manifest = []


def write(name, ty, kind, n, raw, floats, oracle="gguf-py"):
    raw = np.ascontiguousarray(raw).view(np.uint8).ravel()
    floats = np.ascontiguousarray(floats, dtype="<f4").ravel()
    assert floats.size == n
    block, size = SIZES[ty]
    assert raw.size == n // block * size, (name, raw.size, n, block, size)
    assert np.all(np.isfinite(floats)), name
    raw.tofile(os.path.join(OUT, name + ".bin"))
    floats.tofile(os.path.join(OUT, name + ".f32"))
    manifest.append({"name": name, "type": ty.name, "kind": kind, "n": int(n),
                     "bytes": name + ".bin", "floats": name + ".f32", "oracle": oracle})


def real_cases(model):
    r = GGUFReader(model)
    tensors = {t.name: t for t in r.tensors}
    picks = [("blk.0.attn_q.weight", 8), ("blk.0.ffn_down.weight", 8),
             ("token_embd.weight", 16), ("blk.0.attn_norm.weight", 1),
             ("output_norm.weight", 1)]
    for name, rows in picks:
        t = tensors[name]
        data = np.asarray(t.data)
        if data.ndim == 1:
            data = data.reshape(1, -1)
        raw = np.ascontiguousarray(data[:rows])
        ty = T(t.tensor_type)
        deq = quants.dequantize(raw, ty)
        short = name.replace(".weight", "").replace(".", "_")
        write(f"real_{short}_{ty.name.lower()}", ty, "dequant", deq.size, raw, deq)
        if name == "blk.0.attn_q.weight":
            real = deq.ravel()
    return real


def synth_cases(rng):
    n_blocks = 16
    for ty in [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q8_1,
               T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K]:
        block, size = SIZES[ty]
        if ty == T.F16:
            raw = rng.normal(0, 2, n_blocks * 32).astype(np.float16).view(np.uint8)
        elif ty == T.BF16:
            f = rng.normal(0, 2, n_blocks * 32).astype(np.float32)
            raw = (f.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
        else:
            raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
            for off in F16_FIELDS.get(ty, []):
                # magnitudes 2^-14 .. 2^-2, random sign (mins/sums can be negative)
                v = (rng.uniform(0.5, 1.0, n_blocks) * 2.0 ** rng.integers(-13, -1, n_blocks)
                     * rng.choice([-1.0, 1.0], n_blocks))
                raw[:, off:off + 2] = v.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
            if ty == T.Q8_K:
                d = rng.uniform(1e-4, 1e-2, n_blocks).astype("<f4")
                raw[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
        raw = np.ascontiguousarray(raw).view(np.uint8)
        n = raw.size // size * block
        oracle = "gguf-py"
        if ty == T.Q8_1:
            b = raw.reshape(-1, size)
            d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
            deq = b[:, 4:36].copy().view(np.int8).astype(np.float32) * d
            oracle = "numpy d*q"
        elif ty == T.Q8_K:
            b = raw.reshape(-1, size)
            d = b[:, 0:4].copy().view("<f4")
            deq = d * b[:, 4:260].copy().view(np.int8).astype(np.float32)
            oracle = "numpy d*q"
        else:
            deq = quants.dequantize(raw.reshape(-1, size) if block > 1 else raw, ty)
        write(f"synth_{ty.name.lower()}", ty, "dequant", n, raw, deq, oracle)


def quant_inputs(rng):
    parts = [
        rng.normal(0, 1, 512),
        rng.normal(0, 0.02, 512),
        rng.normal(0, 30, 256),
        0.1 + 2 * np.cos(np.arange(512, dtype=np.float32)),
        np.zeros(32),
        # ties and repeated values: halves and a block with equal entries
        np.repeat(np.arange(-8, 8, dtype=np.float64) * 0.5, 2),
        np.full(32, 0.75),
    ]
    return np.concatenate(parts).astype(np.float32)


def quant_cases(rng):
    x = quant_inputs(rng)
    for ty in QUANTIZABLE:
        q = quants.quantize(x, ty)
        write(f"quant_{ty.name.lower()}", ty, "quant", x.size, q, x)


def ggml_harness():
    src = os.environ.get("GGML_SRC")
    if not src or not os.path.exists(os.path.join(src, "src", "ggml-quants.c")):
        sys.exit("set GGML_SRC to a ggml checkout (with src/ggml-quants.c): "
                 "the k-quant golden cases come from ggml's reference quantizers")
    commit = os.environ.get("GGML_COMMIT")
    if not commit:
        commit = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True,
                                text=True).stdout.strip() or "unknown"
    exe = os.path.join(tempfile.mkdtemp(), "kquant_ref")
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run(["cc", "-O2", "-std=c11", "-I", os.path.join(src, "src"),
                    "-I", os.path.join(src, "include"),
                    os.path.join(here, "ggml-ref", "kquant_ref.c"),
                    os.path.join(src, "src", "ggml-quants.c"), "-lm", "-o", exe], check=True)
    return exe, commit


def kquant_cases(rng, real):
    exe, commit = ggml_harness()
    x = np.concatenate([
        rng.normal(0, 1, 1024),
        rng.normal(0, 0.02, 512),
        0.1 + 2 * np.cos(np.arange(512, dtype=np.float32)),
        np.zeros(256),
        real[:512],
    ]).astype("<f4")
    for ty in [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K, T.Q8_1]:
        out = subprocess.run([exe, ty.name.lower()], input=x.tobytes(), capture_output=True,
                             check=True).stdout
        write(f"quant_{ty.name.lower()}", ty, "quant", x.size, np.frombuffer(out, np.uint8), x,
              f"ggml-quants.c@{commit}")


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else MODEL
    if not os.path.exists(model):
        sys.exit(f"model not found at {model}: run scripts/fetch-model.sh")
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1234)
    real = real_cases(model)
    synth_cases(rng)
    quant_cases(rng)
    kquant_cases(rng, real)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print(f"wrote {len(manifest)} cases, {total} bytes to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
