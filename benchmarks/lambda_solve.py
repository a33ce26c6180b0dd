"""Synthesis's multipliers: gradient steps on λ alone, or with an exact λ solve every k steps.

``DeepSupportVectors(lambda_solve_every=k)`` replaces λ by the exact non-negative least-squares
solution of stationarity for the current inputs every ``k`` steps and after the last one. This
script measures what that does to the stationarity cosine of 100 DSVs (10 per class, from
noise, in the default scope), to primal feasibility and to the time of a run, beside the
per-tensor cosine (the default objective before the global cosine) and the global cosine
without the solve, on four models:

* ``fashion_mnist_small``: the demo's model (no normalisation; the free scope is every
  parameter);
* ``digits_near_kkt``: a digits MLP trained full batch with weight decay 1e-3 (near a KKT
  point), held out: nothing was chosen on it;
* ``digits_mlp``: the cached reference digits MLP (mini-batch Adam), held out;
* ``fashion_mnist_convnet``: the reference ConvNet-3 (instance norm: the free scope is the last
  norm layer and the classifier), held out; trained on first use (minutes).

Each run is also measured with λ refitted exactly on its final inputs (selection with the DSVs
as candidates): the best multipliers those inputs have. One thread. Writes
``benchmarks/results/lambda_solve.json``::

    OMP_NUM_THREADS=1 python benchmarks/lambda_solve.py --seeds 0 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import write_json

from kktexplain import DeepSupportVectors
from kktexplain.attr._protocol import _digits_split, fit_full_batch
from kktexplain.datasets import load_fashion_mnist
from kktexplain.models import load_reference_model

VARIANTS = {
    "per_tensor": {"objective": "per_tensor"},
    "global": {},
    "global_solve10": {"lambda_solve_every": 10},
    "global_solve10_noaug": {"lambda_solve_every": 10, "augmentation": None},
    "global_solve1_noaug": {"lambda_solve_every": 1, "augmentation": None},
    "global_solve10_noaug_lr0.01": {"lambda_solve_every": 10, "augmentation": None, "lr": 0.01},
}


def models(names):
    for name in names:
        if name == "digits_near_kkt":
            torch.manual_seed(0)
            xtr, ytr, _, _ = _digits_split()
            yield name, fit_full_batch(xtr, ytr, steps=2000), None
        elif name == "digits_mlp":
            yield name, load_reference_model("digits_mlp", progress=False)[0], None
        else:
            rng = load_fashion_mnist(train=True).input_range
            yield name, load_reference_model(name, progress=False)[0], rng


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument(
        "--models",
        nargs="+",
        default=["fashion_mnist_small", "digits_near_kkt", "digits_mlp", "fashion_mnist_convnet"],
    )
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--name", default="lambda_solve")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, model, input_range in models(args.models):
        for variant in args.variants:
            cos, refit, feas, secs = [], [], [], []
            for seed in args.seeds:
                start = time.perf_counter()
                res = DeepSupportVectors(
                    n_per_class=10,
                    init="noise",
                    seed=seed,
                    input_range=input_range,
                    progress=False,
                    **VARIANTS[variant],
                ).attribute(model)
                secs.append(time.perf_counter() - start)
                cos.append(res.kkt.stationarity["cosine"])
                feas.append(res.kkt.feasibility_rate)
                names = res.settings["resolved_param_names"]
                sel = DeepSupportVectors(param_names=names, progress=False).attribute(
                    model, candidates=res.inputs, labels=res.labels
                )
                refit.append(sel.kkt.stationarity["cosine"])
            row = {
                "model": name,
                "variant": variant,
                "settings": {k: v for k, v in VARIANTS[variant].items()},
                "scope_size": len(names) if names is not None else None,
                "cosine": cos,
                "cosine_median": statistics.median(cos),
                "refit_cosine": refit,
                "refit_cosine_median": statistics.median(refit),
                "feasibility": feas,
                "seconds": secs,
                "seconds_median": statistics.median(secs),
            }
            print(row, flush=True)
            rows.append(row)
            write_json(args.name, {"seeds": args.seeds, "threads": 1, "rows": rows})


if __name__ == "__main__":
    main()
