#!/usr/bin/env bash
# Regenerates ffi/include/graft.h with cbindgen (from ffi/src and ffi/cbindgen.toml).
# ffi/tests/header.rs fails while the committed header is out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
GRAFT_UPDATE_HEADER=1 cargo test -p graft-ffi --test header -- committed_header_matches_cbindgen
echo "ffi/include/graft.h updated"
