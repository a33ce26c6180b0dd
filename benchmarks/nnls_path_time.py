"""Selection's solve on a sketch with fewer coordinates than samples: time and residuals.

The per-sample gradients of the shipped ``fashion_mnist_small`` ConvNet (10,330 parameters) on
the first n Fashion-MNIST training images, CountSketched to K = 2,048 (seed 0), solved by
``solve_multipliers`` (the working set at the sketch's tolerance 1/sqrt(K)) and, for comparison,
exactly in the sketch by scipy's Lawson-Hanson (the path problems of at most 2e7 entries took
before). For each: seconds, the residual in the sketch and in the true (unsketched) space.
Quoted in docs/selection.md ("Solver"). One thread.

    python benchmarks/nnls_path_time.py [--n 2000 9700 9800] [--json results/nnls_path_time.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy.optimize import nnls

from kktexplain.datasets import load_fashion_mnist
from kktexplain.kkt import CountSketch, FunctionalModel, collect_gradients, cross_entropy
from kktexplain.kkt._selection import solve_multipliers
from kktexplain.models import load_shipped_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2000, 9700, 9800])
    parser.add_argument("--k", type=int, default=2048)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = load_fashion_mnist()
    n_max = max(args.n)
    x, y = train.inputs[:n_max], train.labels[:n_max]
    model, _ = load_shipped_model("fashion_mnist_small")
    fm = FunctionalModel(model, None)
    target = torch.cat([v.flatten() for v in fm.target.values()]).double()
    exact = collect_gradients(fm, x, y, cross_entropy, 256, None).double()  # (n, 10,330)
    sketch = CountSketch(fm.num_params, args.k, seed=0)
    g, t = sketch(exact.float()).double(), sketch(target.float()[None])[0].double()
    rows = []
    for n in args.n:
        for path in ("solve_multipliers", "lawson_hanson_exact"):
            start = time.perf_counter()
            if path == "solve_multipliers":
                lam = solve_multipliers(g[:n], t, rtol=1 / np.sqrt(args.k))[0].double()
            else:
                lam = torch.from_numpy(nnls(g[:n].T.numpy(), -t.numpy(), maxiter=50 * n)[0])
            seconds = time.perf_counter() - start
            row = {
                "n": n,
                "K": args.k,
                "path": path,
                "seconds": seconds,
                "sketch_residual": float((g[:n].T @ lam + t).norm() / t.norm()),
                "true_residual": float((exact[:n].T @ lam + target).norm() / target.norm()),
                "support": int((lam > 0).sum()),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": 1, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
