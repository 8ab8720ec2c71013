#!/usr/bin/env bash
# Builds the container image, runs it, probes it and stops it: the check behind
# the README's `docker compose up`. Works with podman (these machines: run
# ../shared/tools/container/setup.sh once) or docker (ENGINE=docker).
#
#   scripts/container-check.sh            # CPU image
#   ENGINE=docker scripts/container-check.sh
#
# Prints the build time, image size, time to ready, the /predict summary and the
# time a graceful stop took; exits non-zero on any failed step.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-podman}
TAG=${TAG:-ecg-serve:check}
NAME=${NAME:-ecg-serve-check}
PORT=${PORT:-18080}
build_flags=()
if [ "$ENGINE" = podman ]; then
  export CONTAINERS_CONF=${CONTAINERS_CONF:-/var/tmp/ecg-container/containers.conf}
  build_flags=(--pull=never --network=host
    -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
fi
say() { printf '[container-check] %s\n' "$*"; }

if command -v hadolint >/dev/null; then hadolint Dockerfile && say "hadolint: clean"; fi
if command -v docker-compose >/dev/null; then
  docker-compose -f docker-compose.yml config -q && say "docker-compose config: valid"
fi

start=$(date +%s)
"$ENGINE" build "${build_flags[@]}" \
  --build-arg ECG_GIT_SHA="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
  -t "$TAG" .
say "build: $(( $(date +%s) - start )) s"
size=$("$ENGINE" image inspect --format '{{.Size}}' "$TAG")
say "image size: $(( size / 1000000 )) MB"
[ "$size" -lt 200000000 ] || { say "image is over 200 MB"; exit 1; }

"$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
trap '"$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true' EXIT
"$ENGINE" run -d --name "$NAME" -p "127.0.0.1:$PORT:8080" "$TAG" >/dev/null
t0=$(date +%s.%N)
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null || {
  "$ENGINE" logs "$NAME" | tail -20; say "never became ready"; exit 1; }
say "ready after $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s"
"$ENGINE" exec "$NAME" /usr/local/bin/ecg-serve --probe-ready && say "HEALTHCHECK command: ready"
uid=$("$ENGINE" exec "$NAME" id -u)
[ "$uid" != 0 ] || { say "runs as root"; exit 1; }
say "runs as uid $uid"

answer=$(curl -fsS -F dat=@tests/fixtures/mitdb/100.dat -F hea=@tests/fixtures/mitdb/100.hea \
  "http://127.0.0.1:$PORT/predict")
echo "$answer" | python3 -c '
import json, sys
a = json.load(sys.stdin)
s, m = a["summary"], a["model"]
assert s["segments"] == len(a["segments"]) > 0, "no segments"
assert len(a["beats"]) > 0, "no beats"
b = a.get("beat_model") or {}
assert b and all("label" in x for x in a["beats"]), "beats not labelled by a beat model"
print("[container-check] /predict: model %s %s + %s %s, %d segments, %d beats %s, label %s, %.0f ms"
      % (m["name"], m["version"], b.get("name"), b.get("version"), s["segments"], len(a["beats"]),
         s.get("beat_counts"), s["label"], a["timing_ms"]["total"]))'

t0=$(date +%s.%N)
"$ENGINE" stop -t 10 "$NAME" >/dev/null
took=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}")
code=$("$ENGINE" inspect --format '{{.State.ExitCode}}' "$NAME")
say "stop: ${took} s, exit code $code"
[ "$code" = 0 ] || { "$ENGINE" logs "$NAME" | tail -5; say "did not exit cleanly on SIGTERM"; exit 1; }
say "all checks passed"
