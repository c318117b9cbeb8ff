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

kind = "quant" from ggml itself: gguf-py has no k-quant quantizer, so for Q2_K, Q3_K, Q4_K, Q5_K
  and Q6_K the bytes come from llama.cpp's ggml via the oracle tool (tools/llama-oracle,
  `llama-oracle quantize-blocks --type T`: ggml_quantize_chunk without an importance matrix, which
  runs quantize_row_*_ref). Set GRAFT_LLAMA_ORACLE to the built binary (build it with
  `cargo build --release --manifest-path tools/llama-oracle/Cargo.toml`); oracle recorded as
  "ggml (llama-cpp-sys-2 <version>) quantize_chunk". Inputs: seeded normal values, ggml's cos
  data, zeros and real SmolLM2 weights.

  Q8_K and Q8_1 are activation-only types that ggml_quantize_chunk does not take, so the oracle
  cannot produce them. Their committed goldens (quant_q8_k.*, quant_q8_1.*) were produced by
  ggml's reference quantizer (quantize_row_q8_K_ref / quantize_row_q8_1_ref compiled from
  ggml-quants.c, the commit recorded as their "oracle" in manifest.json) by an earlier version
  of this script; they cannot be regenerated without ggml's source, which the project does not
  build. The script keeps those two files as they are (it checks that their inputs still equal
  what it would generate) and carries their manifest entries over. Q8_1's s = d*sum(q) and
  Q8_K's bsums are additionally checked by a property test in quant/tests/blocks_quality.rs.

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


def llama_oracle():
    exe = os.environ.get("GRAFT_LLAMA_ORACLE")
    if not exe:
        sys.exit("set GRAFT_LLAMA_ORACLE to the llama-oracle binary (cargo build --release "
                 "--manifest-path tools/llama-oracle/Cargo.toml; then "
                 "GRAFT_LLAMA_ORACLE=tools/llama-oracle/target/release/llama-oracle): "
                 "the k-quant golden cases come from ggml's quantizers through it")
    if not os.path.isfile(exe):
        sys.exit(f"GRAFT_LLAMA_ORACLE={exe} is not a file")
    return exe


def sys_crate_version():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "tools", "llama-oracle", "Cargo.toml")) as f:
        for line in f:
            if line.startswith("llama-cpp-sys-2"):
                return line.split("=", 1)[1].strip().strip('"').lstrip("=")
    return "unknown"


# Activation-only types ggml_quantize_chunk does not take: their goldens are kept as committed.
KEPT = [T.Q8_K, T.Q8_1]


def kquant_cases(rng, real):
    exe = llama_oracle()
    oracle = f"ggml (llama-cpp-sys-2 {sys_crate_version()}) quantize_chunk"
    x = np.concatenate([
        rng.normal(0, 1, 1024),
        rng.normal(0, 0.02, 512),
        0.1 + 2 * np.cos(np.arange(512, dtype=np.float32)),
        np.zeros(256),
        real[:512],
    ]).astype("<f4")
    for ty in [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]:
        out = subprocess.run([exe, "quantize-blocks", "--type", ty.name.lower()],
                             input=x.tobytes(), capture_output=True, check=True).stdout
        write(f"quant_{ty.name.lower()}", ty, "quant", x.size, np.frombuffer(out, np.uint8), x,
              oracle)
    with open(os.path.join(OUT, "manifest.json")) as f:
        old = {e["name"]: e for e in json.load(f)}
    for ty in KEPT:
        name = f"quant_{ty.name.lower()}"
        e = old.get(name)
        if e is None:
            sys.exit(f"{name} is missing from the committed manifest: it cannot be regenerated "
                     "without ggml's source (see this script's header)")
        kept_x = np.fromfile(os.path.join(OUT, e["floats"]), dtype="<f4")
        if not np.array_equal(kept_x, x):
            sys.exit(f"{name}: the committed input differs from the generated one, so its "
                     "committed bytes no longer match; they cannot be regenerated here")
        manifest.append(e)


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
