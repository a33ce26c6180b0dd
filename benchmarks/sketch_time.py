"""Per-sample gradients, projected: CountSketch (vmap, materialised) against KroneckerSketch.

Side by side in one process on the first N Fashion-MNIST training images and the reference
ConvNet: one training epoch over them, ``collect_gradients`` with a CountSketch and with a
KroneckerSketch of the same width. Timed with this process's CPU time (run with
``OMP_NUM_THREADS=1``; robust to other jobs on the machine), medians of three repeats. Writes
``benchmarks/results/sketch_time.json``::

    OMP_NUM_THREADS=1 python benchmarks/sketch_time.py --n 1024 --dim 2048
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

from _common import write_json

from kktexplain.datasets import load_fashion_mnist
from kktexplain.kkt import CountSketch, FunctionalModel, KroneckerSketch, collect_gradients, cross_entropy
from kktexplain.models import load_reference_model, train_classifier


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    train = load_fashion_mnist()
    teacher, card = load_reference_model(progress=False)
    x, y = train.inputs[: args.n], train.labels[: args.n]
    fmodel = FunctionalModel(teacher.eval())
    count = CountSketch(fmodel.num_params, args.dim, seed=0)
    kron = KroneckerSketch(fmodel, args.dim, seed=0)
    times: dict[str, list[float]] = {"epoch": [], "count": [], "kronecker": []}
    for _ in range(args.repeats):
        student = copy.deepcopy(teacher)
        start = time.process_time()
        train_classifier(student, (x, y), epochs=1, lr=1e-3, batch_size=256, progress=False)
        times["epoch"].append(time.process_time() - start)
        for name, sketch in (("count", count), ("kronecker", kron)):
            start = time.process_time()
            collect_gradients(fmodel, x, y, cross_entropy, 256, sketch)
            times[name].append(time.process_time() - start)
        print({k: round(v[-1], 2) for k, v in times.items()}, flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "n": args.n,
        "dim": args.dim,
        "kronecker_width": kron.out_features,
        "cpu_seconds": times,
        "median_cpu_seconds": med,
        "count_over_epoch": med["count"] / med["epoch"],
        "kronecker_over_epoch": med["kronecker"] / med["epoch"],
        "teacher": card["name"],
    }
    print(out)
    write_json("sketch_time", out)


if __name__ == "__main__":
    main()
