#!/usr/bin/env bash
# Runs the whole test suite: fetches ONNX Runtime (once) and runs every test,
# the trainer's included. The full-database checks run when ../shared/data/mitdb
# (or MITDB_DIR) is present and say so when it is not. The viewer's browser check
# (tests/viewer.rs) runs when node, npm and Chromium are installed: the first run
# fetches its one npm package (playwright-core, pinned by package-lock.json).
# The API schema check (tests/api_schema.rs) runs schemathesis from .venv-api/,
# installed here from PyPI on the first run when python3 can make a venv; so is
# tritonclient, kubernetes-validate and mlflow (tests/oip.rs, tests/deploy.rs,
# tests/mlflow.rs; .venv-tools/).
set -euo pipefail
cd "$(dirname "$0")/.."
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/fetch-ort.sh)}"
export ORT_DYLIB_PATH
if command -v npm >/dev/null && [ ! -d tests/browser/node_modules/playwright-core ]; then
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >&2
fi
# schemathesis checks the OpenAPI document against the server (tests/api_schema.rs).
if [ ! -x .venv-api/bin/schemathesis ] && python3 -m venv .venv-api >/dev/null 2>&1; then
  .venv-api/bin/pip install -q 'schemathesis==4.32.5' >&2 || rm -rf .venv-api
fi
# The Open Inference Protocol's real client (tests/oip.rs), the Kubernetes
# manifest validator (tests/deploy.rs) and MLflow (tests/mlflow.rs), in their own venv.
if [ ! -x .venv-tools/bin/mlflow ] && python3 -m venv .venv-tools >/dev/null 2>&1; then
  .venv-tools/bin/pip install -q -r tests/python-tools.txt >&2 || rm -rf .venv-tools
fi
cargo test --locked --features train "$@"
