#!/usr/bin/env bash
# Runs the whole test suite: fetches ONNX Runtime (once) and runs every test,
# the trainer's included. The full-database checks run when ../shared/data/mitdb
# (or MITDB_DIR) is present and say so when it is not. The viewer's browser check
# (tests/viewer.rs) runs when node, npm and Chromium are installed: the first run
# fetches its one npm package (playwright-core, pinned by package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/fetch-ort.sh)}"
export ORT_DYLIB_PATH
if command -v npm >/dev/null && [ ! -d tests/browser/node_modules/playwright-core ]; then
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >&2
fi
cargo test --locked --features train "$@"
