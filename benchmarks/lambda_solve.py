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

``--scope last`` measures stationarity on the last ``nn.Linear`` layer's weight and bias only
(``param_names``), the scope in which the model is linear in its parameters and the
explanations' expansion is the logit itself.

Each run's cosine is also recomputed in float64 (a double copy of the model, the same inputs
and λ), and each run is measured with λ refitted exactly on its final inputs (selection with the DSVs
as candidates): the best multipliers those inputs have. One thread. Writes
``benchmarks/results/lambda_solve.json``::

    OMP_NUM_THREADS=1 python benchmarks/lambda_solve.py --seeds 0 1
    OMP_NUM_THREADS=1 python benchmarks/lambda_solve.py --seeds 0 1 --scope last --name lambda_solve_last
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from _common import write_json

from kktexplain import DeepSupportVectors
from kktexplain._scope import recorded_param_names
from kktexplain.attr._baselines import last_linear
from kktexplain.attr._protocol import _digits_split, fit_full_batch
from kktexplain.datasets import load_fashion_mnist
from kktexplain.kkt import FunctionalModel, kkt_residuals
from kktexplain.models import load_reference_model

VARIANTS = {
    "per_tensor": {"objective": "per_tensor"},
    "global": {},
    "global_solve10": {"lambda_solve_every": 10},
    "global_solve10_noaug": {"lambda_solve_every": 10, "augmentation": None},
    "global_solve1": {"lambda_solve_every": 1},
    "global_solve1_cosine": {"lambda_solve_every": 1, "lr_schedule": "cosine"},
    "global_solve1_cosine_600": {"lambda_solve_every": 1, "lr_schedule": "cosine", "steps": 600},
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
    p.add_argument(
        "--scope",
        choices=("default", "last"),
        default="default",
        help="stationarity's parameters: the default scope, or the last Linear layer's weight and bias",
    )
    p.add_argument("--per-class", type=int, nargs="+", default=[10], help="DSVs per class (N / classes)")
    p.add_argument("--name", default="lambda_solve")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, model, input_range in models(args.models):
        model64 = copy.deepcopy(model).double()
        scope = {}
        if args.scope == "last":
            layer = last_linear(model)[0]
            scope = {"param_names": [f"{layer}.weight", f"{layer}.bias"]}
        for variant, per_class in [(v, k) for k in args.per_class for v in args.variants]:
            cos, cos64, refit, feas, secs = [], [], [], [], []
            for seed in args.seeds:
                start = time.perf_counter()
                res = DeepSupportVectors(
                    n_per_class=per_class,
                    init="noise",
                    seed=seed,
                    input_range=input_range,
                    progress=False,
                    **{**scope, **VARIANTS[variant]},
                ).attribute(model)
                secs.append(time.perf_counter() - start)
                cos.append(res.kkt.stationarity["cosine"])
                feas.append(res.kkt.feasibility_rate)
                names = recorded_param_names(res.settings)
                # the same inputs and λ in float64: the cosine without float32's rounding
                r64 = kkt_residuals(
                    FunctionalModel(model64, names), res.inputs.double(), res.labels, res.lambdas.double()
                )
                cos64.append(r64.stationarity["cosine"])
                sel = DeepSupportVectors(param_names=names, progress=False).attribute(
                    model, candidates=res.inputs, labels=res.labels
                )
                refit.append(sel.kkt.stationarity["cosine"])
            row = {
                "model": name,
                "variant": variant,
                "n_per_class": per_class,
                "settings": {k: v for k, v in VARIANTS[variant].items()},
                "scope": args.scope,
                "param_names": names,
                "cosine": cos,
                "cosine_median": statistics.median(cos),
                "cosine_float64": cos64,
                "refit_cosine": refit,
                "refit_cosine_median": statistics.median(refit),
                "feasibility": feas,
                "seconds": secs,
                "seconds_median": statistics.median(secs),
            }
            print(row, flush=True)
            rows.append(row)
            write_json(args.name, {"seeds": args.seeds, "threads": 1, "scope": args.scope, "rows": rows})


if __name__ == "__main__":
    main()
