#!/usr/bin/env python3
"""Should the segment model's score be stacked with a logistic regression on its
six rhythm features?  score = logit(P_net) + w * z_LR.  Chooses w by 2-fold
record-wise cross-validation over DS1, then reports what that w does with the
network 2.0.0 (models/ecg-segment-net.onnx, which `ecg-train stack` turns into the
served 2.1.0) on its validation records and on DS2.

Protocol (fixed before the fold models were scored):
  * folds A and B below (DS1 split by Abnormal-window count, alternately);
  * fold model k: `ecg-train segment --val-records <fold k>` (trained on the other
    fold, early stopping on fold k); LR: the six features standardised, C = 1,
    class-balanced, fitted on the other fold's windows; both scored on fold k;
  * w from {0, 0.25, 0.5, 1, 2, 4}: the largest mean of the two folds' ROC AUC,
    ties to the smaller w;
  * the network's LR is fitted on its own 18 training records.
Inputs are CSVs from `examples/window_scores.rs`. Needs pandas and scikit-learn.

  scripts/stack_cv.py NET.csv FOLD_A.csv FOLD_B.csv
"""
import sys

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

FOLD_A = "108 109 114 115 116 201 208 209 215 220 223".split()
FOLD_B = "101 106 112 118 119 122 124 203 205 207 230".split()
VALIDATION = "101 124 209 223".split()  # the network's early-stopping records
FEATURES = ["f0", "f1", "f2", "f3", "f4", "f5"]
WEIGHTS = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]


def logit(p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def recall_at_95(y, s):
    neg = np.sort(s[y == 0])
    threshold = neg[int(np.ceil(0.95 * len(neg))) - 1]
    return (s[y == 1] > threshold).mean()


def lr_scores(train, *others):
    scaler = StandardScaler().fit(train[FEATURES])
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000)
    lr.fit(scaler.transform(train[FEATURES]), train.label)
    return [lr.decision_function(scaler.transform(o[FEATURES])) for o in others]


def load(path):
    return pd.read_csv(path, dtype={"record": str})


def main():
    shipped, fold_a, fold_b = (load(p) for p in sys.argv[1:4])
    per_w = {w: [] for w in WEIGHTS}
    for name, held, trained, scores in [("A", FOLD_A, FOLD_B, fold_a), ("B", FOLD_B, FOLD_A, fold_b)]:
        ds1 = scores[scores.set == "ds1"]
        out, train = ds1[ds1.record.isin(held)], ds1[ds1.record.isin(trained)]
        (z,) = lr_scores(train, out)
        y = out.label.values
        print(f"fold {name} held out: {len(y)} windows, {y.sum()} Abnormal; "
              f"network AUC {roc_auc_score(y, out.prob):.4f}, LR AUC {roc_auc_score(y, z):.4f}")
        for w in WEIGHTS:
            s = logit(out.prob.values) + w * z
            per_w[w].append((roc_auc_score(y, s), recall_at_95(y, s)))
    print("w     mean fold AUC  mean recall@95%spec")
    for w in WEIGHTS:
        auc, rec = np.mean(per_w[w], axis=0)
        print(f"{w:<5} {auc:.4f}         {100 * rec:.1f} %")
    best = max(WEIGHTS, key=lambda w: (round(float(np.mean([a for a, _ in per_w[w]])), 6), -w))
    print(f"chosen w = {best}")
    # Not part of the choice: each fold network (and its LR) on DS2.
    for name, trained, scores in [("A", FOLD_B, fold_a), ("B", FOLD_A, fold_b)]:
        ds1 = scores[scores.set == "ds1"]
        test = scores[scores.set == "ds2"]
        (z,) = lr_scores(ds1[ds1.record.isin(trained)], test)
        y = test.label.values
        for w in sorted({0.0, best}):
            s = logit(test.prob.values) + w * z
            print(f"fold {name} network, DS2, w {w}: AUC {roc_auc_score(y, s):.4f}, "
                  f"recall at 95 % specificity {100 * recall_at_95(y, s):.1f} %")
    ds1 = shipped[shipped.set == "ds1"]
    train = ds1[~ds1.record.isin(VALIDATION)]
    val, test = ds1[ds1.record.isin(VALIDATION)], shipped[shipped.set == "ds2"]
    z_val, z_test = lr_scores(train, val, test)
    for label, df, z in [("validation", val, z_val), ("DS2", test, z_test)]:
        y = df.label.values
        for w in sorted({0.0, best}):
            s = logit(df.prob.values) + w * z
            print(f"network 2.0.0, {label}, w {w}: AUC {roc_auc_score(y, s):.4f}, "
                  f"recall at 95 % specificity {100 * recall_at_95(y, s):.1f} %")


if __name__ == "__main__":
    main()
