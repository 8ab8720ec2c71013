#!/usr/bin/env bash
# Load, overload and fault checks against a real ecg-serve on loopback (issue 4's
# speed figures and issue 7's overload/fault checks). Every step stops by itself.
#
#   scripts/load-check.sh                 # all of it (~3 min)
#   DURATION=30 scripts/load-check.sh bench
#
# Steps: bench (c=1, c=4: requests/s, p50/p99, share outside ONNX Runtime),
# overload (2x and 10x what the queue admits, 8 distinct recordings: only 200 or
# 429, no transport errors, no crossed answers, peak RSS), kill (SIGKILL during
# requests, restart, ready again), model (corrupt and missing model: not ready
# with a reason, process stays up). Results also go to target/load-check/*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
DURATION=${DURATION:-20}
PORT=${PORT:-18181}
QUEUE=${QUEUE:-4}
out=target/load-check
mkdir -p "$out"
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/fetch-ort.sh)}"
export ORT_DYLIB_PATH
cargo build --locked --release --bin ecg-serve --example loadgen >&2
server=target/release/ecg-serve
loadgen=target/release/examples/loadgen
url="http://127.0.0.1:$PORT"
pid=""
say() { printf '[load-check] %s\n' "$*"; }
stop_server() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
trap stop_server EXIT

start_server() { # extra flags...
  "$server" --port "$PORT" --queue-size "$QUEUE" "$@" >"$out/server.log" 2>&1 &
  pid=$!
}
wait_ready() {
  for _ in $(seq 1 200); do
    curl -fsS "$url/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  say "not ready: $(curl -sS "$url/health/ready" || true)"; return 1
}
peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status"; }

if [ "$what" = all ] || [ "$what" = bench ]; then
  start_server; wait_ready
  "$loadgen" --url "$url" --concurrency 1 --duration-s 3 >/dev/null # warm
  for c in 1 4; do
    "$loadgen" --url "$url" --concurrency "$c" --duration-s "$DURATION" --json "$out/bench-c$c.json"
  done
  say "peak RSS after the bench: $(peak_rss_mb) MB"
  stop_server
fi

if [ "$what" = all ] || [ "$what" = overload ]; then
  start_server; wait_ready
  admits=$((QUEUE + 1))
  for c in $((2 * admits)) $((10 * admits)); do
    "$loadgen" --url "$url" --concurrency "$c" --variants 8 --duration-s "$DURATION" \
      --json "$out/overload-c$c.json"
    python3 - "$out/overload-c$c.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bad = {k: v for k, v in r["statuses"].items() if k not in ("200", "429")}
assert not bad, f"statuses other than 200/429: {bad}"
assert r["mismatched_answers"] == 0, "an answer did not match its request"
assert r["statuses"].get("200", 0) > 0, "nothing succeeded"
PY
  done
  say "peak RSS after overload: $(peak_rss_mb) MB (queue $QUEUE, 1 session)"
  stop_server
fi

if [ "$what" = all ] || [ "$what" = kill ]; then
  start_server; wait_ready
  "$loadgen" --url "$url" --concurrency 2 --duration-s 4 --timeout-s 10 >"$out/kill-load.txt" 2>&1 &
  load=$!
  sleep 2
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  wait "$load" || true
  say "killed mid-request; clients saw: $(grep -o '{.*}' "$out/kill-load.txt" | head -1)"
  t0=$(date +%s.%N)
  start_server; wait_ready
  say "restarted: ready again after $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s"
  code=$(curl -s -o /dev/null -w '%{http_code}' -F hea=@tests/fixtures/mitdb/100.hea \
    -F dat=@tests/fixtures/mitdb/100.dat "$url/predict")
  [ "$code" = 200 ] || { say "after restart /predict answered $code"; exit 1; }
  say "after restart /predict answered 200"
  stop_server
fi

if [ "$what" = all ] || [ "$what" = model ]; then
  dir=$(mktemp -d)
  cp models/ecg-segment.json models/ecg-segment.onnx "$dir/"
  printf 'garbage' | dd of="$dir/ecg-segment.onnx" bs=1 seek=1000 conv=notrunc status=none
  not_ready_with_reason() { # what was done to the model
    start_server --model-dir "$dir"; sleep 2
    body=$(curl -sS "$url/health/ready"); code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health/ready")
    kill -0 "$pid" || { say "the server died on a $1 model"; exit 1; }
    [ "$code" = 503 ] || { say "$1 model: /health/ready answered $code"; exit 1; }
    say "$1 model: still up, /health/ready 503 $body"
    stop_server
  }
  not_ready_with_reason corrupt
  rm "$dir/ecg-segment.onnx"
  not_ready_with_reason missing
  rm -rf "$dir"
fi
say "done"
