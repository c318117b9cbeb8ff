#!/usr/bin/env bash
# graft vs llama.cpp on the same model, same machine, same run: pp128, pp512 and tg128 at 1 and
# 2 threads, mean ± stddev tok/s over REPS repetitions, plus peak RSS and load time. Prints a
# markdown table (the README's). Builds graft (release) and the llama.cpp oracle if needed.
#
#   scripts/bench-vs-llama.sh [MODEL] [REPS]
#
# The two engines are run alternately per thread count so that background load hits both.
# Check the load average it prints: on a shared 2-core machine a 2-thread figure is only
# meaningful when both cores are free.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-$(scripts/fetch-model.sh)}
REPS=${2:-5}
cargo build --release -q -p graft-cli
ORACLE=${GRAFT_LLAMA_ORACLE:-tools/llama-oracle/target/release/llama-oracle}
if [ ! -x "$ORACLE" ]; then
  scripts/setup.sh --parity
  cargo build --release -q --manifest-path tools/llama-oracle/Cargo.toml
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for t in 1 2; do
  target/release/graft bench -m "$MODEL" -p 128,512 -n 128 -t "$t" -r "$REPS" --json > "$tmp/graft-$t.json"
  for p in 128 512; do
    /usr/bin/time -f "%M" -o "$tmp/llama-rss-$t-$p" \
      "$ORACLE" bench -m "$MODEL" -p "$p" -n 128 -t "$t" -r "$REPS" > "$tmp/llama-$t-$p.json"
  done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$tmp" <<'PY'
import json, sys, os
d = sys.argv[1]
def fmt(m, s): return f"{m:.1f} ± {s:.1f}"
print("| threads | test | graft tok/s | llama.cpp tok/s | ratio |")
print("|---|---|---|---|---|")
rss = {}
for t in (1, 2):
    g = json.load(open(f"{d}/graft-{t}.json"))
    gres = {r["test"]: r for r in g["results"]}
    rss[("graft", t)] = g["peak_rss_bytes"] / 1e6
    for test, p, key in (("pp128", 128, "pp"), ("pp512", 512, "pp"), ("tg128", 128, "tg")):
        l = json.load(open(f"{d}/llama-{t}-{p}.json"))
        lm, ls = l[key]["mean_tok_s"], l[key]["stddev_tok_s"]
        gm, gs = gres[test]["avg_ts"], gres[test]["stddev_ts"]
        print(f"| {t} | {test} | {fmt(gm, gs)} | {fmt(lm, ls)} | {gm / lm:.2f}× |")
    rss[("llama", t)] = max(int(open(f"{d}/llama-rss-{t}-{p}").read().split()[-1]) for p in (128, 512)) / 1e3
    rss[("graft_load", t)] = g["load_ms"]
print()
print("| threads | graft peak RSS | llama.cpp peak RSS |")
print("|---|---|---|")
for t in (1, 2):
    print(f"| {t} | {rss[('graft', t)]:.1f} MB | {rss[('llama', t)]:.1f} MB |")
PY
