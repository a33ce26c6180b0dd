"""Self-influence time against the batch size, ours beside captum's TracInCP, side by side.

The mislabel benchmark's setting (reference ConvNet, 10,000 28x28 inputs, last-layer equal
multipliers for ours, TracInCP over every Linear and Conv2d layer), at the initialisation (the
cost does not depend on the weights), with the same batch size on both sides; each row the
median of ``--repeats`` runs. Issue 8 asks for ours <= 1/5 of TracInCP's at the same batch
size. About seven minutes on 2 cores with --repeats 3::

    OMP_NUM_THREADS=2 python benchmarks/self_influence_batch.py --repeats 3 \
        --json benchmarks/results/self_influence_batch.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from kktexplain import DeepSupportVectors
from kktexplain._model_state import isolated
from kktexplain.attr import SupportVectorInfluence
from kktexplain.attr._baselines import last_linear, tracin
from kktexplain.models import reference_init


def ours(model, x, y, batch: int) -> float:
    name, _ = last_linear(model)
    start = time.perf_counter()
    sel = DeepSupportVectors(
        param_names=[f"{name}.weight", f"{name}.bias"], multipliers="equal", chunk_size=batch, progress=False
    ).attribute(model, candidates=x, labels=y)
    SupportVectorInfluence(model, sel, chunk_size=batch).self_influence()
    return time.perf_counter() - start


def theirs(model, x, y, batch: int) -> float:
    start = time.perf_counter()
    with isolated(model) as twin:
        tracin(twin, x, y, batch).self_influence(show_progress=False)
    return time.perf_counter() - start


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64, 256])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    model = reference_init("fashion_mnist_convnet").eval()
    x, y = torch.rand(args.n, 1, 28, 28), torch.randint(0, 10, (args.n,))
    ours(model, x[:512], y[:512], 256)  # first-call imports and allocations, outside the rows
    rows = []
    for batch in args.batch_sizes:
        a = [ours(model, x, y, batch) for _ in range(args.repeats)]
        b = [theirs(model, x, y, batch) for _ in range(args.repeats)]
        row = {
            "batch_size": batch,
            "ours_seconds": statistics.median(a),
            "tracin_seconds": statistics.median(b),
        }
        row["ratio"] = row["ours_seconds"] / row["tracin_seconds"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = {"n": args.n, "repeats": args.repeats, "threads": torch.get_num_threads(), "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
