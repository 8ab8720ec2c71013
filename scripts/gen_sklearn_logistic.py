#!/usr/bin/env python3
"""Writes the scikit-learn reference that `ecg-train stack`'s logistic regression
is tested against: a seeded, imbalanced data set of 6 features (one constant,
like a feature that never varies in a record), scaled by StandardScaler and fitted
by LogisticRegression(C=1, class_weight="balanced") to a tight tolerance.

Run once (scikit-learn 1.x, numpy 2.x):
    python3 scripts/gen_sklearn_logistic.py tests/fixtures/sklearn/logistic.json
The output is committed; the tests never need Python.
"""
import json
import sys

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

rng = np.random.default_rng(11)
n = 600
x = rng.normal(size=(n, 6)) * [0.1, 0.15, 0.17, 0.12, 0.17, 0.27] + [1.0, 0.09, 0.83, 0.11, 0.13, 1.2]
x[:, 3] = 0.25  # constant
eta = -3.0 + 8.0 * (x[:, 1] - 0.09) - 5.0 * (x[:, 2] - 0.83) + rng.normal(size=n)
y = (eta > 0).astype(int)
x = x.astype(np.float32)  # the features are f32 in Rust
scaler = StandardScaler().fit(x.astype(np.float64))
lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=100000, tol=1e-12)
lr.fit(scaler.transform(x.astype(np.float64)), y)
out = {
    "generator": f"scripts/gen_sklearn_logistic.py, scikit-learn {sklearn.__version__}",
    "rows": x.astype(float).ravel().tolist(),
    "width": 6,
    "labels": y.tolist(),
    "c": 1.0,
    "mean": scaler.mean_.tolist(),
    "scale": scaler.scale_.tolist(),
    "coef": lr.coef_[0].tolist(),
    "intercept": float(lr.intercept_[0]),
    "decision_first_10": lr.decision_function(scaler.transform(x[:10].astype(np.float64))).tolist(),
}
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
print(f"{y.sum()} of {n} positive; coef {lr.coef_[0]}, intercept {lr.intercept_[0]}")
