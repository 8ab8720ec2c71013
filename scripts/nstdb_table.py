#!/usr/bin/env python3
"""The beat model under noise: MIT-BIH Noise Stress Test records 118 and 119 with
electrode-motion noise at 24 ... -6 dB SNR (nstdb), against the clean records.

Usage: scripts/nstdb_table.py [MODEL] (default models/ecg-beat.onnx). Runs
`ecg-train evaluate` (release build, feature `train`) once per SNR and prints a
Markdown table: detection Se / +P (bxb rule, 150 ms) and beat accuracy, S and V
Se / +P over the matched beats. Needs ../shared/data/{mitdb,nstdb} and ORT_DYLIB_PATH.
Records 118 and 119 are DS1 records (the beat model trained on their clean
versions): this measures noise robustness, not generalisation to new patients.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
model = sys.argv[1] if len(sys.argv) > 1 else "models/ecg-beat.onnx"
shared = os.path.join(root, "..", "shared", "data")
binary = os.path.join(root, "target", "release", "ecg-train")


def evaluate(db, records):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        run = subprocess.run(
            [binary, "evaluate", "--model", model, "--db", db,
             "--records", ",".join(records), "--json", out.name],
            cwd=root, capture_output=True, text=True, check=True)
        report = json.load(open(out.name))
    m = re.search(r"detection Se ([\d.]+) % \+P ([\d.]+) %", run.stdout)
    return report, (float(m.group(1)), float(m.group(2)))


def cls(report, label):
    c = next(c for c in report["classes"] if c["label"] == label)
    return f"{100 * c['recall']:.1f} / {100 * c['precision']:.1f}"


print("| SNR | detection Se / +P | beat accuracy | S Se / +P | V Se / +P |")
print("|---|---|---:|---|---|")
rows = [("clean (mitdb)", os.path.join(shared, "mitdb"), ["118", "119"])]
for snr in ["24", "18", "12", "06", "00", "_6"]:
    label = f"{snr.replace('_', '-').lstrip('0') or '0'} dB"
    rows.append((label, os.path.join(shared, "nstdb"), [f"118e{snr}", f"119e{snr}"]))
for label, db, records in rows:
    report, (se, pp) = evaluate(db, records)
    print(f"| {label} | {se:.2f} / {pp:.2f} | {100 * report['accuracy']:.2f} % "
          f"| {cls(report, 'S')} | {cls(report, 'V')} |", flush=True)
