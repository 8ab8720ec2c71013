#!/usr/bin/env python3
"""Every MIT-BIH answer before and after a change, compared.

  scripts/answers.py dump URL DIR [DB]   posts each record of DB (.hea + .dat + .atr,
                                         include=signal,beat_attention) to URL/predict and
                                         writes DIR/<record>.json.gz without timing_ms
  scripts/answers.py compare A B         strings, integers and keys equal, numbers within
                                         1e-6; exits 1 on any difference

The refactor of issue 16 was checked with it: dump from the old binary, dump from the
new one, compare (48 answers, 0 differences). Standard library only.
"""
import gzip
import json
import os
import sys
import urllib.request
import uuid

TOLERANCE = 1e-6


def dump(url, out, db):
    os.makedirs(out, exist_ok=True)
    names = sorted({f[:-4] for f in os.listdir(db) if f.endswith(".hea")})
    for n in names:
        b = uuid.uuid4().hex
        body = b""
        for part in ["hea", "dat", "atr"]:
            body += (f'--{b}\r\nContent-Disposition: form-data; name="{part}"; '
                     f'filename="{n}.{part}"\r\n\r\n').encode()
            with open(f"{db}/{n}.{part}", "rb") as f:
                body += f.read() + b"\r\n"
        body += f"--{b}--\r\n".encode()
        req = urllib.request.Request(f"{url}/predict?include=signal,beat_attention", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={b}"})
        answer = json.load(urllib.request.urlopen(req, timeout=600))
        answer.pop("timing_ms")
        with gzip.open(f"{out}/{n}.json.gz", "wt") as f:
            json.dump(answer, f)
        print(n, answer["summary"]["label"], answer["summary"]["beats"], flush=True)


def compare(a, b):
    worst, bad = [0.0, ""], []

    def walk(x, y, path):
        if isinstance(x, dict) and isinstance(y, dict):
            if set(x) != set(y):
                bad.append(f"{path}: keys {sorted(set(x) ^ set(y))}")
                return
            for k in x:
                walk(x[k], y[k], f"{path}.{k}")
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                bad.append(f"{path}: {len(x)} vs {len(y)} items")
                return
            for i, (p, q) in enumerate(zip(x, y)):
                walk(p, q, f"{path}[{i}]")
        elif isinstance(x, float) or isinstance(y, float):
            d = abs(x - y)
            if d > worst[0]:
                worst[:] = [d, path]
            if not d <= TOLERANCE:
                bad.append(f"{path}: {x} vs {y}")
        elif x != y:
            bad.append(f"{path}: {x!r} vs {y!r}")

    files = sorted(os.listdir(a))
    for f in files:
        with gzip.open(f"{a}/{f}") as fa, gzip.open(f"{b}/{f}") as fb:
            walk(json.load(fa), json.load(fb), f)
    for line in bad[:20]:
        print(line)
    print(f"{len(files)} answers compared, {len(bad)} differences over {TOLERANCE}, "
          f"largest number difference {worst[0]:.3g} {worst[1]}")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "dump":
        dump(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else "../shared/data/mitdb")
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
