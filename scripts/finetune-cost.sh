#!/usr/bin/env bash
# What the quantized base costs a fine-tune (issue 14): trains the support-triage adapter
# (examples/support-triage) on the same base model quantized several ways and reports, per base,
# side by side: held-out test loss, exact match and token F1 of the base and of the adapted model,
# the perplexity of unrelated text (GPL-3) before and after, the training time, tokens/s and
# peak RSS, the file size and bits per weight.
#
# Every base comes from one source: SmolLM2-135M-Instruct Q4_1 (scripts/fetch-model.sh), the
# highest precision there is of it here, dequantized once to F32; every other base is quantized
# from that F32 file with `graft quantize --type T`. The row `q4_1` is the shipped file itself.
# Each adapter is trained AND evaluated on its own base: that is the question (what a lower-bit
# frozen base costs the whole fine-tune). With --f32-eval each adapter is also evaluated on the
# F32 base, which separates "a worse adapter" from "a worse base at inference".
#
# The recipe is the README's small-data one (scripts/demo.sh): the first 300 training examples,
# the guides' settings (--epochs 2 --rank 16 --alpha 32 --lr 2e-4 --optimizer adamw8bit
# --checkpointing layer), everything else graft's defaults (auto batch: 1 example per step);
# then `graft eval --compare --general GPL-3` on the 120 test examples.
#
#   scripts/finetune-cost.sh [options]
#     --bases LIST      comma-separated, in order (default: f32,q8_0,q6_k,q4_1,q4_k_m,nf4,q3_k_m,q2_k;
#                       any `graft quantize --type`, plus q4_1 = the shipped file)
#     --epochs N        training epochs (default 2, the recipe's)
#     --examples N      training examples, the first N of train.jsonl (default 300)
#     --test-limit N    evaluate only the first N of the 120 test examples (default: all)
#     --checkpointing M layer (default, the recipe's) or off: the same gradients bit for bit, ~1.4x
#                       faster per step, more memory
#     --jobs N          bases trained/evaluated at a time (default 1); each gets --threads
#     -t, --threads N   threads per job (default: the machine's cores / --jobs)
#     --f32-eval        also evaluate every adapter on the F32 base (test set only, no --general)
#     --out DIR         output directory (default target/finetune-cost, --quick: target/finetune-cost-quick)
#     --force           redo bases that already have results (default: skip them, reuse base files)
#     --quick           smoke run (~2 min on 2 cores): bases q8_0,q2_k, 20 examples, 10 steps,
#                       8 test examples, 4 KB of general text at -c 256
#   GRAFT=path/to/graft  use this binary instead of building target/release/graft
#
# Writes DIR/table.md (the tables), DIR/results.csv (one row per base), DIR/run.txt (machine,
# commit, commands, times of this invocation; DIR/runs.log keeps every invocation's) and per base DIR/<base>/ (adapter, train and eval logs, eval.json,
# result.json). Rerunnable: bases with a result.json are skipped unless --force.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
}

BASES=""
EPOCHS=2
EXAMPLES=300
JOBS=1
THREADS=""
F32_EVAL=0
CKPT=layer
TEST_LIMIT=()
OUT=""
FORCE=0
QUICK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bases) BASES=${2:?--bases needs a list}; shift 2 ;;
    --epochs) EPOCHS=${2:?--epochs needs a number}; shift 2 ;;
    --examples) EXAMPLES=${2:?--examples needs a number}; shift 2 ;;
    --test-limit) TEST_LIMIT=(--limit "${2:?--test-limit needs a number}"); shift 2 ;;
    --checkpointing) CKPT=${2:?--checkpointing needs layer or off}; shift 2 ;;
    --jobs) JOBS=${2:?--jobs needs a number}; shift 2 ;;
    -t | --threads) THREADS=${2:?--threads needs a number}; shift 2 ;;
    --f32-eval) F32_EVAL=1; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --force) FORCE=1; shift ;;
    --quick) QUICK=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for v in EPOCHS EXAMPLES JOBS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "error: --${v,,} must be a positive integer, got '${!v}'" >&2; exit 2; }
