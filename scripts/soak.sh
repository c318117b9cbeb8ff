#!/usr/bin/env bash
# The C ABI soak (ffi/tests/c/soak.c): 8 threads on one model creating and freeing sessions,
# hot-swapping adapters, generating, cancelling each other and using each other's busy
# sessions, with RSS sampled and bounded after warm-up.
#   scripts/soak.sh [SECONDS=300]          # libgraft as the tests build it, RSS checked
#   scripts/soak.sh --tsan [SECONDS=120]   # ThreadSanitizer on both sides of the ABI: libgraft
#                                          # and the Rust std built with -Zsanitizer=thread
#                                          # (nightly + rust-src), soak.c with clang -fsanitize=thread
# CI runs the 30-second plain soak and a 10-second ASan/UBSan soak in `cargo test`
# (ffi/tests/soak.rs, ffi/tests/sanitizers.rs).
set -euo pipefail
cd "$(dirname "$0")/.."

tsan=0
if [ "${1:-}" = "--tsan" ]; then tsan=1; shift; fi
secs="${1:-}"

if [ "$tsan" = 0 ]; then
  GRAFT_SOAK_SECS="${secs:-300}" cargo test -p graft-ffi --test soak \
    soak_c_8_threads_steady_rss -- --exact --nocapture
  exit 0
fi

# -Zsanitizer and -Zbuild-std need nightly with the standard library's sources. soak.c is
# compiled with clang -fsanitize=thread (TSAN_CC changes the compiler) and linked with the Rust
# toolchain's TSan runtime, the one the Rust side's instrumentation was built for.
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  rustup toolchain install nightly --profile minimal --component rust-src
fi
command -v "${TSAN_CC:-clang}" >/dev/null || { echo "soak.sh --tsan needs clang (apt-get install clang)" >&2; exit 2; }
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
# The instrumented library lives in its own target dir; the build scripts and proc macros are
# not instrumented (RUSTFLAGS with an explicit --target applies to the target crates only).
RUSTFLAGS="-Zsanitizer=thread" cargo +nightly build -Zbuild-std --target "$host" --release \
  -p graft-ffi --target-dir target/tsan
sysroot=$(rustc +nightly --print sysroot)
rt=$(ls "$sysroot"/lib/rustlib/"$host"/lib/librustc-nightly_rt.tsan.a)
GRAFT_TSAN_LIB="$PWD/target/tsan/$host/release/libgraft.a" GRAFT_TSAN_RT="$rt" \
  GRAFT_SOAK_SECS="${secs:-120}" cargo test -p graft-ffi --test soak \
  soak_c_under_thread_sanitizer -- --exact --ignored --nocapture
