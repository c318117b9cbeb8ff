#!/usr/bin/env bash
# A short fuzz run of every target in fuzz/ (what CI runs; see fuzz/README.md):
#   scripts/fuzz-smoke.sh            # every target for 60 s
#   scripts/fuzz-smoke.sh 10 tokenizer chat_template   # chosen targets, 10 s each
#   scripts/fuzz-smoke.sh --build-only  # install cargo-fuzz if needed and build, run nothing
#                                       # (scripts/test.sh does this in the background)
# Installs cargo-fuzz when it is missing, builds all targets once (libFuzzer + AddressSanitizer,
# nightly flags unlocked on the stable toolchain with RUSTC_BOOTSTRAP=1), then runs each target
# from its seeds (fuzz/seeds/<target>/; gguf_parse: fuzz/seeds/*.gguf) in a fresh corpus with
# -malloc_limit_mb=64 -rss_limit_mb=2048, two targets at a time. Fails if any target crashes,
# leaks, times out or goes past a memory limit; the input that did is kept in
# fuzz/artifacts/<target>/ and its log in fuzz/artifacts/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

build_only=0
if [ "${1:-}" = "--build-only" ]; then
  build_only=1
  shift
fi
secs="${1:-60}"
shift || true
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
if [ "$build_only" = 1 ]; then
  echo "==> building every fuzz target"
  exec cargo fuzz build
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "==> building ${#targets[@]} fuzz targets"
cargo fuzz build
host="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="target/$host/release"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p artifacts

# Runs one target for $secs seconds; its exit status is libFuzzer's.
run_one() {
  local t="$1" corpus="$work/$1"
  mkdir -p "$corpus" "artifacts/$t"
  if [ "$t" = gguf_parse ]; then
    cp seeds/*.gguf "$corpus/"
  elif [ -d "seeds/$t" ]; then
    cp "seeds/$t"/* "$corpus/"
  fi
  # The tokenizers crate's BPE keeps a word cache that grows across inputs: libFuzzer counts
  # more mallocs than frees in each run and stops the world for a leak check every time (the
  # rate falls ~5x), so the targets that tokenize with it skip leak detection.
  local extra=()
  case "$t" in
    tokenizer | dataset_jsonl) extra=(-detect_leaks=0) ;;
  esac
  "$bin_dir/$t" "$corpus" -max_total_time="$secs" -malloc_limit_mb=64 -rss_limit_mb=2048 \
    -timeout=20 -max_len=131072 -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
    "${extra[@]}" >"artifacts/$t.log" 2>&1
}

failed=()
report() {
  local t="$1" rc="$2"
  local execs
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "artifacts/$t.log" | tail -1)"
  if [ "$rc" = 0 ]; then
    echo "ok    $t: ${execs:-?} executions in ${secs} s"
  else
    echo "FAIL  $t (exit $rc): see fuzz/artifacts/$t.log and fuzz/artifacts/$t/"
    grep -m3 -E 'panicked|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY' "artifacts/$t.log" || true
    failed+=("$t")
  fi
}

echo "==> running each target for ${secs} s, two at a time"
i=0
while [ "$i" -lt "${#targets[@]}" ]; do
  a="${targets[$i]}"
  b="${targets[$((i + 1))]:-}"
  run_one "$a" & pa=$!
  if [ -n "$b" ]; then run_one "$b" & pb=$!; fi
  rc=0; wait "$pa" || rc=$?; report "$a" "$rc"
  if [ -n "$b" ]; then rc=0; wait "$pb" || rc=$?; report "$b" "$rc"; fi
  i=$((i + 2))
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz smoke failed: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz smoke: all ${#targets[@]} targets ran ${secs} s without a finding"
