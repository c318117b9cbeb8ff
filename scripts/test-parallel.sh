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
#   scripts/test-parallel.sh --only faults_cli -- --ignored small_fs
#                                            # only the named binaries (--only repeats); still
#                                            # built by `cargo test --workspace`, so nothing
#                                            # rebuilds (`cargo test --test X` resolves another
#                                            # unit graph and rebuilds ~50 crates), no doc tests
#
# Prints one line per binary (ok/FAILED, seconds) and, for each that failed, its whole
# output; exits non-zero when any binary failed. Each binary's output is also kept in
# target/test-logs/<binary file name>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

test_args=()
only=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --only)
      [ "$#" -ge 2 ] || { echo "$0: --only needs a test binary name" >&2; exit 2; }
      only+=("$2")
      shift 2
      ;;
    --)
      shift
      test_args=("$@")
      break
      ;;
    *)
      echo "usage: $0 [--only NAME]... [-- TEST-BINARY-ARGS...]" >&2
      exit 2
      ;;
  esac
done

jobs="${JOBS:-$(nproc)}"
# The slowest binaries on a 2-core CI machine, started first so that they do not end the run
# alone (2-core AMD EPYC, 2026-12-06: gpu_model ~400 s, train_cli ~320 s beside it,
# trainer_dpo ~130 s, c_programs ~75 s, valgrind ~55 s; the rest take under ~90 s each).
slow_first=(gpu_model train_cli trainer_dpo c_programs valgrind llama_parity)

logs="target/test-logs"
# A run of chosen binaries (--only) keeps the logs of the last whole run.
[ "${#only[@]}" -gt 0 ] || rm -rf "$logs"
mkdir -p "$logs"

# Build every test binary (cargo's own output goes to the terminal) and list them as
# "name<TAB>package dir<TAB>executable" from cargo's JSON messages (name: the file name
# without cargo's hash, e.g. gpu_model or graft_kernels for a crate's unit tests).
# `--tests` (libraries', binaries' and integration tests) leaves out the examples that a plain
# `cargo test` also builds: 14 benchmark and generator programs nothing here runs, which
# clippy (--all-targets) compiles anyway.
list="$logs/binaries.tsv"
cargo test --workspace --tests --no-run --message-format=json-render-diagnostics |
  grep '"reason":"compiler-artifact"' | grep -E '"profile":\{[^}]*"test":true' |
  grep '"executable":"' |
  sed -E 's/.*"manifest_path":"([^"]*)\/Cargo.toml".*"executable":"([^"]*)".*/\1\t\2/' |
  while IFS=$'\t' read -r dir exe; do
    name="$(basename "$exe")"
    printf '%s\t%s\t%s\n' "${name%-*}" "$dir" "$exe"
  done >"$list"
if [ "${#only[@]}" -gt 0 ]; then
  for name in "${only[@]}"; do
    awk -F'\t' -v n="$name" '$1 == n { found = 1 } END { exit !found }' "$list" ||
      { echo "$0: no test binary named $name" >&2; exit 2; }
  done
  awk -F'\t' -v names="${only[*]}" 'BEGIN { split(names, a, " "); for (i in a) keep[a[i]] = 1 }
    $1 in keep' "$list" >"$list.only"
  mv "$list.only" "$list"
fi
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
awk -F'\t' -v slow="${slow_first[*]}" \
  'BEGIN { split(slow, s, " "); for (i in s) is_slow[s[i]] = 1 } !($1 in is_slow)' \
  "$list" >>"$ordered"
if [ "$(wc -l <"$ordered")" != "$n_bin" ]; then
  echo "$0: the run order has $(wc -l <"$ordered") of the $n_bin test binaries" >&2
  exit 1
fi

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

# The C-side tests' copies of libgraft/graft and their compiled programs (ffi/tests/common:
# one folder per test process, ~250 MB each; a later run sweeps those of ended processes):
# every test process of this run has ended, so its folders go now instead of lingering.
for d in "${CARGO_TARGET_DIR:-target}"/tmp/c-programs/*/; do
  [ -d "$d" ] || continue
  pid="$(basename "$d")"
  [ -e "/proc/$pid" ] || rm -rf "$d"
done

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

# Doc tests (cargo test runs them after the binaries), unless only some binaries were asked for.
[ "${#only[@]}" -gt 0 ] && exit 0
cargo test --workspace --doc -- "${test_args[@]}"
