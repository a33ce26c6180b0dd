"""Per-class sum of λ of *synthesised* DSVs against the teacher's per-class test accuracy.

The paper's Fig 2b correlates these on CIFAR-10 (Pearson 0.783). This reads the DSVs that
``kktexplain demo`` writes (``dsv.npz``: noise init, 10 per class, on the shipped
``fashion_mnist_small``) and reports both correlations, with the per-class accuracy of
``--model``. The default is the demo's model. The recorded ``dsv_lambda_vs_accuracy.json`` was
computed with the reference ConvNet's accuracy, the script's model before this option: pass
``--model fashion_mnist_convnet`` to reproduce it. ``fig2_default.py`` measures the same
correlation over three seeds and both models, each with its own accuracy.

Usage::

    make demo && python benchmarks/dsv_lambda_vs_accuracy.py kktexplain-demo/dsv.npz
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import lambda_vs_class_accuracy, write_json

from kktexplain.datasets import load_fashion_mnist
from kktexplain.models import load_reference_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("npz", help="dsv.npz written by `kktexplain demo`")
    p.add_argument(
        "--model",
        default="fashion_mnist_small",
        choices=("fashion_mnist_small", "fashion_mnist_convnet"),
        help="whose per-class test accuracy (default: the demo's model)",
    )
    args = p.parse_args()
    d = np.load(args.npz)
    teacher, _ = load_reference_model(args.model, progress=False)
    test = load_fashion_mnist(train=False)
    lam = d["lambdas"] * d["active"]
    payload = {
        "source": args.npz,
        "model": args.model,
        **lambda_vs_class_accuracy(lam, d["labels"], teacher, test),
    }
    print(payload)
    write_json("dsv_lambda_vs_accuracy", payload)


if __name__ == "__main__":
    main()
