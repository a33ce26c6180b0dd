"""||w||^2 of the linear SVMs of the sanity suite and the number of DSVs synthesised per class.

``sanity_check`` makes ``max(10, ceil(0.75 ||w||^2 / C))`` DSVs per class; docs/svm.md quotes
both numbers. SVC fits only (seconds)::

    .venv/bin/python benchmarks/svm_norms.py --out benchmarks/results/svm_norms.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from sklearn.svm import SVC

from kktexplain.svm import SANITY_DATASETS


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/svm_norms.json")
    args = p.parse_args(argv)
    rows = []
    for name in SANITY_DATASETS:
        x, y = SANITY_DATASETS[name]()
        x = np.asarray(x, dtype=np.float64)
        if name == "digits_3_vs_8":
            x = x / 16.0  # as in kktexplain.svm.sanity_suite
        y01 = (np.asarray(y) == np.unique(y)[1]).astype(int)
        for C in (0.1, 1.0, 10.0):
            svc = SVC(kernel="linear", C=C, tol=1e-8).fit(x, y01)
            w = svc.coef_[0]
            w2 = float(w @ w)
            rows.append(
                {
                    "dataset": name,
                    "C": C,
                    "w_norm_sq": w2,
                    "n_synthetic_per_class": max(10, math.ceil(0.75 * w2 / C)),
                }
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
