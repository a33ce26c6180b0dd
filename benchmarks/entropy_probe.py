"""Does a bounded λ make the candidates' entropy rise? (docs/defaults.md, "The entropy falls")

Synthesis from real Fashion-MNIST training images (``per_class(k, seed=0)``; ``k = 10`` are the
sweeps' images), on the reference ConvNet, with ``distance="cosine_norm"``
(direction *and* magnitude of −Σλ∇θL must match θ*), unbounded λ and λ bounded by a small
``lambda_max``. Records the mean predictive entropy of the candidates at every step, the final
primal feasibility, the stationarity cosine and the λ statistics. Writes
``benchmarks/results/entropy_probe.json``::

    python benchmarks/entropy_probe.py --steps 40 --per-class 3
"""

from __future__ import annotations

import argparse
import json
import time

from _common import write_json

from kktexplain import DeepSupportVectors
from kktexplain.datasets import load_fashion_mnist
from kktexplain.kkt import KKTObjective
from kktexplain.models import load_reference_model

CONFIGS = {
    "cosnorm_unbounded": {"lambda_max": None},
    "cosnorm_C005": {"lambda_max": 0.05},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--per-class", type=int, default=10, help="real images per class as the start")
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--name", default="entropy_probe")
    args = p.parse_args()
    train = load_fashion_mnist()
    teacher, card = load_reference_model(progress=False)
    x_real, y_real, _ = train.per_class(args.per_class, seed=0)
    rows = []
    for name in args.configs:
        start = time.perf_counter()
        dsv = DeepSupportVectors(
            n_per_class=args.per_class,
            init="real",
            steps=args.steps,
            objective=KKTObjective.from_preset("per_tensor", distance="cosine_norm"),  # as recorded
            seed=0,
            input_range=train.input_range,
            progress=False,
            **{"param_names": None, **CONFIGS[name]},  # the recorded runs' scope: every parameter
        ).attribute(teacher, init_data=(x_real, y_real))
        h, lam = dsv.history, dsv.lambdas
        ent = h["entropy"]
        low = min(range(len(ent)), key=ent.__getitem__)
        row = {
            "name": name,
            **CONFIGS[name],
            "steps": args.steps,
            "per_class": args.per_class,
            "entropy": ent,
            "entropy_start": ent[0],
            "entropy_min": ent[low],
            "entropy_min_step": low,
            "entropy_end": ent[-1],
            "feasibility_aug_start": h["feasibility_aug"][0],
            "feasibility_aug_end": h["feasibility_aug"][-1],
            "final": dsv.kkt.summary(),
            "feasibility": dsv.kkt.feasibility_rate,
            "stationarity_cosine": dsv.kkt.stationarity["cosine"],
            "g_norm_ratio": dsv.kkt.stationarity["g_norm_ratio"],
            "lambda_mean": lam.mean().item(),
            "lambda_max_value": lam.max().item(),
            "seconds": time.perf_counter() - start,
        }
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k not in ("entropy", "final")}), flush=True)
    write_json(
        args.name,
        {
            "teacher": card,
            "setup": f"{args.per_class} real training images per class (per_class({args.per_class}, seed=0)) "
            "as the start, "
            "default preset with distance='cosine_norm', seed=0 for the synthesis; one run per setting",
            "entropy": "mean predictive entropy of the candidates, history['entropy'] (one value per step, "
            "before the step's update)",
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
