"""Per-class sum of λ of *synthesised* DSVs against the teacher's per-class test accuracy.

The paper's Fig 2b correlates these on CIFAR-10 (Pearson 0.783). This reads the DSVs that
``kktexplain demo`` writes (``dsv.npz``: noise init, 10 per class, on the reference
Fashion-MNIST ConvNet) and reports both correlations.

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
    args = p.parse_args()
    d = np.load(args.npz)
    teacher, _ = load_reference_model(progress=False)
    test = load_fashion_mnist(train=False)
    lam = d["lambdas"] * d["active"]
    payload = {"source": args.npz, **lambda_vs_class_accuracy(lam, d["labels"], teacher, test)}
    print(payload)
    write_json("dsv_lambda_vs_accuracy", payload)


if __name__ == "__main__":
    main()