done
[ -z "$THREADS" ] || [[ $THREADS =~ ^[1-9][0-9]*$ ]] || { echo "error: --threads must be a positive integer" >&2; exit 2; }

DATA=examples/support-triage/data
GENERAL_SRC=/usr/share/common-licenses/GPL-3
GENERAL_CTX=512
MAX_STEPS=()
if [ "$QUICK" = 1 ]; then
  BASES=${BASES:-q8_0,q2_k}
  EXAMPLES=20
  EPOCHS=1
  MAX_STEPS=(--max-steps 10)
  TEST_LIMIT=(--limit 8)
  GENERAL_CTX=256
  OUT=${OUT:-target/finetune-cost-quick}
else
  BASES=${BASES:-f32,q8_0,q6_k,q4_1,q4_k_m,nf4,q3_k_m,q2_k}
  OUT=${OUT:-target/finetune-cost}
fi
IFS=, read -r -a BASE_LIST <<< "$BASES"
[ "${#BASE_LIST[@]}" -gt 0 ] || { echo "error: --bases is empty" >&2; exit 2; }
for b in "${BASE_LIST[@]}"; do
  [[ $b =~ ^[a-z0-9_]+$ ]] || { echo "error: bad base name '$b' in --bases" >&2; exit 2; }
done
if [ -z "$THREADS" ]; then
  THREADS=$(( $(nproc) / JOBS ))
  [ "$THREADS" -ge 1 ] || THREADS=1
fi

MODELS=${GRAFT_MODELS:-$HOME/.cache/graft/models}
SRC=$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$SRC" ]; then
  echo "error: the source model $SRC is missing; fetch it with scripts/fetch-model.sh" >&2
  exit 1
fi
[ -f "$GENERAL_SRC" ] || { echo "error: the general text $GENERAL_SRC is missing" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "error: /usr/bin/time (GNU time) is needed for the timings" >&2; exit 1; }
command -v python3 > /dev/null || { echo "error: python3 is needed to read the JSON reports" >&2; exit 1; }

if [ -z "${GRAFT:-}" ]; then
  cargo build --release -q -p graft-cli
  GRAFT=target/release/graft
fi
[ -x "$GRAFT" ] || { echo "error: $GRAFT is not an executable" >&2; exit 1; }
# Every base is a type `graft quantize` knows, before any file is written (clap rejects an
# unknown --type before it opens the input).
for b in "${BASE_LIST[@]}"; do
  case "$b" in q4_1 | f32) continue ;; esac
  msg=$("$GRAFT" quantize --type "$b" /nonexistent.gguf /nonexistent.gguf 2>&1 || true)
  if [[ $msg == *"invalid value"* ]]; then
    echo "${msg%%$'\n'*}" >&2
    echo "error: '$b' in --bases is not a graft quantize type" >&2
    exit 2
  fi
done

mkdir -p "$OUT/bases"
T0=$(date +%s)
head -n "$EXAMPLES" "$DATA/train.jsonl" > "$OUT/train.jsonl"
TEST=$DATA/test.jsonl
if [ "$QUICK" = 1 ]; then
  head -c 4000 "$GENERAL_SRC" > "$OUT/general.txt"
  GENERAL=$OUT/general.txt
else
  GENERAL=$GENERAL_SRC
fi

# The bases. F32 first (every other one is quantized from it, and --f32-eval needs it).
F32=$OUT/bases/f32.gguf
base_path() {
  case "$1" in
    q4_1) echo "$SRC" ;;
    *) echo "$OUT/bases/$1.gguf" ;;
  esac
}
quantize() { # quantize TYPE FROM TO
  local ty=$1 from=$2 to=$3 extra=()
  if [ -f "$to" ] && [ "$FORCE" = 0 ]; then
    return 0
  fi
  [ "$ty" = f32 ] && extra=(--allow-requantize)
  echo "== quantize $ty -> $to" >&2
  /usr/bin/time -o "$to.time" -f '%e %U %S %M' \
    "$GRAFT" quantize "$from" "$to" --type "$ty" --threads "$(nproc)" "${extra[@]}" > "$to.log" 2>&1 \
    || { echo "error: graft quantize --type $ty failed; see $to.log" >&2; cat "$to.log" >&2; exit 1; }
}
quantize f32 "$SRC" "$F32"
for b in "${BASE_LIST[@]}"; do
  case "$b" in
    q4_1 | f32) ;;
    *) quantize "$b" "$F32" "$(base_path "$b")" ;;
  esac
