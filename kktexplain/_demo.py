"""The end-to-end demo: an audit of a Fashion-MNIST classifier, with figures and an HTML report.

One job under one progress bar: load the shipped small ConvNet (``fashion_mnist_small``, no
training) and Fashion-MNIST, measure the teacher's test accuracy, synthesise DSVs from noise,
select λ over a slice of the training set, explain a few test decisions by their supporting and
opposing training images, rank likely mislabels, and write the self-contained HTML report.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from ._explainer import DeepSupportVectors  # noqa: E402

__all__ = ["run_demo", "DEMO_MODEL"]

DEMO_MODEL = "fashion_mnist_small"
"""The reference model the demo audits; its weights ship in the package."""

# Cost of each stage in units of one synthesis step (0.22 CPU-seconds, 100 candidates), from the
# stages' CPU-seconds in one thread on a fresh clone (summary.json's stage_cpu_seconds), so the
# one progress bar moves at roughly constant speed.
_UNITS = {"data": 8, "model": 1, "accuracy": 14, "select": 63, "explain": 3, "mislabels": 3, "write": 56}
_TRAIN_UNITS = 600


def _figure(drawn):
    """The Figure behind what a plotting function returned (a Figure, an Axes or an array of Axes)."""
    import numpy as np

    if hasattr(drawn, "savefig"):
        return drawn
    if hasattr(drawn, "figure"):
        return drawn.figure
    return np.asarray(drawn, dtype=object).ravel()[0].figure


def run_demo(
    out: str | Path = "kktexplain-demo",
    n_per_class: int = 10,
    steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
    *,
    model: str = DEMO_MODEL,
    train: bool = False,
    n_select: int = 1000,
    n_explain: int = 3,
    n_test: int | None = None,
    threads: int | None = 1,
) -> dict:
    """Audit a reference Fashion-MNIST classifier end to end and write the outputs.

    Writes into ``out``: ``report.html`` (the self-contained audit report), ``dsv_grid.png``
    (the DSVs with their λ), ``history.png`` (entropy, feasibility and loss terms per step),
    ``summary.json``, ``dsv.npz`` (the synthesis) and ``selection.npz`` (λ of the real
    training images), both readable with :meth:`DSVResult.load`.

    Parameters
    ----------
    out : str or Path, default="kktexplain-demo"
    n_per_class : int, default=10
        DSVs synthesised per class.
    steps : int, optional
        DeepKKT steps; 600 when omitted (the stationarity-audit recipe: with the step sizes
        lowered along a half cosine, ``lr_schedule="cosine"``).
    seed : int, default=0
    progress : bool, default=True
        One progress bar over the whole job.
    model : str, default="fashion_mnist_small"
        A Fashion-MNIST key of ``REFERENCE_MODELS``. The default ships in the package; others
        (``"fashion_mnist_convnet"``) are trained on first use and cached.
    train : bool, default=False
        Train the model from its recipe instead of loading it (cached afterwards).
    n_select : int, default=1000
        Training images, a class-balanced random slice, whose λ selection computes (on the
        last layer).
    n_explain : int, default=3
        Test decisions explained by their supporting and opposing training images.
    n_test : int, optional
        Test images for the teacher's accuracy; all 10,000 when omitted.
    threads : int, optional, default=1
        torch's CPU threads during the demo (restored afterwards); ``None`` keeps torch's
        setting. One thread, because the model is tiny: a DeepKKT step on 100 candidates took
        0.22 CPU-seconds with one thread and 2.0 with two on a 2-core machine busy with other
        jobs (the threads wait on each other), and selection's solve gained little from two.

    Returns
    -------
    dict
        The summary that was written to ``summary.json``.
    """
    import matplotlib.pyplot as plt
    import torch
    from tqdm.auto import tqdm

    from .attr import SupportVectorInfluence, equal_multipliers
    from .datasets import load_fashion_mnist
    from .models import REFERENCE_MODELS, load_reference_model
    from .models._train import predict
    from .report import write_html
    from .viz import plot_dsv_grid, plot_history

    if model not in REFERENCE_MODELS or REFERENCE_MODELS[model].dataset != "fashion_mnist":
        names = sorted(k for k, v in REFERENCE_MODELS.items() if v.dataset == "fashion_mnist")
        raise ValueError(f"model must be one of {names}, got {model!r}")
    start, cpu0 = time.perf_counter(), time.process_time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # stationarity on the last layer, as the selection and the explanations below: the scope in
    # which the model is linear in its parameters; λ solved exactly after every step, 600 steps
    # whose sizes fall along a half cosine. On this model 100 DSVs reach a cosine of 0.62 to
    # 0.66 there (4 seeds), against 0.43 to 0.58 with 300 constant steps and 0.30 to 0.32 in the
    # default scope (docs/defaults.md, benchmarks/lambda_solve.py --scope last)
    last = ["classifier.weight", "classifier.bias"]
    explainer = DeepSupportVectors(
        n_per_class=n_per_class,
        init="noise",
        seed=seed,
        steps=600 if steps is None else steps,
        lr_schedule="cosine",
        param_names=last,
        lambda_solve_every=1,
    )
    n_steps, _ = explainer.resolved_schedule()
    units = dict(_UNITS, model=_TRAIN_UNITS if train else _UNITS["model"])
    bar = tqdm(total=n_steps + sum(units.values()), desc="kktexplain demo", disable=not progress, unit="u")
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU seconds of all threads: robust to other jobs on the machine
    cpu_start = [time.process_time()]

    def stage(name: str, t0: float) -> float:
        timings[name] = round(time.perf_counter() - t0, 2)
        cpu[name] = round(time.process_time() - cpu_start[0], 2)
        cpu_start[0] = time.process_time()
        if name in units:
            bar.update(units[name])
        return time.perf_counter()

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        t = time.perf_counter()
        bar.set_postfix_str("data")
        data = load_fashion_mnist(train=True)
        test = load_fashion_mnist(train=False)
        t = stage("data", t)
        bar.set_postfix_str("training the model" if train else "model")
        teacher, card = load_reference_model(model, retrain=train, progress=False)
        t = stage("model", t)
        bar.set_postfix_str("teacher accuracy")
        n_test = len(test) if n_test is None else min(int(n_test), len(test))
        x_test, y_test = test.inputs[:n_test], test.labels[:n_test]
        test_pred = predict(teacher, x_test).argmax(1)
        test_acc = (test_pred == y_test).float().mean().item()
        t = stage("accuracy", t)

        bar.set_postfix_str("synthesis")
        explainer.set_params(input_range=data.input_range, progress=False)
        dsv = explainer.attribute(teacher, callback=lambda step, row: bar.update(1))
        dsv.save(out / "dsv.npz")
        t = stage("synthesis", t)

        bar.set_postfix_str("selection")
        gen = torch.Generator().manual_seed(seed)
        per_class = max(1, int(n_select) // data.num_classes)
        x_sel, y_sel, idx_sel = data.per_class(per_class, seed=seed)
        order = torch.randperm(len(idx_sel), generator=gen)
        x_sel, y_sel, idx_sel = x_sel[order], y_sel[order], idx_sel[order]
        sel = DeepSupportVectors(param_names=last, seed=seed, progress=False).attribute(
            teacher, candidates=x_sel, labels=y_sel
        )
        sel.indices = idx_sel
        sel.save(out / "selection.npz")
        t = stage("select", t)

        bar.set_postfix_str("explanations")
        picks = torch.arange(min(int(n_explain), n_test))
        expl = sel.explain(teacher, x_test[picks], k=5, maps="total", n_steps=8, class_names=data.classes)
        t = stage("explain", t)

        bar.set_postfix_str("mislabels")
        self_inf = SupportVectorInfluence(teacher, equal_multipliers(teacher, sel)).self_influence()
        pred_sel = predict(teacher, x_sel).argmax(1)
        suspects = torch.argsort(self_inf, descending=True)[:10]
        t = stage("mislabels", t)

        bar.set_postfix_str("figures and report")
        for name, drawn in (
            ("dsv_grid.png", plot_dsv_grid(dsv, classes=data.classes, denormalize=data.denormalize)),
            ("history.png", plot_history(dsv)),
        ):
            fig = _figure(drawn)
            fig.savefig(out / name, dpi=110)
            plt.close(fig)
        report = write_html(
            out / "report.html",
            dsv,
            sel,
            model=teacher,
            test_data=(x_test, y_test),
            explanations=expl,
            class_names=data.classes,
            denormalize=data.denormalize,
            title=f"kktexplain demo: audit of {model} on Fashion-MNIST",
        )
        t = stage("write", t)
    finally:
        bar.close()
        torch.set_num_threads(old_threads)

    h = dsv.history
    names = data.classes
    summary = {
        "teacher": card.get("name", model),
        "teacher_source": card.get("source", "trained" if train else "cache"),
        "teacher_test_accuracy": test_acc,
        "teacher_test_images": n_test,
        "teacher_test_accuracy_recorded": card["test_accuracy"],
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
        "selection": {
            "candidates": len(sel),
            "param_names": last,
            "support_size": int((sel.lambdas > 0).sum()),
            "stationarity_rel_l1": sel.kkt.stationarity["rel_l1"],
            "stationarity_cosine": sel.kkt.stationarity["cosine"],
        },
        "explanations": [
            {
                "test_index": int(i),
                "label": names[int(y_test[i])],
                "prediction": names[int(expl.prediction[j])],
                "supporting": [
                    {"train_index": int(idx_sel[s]), "label": names[int(y_sel[s])], "contribution": float(c)}
                    for s, c in zip(
                        expl.supporting_indices[j].tolist(), expl.supporting_contributions[j], strict=True
                    )
                    if c > 0
                ],
                "opposing": [
                    {"train_index": int(idx_sel[s]), "label": names[int(y_sel[s])], "contribution": float(c)}
                    for s, c in zip(
                        expl.opposing_indices[j].tolist(), expl.opposing_contributions[j], strict=True
                    )
                    if c < 0
                ],
                "expansion_residual": float(expl.residual[j]),
            }
            for j, i in enumerate(picks.tolist())
        ],
        "likely_mislabels": [
            {
                "train_index": int(idx_sel[i]),
                "label": names[int(y_sel[i])],
                "prediction": names[int(pred_sel[i])],
                "self_influence": float(self_inf[i]),
            }
            for i in suspects.tolist()
        ],
        "synthesis_seconds": dsv.settings["seconds"],
        "stage_seconds": timings,
        "stage_cpu_seconds": cpu,
        "wall_seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu0,
        "report": str(report),
        "objective": dsv.settings["objective"],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
