"""The exact multiplier solve on the QR factor: Lawson-Hanson on ``(P, N)`` against ``(N, N)``.

``solve_multipliers`` solves ``min_{λ >= 0} ||A λ - b||`` (``A = G^T``, ``P`` rows, ``N``
columns) with scipy's Lawson-Hanson NNLS when ``P N <= 2e7``. For ``P > 2N`` and ``N >= 200`` it
first reduces ``A = Q R`` (``torch.linalg.qr``) and solves ``min ||R λ - Q^T b||``: the same
minimiser, a problem ``P / N`` times smaller. Side by side in one process: the last-layer
gradients of the demo's model (``fashion_mnist_small``) on the first N training images, medians
of three repeats (wall time), and the relative residual of each solution. One thread. Writes
``benchmarks/results/nnls_qr_time.json``::

    OMP_NUM_THREADS=1 python benchmarks/nnls_qr_time.py --n 300 1000
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from _common import write_json
from scipy.optimize import nnls

from kktexplain.datasets import load_fashion_mnist
from kktexplain.kkt import FunctionalModel, collect_gradients, cross_entropy, solve_multipliers
from kktexplain.models import load_shipped_model


def _residual(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
    return float(np.linalg.norm(a @ x - b) / np.linalg.norm(b))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, nargs="+", default=[300, 1000])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    model, _ = load_shipped_model("fashion_mnist_small")
    model.eval()
    names = [k for k, _ in model.named_parameters()][-2:]
    fm = FunctionalModel(model, names)
    train = load_fashion_mnist()
    rows = []
    for n in args.n:
        grads = collect_gradients(fm, train.inputs[:n], train.labels[:n], cross_entropy, 256, None).double()
        target = torch.cat([v.flatten() for v in fm.target.values()]).double()
        a, b = grads.T.numpy(), -target.numpy()
        times: dict[str, list[float]] = {"nnls_full": [], "nnls_qr": [], "solve_multipliers": []}
        for _ in range(args.repeats):
            start = time.perf_counter()
            full, _ = nnls(a, b, maxiter=50 * n)
            times["nnls_full"].append(time.perf_counter() - start)
            start = time.perf_counter()
            q, r = torch.linalg.qr(grads.T)  # as solve_multipliers does: torch's QR
            reduced, _ = nnls(r.numpy(), (q.T @ torch.from_numpy(b)).numpy(), maxiter=50 * n)
            times["nnls_qr"].append(time.perf_counter() - start)
            start = time.perf_counter()
            lam, info = solve_multipliers(grads, target)
            times["solve_multipliers"].append(time.perf_counter() - start)

        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append(
            {
                "n": n,
                "p": int(a.shape[0]),
                "seconds": times,
                "median_seconds": med,
                "full_over_qr": med["nnls_full"] / med["nnls_qr"],
                "residual_full": _residual(a, b, full),
                "residual_qr": _residual(a, b, reduced),
                "residual_solve_multipliers": info["residual"],
                "max_abs_lambda_difference": float(np.abs(full - reduced).max()),
                "n_nonzero": int((full > 0).sum()),
            }
        )
        print(rows[-1])
    write_json("nnls_qr_time", {"params": names, "rows": rows})


if __name__ == "__main__":
    main()
