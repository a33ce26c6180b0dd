"""How far stationarity holds for real images: ``cos(θ*, −Σ∇θL)`` with λ = 1 on real training images.

The reference Fashion-MNIST ConvNet (``load_reference_model()``), ``n`` real training images
(``--per-class`` per class, drawn by ``per_class(k, seed)``), every λ = 1. Reports the global
stationarity cosine against θ* and against the training displacement θ* − θ_0
(``reference_init()``), the per-layer cosines, and the per-layer cosine of θ* with θ_0 itself. Writes
``benchmarks/results/real_stationarity.json``::

    python benchmarks/real_stationarity.py --per-class 200 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import write_json

from kktexplain.datasets import load_fashion_mnist
from kktexplain.kkt import FunctionalModel, kkt_residuals
from kktexplain.models import load_reference_model, reference_init


def measure(teacher, x, y, reference=None) -> dict:
    fmodel = FunctionalModel(teacher, reference=reference)
    res = kkt_residuals(fmodel, x, y, torch.ones(len(x)), chunk_size=250)
    layers = res.per_layer_cosine
    return {
        "cosine": res.stationarity["cosine"],
        "g_norm_ratio": res.stationarity["g_norm_ratio"],
        "per_layer_cosine": layers,
        "per_layer_min": min(layers.values()),
        "per_layer_max": max(layers.values()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the draw of real images")
    p.add_argument("--name", default="real_stationarity")
    args = p.parse_args()
    torch.manual_seed(0)
    train = load_fashion_mnist()
    teacher, card = load_reference_model(progress=False)
    teacher.eval()
    init = reference_init()
    named_init = dict(init.named_parameters())
    theta_vs_init = {
        k: torch.nn.functional.cosine_similarity(v.detach().flatten(), named_init[k].flatten(), dim=0).item()
        for k, v in teacher.named_parameters()
    }
    print("cos(theta*, theta_0) per layer:", min(theta_vs_init.values()), max(theta_vs_init.values()))
    rows = []
    for seed in args.seeds:
        start = time.perf_counter()
        x, y, _ = train.per_class(args.per_class, seed=seed)
        row = {
            "draw_seed": seed,
            "n": len(x),
            "target_theta": measure(teacher, x, y),
            "target_displacement": measure(teacher, x, y, reference=init),
        }
        row["seconds"] = time.perf_counter() - start
        rows.append(row)
        print(
            seed,
            round(row["target_theta"]["cosine"], 4),
            round(row["target_displacement"]["cosine"], 4),
            round(row["seconds"], 1),
            flush=True,
        )
    write_json(
        args.name,
        {
            "teacher": card,
            "what": "stationarity cosine cos(theta*, -sum grad L) with every lambda = 1 on real training "
            "images; target_displacement measures against theta* - theta_0 (reference_init())",
            "varied": "draw_seed: the draw of the real images (train.per_class(per_class, seed))",
            "theta_vs_init_per_layer_cosine": theta_vs_init,
            "theta_vs_init_min": min(theta_vs_init.values()),
            "theta_vs_init_max": max(theta_vs_init.values()),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
