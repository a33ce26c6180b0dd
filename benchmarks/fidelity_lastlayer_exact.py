"""Expansion fidelity of the Fashion-MNIST reference ConvNet's last layer without the sketch.

``kktexplain evaluate --parts fidelity`` sketches every ConvNet scope to 2,048 dimensions for
the solve. Here the last layer's 11,530 gradient coordinates are kept exact (working-set NNLS);
same 2,000 training images (draw seed 0) and 1,000 test images. Writes
``benchmarks/results/fidelity_lastlayer_exact.json``::

    python benchmarks/fidelity_lastlayer_exact.py
"""

from __future__ import annotations

import torch
from _common import write_json

from kktexplain.attr._protocol import _fidelity_rows
from kktexplain.datasets import load_fashion_mnist
from kktexplain.models import load_reference_model


def main() -> None:
    conv, card = load_reference_model("fashion_mnist_convnet", progress=False)
    train = load_fashion_mnist(train=True)
    idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:2000]
    test = load_fashion_mnist(train=False).inputs[:1000]
    scopes = {"last_layer_exact": (["classifier.weight", "classifier.bias"], None, None)}
    rows = _fidelity_rows(
        "fashion_mnist_convnet_reference", conv, train.inputs[idx], train.labels[idx], test, scopes
    )
    print(rows, flush=True)
    write_json("fidelity_lastlayer_exact", {"teacher": card, "rows": rows})


if __name__ == "__main__":
    main()
