"""Class-conditional samples from a *normalised* teacher: the default scope against every parameter.

``generation.py``'s teacher has no normalisation, so the default scope (``param_names="free"``)
is every parameter there. This script asks what the default changes where it does change
something. The teacher is the reference ConvNet-3 (instance norm), whose free scope is its last
norm layer and the classifier. The judge is ``generation.py``'s MLP (784-256-256-10, trained
separately on the real training images; cached). ``sample(teacher, n_per_class=5, seed=s)``
runs with every other setting at its default for seeds 2 and 3, once per scope, side by side.
Reported: the judge's and the teacher's rate of the label, and the wall time. Writes
``benchmarks/results/generation_scope.json``::

    python benchmarks/generation_scope.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_json  # noqa: E402
from generation import REPORT_SEEDS, judged, load_judge  # noqa: E402

from kktexplain.datasets import load_fashion_mnist  # noqa: E402
from kktexplain.generate import sample  # noqa: E402
from kktexplain.models import load_reference_model  # noqa: E402


def main() -> None:
    train, test = load_fashion_mnist(), load_fashion_mnist(train=False)
    judge, judge_acc = load_judge(train, test)
    teacher, card = load_reference_model("fashion_mnist_convnet", progress=False)
    teacher.eval()
    rows = []
    for scope, names in (("free", "free"), ("all", None)):
        for seed in REPORT_SEEDS:
            start = time.perf_counter()
            r = sample(
                teacher,
                n_per_class=5,
                seed=seed,
                input_range=test.input_range,
                progress=False,
                param_names=names,
            )
            seconds = time.perf_counter() - start
            with torch.no_grad():
                teacher_rate = float((teacher(r.inputs).argmax(-1) == r.labels).float().mean())
            judge_rate = float((judged(judge, r.inputs).argmax(-1) == r.labels).float().mean())
            row = {
                "scope": scope,
                "seed": seed,
                "judge_rate": judge_rate,
                "teacher_rate": teacher_rate,
                "seconds": seconds,
            }
            print(row, flush=True)
            rows.append(row)
    summary = {
        s: {
            "judge_rate": sum(r["judge_rate"] for r in rows if r["scope"] == s) / len(REPORT_SEEDS),
            "teacher_rate": sum(r["teacher_rate"] for r in rows if r["scope"] == s) / len(REPORT_SEEDS),
            "seconds": sum(r["seconds"] for r in rows if r["scope"] == s),
        }
        for s in ("free", "all")
    }
    write_json(
        "generation_scope",
        {
            "judge_test_accuracy": judge_acc,
            "teacher_test_accuracy": card["test_accuracy"],
            "rows": rows,
            "summary": summary,
        },
    )
    print(summary)


if __name__ == "__main__":
    main()
