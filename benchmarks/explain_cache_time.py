"""Time of ``DSVResult.explain`` call after call: the first prepares the support gradients,
the next ones reuse the influence it kept on the result (unless the model, the settings or the
result's tensors changed), and after ``clear_cache()`` it prepares them again.

A 20-256-256-10 MLP trained briefly with weight decay (full-batch Adam, 100 steps), 4,000
support vectors (equal multipliers, every parameter: 73,738 of them), one test input per call,
no feature maps.
About half a minute on one thread::

    OMP_NUM_THREADS=1 python benchmarks/explain_cache_time.py --calls 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kktexplain import DeepSupportVectors
from kktexplain.attr._protocol import fit_full_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5, help="explain calls in a row (default 5)")
    parser.add_argument("--n", type=int, default=4000, help="support vectors (default 4000)")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.n, 20)
    y = x[:, :10].argmax(1)
    model = fit_full_batch(x, y, hidden=(256, 256), steps=100)  # the evaluations' trainer
    sel = DeepSupportVectors(multipliers="equal", param_names=None, progress=False).attribute(
        model, candidates=x, labels=y
    )
    queries = torch.randn(args.calls, 20)
    seconds = []
    for q in queries:
        start = time.perf_counter()
        sel.explain(model, q, maps="none")
        seconds.append(time.perf_counter() - start)
    sel.clear_cache()
    start = time.perf_counter()
    sel.explain(model, queries[0], maps="none")
    cleared = time.perf_counter() - start
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.n} support vectors, {n_params} parameters, threads {torch.get_num_threads()}")
    print(f"first call {seconds[0]:.3f} s; later calls, median of {len(seconds) - 1}: "
          f"{statistics.median(seconds[1:]):.4f} s; after clear_cache(): {cleared:.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
