#!/usr/bin/env bash
# Fetches the ONNX Runtime shared library from its PyPI wheel into .ort/<flavour>/
# (git-ignored) and prints the library's path. The one way this project gets ONNX
# Runtime: the README, .ci/run and the Dockerfile all call this script.
#
#   scripts/fetch-ort.sh          # CPU: onnxruntime==1.31.1
#   scripts/fetch-ort.sh gpu      # CUDA: onnxruntime-gpu==1.31.1 (with its CUDA provider)
#
# Needs python3 with pip (only pip's downloader is used; nothing is installed).
set -euo pipefail
VERSION=1.31.1
flavour=${1:-cpu}
case "$flavour" in
  cpu) package=onnxruntime ;;
  gpu) package=onnxruntime-gpu ;;
  *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
dest="${ORT_DIR:-$root/.ort}/$flavour"
lib="$dest/libonnxruntime.so.$VERSION"
if [ -f "$lib" ]; then
  echo "$lib"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --python-version 3.11 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  "$package==$VERSION" -d "$tmp" >&2
mkdir -p "$dest"
python3 - "$tmp" "$dest" <<'PY'
import glob, os, sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
wheel = zipfile.ZipFile(glob.glob(os.path.join(src, "*.whl"))[0])
for name in wheel.namelist():
    base = os.path.basename(name)
    if name.startswith("onnxruntime/capi/lib") and ".so" in base:
        with wheel.open(name) as f, open(os.path.join(dest, base), "wb") as out:
            out.write(f.read())
PY
ln -sf "libonnxruntime.so.$VERSION" "$dest/libonnxruntime.so"
echo "$lib"