done

# One base: train, evaluate (base and adapted, with general text), summarise into result.json.
run_base() {
  local name=$1 dir=$OUT/$1 base
  base=$(base_path "$name")
  rm -rf "$dir"
  mkdir -p "$dir"
  echo "== $name: train ($base, -t $THREADS)" >&2
  if ! /usr/bin/time -o "$dir/train.time" -f '%e %U %S %M' \
    "$GRAFT" train -m "$base" --data "$OUT/train.jsonl" -o "$dir/adapter.gguf" \
    --epochs "$EPOCHS" --rank 16 --alpha 32 --lr 2e-4 --optimizer adamw8bit --checkpointing "$CKPT" \
    -t "$THREADS" --no-progress "${MAX_STEPS[@]}" > "$dir/train.out" 2> "$dir/train.log"; then
    echo "error: $name: graft train failed; see $dir/train.log:" >&2
    tail -n 5 "$dir/train.log" >&2
    return 1
  fi
  echo "== $name: eval base and adapted" >&2
  if ! /usr/bin/time -o "$dir/eval.time" -f '%e %U %S %M' \
    "$GRAFT" eval -m "$base" --lora "$dir/adapter.gguf" --data "$TEST" --compare \
    --general "$GENERAL" --general-ctx "$GENERAL_CTX" --json --device cpu -t "$THREADS" \
    "${TEST_LIMIT[@]}" > "$dir/eval.json" 2> "$dir/eval.log"; then
    echo "error: $name: graft eval failed; see $dir/eval.log:" >&2
    tail -n 5 "$dir/eval.log" >&2
    return 1
  fi
  if [ "$F32_EVAL" = 1 ]; then
    echo "== $name: eval the adapter on the F32 base" >&2
    if ! /usr/bin/time -o "$dir/eval-f32.time" -f '%e %U %S %M' \
      "$GRAFT" eval -m "$F32" --lora "$dir/adapter.gguf" --data "$TEST" --json --device cpu \
      -t "$THREADS" "${TEST_LIMIT[@]}" > "$dir/eval-f32.json" 2> "$dir/eval-f32.log"; then
      echo "error: $name: graft eval on the F32 base failed; see $dir/eval-f32.log" >&2
      return 1
    fi
  fi
  "$GRAFT" inspect "$base" --json > "$dir/inspect.json"
  python3 - "$name" "$base" "$dir" << 'EOF'
import json, os, re, sys
name, base, d = sys.argv[1:4]
def tm(f):
    e, u, s, m = open(os.path.join(d, f)).read().split()[-4:]
    return {"wall_s": float(e), "user_s": float(u), "sys_s": float(s), "peak_rss_mb": int(m) / 1024}
out = open(os.path.join(d, "train.out")).read()
m = re.search(r"after (\d+) of (\d+) steps.* in ([0-9.]+) s", out)
t = re.search(r"tokens/s ([0-9.]+) \((\d+) tokens this run\) \| peak RSS (\d+) MB", out)
insp = json.load(open(os.path.join(d, "inspect.json")))
mats = [x for x in insp["tensors"] if len(x["shape"]) >= 2]
body = [x for x in mats if x["name"] not in ("token_embd.weight", "output.weight")]
def n(x):
    k = 1
    for s in x["shape"]:
        k *= s
    return k
def bpw(ts):
    return 8 * sum(x["n_bytes"] for x in ts) / sum(n(x) for x in ts)
mix = {}
for x in body:
    mix[x["type"]] = mix.get(x["type"], 0) + n(x)
tot = sum(mix.values())
mix_s = " ".join(f"{k} {100 * v / tot:.0f}%" for k, v in sorted(mix.items(), key=lambda kv: -kv[1]))
head = [x for x in mats if x["name"] in ("output.weight", "token_embd.weight")]
ev = json.load(open(os.path.join(d, "eval.json")))
def card(r):
    g = r.get("general")
    return {"loss": r["loss"], "exact_match": r["exact_match"], "token_f1": r["token_f1"],
            "examples": r["n_examples"], "general_ppl": g["ppl"] if g else None}
res = {
    "base": name, "file": base, "file_mb": os.path.getsize(base) / 1e6,
    "bpw_all": bpw(mats), "bpw_body": bpw(body), "body_mix": mix_s,
    "head_type": "/".join(x["type"] for x in head),
    "train": {"steps": int(m.group(1)), "of_steps": int(m.group(2)), "secs": float(m.group(3)),
              "tok_s": float(t.group(1)), "tokens": int(t.group(2)), "peak_rss_mb": int(t.group(3)),
              "time": tm("train.time")},
    "eval_time": tm("eval.time"),
    "base_eval": card(ev["base"]), "adapted_eval": card(ev["adapted"]),
}
if os.path.exists(os.path.join(d, "eval-f32.json")):
    res["adapted_on_f32"] = card(json.load(open(os.path.join(d, "eval-f32.json"))))
    res["eval_f32_time"] = tm("eval-f32.time")
json.dump(res, open(os.path.join(d, "result.json.tmp"), "w"), indent=1)
os.replace(os.path.join(d, "result.json.tmp"), os.path.join(d, "result.json"))
EOF
  echo "== $name: done" >&2
}

