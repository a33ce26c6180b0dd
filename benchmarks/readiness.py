"""``kkt_readiness`` on the reference models: how close each is to a KKT point.

Rows: the digits MLP trained full-batch with weight decay (``attr._protocol.fit_full_batch``, the
model of the removal and fidelity evaluations), the digits reference MLP, and the Fashion-MNIST
reference ConvNet on 2,000 training images (200 per class, draw seed 0), each over all
parameters and over the last layer. The argmax agreement of the expansion on the same models is
in ``evaluate_fidelity.json``. Writes ``benchmarks/results/readiness.json``::

    python benchmarks/readiness.py
"""

from __future__ import annotations

import time

import torch
from _common import write_json

from kktexplain import kkt_readiness
from kktexplain.attr._baselines import last_linear
from kktexplain.attr._protocol import _digits_split, fit_full_batch
from kktexplain.datasets import load_fashion_mnist
from kktexplain.models import load_reference_model


def rows_for(name: str, model, x, y) -> list[dict]:
    layer, _ = last_linear(model)
    out = []
    for scope, names in (("all", None), ("last_layer", [f"{layer}.weight", f"{layer}.bias"])):
        start = time.perf_counter()
        r = kkt_readiness(model, (x, y), param_names=names)
        row = {"model": name, "scope": scope, **r.to_dict(), "seconds": time.perf_counter() - start}
        row.pop("per_layer_cosine")
        out.append(row)
        print(name, scope, round(r.cosine, 4), r.verdict, f"{row['seconds']:.1f}s", flush=True)
    return out


def main() -> None:
    torch.manual_seed(0)
    rows = []
    xtr, ytr, _, _ = _digits_split()
    rows += rows_for("digits_mlp_fullbatch_wd", fit_full_batch(xtr, ytr), xtr, ytr)
    ref, _ = load_reference_model("digits_mlp", progress=False)
    rows += rows_for("digits_mlp_reference", ref, xtr, ytr)
    conv, _ = load_reference_model("fashion_mnist_convnet", progress=False)
    x, y, _ = load_fashion_mnist(train=True).per_class(200, seed=0)
    rows += rows_for("fashion_mnist_convnet_reference", conv, x, y)
    write_json(
        "readiness",
        {
            "what": "kkt_readiness: cos(theta*, -sum_i grad L_i) with equal multipliers, on training samples",
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
