#!/usr/bin/env bash
# Builds libgraft (release) and installs the C API under PREFIX:
#   PREFIX/include/graft.h, PREFIX/lib/libgraft.so, PREFIX/lib/libgraft.a,
#   PREFIX/lib/pkgconfig/graft.pc
#
#   scripts/ffi-install.sh /usr/local
#   PKG_CONFIG_PATH=/usr/local/lib/pkgconfig cc app.c $(pkg-config --cflags --libs graft)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:?usage: scripts/ffi-install.sh PREFIX}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
cargo build --release -p graft-ffi
target=${CARGO_TARGET_DIR:-target}/release
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
install -d "$prefix/include" "$prefix/lib/pkgconfig"
install -m 644 ffi/include/graft.h "$prefix/include/graft.h"
install -m 755 "$target/libgraft.so" "$prefix/lib/libgraft.so"
install -m 644 "$target/libgraft.a" "$prefix/lib/libgraft.a"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" ffi/graft.pc.in > "$prefix/lib/pkgconfig/graft.pc"
echo "installed libgraft $version into $prefix"
