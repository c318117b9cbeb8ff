#!/usr/bin/env bash
# `cargo test --workspace` with several test binaries running at once (what scripts/test.sh
# runs). cargo runs one test binary after another, each with one thread per core; many of
# graft's slowest binaries spend minutes in one single-threaded test (a training run killed
# 20 times, a C program under valgrind, the GPU tests on lavapipe), leaving the other core of
# a 2-core CI machine idle. Here the binaries run JOBS at a time (default: the number of
# cores), the known-slow ones first, each in its package's directory with the environment
# cargo gives it; the doc tests follow with `cargo test --doc`.
#
#   scripts/test-parallel.sh                 # every test binary of the workspace
#   JOBS=1 scripts/test-parallel.sh          # one at a time (as cargo test)
#   scripts/test-parallel.sh -- --ignored    # arguments after -- go to every test binary
#
# Prints one line per binary (ok/FAILED, seconds) and, for each that failed, its whole
# output; exits non-zero when any binary failed. Each binary's output is also kept in
# target/test-logs/<binary file name>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

test_args=()
if [ "${1:-}" = "--" ]; then
  shift
  test_args=("$@")
elif [ "$#" -gt 0 ]; then
  echo "usage: $0 [-- TEST-BINARY-ARGS...]" >&2
  exit 2
fi

jobs="${JOBS:-$(nproc)}"
# The slowest binaries on a 2-core CI machine, started first so that they do not end the run
# alone (2-core AMD EPYC, 2026-12-06: gpu_model ~400 s, train_cli ~320 s beside it,
# trainer_dpo ~130 s, c_programs ~75 s, valgrind ~55 s; the rest take under ~90 s each).
slow_first=(gpu_model train_cli trainer_dpo c_programs valgrind llama_parity)

logs="target/test-logs"
rm -rf "$logs"
mkdir -p "$logs"

# Build every test binary (cargo's own output goes to the terminal) and list them as
# "name<TAB>package dir<TAB>executable" from cargo's JSON messages (name: the file name
# without cargo's hash, e.g. gpu_model or graft_kernels for a crate's unit tests).
list="$logs/binaries.tsv"
cargo test --workspace --no-run --message-format=json-render-diagnostics |
  grep '"reason":"compiler-artifact"' | grep -E '"profile":\{[^}]*"test":true' |
  grep '"executable":"' |
  sed -E 's/.*"manifest_path":"([^"]*)\/Cargo.toml".*"executable":"([^"]*)".*/\1\t\2/' |
  while IFS=$'\t' read -r dir exe; do
    name="$(basename "$exe")"
    printf '%s\t%s\t%s\n' "${name%-*}" "$dir" "$exe"
  done >"$list"
n_bin="$(wc -l <"$list")"
if [ "$n_bin" = 0 ]; then
  echo "no test binaries found" >&2
  exit 1
fi

# The run order: the slow ones first, then the rest as cargo lists them.
ordered="$logs/order.tsv"
: >"$ordered"
for s in "${slow_first[@]}"; do
  awk -F'\t' -v n="$s" '$1 == n' "$list" >>"$ordered"
done
awk -F'\t' 'NR == FNR { seen[$3] = 1; next } !($3 in seen)' "$ordered" "$list" >>"$ordered"

cargo_bin="$(command -v cargo)"
# Runs one binary as cargo would (its package directory as the working directory, CARGO and
# CARGO_MANIFEST_DIR set); writes its exit status next to its log.
run_one() {
  local dir="$2" exe="$3" t0=$SECONDS rc=0
  local log="$logs/$(basename "$exe").log"
  (cd "$dir" && CARGO="$cargo_bin" CARGO_MANIFEST_DIR="$dir" \
    "$exe" "${test_args[@]}") >"$log" 2>&1 || rc=$?
  echo "$rc $((SECONDS - t0))" >"$logs/$(basename "$exe").status"
}

echo "==> $n_bin test binaries, $jobs at a time"
t_all=$SECONDS
running=0
while IFS=$'\t' read -r name dir exe; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
  run_one "$name" "$dir" "$exe" &
  running=$((running + 1))
done <"$ordered"
wait || true

failed=()
while IFS=$'\t' read -r name _ exe; do
  key="$(basename "$exe")"
  read -r rc secs <"$logs/$key.status" || { rc=1; secs=?; }
  summary="$(grep -E '^test result:' "$logs/$key.log" | tail -1 || true)"
  if [ "$rc" = 0 ]; then
    printf 'ok      %-40s %5s s  %s\n' "$name" "$secs" "$summary"
  else
    printf 'FAILED  %-40s %5s s  (exit %s)\n' "$name" "$secs" "$rc"
    failed+=("$key")
  fi
done <"$ordered"
echo "==> test binaries: $((SECONDS - t_all)) s"

for name in "${failed[@]}"; do
  echo
  echo "==================== $name (target/test-logs/$name.log) ===================="
  cat "$logs/$name.log"
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi

# Doc tests (cargo test runs them after the binaries).
cargo test --workspace --doc -- "${test_args[@]}"