# The bases still to do, slowest first (NF4's CPU kernels and F32's 4x bytes make them the long
# ones), so --jobs N keeps every lane busy to the end.
TODO=()
for b in "${BASE_LIST[@]}"; do
  if [ -f "$OUT/$b/result.json" ] && [ "$FORCE" = 0 ]; then
    echo "== $b: already done ($OUT/$b/result.json; --force redoes it)" >&2
  else
    TODO+=("$b")
  fi
done
ORDERED=()
for slow in nf4 f32; do
  for b in "${TODO[@]}"; do [ "$b" = "$slow" ] && ORDERED+=("$b"); done
done
for b in "${TODO[@]}"; do [ "$b" = nf4 ] || [ "$b" = f32 ] || ORDERED+=("$b"); done

T1=$(date +%s)
FAILED=()
declare -A PID_BASE=()
for b in "${ORDERED[@]}"; do
  while [ "${#PID_BASE[@]}" -ge "$JOBS" ]; do
    if wait -n -p done_pid; then :; else FAILED+=("${PID_BASE[$done_pid]}"); fi
    unset "PID_BASE[$done_pid]"
  done
  run_base "$b" &
  PID_BASE[$!]=$b
done
while [ "${#PID_BASE[@]}" -gt 0 ]; do
  if wait -n -p done_pid; then :; else FAILED+=("${PID_BASE[$done_pid]}"); fi
  unset "PID_BASE[$done_pid]"
done
T2=$(date +%s)

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -n 1), $(nproc) cores, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "graft: $GRAFT ($("$GRAFT" --version)); this tree is at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2> /dev/null || echo ' with uncommitted changes')"
  echo "recipe: first $EXAMPLES of $DATA/train.jsonl, --epochs $EPOCHS --rank 16 --alpha 32 --lr 2e-4 --optimizer adamw8bit --checkpointing $CKPT ${MAX_STEPS[*]}"
  echo "eval: $TEST ${TEST_LIMIT[*]} --compare --general $GENERAL --general-ctx $GENERAL_CTX"
  echo "jobs: $JOBS at a time, -t $THREADS each"
  echo "bases run now: ${ORDERED[*]:-none}; failed: ${FAILED[*]:-none}"
  echo "wall time: $((T2 - T1)) s for the bases run now, $((T2 - T0)) s with the base files"
} > "$OUT/run.txt"
cat "$OUT/run.txt" >> "$OUT/runs.log"

python3 - "$OUT" "${BASE_LIST[@]}" << 'EOF'
import csv, json, os, sys
out, names = sys.argv[1], sys.argv[2:]
rows = [json.load(open(os.path.join(out, b, "result.json"))) for b in names
        if os.path.exists(os.path.join(out, b, "result.json"))]
