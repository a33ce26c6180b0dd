"""The end-to-end demo: DSVs of a Fashion-MNIST ConvNet, with figures and a summary."""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from ._explainer import DeepSupportVectors  # noqa: E402

__all__ = ["run_demo"]


def run_demo(
    out: str | Path = "kktexplain-demo",
    n_per_class: int = 10,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train (or load) the reference ConvNet, synthesise DSVs from noise, write the outputs.

    Writes ``dsv_grid.png`` (the DSVs with their λ), ``history.png`` (entropy, feasibility and
    loss terms per step), ``summary.json`` and ``dsv.npz`` (the result) into ``out``.

    Parameters
    ----------
    out : str or Path, default="kktexplain-demo"
    n_per_class : int, default=10
    steps : int, optional
        DeepKKT steps; the explainer's default when omitted.
    seed : int, default=0
    progress : bool, default=True

    Returns
    -------
    dict
        The summary that was written to ``summary.json``.
    """
    import matplotlib.pyplot as plt

    from .datasets import load_fashion_mnist
    from .models import load_reference_model
    from .viz import plot_dsv_grid, plot_history

    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train = load_fashion_mnist(train=True)
    model, card = load_reference_model("fashion_mnist_convnet", progress=progress)
    kwargs = {} if steps is None else {"steps": steps}
    explainer = DeepSupportVectors(
        n_per_class=n_per_class,
        init="noise",
        seed=seed,
        input_range=train.input_range,
        progress=progress,
        **kwargs,
    )
    dsv = explainer.attribute(model)
    dsv.save(out / "dsv.npz")
    fig = plot_dsv_grid(dsv, classes=train.classes, denormalize=train.denormalize)
    fig.savefig(out / "dsv_grid.png", dpi=110)
    plt.close(fig)
    fig = plot_history(dsv)[0].figure
    fig.savefig(out / "history.png", dpi=110)
    plt.close(fig)
    h = dsv.history
    summary = {
        "teacher": card["name"],
        "teacher_test_accuracy": card["test_accuracy"],
        "n_dsv": len(dsv),
        "steps": len(h["entropy"]),
        "primal_feasibility_rate": dsv.kkt.feasibility_rate,
        "primal_feasibility_rate_augmented_last_step": h.get("feasibility_aug", [None])[-1],
        "stationarity_rel_l1": dsv.kkt.stationarity["rel_l1"],
        "stationarity_cosine": dsv.kkt.stationarity["cosine"],
        "stationarity_g_norm_ratio": dsv.kkt.stationarity["g_norm_ratio"],
        "entropy_start": h["entropy"][0],
        "entropy_end": h["entropy"][-1],
        "lambda_mean": float(dsv.lambdas.mean()),
        "synthesis_seconds": dsv.settings["seconds"],
        "wall_seconds": time.perf_counter() - start,
        "objective": dsv.settings["objective"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
