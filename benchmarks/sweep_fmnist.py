"""Screen DeepKKT settings on the Fashion-MNIST distillation task (one student seed each).

Each config is a JSON object: ``{"name": ..., "init": "real"|"noise", "objective": preset,
"override": {objective fields}, "explainer": {DeepSupportVectors settings}, "reference": bool}``.

Usage::

    python benchmarks/sweep_fmnist.py configs.json --name sweep1 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _common import write_json
from distill_fmnist import student_accuracy

from kktexplain import DeepSupportVectors
from kktexplain.datasets import load_fashion_mnist
from kktexplain.kkt import Augmentation, KKTObjective
from kktexplain.models import load_reference_model, reference_init


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs")
    p.add_argument("--name", default="sweep")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=300)
    args = p.parse_args()
    train, test = load_fashion_mnist(), load_fashion_mnist(train=False)
    teacher, card = load_reference_model(progress=False)
    x_real, y_real, _ = train.per_class(10, seed=0)
    rows = []
    for cfg in json.load(open(args.configs)):
        # "per_tensor" unless a config says otherwise: the default objective of the recorded runs
        obj = KKTObjective.from_preset(cfg.get("objective", "per_tensor"), **cfg.get("override", {}))
        ex = dict(cfg.get("explainer", {}))
        if "augmentation" in ex and isinstance(ex["augmentation"], dict):
            ex["augmentation"] = Augmentation(**ex["augmentation"])
        start = time.perf_counter()
        # param_names=None unless a config says otherwise: the scope the recorded runs used (every
        # parameter; the default is now "free")
        dsv = DeepSupportVectors(
            n_per_class=10,
            init=cfg.get("init", "real"),
            objective=obj,
            seed=0,
            input_range=train.input_range,
            progress=False,
            **{"param_names": None, **ex},
        ).attribute(
            teacher, init_data=(x_real, y_real), reference=reference_init() if cfg.get("reference") else None
        )
        h = dsv.history
        accs = [student_accuracy(dsv.inputs, dsv.labels, test, s, args.epochs) for s in args.seeds]
        row = {
            "config": cfg,
            "seconds": time.perf_counter() - start,
            **dsv.kkt.summary(),
            "entropy_start": h["entropy"][0],
            "entropy_end": h["entropy"][-1],
            "feasibility_aug_end": h.get("feasibility_aug", [None])[-1],
            "moved_l2": (dsv.inputs - x_real[dsv.indices]).flatten(1).norm(dim=1).mean().item(),
            "accuracies": accs,
            "mean": statistics.mean(accs),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_json(args.name, {"teacher": card, "rows": rows})


if __name__ == "__main__":
    main()
