#!/usr/bin/env python3
"""A study tool, not used for any shipped model: writes an int8 copy of the segment
model (ONNX Runtime's static QDQ quantization, per-channel int8 weights, uint8
activations) and a card beside it, so that `ecg-train evaluate --model OUT/ecg-segment.onnx`
scores it and `scripts/compare-peer.sh`-style runs can time it.

Usage: scripts/quantize_segment.py OUT_DIR [OPS] [NODES]
  OPS    op types to quantize (default Conv); NODES: node names (default all of them),
         e.g. conv2_Conv,conv3_Conv.
Calibration: windows from the 22 DS1 records only (every 17th hop), band-passed
0.5-50 Hz (2nd-order Butterworth both ways, close to `signal::filter`'s) and z-scored
as the card says; the rhythm features are zero (no op that reads them is quantized).
Needs onnxruntime, onnx, wfdb, scipy, numpy (the peer's venv has them) and
../shared/data/mitdb.

Session 16 measured (README, issue 18): all three convolutions in int8 moved DS2 by
0.02 points (accuracy 92.03 -> 92.05 %, AUC 0.9773 -> 0.9774) and ran 256 windows in
108.6 ms against 142.4 ms (Python ONNX Runtime 1.31.1, 2 threads, 8 interleaved runs);
conv2 and conv3 alone gained 2 %.
"""
import hashlib
import json
import os
import sys

import numpy as np
import scipy.signal as ss
import wfdb
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DS1 = ("101 106 108 109 112 114 115 116 118 119 122 124 "
       "201 203 205 207 208 209 215 220 223 230").split()


def calibration_windows(card):
    pre = card["preprocessing"]
    fs, n, hop = pre["sample_rate_hz"], pre["window_samples"], pre["hop_samples"]
    b, a = ss.butter(2, pre["band_hz"], btype="band", fs=fs)
    out = []
    for r in DS1:
        rec = wfdb.rdrecord(os.path.join(ROOT, "..", "shared", "data", "mitdb", r),
                            channel_names=[pre["lead"]])
        x = ss.filtfilt(b, a, rec.p_signal[:, 0])
        for s in range(0, len(x) - n, hop * 17):
            w = x[s:s + n]
            out.append(((w - w.mean()) / (w.std() + 1e-9)).astype(np.float32))
    return np.stack(out)[:, None, :]


class Windows(CalibrationDataReader):
    def __init__(self, windows, features):
        self.windows, self.features, self.at = windows, features, 0

    def get_next(self):
        if self.at >= len(self.windows):
            return None
        x = self.windows[self.at:self.at + 32]
        self.at += 32
        return {"signal": x, "features": np.zeros((len(x), self.features), np.float32)}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    ops = sys.argv[2].split(",") if len(sys.argv) > 2 else ["Conv"]
    nodes = sys.argv[3].split(",") if len(sys.argv) > 3 else None
    os.makedirs(out, exist_ok=True)
    src = os.path.join(ROOT, "models", "ecg-segment.onnx")
    text = open(os.path.join(ROOT, "models", "ecg-segment.json")).read()
    card = json.loads(text)
    windows = calibration_windows(card)
    features = len(card["preprocessing"]["window_features"]["names"])
    pre = os.path.join(out, "pre.onnx")
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    model = os.path.join(out, "ecg-segment.onnx")
    quantize_static(pre, model, Windows(windows, features), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=ops,
                    nodes_to_quantize=nodes)
    os.remove(pre)
    sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
    open(os.path.join(out, "ecg-segment.json"), "w").write(text.replace(card["sha256"], sha))
    print(f"{model}: {len(windows)} calibration windows, sha256 {sha}")


if __name__ == "__main__":
    main()
