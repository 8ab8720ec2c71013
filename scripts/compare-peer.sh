#!/usr/bin/env bash
# ecg-serve beside the Python peer (../shared/tools/peer/compare.sh: FastAPI + ONNX Runtime +
# scipy + NeuroKit2, the same contract), on the same models.
#
# usage: scripts/compare-peer.sh [like|shipped] [ecg-serve flags...]
#   like     (default) both run ecg-segment and the 1.0.0 beat network (models/ecg-beat-net),
#            the beat model the peer implements: the same work on both sides.
#   shipped  ecg-serve runs its shipped beat model (ecg-beat 2.3.0, 83 features); the peer
#            still runs ecg-beat-net 1.0.0, since it cannot build 2.3.0's features. Not the
#            same work: it shows what a user of each gets, not the cost of the same models.
# env: passed on to compare.sh (ROUNDS, DURATION, CONCS, HOLTER=1 for the 24-hour record);
#      ORT_DYLIB_PATH (default: scripts/fetch-ort.sh); BIN (default target/release/ecg-serve).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODE=${1:-like}; [ $# -gt 0 ] && shift
PEER=${PEER:-$ROOT/../shared/tools/peer/compare.sh}
BIN=${BIN:-$ROOT/target/release/ecg-serve}
[ -x "$PEER" ] || { echo "compare-peer: $PEER not found (it lives in ../shared)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "compare-peer: build it first: cargo build --release --bin ecg-serve" >&2; exit 2; }
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$("$ROOT/scripts/fetch-ort.sh")}
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
M=$ROOT/models
cp "$M/ecg-segment.json" "$M/ecg-segment.onnx" "$DIR/"
# The peer reads <dir>/ecg-beat.onnx and its card beside it: the 1.0.0 network in both modes.
cp "$M/ecg-beat-net.json" "$DIR/ecg-beat.json"; cp "$M/ecg-beat-net.onnx" "$DIR/ecg-beat.onnx"
cp "$M/ecg-beat-net.onnx" "$DIR/"   # the file its card names, for ecg-serve
FLAGS=()
case "$MODE" in
  like) ;;
  shipped)
    # The shipped card, its `file` pointed at a copy under another name (same bytes, same sha256).
    python3 - "$M/ecg-beat.json" "$DIR/ecg-beat-shipped.json" <<'PY'
import json, sys
card = json.load(open(sys.argv[1])); card["file"] = "ecg-beat-shipped.onnx"
json.dump(card, open(sys.argv[2], "w"), indent=2)
PY
    cp "$M/ecg-beat.onnx" "$DIR/ecg-beat-shipped.onnx"; FLAGS=(--beat-model ecg-beat-shipped) ;;
  *) echo "compare-peer: mode is like or shipped, not $MODE" >&2; exit 2 ;;
esac
echo "compare-peer: $MODE; models in $DIR: $(cd "$DIR" && ls | tr '\n' ' ')" >&2
"$PEER" "$BIN" "$DIR" "${FLAGS[@]}" "$@"
