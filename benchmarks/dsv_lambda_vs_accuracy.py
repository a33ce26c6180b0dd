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
from _common import write_json
from scipy.stats import pearsonr, spearmanr

from kktexplain.datasets import load_fashion_mnist
from kktexplain.models import load_reference_model, predict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("npz", help="dsv.npz written by `kktexplain demo`")
    args = p.parse_args()
    d = np.load(args.npz)
    lam = d["lambdas"] * d["active"]
    labels = d["labels"]
    test = load_fashion_mnist(train=False)
    teacher, _ = load_reference_model(progress=False)
    pred = predict(teacher, test.inputs).argmax(-1).numpy()
    truth = test.labels.numpy()
    classes = range(int(labels.max()) + 1)
    acc = np.array([(pred[truth == c] == c).mean() for c in classes])
    lam_sum = np.array([lam[labels == c].sum() for c in classes])
    payload = {
        "source": args.npz,
        "lambda_sum": lam_sum.tolist(),
        "test_accuracy": acc.tolist(),
        "pearson": float(pearsonr(lam_sum, acc)[0]),
        "spearman": float(spearmanr(lam_sum, acc)[0]),
    }
    print(payload)
    write_json("dsv_lambda_vs_accuracy", payload)


if __name__ == "__main__":
    main()
