"""Fixed-seed synthesis and selection runs whose outputs are pinned bit for bit.

``python tests/carve_cases.py`` writes ``tests/data/carve_reference.npz`` from the code as it is;
``tests/test_carve.py`` reruns the same cases and compares every tensor with ``torch.equal``.
The reference was written before the explainer was split into ``_synthesis.py``,
``kkt/_residuals.py`` and ``kkt/_collect.collect_gradients`` (then in ``kkt/_selection.py``).
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch

from kktexplain import DeepSupportVectors
from kktexplain.models import MLP, ConvNet

REFERENCE = Path(__file__).parent / "data" / "carve_reference.npz"
_PER_SAMPLE = ("margin", "feasible", "primal_loss", "entropy", "dual_violation", "tv", "norm")


def _mlp():
    torch.manual_seed(0)
    return MLP((6,), 3, hidden=(8,))


def _convnet():
    torch.manual_seed(0)
    return ConvNet((1, 8, 8), 3, width=4, depth=2)


def _real(shape, n=30):
    gen = torch.Generator().manual_seed(11)
    return torch.randn(n, *shape, generator=gen), torch.arange(n) % 3


def cases():
    """``{name: (model factory, settings, attribute kwargs factory)}``."""
    fast = {"progress": False}
    return {
        "noise_exp": (_mlp, {"n_per_class": 3, "steps": 8, "seed": 1, **fast}, dict),
        "noise_prune_conv": (
            _convnet,
            {"n_per_class": 2, "steps": 8, "dual": "prune", "lr_lambda": 2.0, "seed": 2, **fast},
            dict,
        ),
        "noise_prune_bound_alg1": (
            _mlp,
            {
                "n_per_class": 3,
                "steps": 10,
                "dual": "prune",
                "lambda_max": 1.2,
                "lr_lambda": 0.5,
                "objective": "paper_alg1",
                "seed": 3,
                **fast,
            },
            dict,
        ),
        "real_clamp_bound_conv": (
            _convnet,
            {
                "n_per_class": 2,
                "init": "real",
                "steps": 8,
                "dual": "clamp",
                "lambda_max": 0.5,
                "lr_lambda": 1.0,
                "seed": 4,
                **fast,
            },
            lambda: {"init_data": _real((1, 8, 8))},
        ),
        "noise_exp_bound_sgd": (
            _mlp,
            {
                "n_per_class": 2,
                "steps": 8,
                "lambda_max": 0.8,
                "lr_lambda": 1.0,
                "optimizer": "sgd",
                "input_range": (-1.0, 1.0),
                "seed": 5,
                **fast,
            },
            dict,
        ),
        "other_eq9": (
            _mlp,
            {"n_per_class": 2, "init": "other", "steps": 6, "objective": "paper_eq9", "seed": 6, **fast},
            lambda: {"init_data": _real((6,))[0]},
        ),
        "select_exact": (
            _mlp,
            {"chunk_size": 7, **fast},
            lambda: dict(zip(("candidates", "labels"), _real((6,)))),
        ),
        "select_sketch_bound": (
            _convnet,
            {"projection_dim": 16, "lambda_max": 0.7, "chunk_size": 8, "seed": 7, **fast},
            lambda: dict(zip(("candidates", "labels"), _real((1, 8, 8)))),
        ),
        "select_ridge": (
            _mlp,
            {"ridge": 1e-3, **fast},
            lambda: dict(zip(("candidates", "labels"), _real((6,)))),
        ),
    }


def run_case(name: str):
    make_model, settings, kwargs = cases()[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # every parameter and the per-tensor cosine: the defaults when the reference was written
        # (now "free" and the global cosine)
        return DeepSupportVectors(**{"param_names": None, "objective": "per_tensor", **settings}).attribute(
            make_model(), **kwargs()
        )
    finally:
        torch.set_num_threads(threads)


def flatten(result) -> dict[str, np.ndarray]:
    """Every tensor and number of a result as arrays (the pinned quantities)."""
    out = {
        "inputs": result.inputs,
        "labels": result.labels,
        "lambdas": result.lambdas,
        "active": result.active,
        **{f"kkt_{k}": getattr(result.kkt, k) for k in _PER_SAMPLE},
    }
    if result.indices is not None:
        out["indices"] = result.indices
    for k, v in result.history.items():
        out[f"history_{k}"] = torch.tensor(v, dtype=torch.float64)
    for k, v in result.kkt.stationarity.items():
        out[f"stationarity_{k}"] = torch.tensor(v, dtype=torch.float64)
    for k, v in result.kkt.per_layer_cosine.items():
        out[f"layer_{k}"] = torch.tensor(v, dtype=torch.float64)
    return {k: v.detach().cpu().numpy() for k, v in out.items()}


def platform_tag() -> str:
    """Where the reference was written: bit equality is only promised on the same CPU build."""
    return f"{platform.machine()}|torch {torch.__version__}|{torch.backends.cpu.get_cpu_capability()}"


def main() -> None:
    arrays = {"platform": np.frombuffer(platform_tag().encode(), dtype=np.uint8)}
    for name in cases():
        for k, v in flatten(run_case(name)).items():
            arrays[f"{name}/{k}"] = v
    REFERENCE.parent.mkdir(exist_ok=True)
    np.savez_compressed(REFERENCE, **arrays)
    print(f"wrote {REFERENCE} ({len(arrays)} arrays) on {platform_tag()}")


if __name__ == "__main__":
    main()
