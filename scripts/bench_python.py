#!/usr/bin/env python3
"""The Python way of our signal pipeline, timed per stage on record 100 (30 min).

    python3 scripts/bench_python.py tests/fixtures/mitdb/100

Stages: wfdb.rdrecord (decode), scipy sosfiltfilt 0.5-50 Hz (band-pass),
NeuroKit2 Pan-Tompkins (R-peaks), numpy 10 s / 50 % windows z-scored (windows).
Prints the median of 20 runs per stage, in ms, one core (OMP/BLAS threads 1).
"""
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import neurokit2 as nk  # noqa: E402
import numpy as np  # noqa: E402
import wfdb  # noqa: E402
from scipy import signal  # noqa: E402

path = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/mitdb/100"
fs = 360
sos = np.vstack([
    signal.butter(4, 0.5, btype="highpass", fs=fs, output="sos"),
    signal.butter(4, 50.0, btype="lowpass", fs=fs, output="sos"),
])


def decode():
    return wfdb.rdrecord(path).p_signal[:, 0]


def bandpass(x):
    return signal.sosfiltfilt(sos, x)


def rpeaks(x):
    return nk.ecg_findpeaks(nk.ecg_clean(x, sampling_rate=fs, method="pantompkins1985"),
                            sampling_rate=fs, method="pantompkins1985")["ECG_R_Peaks"]


def windows(x):
    starts = list(range(0, len(x) - 3600 + 1, 1800))
    if starts[-1] != len(x) - 3600:
        starts.append(len(x) - 3600)
    w = np.stack([x[s:s + 3600] for s in starts])
    return ((w - w.mean(axis=1, keepdims=True)) / w.std(axis=1, keepdims=True)).astype(np.float32)


def timeit(f, *a, n=20):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f(*a)
        ts.append(time.perf_counter() - t)
    return 1000 * float(np.median(ts))


x = decode()
f = bandpass(x)
stages = {
    "decode": timeit(decode),
    "bandpass": timeit(bandpass, x),
    "rpeaks": timeit(rpeaks, x),
    "windows": timeit(windows, f),
}
def total():
    x = decode()
    return windows(bandpass(x)), rpeaks(x)


stages["total"] = timeit(total)
duration = len(x) / fs
for k, v in stages.items():
    print(f"{k:<9} {v:8.2f} ms  {duration / (v / 1000):>10.0f}x real time")
