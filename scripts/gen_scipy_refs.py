#!/usr/bin/env python3
"""Generates the scipy reference vectors the filter and resampler tests compare against.

Run once (scipy 1.17.1, wfdb 4.3.1, numpy 2.x):
    python3 scripts/gen_scipy_refs.py ../shared/data/mitdb tests/fixtures/scipy
The outputs are committed; the tests never need Python.
"""
import json
import sys

import numpy as np
import scipy
import wfdb
from scipy import signal

db, out = sys.argv[1], sys.argv[2]
rec = wfdb.rdrecord(f"{db}/100", sampto=7200)
x = rec.p_signal[:, 0].astype(np.float64)  # MLII, mV

fs = 360.0
sos = np.vstack([
    signal.butter(4, 0.5, btype="highpass", fs=fs, output="sos"),
    signal.butter(4, 50.0, btype="lowpass", fs=fs, output="sos"),
])
filtered = signal.sosfiltfilt(sos, x)

# The whole record (650,000 samples: long enough for the filter's lane pass),
# every 650th output plus the first and last 100.
full = wfdb.rdrecord(f"{db}/100").p_signal[:, 0].astype(np.float64)
full_filtered = signal.sosfiltfilt(sos, full)
full_idx = sorted(set(range(0, len(full), 650)) | set(range(100)) | set(range(len(full) - 100, len(full))))

rng = np.random.default_rng(7)
noise = rng.standard_normal(1000)
noise_filtered = signal.sosfiltfilt(sos, noise)

resampled = {
    "360_to_250": signal.resample_poly(x, 25, 36).tolist(),
    "360_to_500": signal.resample_poly(x, 25, 18).tolist(),
}
x250 = signal.resample_poly(x, 25, 36)
resampled["250_to_360"] = signal.resample_poly(x250, 36, 25).tolist()

json.dump({
    "generator": f"scipy {scipy.__version__}, wfdb {wfdb.__version__}: scripts/gen_scipy_refs.py",
    "record_100_mlii_mv": x.tolist(),
    "bandpass_sos": sos.tolist(),
    "bandpass_sosfiltfilt": filtered.tolist(),
    "record_100_full_index": full_idx,
    "record_100_full_sosfiltfilt": full_filtered[full_idx].tolist(),
    "noise": noise.tolist(),
    "noise_sosfiltfilt": noise_filtered.tolist(),
    "x250_input": x250.tolist(),
    "resample_poly": resampled,
}, open(f"{out}/reference.json", "w"))
print("wrote", f"{out}/reference.json")