if not rows:
    sys.exit("no results to tabulate")
label = lambda r: r["base"].upper() + (" (shipped file)" if r["base"] == "q4_1" else "")
ref = rows[0]
f32 = any("adapted_on_f32" in r for r in rows)
L = []
L.append(f"Quality ({ref['adapted_eval']['examples']} test examples; each adapter trained and evaluated on its own base; Δ EM vs {label(ref)}):\n")
hdr = "| base | weights (matrices, not the embedding) | bits/weight | test loss base → adapted | exact match base → adapted | Δ EM | token F1 adapted | general ppl base → adapted |"
sep = "|---|---|---|---|---|---|---|---|"
if f32:
    hdr += " adapter on the F32 base: EM / loss |"
    sep += "---|"
L += [hdr, sep]
for r in rows:
    b, a = r["base_eval"], r["adapted_eval"]
    g = ""
    if b["general_ppl"] and a["general_ppl"]:
        g = f"{b['general_ppl']:.3f} → {a['general_ppl']:.3f} ({100 * (a['general_ppl'] / b['general_ppl'] - 1):+.1f}%)"
    line = (f"| {label(r)} | {r['body_mix']} | {r['bpw_body']:.2f} | {b['loss']:.4f} → {a['loss']:.4f} | "
            f"{100 * b['exact_match']:.1f}% → **{100 * a['exact_match']:.1f}%** | "
            f"{100 * (a['exact_match'] - ref['adapted_eval']['exact_match']):+.1f} | {100 * a['token_f1']:.1f}% | {g} |")
    if f32:
        c = r.get("adapted_on_f32")
        line += f" {100 * c['exact_match']:.1f}% / {c['loss']:.4f} |" if c else " – |"
    L.append(line)
L.append("\nCost (training: the whole run; eval: base and adapted with the general text):\n")
L.append("| base | file MB | bits/weight (file) | train s | train tok/s | train peak RSS MB | steps | eval s | eval peak RSS MB |")
L.append("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    t = r["train"]
    L.append(f"| {label(r)} | {r['file_mb']:.1f} | {r['bpw_all']:.2f} | {t['time']['wall_s']:.0f} | {t['tok_s']:.1f} | "
             f"{t['time']['peak_rss_mb']:.0f} | {t['steps']} | {r['eval_time']['wall_s']:.0f} | {r['eval_time']['peak_rss_mb']:.0f} |")
open(os.path.join(out, "table.md"), "w").write("\n".join(L) + "\n")
cols = ["base", "body_mix", "bpw_body", "bpw_all", "file_mb", "base_loss", "adapted_loss", "base_em", "adapted_em",
        "base_f1", "adapted_f1", "base_general_ppl", "adapted_general_ppl", "train_steps", "train_tokens",
        "train_s", "train_tok_s", "train_peak_rss_mb", "eval_s", "eval_peak_rss_mb", "f32_base_em", "f32_base_loss"]
with open(os.path.join(out, "results.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(cols)
    for r in rows:
        b, a, t, c = r["base_eval"], r["adapted_eval"], r["train"], r.get("adapted_on_f32") or {}
        w.writerow([r["base"], r["body_mix"], f"{r['bpw_body']:.3f}", f"{r['bpw_all']:.3f}", f"{r['file_mb']:.1f}",
                    b["loss"], a["loss"], b["exact_match"], a["exact_match"], b["token_f1"], a["token_f1"],
                    b["general_ppl"], a["general_ppl"], t["steps"], t["tokens"], t["time"]["wall_s"], t["tok_s"],
                    round(t["time"]["peak_rss_mb"]), r["eval_time"]["wall_s"], round(r["eval_time"]["peak_rss_mb"]),
                    c.get("exact_match", ""), c.get("loss", "")])
EOF
cat "$OUT/table.md"
echo
cat "$OUT/run.txt"
if [ "${#FAILED[@]}" -gt 0 ]; then
  echo "error: failed: ${FAILED[*]} (logs in $OUT/<base>/)" >&2
  exit 1
fi
