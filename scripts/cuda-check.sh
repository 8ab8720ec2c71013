#!/usr/bin/env bash
# The CUDA path, proven on a machine with an NVIDIA GPU: one ecg-serve on CUDA and
# one on the CPU, same binary and ONNX Runtime library, side by side. Each record
# is posted to both; the answers must agree (same summary and labels, every
# probability and attention weight within TOLERANCE), then each is load-tested.
#
#   scripts/cuda-check.sh                          # record 100 from the fixtures
#   scripts/cuda-check.sh ../shared/data/mitdb/232 # more records (path without extension)
#
# Needs CUDA 13 and cuDNN 9 libraries on the library path. ECG_SERVE_BIN and
# LOADGEN_BIN use prebuilt binaries (built with --features cuda) instead of building.
set -euo pipefail
cd "$(dirname "$0")/.."
TOLERANCE=${TOLERANCE:-1e-5}
DURATION=${DURATION:-10}
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(scripts/fetch-ort.sh gpu)}"
export ORT_DYLIB_PATH
if [ -z "${ECG_SERVE_BIN:-}" ]; then
  cargo build --locked --release --features cuda --bin ecg-serve --example loadgen >&2
fi
server=${ECG_SERVE_BIN:-target/release/ecg-serve}
loadgen=${LOADGEN_BIN:-target/release/examples/loadgen}
out=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$out"' EXIT
say() { printf '[cuda-check] %s\n' "$*"; }

"$server" --port 18180 --execution-provider cuda >"$out/cuda.log" 2>&1 &
pids+=($!)
"$server" --port 18181 --execution-provider cpu >"$out/cpu.log" 2>&1 &
pids+=($!)
for port in 18180 18181; do
  for _ in $(seq 1 300); do
    curl -fsS "localhost:$port/health/ready" >"$out/ready-$port.json" 2>/dev/null && break
    sleep 0.2
  done
  if [ -s "$out/ready-$port.json" ]; then
    say "port $port ready: $(cat "$out/ready-$port.json")"
  fi
done
if ! grep -q '"provider":"cuda"' "$out/ready-18180.json"; then
  say "CUDA did not start:"
  tail -3 "$out/cuda.log"
  exit 1
fi

records=("tests/fixtures/mitdb/100" "$@")
for rec in "${records[@]}"; do
  name=$(basename "$rec")
  for port in 18180 18181; do
    for _ in 1 2; do # the first answer warms the session up
      curl -fsS -F "hea=@$rec.hea" -F "dat=@$rec.dat" "localhost:$port/predict" >"$out/$name-$port.json"
    done
  done
  python3 - "$out/$name-18180.json" "$out/$name-18181.json" "$TOLERANCE" <<'PY'
import json, sys
g, c = (json.load(open(p)) for p in sys.argv[1:3])
tol = float(sys.argv[3])
def gap(key, sub):
    return max(abs(x - y) for a, b in zip(g[key], c[key]) for x, y in zip(sub(a), sub(b)))
probs = lambda s: [s["probabilities"][k] for k in sorted(s["probabilities"])]
gaps = {
    "segment probabilities": gap("segments", probs),
    "attention": gap("segments", lambda s: s["attention"]["weights"]),
    "beat probabilities": gap("beats", probs),
}
labels = sum(a["label"] != b["label"] for k in ("segments", "beats") for a, b in zip(g[k], c[k]))
t = lambda d: f"inference {d['timing_ms']['inference']:.0f} ms, beats {d['timing_ms']['beat_inference']:.0f} ms"
print(f"[cuda-check] {g['record']['name']}: {g['summary']['segments']} segments, {g['summary']['abnormal_segments']} Abnormal, "
      f"{g['summary']['beats']} beats; CUDA vs CPU max |diff|: "
      + ", ".join(f"{k} {v:.1e}" for k, v in gaps.items())
      + f"; label differences {labels}; CUDA {t(g)}, CPU {t(c)}")
ok = g["summary"] == c["summary"] and labels == 0 and max(gaps.values()) <= tol
sys.exit(0 if ok else 1)
PY
done

for port in 18180 18181; do
  "$loadgen" --url "http://127.0.0.1:$port" --concurrency 1 --duration-s 2 >/dev/null
  for c in 1 4; do
    say "port $port ($([ $port = 18180 ] && echo cuda || echo cpu)) $("$loadgen" --url "http://127.0.0.1:$port" --concurrency "$c" --duration-s "$DURATION" | head -1)"
  done
done
say "all checks passed"
