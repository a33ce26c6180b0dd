"""The full-data ceiling of the distillation student: the same student and protocol as
``distillation.py`` (DC's ConvNet-3, SGD with momentum, weight decay, translation), trained on
all 60,000 Fashion-MNIST training images and scored on the same 2,000 stratified test images.

DC's 300 epochs over 60,000 images do not fit this CPU machine, so ``--epochs`` shortens the
schedule (the learning rate still drops tenfold halfway) and is recorded; the number is then a
lower bound of the student's ceiling under the full protocol.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/distill_ceiling.py --epochs 4 --seeds 0
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import write_json

from kktexplain.datasets import load_fashion_mnist
from kktexplain.distill import StudentProtocol, evaluate, random_real


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--test-limit", type=int, default=2000)
    p.add_argument("--progress", action="store_true")
    p.add_argument("--name", default="distill_ceiling")
    args = p.parse_args()

    train, test = load_fashion_mnist(train=True), load_fashion_mnist(train=False)
    # the same stratified test subset as distillation.py --test-limit
    test = test.subset(random_real(test, args.test_limit // 10, seed=12345).info["indices"])
    protocol = StudentProtocol.from_preset("dc", epochs=args.epochs)
    start = time.perf_counter()
    ev = evaluate(train, test, seeds=args.seeds, protocol=protocol, progress=args.progress)
    seconds = time.perf_counter() - start
    accs = list(ev.accuracies)
    print("full data", args.epochs, "epochs:", [round(a, 4) for a in accs], f"{seconds:.0f} s", flush=True)
    write_json(
        args.name,
        {
            "train_images": len(train),
            "test_images": len(test),
            "protocol": protocol.to_dict(),
            "seeds": args.seeds,
            "accuracies": accs,
            "mean": statistics.mean(accs),
            "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "seconds": seconds,
        },
    )


if __name__ == "__main__":
    main()
