"""Bounded selection (``lambda_max=C``) against unbounded selection, timed side by side.

Both solve the multipliers of the same sketched per-sample gradients (what
``DeepSupportVectors(projection_dim=2048).attribute(model, candidates=x, labels=y)`` solves, with
and without ``lambda_max``): ``solve_multipliers(G, theta*)`` (unbounded, Lawson-Hanson NNLS)
and ``solve_multipliers(G, theta*, upper=C)`` (the working-set BVLS), interleaved, median of
``--repeats``. ``C`` is the median of the unbounded solution's non-zero λ, so the bound binds on
half of the unbounded support. The gradients are collected once per case and not timed (they
are the same for both solves). With ``--legacy`` the previous bounded solver, scipy's BVLS on
all samples at once (``lsq_linear(method="bvls")``), is run once per case as well, and its
residual is the reference the working set must reach.

Cases: the reference digits MLP on all 1,797 scikit-learn digits, and the reference
Fashion-MNIST ConvNet on the first 2,000 training images.

Usage::

    OMP_NUM_THREADS=1 python bounded_selection.py --threads 1 --repeats 5 --legacy

(from ``benchmarks/``; one thread, because the machine it ran on was shared and BLAS threads
fighting over two busy cores slowed both solvers several-fold).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from functools import partial

import numpy as np
import torch
from _common import write_json
from scipy.optimize import lsq_linear

from kktexplain.datasets import load_digits, load_fashion_mnist
from kktexplain.kkt import CountSketch, FunctionalModel, KKTObjective, collect_gradients, solve_multipliers
from kktexplain.models import load_reference_model

CASES = {
    "digits_mlp": (lambda: load_digits(), 1797),
    "fashion_mnist_convnet": (lambda: load_fashion_mnist(train=True), 2000),
}


def timed(fn):
    """``fn()``, its wall seconds and its CPU seconds (this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def kkt_violation(a: np.ndarray, b: np.ndarray, x: np.ndarray, upper: float | None) -> float:
    """The largest violation of the box's optimality conditions, relative to ``||a_j|| ||r||``."""
    r = a @ x - b
    g = (a.T @ r) / np.maximum(np.linalg.norm(a, axis=0) * np.linalg.norm(r), 1e-300)
    hi = np.inf if upper is None else upper
    lo, top = x <= 0, x >= hi
    free = ~lo & ~top
    parts = [np.maximum(-g[lo], 0), np.maximum(g[top], 0), np.abs(g[free])]
    return float(max((p.max() for p in parts if p.size), default=0.0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--projection-dim", type=int, default=2048)
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--legacy", action="store_true", help="also run BVLS on all samples once per case")
    p.add_argument("--threads", type=int, default=None, help="torch threads (BLAS: OMP_NUM_THREADS)")
    args = p.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rows = []
    for name in args.cases:
        load, n = CASES[name]
        data = load()
        model, card = load_reference_model(name, progress=False)
        fmodel = FunctionalModel(model)
        sketch = CountSketch(fmodel.num_params, args.projection_dim, seed=0)
        x, y = data.inputs[:n], data.labels[:n]
        grads, grad_wall, _ = timed(
            partial(collect_gradients, fmodel, x, y, KKTObjective().loss_fn(), 256, sketch)
        )
        target = sketch(torch.cat([v.flatten() for v in fmodel.target.values()])[None])[0]
        a, b = grads.double().numpy().T, -target.double().numpy()
        free_lam, free_info = solve_multipliers(grads, target)
        upper = float(np.median(free_lam[free_lam > 0].numpy()))
        times = {"unbounded": [], "bounded": []}
        cpu = {"unbounded": [], "bounded": []}
        for _ in range(args.repeats):
            for kind, bound in (("unbounded", None), ("bounded", upper)):
                (lam, info), wall, sec = timed(partial(solve_multipliers, grads, target, upper=bound))
                times[kind].append(wall)
                cpu[kind].append(sec)
                if kind == "bounded":
                    bounded_lam, bounded_info = lam, info
                print(name, kind, f"{wall:.2f} s wall, {sec:.2f} s CPU", flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        lam_b = bounded_lam.double().numpy()
        row = {
            "case": name,
            "n": n,
            "num_params": fmodel.num_params,
            "projection_dim": args.projection_dim,
            "teacher_test_accuracy": card.get("test_accuracy"),
            "gradient_seconds": grad_wall,
            "upper": upper,
            "repeats": args.repeats,
            "unbounded_seconds": times["unbounded"],
            "bounded_seconds": times["bounded"],
            "unbounded_cpu_seconds": cpu["unbounded"],
            "bounded_cpu_seconds": cpu["bounded"],
            "unbounded_median_seconds": med["unbounded"],
            "bounded_median_seconds": med["bounded"],
            "ratio": med["bounded"] / med["unbounded"],
            "ratio_cpu": med_cpu["bounded"] / med_cpu["unbounded"],
            "unbounded_residual": free_info["residual"],
            "unbounded_support": int((free_lam > 0).sum()),
            "bounded_residual": bounded_info["residual"],
            "bounded_solver": {k: v for k, v in bounded_info.items() if k != "residual"},
            "bounded_at_upper": int((lam_b >= upper).sum()),
            "bounded_free": int(((lam_b > 0) & (lam_b < upper)).sum()),
            "bounded_kkt_violation": kkt_violation(a, b, lam_b, upper),
        }
        if args.legacy:
            ref, wall, sec = timed(partial(lsq_linear, a, b, bounds=(0.0, upper), method="bvls", tol=1e-10))
            row["legacy_bvls"] = {
                "seconds": wall,
                "cpu_seconds": sec,
                "residual": float(np.linalg.norm(ref.fun) / np.linalg.norm(b)),
                "iterations": int(ref.nit),
                "status": int(ref.status),
                "kkt_violation": kkt_violation(a, b, np.clip(ref.x, 0.0, upper), upper),
            }
            print(name, "legacy BVLS", row["legacy_bvls"], flush=True)
        rows.append(row)
        print(name, {k: row[k] for k in ("ratio", "ratio_cpu", "bounded_residual", "bounded_kkt_violation")})
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    write_json("bounded_selection", {"environment": env, "rows": rows})


if __name__ == "__main__":
    main()
