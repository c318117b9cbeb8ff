#!/usr/bin/env bash
# Builds what a deployment ships for one target with the `dist` profile (Cargo.toml: release +
# fat LTO, one codegen unit, stripped, panics unwind) and prints the sizes (targets/README.md):
#
#   targets/build.sh x86_64-linux       # graft, libgraft.so, libgraft.a for this x86_64 host
#   targets/build.sh aarch64-linux      # the same for aarch64 Linux (Jetson), cross-linked
#   targets/build.sh android-aarch64    # libgraft.a; with ANDROID_NDK_HOME also libgraft.so, graft
#   targets/build.sh apple-silicon      # on a Mac: graft, libgraft.dylib, libgraft.a
#   targets/build.sh TARGET --cpu-only  # without the wgpu (Vulkan/Metal) backend
#
# Needs: x86_64-linux nothing more; aarch64-linux `rustup target add aarch64-unknown-linux-gnu`
# and `apt-get install gcc-aarch64-linux-gnu`; android-aarch64 `rustup target add
# aarch64-linux-android` (and the Android NDK r25+ in ANDROID_NDK_HOME to link); apple-silicon
# a Mac with Xcode's command line tools (elsewhere it type-checks the build instead:
# `cargo check`, nothing to measure).
# Output: target/<rust target>/dist/, and a size table in target/dist-sizes/<target>[-cpu].md.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

name="${1:-}"
[ -n "$name" ] || { usage >&2; exit 2; }
shift
features=()
suffix=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-only) features=(--no-default-features); suffix="-cpu"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# What to build: the CLI and the C library (cdylib + staticlib), unless said otherwise below.
link=1
case "$name" in
  x86_64-linux) triple=x86_64-unknown-linux-gnu ;;
  aarch64-linux)
    triple=aarch64-unknown-linux-gnu
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    command -v aarch64-linux-gnu-gcc >/dev/null ||
      { echo "error: aarch64-linux-gnu-gcc not found (apt-get install gcc-aarch64-linux-gnu)" >&2; exit 1; }
    ;;
  android-aarch64)
    triple=aarch64-linux-android
    # The NDK's clang wrapper for API level 24 (Android 7.0) is the linker; without an NDK only
    # the static library is built (it needs no linker; the app's own NDK build links it).
    ndk_clang="${ANDROID_NDK_HOME:-/nonexistent}/toolchains/llvm/prebuilt/linux-x86_64/bin/aarch64-linux-android24-clang"
    if [ -x "$ndk_clang" ]; then
      export CARGO_TARGET_AARCH64_LINUX_ANDROID_LINKER="$ndk_clang"
    else
      echo "note: no Android NDK (ANDROID_NDK_HOME=${ANDROID_NDK_HOME:-unset}): building libgraft.a only" >&2
      link=0
    fi
    ;;
  apple-silicon)
    triple=aarch64-apple-darwin
    if [ "$(uname -s)" != Darwin ]; then
      echo "note: not on macOS: type-checking the build (cargo check), nothing is linked or measured" >&2
      exec cargo check --profile dist --target "$triple" -p graft-cli -p graft-ffi "${features[@]}"
    fi
    ;;
  *) echo "error: unknown target '$name' (x86_64-linux, aarch64-linux, android-aarch64, apple-silicon)" >&2; exit 2 ;;
esac
rustup target list --installed 2>/dev/null | grep -qx "$triple" ||
  { echo "error: the Rust standard library for $triple is missing (rustup target add $triple)" >&2; exit 1; }

start=$SECONDS
if [ "$link" = 1 ]; then
  cargo build --profile dist --target "$triple" -p graft-cli -p graft-ffi "${features[@]}"
fi
# The static library on its own (after the build above, which also writes one): built beside
# the cdylib and the rlib, libgraft.a is 108 MB on x86_64 (by its size, not LTO'd) and a C
# program linked with it 22.7 MB; alone it is 29.5 MB and the same program 13.5 MB. It needs
# no linker for the target, so it is also what an Android build without the NDK makes.
cargo rustc --profile dist --target "$triple" -p graft-ffi --lib --crate-type staticlib "${features[@]}"
secs=$((SECONDS - start))

dir="target/$triple/dist"
case "$triple" in
  *-apple-darwin) files=(graft libgraft.dylib libgraft.a) ;;
  *) files=(graft libgraft.so libgraft.a) ;;
esac
mkdir -p target/dist-sizes
table="target/dist-sizes/$name$suffix.md"
{
  echo "| file ($triple, dist profile${suffix:+, CPU only}) | bytes | MB | gzip -9 MB |"
  echo "|---|---|---|---|"
  for f in "${files[@]}"; do
    [ -f "$dir/$f" ] || continue
    b=$(stat -c %s "$dir/$f" 2>/dev/null || stat -f %z "$dir/$f")
    g=$(gzip -9 -c "$dir/$f" | wc -c)
    awk -v f="$f" -v b="$b" -v g="$g" 'BEGIN { printf "| %s | %d | %.1f | %.1f |\n", f, b, b / 1e6, g / 1e6 }'
  done
} >"$table"
cat "$table"
echo "(built in $secs s; table in $table)"
