"""Removal faithfulness on problems that ``kktexplain evaluate`` does not run (held out).

The protocol of ``kktexplain evaluate --parts removal`` (retrain a full-batch MLP without the
top-k proponents of each of 50 test digits, with the same seed), on other splits of digits
and other MLP widths and step counts. Ours uses the default of
``evaluate_removal``: all parameters, equal multipliers.

Usage: python benchmarks/removal_heldout.py [--out benchmarks/results/removal_heldout.json]
"""

import argparse
import functools
import json
from pathlib import Path

import torch

from kktexplain.attr._evaluate import evaluate_removal
from kktexplain.attr._protocol import fit_full_batch
from kktexplain.datasets import load_digits

PROBLEMS = [  # (dataset, split seed, hidden width, full-batch steps)
    ("digits", 1, 64, 300),
    ("digits", 2, 16, 200),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results/removal_heldout.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, split, hidden, steps in PROBLEMS:
        ds = load_digits()
        gen = torch.Generator().manual_seed(split)
        perm = torch.randperm(len(ds), generator=gen)
        cut = int(0.8 * len(ds))
        xtr, ytr, xte = ds.inputs[perm[:cut]], ds.labels[perm[:cut]], ds.inputs[perm[cut:]]
        res = evaluate_removal(
            functools.partial(fit_full_batch, steps=steps, hidden=(hidden,)), xtr, ytr, xte, k=20, n_test=50
        )
        res.pop("per_test")
        row = {"dataset": name, "split": split, "hidden": hidden, "steps": steps, **res}
        print(json.dumps(row), flush=True)
        rows.append(row)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
