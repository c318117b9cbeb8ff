#!/usr/bin/env bash
# The full-disk tests (cli/tests/faults_cli.rs): mounts a 64 MiB tmpfs (as root, or through
# sudo), runs the ignored `small_fs_*` tests with GRAFT_SMALL_FS pointing at it, unmounts.
#   scripts/test-faults.sh
# Needs root or passwordless sudo (mount); CI runs it from scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "test-faults: needs root or sudo to mount a tmpfs" >&2; exit 1; }
  SUDO=sudo
fi
mnt=$(mktemp -d "${TMPDIR:-/tmp}/graft-small-fs.XXXXXX")
cleanup() { $SUDO umount "$mnt" 2>/dev/null || true; rmdir "$mnt" 2>/dev/null || true; }
trap cleanup EXIT
$SUDO mount -t tmpfs -o size=64m,mode=1777 tmpfs "$mnt"
# --workspace, not -p graft-cli: the same feature set as scripts/test.sh's build, so cargo reuses
# it (with -p it resolves other features and rebuilds ~70 units, wgpu and naga among them).
# Through test-parallel.sh: the binary of the workspace test build, not a rebuild for
# `cargo test --test faults_cli` (another unit graph: ~50 crates, ~7 min on CI's 2 cores).
GRAFT_SMALL_FS="$mnt" scripts/test-parallel.sh --only faults_cli -- --ignored small_fs
