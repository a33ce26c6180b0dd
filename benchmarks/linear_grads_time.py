"""Exact per-sample gradients of a last-layer scope: the factored Linear path against ``vmap``.

For a scope of ``nn.Linear`` layers, ``kkt.iter_per_sample_grads`` forms each row as the outer
product of the layer's output gradient and its input (one batched forward and a backward to the
layer output); ``vmap`` runs the network per sample. Side by side in one process, on the first N
Fashion-MNIST training images and the reference ConvNet's last layer (``classifier``): both paths
and a plain forward pass over the same chunks, medians of three repeats (wall time), and the
largest difference of the two gradient matrices. Writes ``benchmarks/results/linear_grads_time.json``::

    python benchmarks/linear_grads_time.py --n 1024
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import torch
from _common import write_json

from kktexplain.datasets import load_fashion_mnist
from kktexplain.kkt import FunctionalModel, cross_entropy, iter_per_sample_grads
from kktexplain.models import load_reference_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    model, _ = load_reference_model(progress=False)
    model.eval()
    train = load_fashion_mnist()
    x, y = train.inputs[: args.n], train.labels[: args.n]
    fm = FunctionalModel(model, ["classifier.weight", "classifier.bias"])

    def grads() -> torch.Tensor:
        return torch.cat([g for _, g in iter_per_sample_grads(fm, x, y, args.chunk, cross_entropy)])

    times: dict[str, list[float]] = {"factored": [], "vmap": [], "forward": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        fast = grads()
        times["factored"].append(time.perf_counter() - start)
        with mock.patch("kktexplain.kkt._grads.linear_factored", lambda fmodel: None):
            start = time.perf_counter()
            slow = grads()
            times["vmap"].append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            for i in range(0, args.n, args.chunk):
                model(x[i : i + args.chunk])
        times["forward"].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "n": args.n,
        "chunk": args.chunk,
        "n_params": fm.num_params,
        "seconds": times,
        "median_seconds": med,
        "vmap_over_factored": med["vmap"] / med["factored"],
        "max_abs_difference": float((fast - slow).abs().max()),
        "max_abs_gradient": float(slow.abs().max()),
    }
    write_json("linear_grads_time", out)
    print(out)


if __name__ == "__main__":
    main()
