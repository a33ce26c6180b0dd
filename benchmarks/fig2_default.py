"""The paper's Fig 2a and 2b with our current defaults, on the two Fashion-MNIST models.

Fig 2a: the candidates' mean predictive entropy along synthesis (the paper has it rising toward
the decision boundary). Fig 2b: per-class Σλ of the synthesised DSVs against the teacher's
per-class test accuracy (the paper: Pearson +0.783 on CIFAR-10). For each model and synthesis
seed, ``DeepSupportVectors(n_per_class=10, init="noise", seed=s, input_range=...)`` with every
other setting at its default (so the scope is ``param_names="free"``): the shipped
``fashion_mnist_small`` (no normalisation: every parameter) and the reference ConvNet (instance
norm: the free scope is its last norm layer and the classifier). The correlation uses the
accuracy of the model the DSVs were synthesised for. Writes ``benchmarks/results/fig2_default.json``::

    python benchmarks/fig2_default.py --seeds 0 1 2

``--recipe audit`` uses the stationarity-audit recipe instead (docs/defaults.md: the last
layer, λ solved exactly after every step, 600 steps along a half cosine) and writes
``fig2_audit.json``::

    python benchmarks/fig2_default.py --seeds 0 1 2 --recipe audit
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import lambda_vs_class_accuracy, write_json

from kktexplain import DeepSupportVectors
from kktexplain.attr._baselines import last_linear
from kktexplain.datasets import load_fashion_mnist
from kktexplain.models import load_reference_model

MODELS = ("fashion_mnist_small", "fashion_mnist_convnet")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--recipe", choices=("default", "audit"), default="default")
    args = p.parse_args()
    test = load_fashion_mnist(train=False)
    rows = []
    for name in args.models:
        teacher, _ = load_reference_model(name, progress=False)
        for seed in args.seeds:
            start = time.perf_counter()
            recipe = {}
            if args.recipe == "audit":
                layer = last_linear(teacher)[0]
                recipe = {
                    "param_names": [f"{layer}.weight", f"{layer}.bias"],
                    "lambda_solve_every": 1,
                    "lr_schedule": "cosine",
                    "steps": 600,
                }
            dsv = DeepSupportVectors(
                n_per_class=10,
                init="noise",
                seed=seed,
                input_range=test.input_range,
                progress=False,
                **recipe,
            )
            res = dsv.attribute(teacher)
            entropy = res.history["entropy"]
            lam = res.lambdas * res.active
            row = {
                "model": name,
                "seed": seed,
                "seconds": time.perf_counter() - start,
                "scope": res.settings.get("resolved_param_names"),
                "entropy_start": entropy[0],
                "entropy_end": entropy[-1],
                "entropy_path": entropy[:: max(1, len(entropy) // 12)],
                "entropy_rises": entropy[-1] > entropy[0],
                "feasibility": res.kkt.feasibility_rate,
                "cosine": res.kkt.stationarity["cosine"],
                **lambda_vs_class_accuracy(lam, res.hard_labels, teacher, test),
            }
            print(
                {
                    k: v
                    for k, v in row.items()
                    if k not in ("entropy_path", "lambda_sum", "test_accuracy", "scope")
                },
                flush=True,
            )
            rows.append(row)
    summary = {
        name: {
            "pearson_median": statistics.median(r["pearson"] for r in rows if r["model"] == name),
            "rises": sum(r["entropy_rises"] for r in rows if r["model"] == name),
            "runs": sum(r["model"] == name for r in rows),
        }
        for name in args.models
    }
    write_json(f"fig2_{args.recipe}", {"recipe": args.recipe, "rows": rows, "summary": summary})
    print(summary)


if __name__ == "__main__":
    main()
