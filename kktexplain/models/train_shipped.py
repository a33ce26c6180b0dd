"""Train a shipped reference model from its recipe and write its weights and card.

The recipe is ``REFERENCE_MODELS[name]`` (architecture, training settings, seed); this script
only runs it, measures the model and writes ``<name>.safetensors`` and ``<name>.json`` into
``kktexplain/models/weights/`` (or ``--out``)::

    python -m kktexplain.models.train_shipped --name fashion_mnist_small

The card records the recipe, the seed, the test accuracy on all 10,000 test images and on the
first 1,000 (the slice the test suite re-measures), the training time, the torch version and
the number of threads. On the CPU, the same torch version and thread count reproduce the
weights bit for bit; other versions give a model of about the same accuracy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ._cache import _SHAPES, REFERENCE_MODELS, _build, _data
from ._shipped import SHIPPED_DIR, save_shipped_model
from ._train import accuracy, train_classifier

__all__ = ["SHIPPED", "SLICE", "train_shipped", "main"]

SHIPPED = ("fashion_mnist_small",)
"""Reference models whose weights ship in the package."""

SLICE = 1000
"""The card also records the accuracy on the first ``SLICE`` test images."""


def train_shipped(name: str, out: str | Path | None = None, progress: bool = True) -> dict:
    """Train ``REFERENCE_MODELS[name]`` from its seed, measure it, write weights and card.

    Parameters
    ----------
    name : str
        One of :data:`SHIPPED`.
    out : str or Path, optional
        Folder for the two files; default the package's ``models/weights``.
    progress : bool, default=True

    Returns
    -------
    dict
        The card written.
    """
    if name not in SHIPPED:
        raise ValueError(f"name must be one of {SHIPPED}, got {name!r}")
    spec = REFERENCE_MODELS[name]
    train, test = _data(spec.dataset, True), _data(spec.dataset, False)
    model = _build(spec, *_SHAPES[spec.dataset])
    start = time.perf_counter()
    train_classifier(model, train, seed=spec.seed, progress=progress, device="cpu", **spec.train_kwargs)
    seconds = time.perf_counter() - start
    n = min(SLICE, len(test))
    card = {
        "name": name,
        "spec": json.loads(json.dumps(asdict(spec))),
        "seed": spec.seed,
        "test_accuracy": accuracy(model, test),
        "test_slice": [0, n],
        "test_accuracy_slice": accuracy(model, (test.inputs[:n], test.labels[:n])),
        "train_accuracy": accuracy(model, train),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
        "torch": torch.__version__,
        "num_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "command": f"python -m kktexplain.models.train_shipped --name {name}",
    }
    save_shipped_model(model, card, name, out)
    return json.loads((Path(out or SHIPPED_DIR) / f"{name}.json").read_text())


def main(argv: list[str] | None = None) -> int:
    """``python -m kktexplain.models.train_shipped [--name NAME] [--out DIR]``.

    Parameters
    ----------
    argv : list of str, optional

    Returns
    -------
    int
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m kktexplain.models.train_shipped", description=__doc__)
    parser.add_argument("--name", default=SHIPPED[0], choices=SHIPPED, help="which shipped model")
    parser.add_argument("--out", default=None, help="output folder (default: the package's models/weights)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2, as recorded)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    card = train_shipped(args.name, args.out, progress=not args.no_progress)
    print(json.dumps(card, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
