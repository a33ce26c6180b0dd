"""Does a wider scope make equal-multiplier self-influence a better mislabel detector?

The noisy Fashion-MNIST ConvNet of ``kktexplain evaluate`` (10,000 images, 10% of labels flipped,
``--seed`` picks the flips; trained here, or read from ``--cache``). Rankings: the plain loss and
``SupportVectorInfluence.self_influence`` of an equal-multiplier selection
(``multipliers="equal"``) in three scopes: the last layer (the evaluation's default), ``"free"``
(selection's default) and every parameter. Equal multipliers make self-influence ``c ||grad L_j||^2``
in that scope, TracIn's score.

Usage: python benchmarks/mislabel_scope.py [--seed 0] [--cache DIR]
       [--out benchmarks/results/mislabel_scope.json]
"""

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from kktexplain import DeepSupportVectors
from kktexplain.attr import SupportVectorInfluence
from kktexplain.attr._evaluate import _rank_metrics
from kktexplain.attr._protocol import _train_convnet, noisy_fashion_mnist
from kktexplain.models import REFERENCE_MODELS, ConvNet


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=None, help="folder to keep the trained noisy ConvNet in")
    parser.add_argument("--out", default="benchmarks/results/mislabel_scope.json")
    args = parser.parse_args()
    x, noisy, flipped, _ = noisy_fashion_mnist(10_000, 0.1, args.seed)
    cached = Path(args.cache) / f"noisy_seed{args.seed}.pt" if args.cache else None
    if cached is not None and cached.is_file():
        model = ConvNet((1, 28, 28), 10, **REFERENCE_MODELS["fashion_mnist_convnet"].arch_kwargs)
        model.load_state_dict(torch.load(cached, weights_only=True))
    else:
        model, _ = _train_convnet(x, noisy, False)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), cached)
    model.eval()
    out = {
        "command": "python benchmarks/mislabel_scope.py",
        "seed": args.seed,
        "threads": torch.get_num_threads(),
    }
    start = time.perf_counter()
    with torch.no_grad():
        z = torch.cat([model(x[i : i + 512]) for i in range(0, len(x), 512)])
    loss = F.cross_entropy(z, noisy, reduction="none")
    out["loss"] = {**_rank_metrics(loss.double(), flipped), "seconds": time.perf_counter() - start}
    print("loss", out["loss"], flush=True)
    for name, scope in (
        ("last_layer", ["classifier.weight", "classifier.bias"]),
        ("free", "free"),
        ("all", None),
    ):
        start = time.perf_counter()
        sel = DeepSupportVectors(
            param_names=scope, multipliers="equal", chunk_size=256, progress=False
        ).attribute(model, candidates=x, labels=noisy)
        si = SupportVectorInfluence(model, sel, chunk_size=256).self_influence()
        out[name] = {
            **_rank_metrics(si, flipped),
            "seconds": time.perf_counter() - start,
            "stationarity_cosine": sel.kkt.stationarity["cosine"],
        }
        print(name, out[name], flush=True)
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
