#!/usr/bin/env python3
"""Writes a 24-hour single-lead EDF+ Holter (the one ../shared/tools/peer/make_holter.py
writes as WFDB: the MLII lead of all 48 MIT-BIH records joined, 31,200,000 samples at
360 Hz), with pyedflib, for the EDF speed and memory check in the README. Every sample
is the WFDB record's value (digital values written as they are).

usage: holter-edf.py WFDB_RECORD OUT.edf      (needs numpy, wfdb, pyedflib)"""
import datetime
import sys

import numpy as np
import pyedflib
import wfdb

rec = wfdb.rdrecord(sys.argv[1], physical=False)
fs = int(rec.fs)
baseline, gain = rec.baseline[0], rec.adc_gain[0]
d = rec.d_signal[:, 0].astype(np.int32) - baseline
d = d[: len(d) // fs * fs]
w = pyedflib.EdfWriter(sys.argv[2], 1, file_type=pyedflib.FILETYPE_EDFPLUS)
w.setStartdatetime(datetime.datetime(2000, 1, 1, 8, 0, 0))
w.setSignalHeaders([{
    "label": "ECG MLII", "dimension": "mV", "sample_frequency": fs,
    "physical_min": -1024 / gain, "physical_max": 1023 / gain,
    "digital_min": -1024, "digital_max": 1023, "transducer": "", "prefilter": "",
}])
w.writeSamples([d], digital=True)
w.writeAnnotation(0, -1, "Recording starts")
w.close()
print(f"{sys.argv[2]}: {len(d)} samples, {len(d) / fs / 3600:.2f} h")
