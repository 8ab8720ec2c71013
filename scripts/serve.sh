#!/usr/bin/env bash
# Runs ecg-serve with the bundled model on 127.0.0.1:8080 (flags pass through,
# e.g. scripts/serve.sh --port 9000). Fetches ONNX Runtime on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/fetch-ort.sh)}"
export ORT_DYLIB_PATH
exec cargo run --locked --release --bin ecg-serve -- "$@"
