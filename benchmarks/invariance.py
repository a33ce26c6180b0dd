"""Scale-invariant modules of the reference ConvNet, and what stationarity reaches without them.

``kktexplain.kkt.scale_invariant_modules`` on 32 test images, then the exact stationarity cosine
over all parameters and over the free scope (the parameters of the non-invariant modules), for
selection over 2,000 training images (sketched to 2,048 dimensions) and for 100 DSVs synthesised
from 10 real images per class (defaults, seed 0). The reference ConvNet is trained and cached on
first use.

Usage: python benchmarks/invariance.py [--out benchmarks/results/invariance.json]
"""

import argparse
import json
import time
from pathlib import Path

import torch

from kktexplain import DeepSupportVectors
from kktexplain.datasets import load_fashion_mnist
from kktexplain.kkt import scale_invariant_modules
from kktexplain.models import load_reference_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results/invariance.json")
    args = parser.parse_args()
    train, test = load_fashion_mnist(), load_fashion_mnist(train=False)
    model, _ = load_reference_model(progress=False)
    inv = scale_invariant_modules(model, test.inputs[:32])
    out = {
        "invariant_modules": inv.modules,
        "radial": inv.radial,
        "max_cosine_all_parameters": inv.max_cosine,
        "free_param_names": inv.free_param_names,
        "rows": [],
    }
    print(out, flush=True)
    gen = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(train), generator=gen)[:2000]
    x, y = train.inputs[idx], train.labels[idx]
    for scope, names in (("all", None), ("free", inv.free_param_names)):
        start = time.perf_counter()
        sel = DeepSupportVectors(param_names=names, projection_dim=2048, progress=False).attribute(
            model, candidates=x, labels=y
        )
        row = {
            "what": "selection_2000",
            "scope": scope,
            "cosine": sel.kkt.stationarity["cosine"],
            "n_support": int(sel.support.sum()),
            "seconds": time.perf_counter() - start,
        }
        print(row, flush=True)
        out["rows"].append(row)
        start = time.perf_counter()
        dsv = DeepSupportVectors(
            init="real",
            n_per_class=10,
            param_names=names,
            objective="per_tensor",  # the default objective when this was recorded
            seed=0,
            progress=False,
        ).attribute(model, init_data=train)
        row = {
            "what": "synthesis_100_real_init",
            "scope": scope,
            "cosine": dsv.kkt.stationarity["cosine"],
            "per_layer_cosine": dsv.kkt.per_layer_cosine,
            "seconds": time.perf_counter() - start,
        }
        print(row, flush=True)
        out["rows"].append(row)
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
