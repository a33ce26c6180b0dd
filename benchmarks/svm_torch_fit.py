"""``sanity_check(weights="torch")`` on features in other units: F1 of the support set, the
torch fit's distance from SVC's weights, SVC's own KKT violation, and the primal objective
``1/2 ||w||^2 + C sum hinge`` of both fits (the lower is nearer the optimum), per problem.

A separable 5-feature problem (``make_classification``, 120 samples, ``class_sep=2``) as is,
scaled by 10^3 and 10^-3 and offset by 10^3, and breast cancer's raw features (569 samples,
scales spanning 10^-3 to 10^3). Selection only (``n_synthetic=0``); about a minute::

    .venv/bin/python benchmarks/svm_torch_fit.py --out benchmarks/results/svm_torch_fit.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, make_classification

from kktexplain.svm import sanity_check


def problems() -> dict:
    x, y = make_classification(
        n_samples=120, n_features=5, n_informative=3, n_redundant=0, class_sep=2.0, random_state=0
    )
    xb, yb = load_breast_cancer(return_X_y=True)
    return {
        "as is": (x, y),
        "x 1e3": (x * 1e3, y),
        "x 1e-3": (x * 1e-3, y),
        "offset 1e3": (x + 1e3, y),
        "breast cancer raw": (xb, yb),
    }


def primal(w: np.ndarray, b: float, x: np.ndarray, y01: np.ndarray, C: float) -> float:
    """``1/2 ||w||^2 + C sum_i max(0, 1 - y_i (w.x_i + b))``, ``y`` in {-1, 1}."""
    margins = (2 * y01 - 1) * (x @ w + b)
    return float(0.5 * w @ w + C * np.maximum(0.0, 1.0 - margins).sum())


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="benchmarks/results/svm_torch_fit.json")
    args = p.parse_args(argv)
    rows = []
    for name, (x, y) in problems().items():
        start = time.perf_counter()
        r = sanity_check(x, y, C=1.0, weights="torch", n_synthetic=0, progress=False)
        rows.append(
            {
                "problem": name,
                "f1": r.f1,
                "weights_gap": getattr(r, "weights_gap", float("nan")),  # absent before the field
                "svc_kkt_violation": r.svc_kkt_violation,
                "stationarity_residual": r.stationarity_residual,
                "primal_torch": primal(
                    r.model.linear.weight.detach().double().numpy()[0],
                    float(r.model.linear.bias.detach()[0]),
                    np.asarray(x, dtype=np.float64),
                    y,
                    1.0,
                ),
                "primal_svc": primal(
                    r.svc.coef_[0], float(r.svc.intercept_[0]), np.asarray(x, dtype=np.float64), y, 1.0
                ),
                "seconds": time.perf_counter() - start,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
