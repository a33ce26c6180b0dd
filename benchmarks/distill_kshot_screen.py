"""How far k-shot DSVs should move from their real images: a screen at 1 image per class.

k-shot DSVs start from real images (``distill(init="real")``, 60 steps of lr 0.01 by default) and
move little. This screen asks whether moving further teaches a fresh student better: more steps,
a larger step, and the generation prior (total variation 0.1, 1,000 steps of lr 0.05). It runs on
screening seeds (10-13 by default), disjoint from the synthesis seeds of the reported tables
(0-2), with one student seed each, the DC protocol and the benchmarks' 2,000 test images; the
teacher is the demo's ``fashion_mnist_small``. One thread. Writes
``benchmarks/results/distill_kshot_screen.json``::

    OMP_NUM_THREADS=1 python benchmarks/distill_kshot_screen.py
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _common import write_json
from distillation import teacher_model

from kktexplain.datasets import load_fashion_mnist
from kktexplain.distill import distill, evaluate, random_real
from kktexplain.kkt import KKTObjective

VARIANTS = {
    "random": None,
    "kshot_default": {},
    "kshot_300": {"steps": 300},
    "kshot_300_lr0.05": {"steps": 300, "lr": 0.05},
    "kshot_1000_lr0.05_tv0.1": {
        "steps": 1000,
        "lr": 0.05,
        "objective": KKTObjective(per_layer=False, tv=0.1),
    },
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[10, 11, 12, 13])
    args = p.parse_args()
    train, test = load_fashion_mnist(train=True), load_fashion_mnist(train=False)
    test = test.subset(random_real(test, 200, seed=12345).info["indices"])  # the tables' 2,000
    teacher = teacher_model("fashion_mnist_small")[0].eval()
    rows = {}
    for name, settings in VARIANTS.items():
        accs = []
        for seed in args.seeds:
            base = random_real(train, 1, seed=seed)
            ds = base
            if settings is not None:
                ds = distill(
                    teacher,
                    1,
                    init="real",
                    real=(base.inputs, base.labels),
                    input_range=train.input_range,
                    seed=seed,
                    progress=False,
                    **settings,
                )
            accs.append(evaluate(ds, test, seeds=(0,)).mean)
            print(name, seed, f"{100 * accs[-1]:.1f}", flush=True)
        rows[name] = {"accuracies": accs, "mean": statistics.mean(accs)}
    base = rows["random"]["accuracies"]
    for row in rows.values():
        row["mean_difference_vs_random"] = statistics.mean(a - b for a, b in zip(row["accuracies"], base))
    write_json(
        "distill_kshot_screen", {"seeds": args.seeds, "threads": torch.get_num_threads(), "rows": rows}
    )


if __name__ == "__main__":
    main()
