#!/usr/bin/env bash
# Runs the whole test suite: fetches ONNX Runtime (once) and runs every test,
# the trainer's included. The full-database checks run when ../shared/data/mitdb
# (or MITDB_DIR) is present and say so when it is not.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/fetch-ort.sh)}"
export ORT_DYLIB_PATH
cargo test --locked --features train "$@"
