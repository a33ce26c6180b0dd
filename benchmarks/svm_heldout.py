"""The linear-SVM check on binary problems the defaults were not tuned on.

Each problem is drawn from its seed alone (``make_problem``): ``make_classification`` with
n in [50, 2000] and d in [2, 100] (both log-uniform), a minority-class fraction in [0.1, 0.5],
a class separation in [0.5, 2.5], up to 5 % flipped labels, every feature multiplied by its own
scale ``10^u`` with ``u`` uniform on ``[-s, s]`` and ``s`` uniform on ``[0, 2]`` (so the scales
span up to 1e-2..1e2), features shifted by up to 3 of their scales, and C drawn from
{0.1, 1, 10}. Seeds 0-19 are the tuning set; seeds 1000-1039 the held-out set, fixed before any
tuning and run once at the end.

A problem counts as solved when synthesis reaches ``synth_stationarity_residual < 0.01`` with
every DSV classified as its label (``synth_feasibility == 1``). libsvm is capped at
``--svc-max-iter`` iterations (badly scaled problems can take tens of millions); the SVC KKT
diagnostics report where it stopped short.

Usage (about 12 minutes on 2 shared cores; the ablation 8 more)::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/svm_heldout.py

``--ablation`` then adds, to the same results file, the tuning set under two other settings:
``previous`` (the DSVs start around the origin, steps ``0.003 / C^2`` for both blocks: the
default before the derived steps) and ``origin_derived`` (around the origin, derived steps)::

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/svm_heldout.py --ablation
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_json  # noqa: E402

from kktexplain.svm import sanity_check  # noqa: E402

KKT_TOL = 1e-4  # sanity_check's svc_kkt_tol
TUNING_SEEDS = tuple(range(20))
HELDOUT_SEEDS = tuple(range(1000, 1040))


def make_problem(seed: int) -> dict:
    """One well-posed binary problem and its C, drawn from ``seed`` alone.

    Parameters
    ----------
    seed : int

    Returns
    -------
    dict
        ``X`` (n, d), ``y`` (n,) in {0, 1}, ``C`` and the drawn settings.
    """
    rng = np.random.default_rng(seed)
    n = int(round(np.exp(rng.uniform(np.log(50), np.log(2000)))))
    d = int(round(np.exp(rng.uniform(np.log(2), np.log(100)))))
    minority = float(rng.uniform(0.1, 0.5))
    n_informative = int(rng.integers(1, d + 1)) if d > 1 else 1
    sep = float(rng.uniform(0.5, 2.5))
    flip = float(rng.uniform(0.0, 0.05))
    spread = float(rng.uniform(0.0, 2.0))
    C = float(rng.choice([0.1, 1.0, 10.0]))
    X, y = make_classification(
        n_samples=n,
        n_features=d,
        n_informative=n_informative,
        n_redundant=0,
        n_repeated=0,
        n_clusters_per_class=1,
        weights=[1 - minority],
        class_sep=sep,
        flip_y=flip,
        random_state=int(rng.integers(2**31 - 1)),
    )
    scales = 10.0 ** rng.uniform(-spread, spread, size=d)
    shift = rng.uniform(-3, 3, size=d)
    X = (X + shift) * scales
    return {
        "X": X,
        "y": y,
        "C": C,
        "n": n,
        "d": d,
        "minority_fraction": float(np.mean(y == np.argmin(np.bincount(y)))),
        "class_sep": sep,
        "flip_y": flip,
        "scale_spread_log10": spread,
    }


VARIANTS = {
    "default": lambda C: {},
    "origin_derived": lambda C: {"synth_init": "origin"},
    "previous": lambda C: {"synth_init": "origin", "synth_lr": 0.003 / C**2, "synth_lr_lambda": 0.003 / C**2},
}


def run(seeds, svc_max_iter: int, steps: int, variant: str = "default") -> list[dict]:
    rows = []
    for seed in seeds:
        p = make_problem(seed)
        t0 = time.perf_counter()
        settings = VARIANTS[variant](p["C"])
        r = sanity_check(p["X"], p["y"], C=p["C"], svc_max_iter=svc_max_iter, synth_steps=steps, **settings)
        row = {
            "seed": seed,
            **{k: v for k, v in p.items() if k not in ("X", "y")},
            **{k: v for k, v in r.to_dict().items() if k != "C"},
            "n_synthetic_per_class": len(r.synthesis.inputs) // 2,
            "seconds": time.perf_counter() - t0,
        }
        row["solved"] = bool(row["synth_stationarity_residual"] < 0.01 and row["synth_feasibility"] == 1.0)
        rows.append(row)
        print(
            f"seed {seed:5d} n={p['n']:5d} d={p['d']:3d} C={p['C']:4g} spread={p['scale_spread_log10']:.2f} "
            f"synth={row['synth_stationarity_residual']:.1e} feas={row['synth_feasibility']:.2f} "
            f"F1={row['f1']:.3f} sel={row['stationarity_residual']:.1e} "
            f"svc_kkt={row['svc_kkt_violation']:.1e} unique={row['svc_dual_unique']} "
            f"{row['seconds']:.1f}s",
            flush=True,
        )
    return rows


def _svc_solved(row: dict) -> bool:
    return row["svc_kkt_violation"] <= KKT_TOL and row["svc_converged"]


def summary(rows: list[dict]) -> dict:
    return {
        "problems": len(rows),
        "solved": sum(r["solved"] for r in rows),
        "max_synth_stationarity_residual": max(r["synth_stationarity_residual"] for r in rows),
        "min_synth_feasibility": min(r["synth_feasibility"] for r in rows),
        "max_selection_residual": max(r["stationarity_residual"] for r in rows),
        "min_f1": min(r["f1"] for r in rows),
        "max_svc_kkt_violation": max(r["svc_kkt_violation"] for r in rows),
        "svc_not_converged": sum(not r["svc_converged"] for r in rows),
        "svc_kkt_violated": sum(not _svc_solved(r) for r in rows),
        # uniqueness is only judged where SVC solved its problem
        "svc_dual_not_unique": sum(not r["svc_dual_unique"] and _svc_solved(r) for r in rows),
        "f1_below_1": sum(r["f1"] < 1 for r in rows),
        "f1_below_1_unexplained": sum(r["f1"] < 1 and not r["diagnosis"] for r in rows),
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--set", choices=["tuning", "heldout", "both"], default="both")
    p.add_argument("--svc-max-iter", type=int, default=10_000_000)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--out", default="svm_heldout", help="name under benchmarks/results/")
    p.add_argument("--ablation", action="store_true", help="add the tuning set under other settings")
    args = p.parse_args(argv)
    if args.ablation:
        path = Path(__file__).resolve().parent / "results" / f"{args.out}.json"
        payload = json.loads(path.read_text())
        payload["ablation_command"] = "python " + " ".join(sys.argv)
        payload["ablation"] = {}
        for name in ("tuning", "heldout"):  # summary() may have gained fields since the run
            payload[name]["summary"] = summary(payload[name]["rows"])
        for variant in ("previous", "origin_derived"):
            rows = run(TUNING_SEEDS, args.svc_max_iter, args.steps, variant)
            payload["ablation"][variant] = {"summary": summary(rows), "rows": rows}
            print(variant, payload["ablation"][variant]["summary"], flush=True)
        path.write_text(json.dumps(payload, indent=2))
        return payload
    payload: dict = {"svc_max_iter": args.svc_max_iter, "synth_steps": args.steps}
    for name, seeds in (("tuning", TUNING_SEEDS), ("heldout", HELDOUT_SEEDS)):
        if args.set in (name, "both"):
            rows = run(seeds, args.svc_max_iter, args.steps)
            payload[name] = {"seeds": [seeds[0], seeds[-1]], "summary": summary(rows), "rows": rows}
            print(name, payload[name]["summary"], flush=True)
    write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
