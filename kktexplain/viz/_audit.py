"""Matplotlib figures of an audit: the figures of :func:`kktexplain.report.write_html`.

Every function takes ``ax=`` and returns the Axes it drew on. Image grids are drawn as one
mosaic (a single ``imshow``), so they stay cheap for many classes; ``classes=`` picks the
classes shown and ``page=`` / ``per_page=`` pages through the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from torch import Tensor

from .._result import DSVResult
from .._validation import check_per_class_accuracy, check_positive
from ._classes import (
    _check_result,
    _class_list,
    _mosaic,
    _name,
    _num_classes,
    _page,
    class_lambda_sums,
)
from ._verdicts import (
    FEASIBILITY_THRESHOLDS,
    STATIONARITY_THRESHOLDS,
    feasibility_verdict,
    stationarity_verdict,
)

__all__ = [
    "FEASIBILITY_THRESHOLDS",
    "STATIONARITY_THRESHOLDS",
    "class_lambda_sums",
    "feasibility_verdict",
    "plot_dsv_gallery",
    "plot_kkt_residuals",
    "plot_lambda_vs_accuracy",
    "plot_likely_mislabels",
    "plot_synthesis_history",
    "plot_top_bottom_lambda",
    "stationarity_verdict",
]


def plot_dsv_gallery(
    result: DSVResult,
    classes: Sequence[int] | None = None,
    page: int = 0,
    per_page: int = 10,
    per_class: int | None = None,
    class_names: Sequence[str] | None = None,
    denormalize: Callable[[Tensor], Tensor] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """DSVs per class, best λ first, as one mosaic: one row per class of the page.

    Parameters
    ----------
    result : DSVResult
        Inputs of shape ``(N, C, H, W)``, ``(N, H, W)`` or ``(N, D)`` (shown as strips).
    classes : sequence of int, optional
        Class indices to show (default every class the result holds samples of), paged by
        ``page`` and ``per_page``.
    page : int, default=0
    per_page : int, default=10
        Classes (rows) per page.
    per_class : int, optional
        Columns; default the largest class size.
    class_names : sequence of str, optional
    denormalize : callable, optional
        Maps a batch of inputs back to pixel units.
    ax : Axes, optional

    Returns
    -------
    Axes
        Each tile is annotated with its λ.
    """
    _check_result(result)
    if classes is None:  # the classes present (a result of classes=[17, 20] of a 25-class model)
        classes = sorted(set(result.hard_labels.tolist()))
    rows = _page(_class_list(classes, _num_classes(result)), page, per_page)
    y = result.hard_labels
    if per_class is not None:
        check_positive("per_class", per_class, integer=True)
    k = per_class or max(1, int(max((y == c).sum() for c in rows)))
    core = result.top_k_per_class(int(k))
    tiles = [[result.inputs[int(i)] if i >= 0 else None for i in core.indices[c]] for c in rows]
    if all(t is None for row in tiles for t in row):
        raise ValueError(f"classes {rows} have no samples in result")
    ax = ax if ax is not None else plt.figure(figsize=(1.0 * k + 1, 1.0 * len(rows) + 0.5)).gca()
    img, dh, dw = _mosaic(tiles, denormalize)
    ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for r, c in enumerate(rows):
        for j in range(k):
            lam = float(core.lambdas[c, j])
            if np.isfinite(lam):
                ax.text(j * dw, r * dh, f"λ={lam:.2g}", color="yellow", fontsize=6, va="top")
    ax.set_yticks([r * dh + dh / 2 for r in range(len(rows))], [_name(c, class_names) for c in rows])
    ax.set_xticks([])
    ax.set_title(f"DSVs per class (best λ first), page {page + 1}", fontsize=9)
    return ax


def plot_kkt_residuals(result: DSVResult, ax: Axes | None = None, max_layers: int = 40) -> Axes:
    """Per-layer stationarity cosine as bars against the verdict thresholds; the other residuals in the title.

    Parameters
    ----------
    result : DSVResult
    ax : Axes, optional
    max_layers : int, default=40
        Show at most this many parameter tensors (the largest by ``|cosine|`` deviation are not
        chosen: the first ``max_layers`` in model order).

    Returns
    -------
    Axes
    """
    _check_result(result)
    check_positive("max_layers", max_layers, integer=True)
    layers = list(result.kkt.per_layer_cosine.items())[: int(max_layers)]
    ax = ax if ax is not None else plt.figure(figsize=(7, 0.25 * len(layers) + 1.5)).gca()
    names = [k for k, _ in layers] or ["(none)"]
    vals = [v for _, v in layers] or [0.0]
    colors = [
        "tab:green" if v >= 0.9 else "tab:olive" if v >= 0.3 else "tab:orange" if v >= 0.03 else "tab:red"
        for v in vals
    ]
    ax.barh(range(len(vals)), vals, color=colors)
    ax.set_yticks(range(len(vals)), names, fontsize=7)
    ax.invert_yaxis()
    for bound, _ in STATIONARITY_THRESHOLDS[:3]:
        ax.axvline(bound, color="grey", lw=0.8, ls="--")
    ax.set_xlim(-1, 1)
    st = result.kkt.stationarity
    ax.set_xlabel("per-layer stationarity cosine cos(θ*_l, −Σλ∇_l L)  (1 is exact)")
    ax.set_title(
        f"cosine {st.get('cosine', float('nan')):.3f}, rel. l1 {st.get('rel_l1', float('nan')):.3g}, "
        f"feasibility {result.kkt.feasibility_rate:.2f}, max dual violation "
        f"{float(result.kkt.dual_violation.max()) if len(result) else 0.0:.2g}",
        fontsize=8,
    )
    return ax


def plot_lambda_vs_accuracy(
    result: DSVResult,
    accuracy: Sequence[float] | Tensor | None = None,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Per-class Σλ against per-class accuracy (a bar chart of Σλ when no accuracy is given).

    Parameters
    ----------
    result : DSVResult
    accuracy : sequence of float or Tensor of shape (C,), optional
        Per-class accuracy in ``[0, 1]`` (``nan`` for a class without test samples: left out
        of the plot).
    classes : sequence of int, optional
        Classes shown (default all).
    class_names : sequence of str, optional
    ax : Axes, optional

    Returns
    -------
    Axes
    """
    _check_result(result)
    sums = class_lambda_sums(result)
    cls = _class_list(classes, len(sums))
    ax = ax if ax is not None else plt.figure(figsize=(5, 4)).gca()
    if accuracy is None:
        ax.bar(range(len(cls)), sums[cls].numpy())
        ax.set_xticks(range(len(cls)), [_name(c, class_names) for c in cls], rotation=90, fontsize=7)
        ax.set(ylabel="Σλ", title="Σλ per class")
        return ax
    acc = check_per_class_accuracy(accuracy, len(sums))
    ax.scatter(acc[cls].numpy(), sums[cls].numpy())
    if len(cls) <= 30:
        for c in cls:
            ax.annotate(_name(c, class_names), (float(acc[c]), float(sums[c])), fontsize=7)
    ax.set(xlabel="per-class accuracy", ylabel="Σλ", title="Σλ against accuracy, per class")
    return ax


def _top_bottom(result: DSVResult, n: int, classes: Sequence[int] | None) -> tuple[Tensor, Tensor]:
    check_positive("n", n, integer=True)
    cls = torch.tensor(_class_list(classes, _num_classes(result)))
    rows = torch.isin(result.hard_labels, cls).nonzero().flatten()
    if len(rows) == 0:
        raise ValueError(f"classes {cls.tolist()} have no samples in result")
    order = rows[result.lambdas[rows].argsort(descending=True, stable=True)]
    n = min(int(n), max(1, -(-len(order) // 2)))  # top and bottom do not repeat each other
    return order[:n], order.flip(0)[:n]


def _score_order(result: DSVResult, scores: Tensor | None, n: int, classes: Sequence[int] | None) -> Tensor:
    check_positive("n", n, integer=True)
    s = result.lambdas if scores is None else torch.as_tensor(scores).flatten()
    if len(s) != len(result):
        raise ValueError(f"scores must have one value per sample ({len(result)}), got {len(s)}")
    cls = torch.tensor(_class_list(classes, _num_classes(result)))
    rows = torch.isin(result.hard_labels, cls).nonzero().flatten()
    if len(rows) == 0:
        raise ValueError(f"classes {cls.tolist()} have no samples in result")
    return rows[s[rows].double().argsort(descending=True, stable=True)][:n]


def plot_top_bottom_lambda(
    result: DSVResult,
    n: int = 8,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    denormalize: Callable[[Tensor], Tensor] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """The ``n`` samples of largest λ (top row) and smallest λ (bottom row) of a selection.

    Parameters
    ----------
    result : DSVResult
        A selection (real samples with their λ) or a synthesis.
    n : int, default=8
    classes : sequence of int, optional
        Restrict to samples of these (hard) labels.
    class_names : sequence of str, optional
    denormalize : callable, optional
    ax : Axes, optional

    Returns
    -------
    Axes
        Tiles annotated with the row index, the label and λ.
    """
    _check_result(result)
    top, bottom = _top_bottom(result, n, classes)
    ax = ax if ax is not None else plt.figure(figsize=(1.1 * n + 1, 3)).gca()
    img, dh, dw = _mosaic([[result.inputs[i] for i in top], [result.inputs[i] for i in bottom]], denormalize)
    ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    y = result.hard_labels
    for r, rows in enumerate((top, bottom)):
        for j, i in enumerate(rows.tolist()):
            ax.text(
                j * dw,
                r * dh,
                f"#{i} {_name(int(y[i]), class_names)}\nλ={float(result.lambdas[i]):.2g}",
                color="yellow",
                fontsize=5,
                va="top",
            )
    ax.set_yticks([dh / 2, dh * 1.5], ["top λ", "bottom λ"])
    ax.set_xticks([])
    ax.set_title("largest and smallest λ", fontsize=9)
    return ax


def plot_likely_mislabels(
    result: DSVResult,
    scores: Tensor | None = None,
    n: int = 8,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    denormalize: Callable[[Tensor], Tensor] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """The ``n`` samples most likely mislabelled: highest self-influence (or λ when ``scores`` is None).

    Parameters
    ----------
    result : DSVResult
        A selection over (possibly noisy) labelled data.
    scores : Tensor of shape (N,), optional
        E.g. ``SupportVectorInfluence(model, result).self_influence()``; default ``result.lambdas``.
    n : int, default=8
    classes : sequence of int, optional
    class_names : sequence of str, optional
    denormalize : callable, optional
    ax : Axes, optional

    Returns
    -------
    Axes
    """
    _check_result(result)
    rows = _score_order(result, scores, n, classes)
    s = result.lambdas if scores is None else torch.as_tensor(scores).flatten()
    ax = ax if ax is not None else plt.figure(figsize=(1.1 * n + 1, 1.8)).gca()
    img, dh, dw = _mosaic([[result.inputs[i] for i in rows]], denormalize)
    ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    y = result.hard_labels
    for j, i in enumerate(rows.tolist()):
        ax.text(
            j * dw,
            0,
            f"#{i} {_name(int(y[i]), class_names)}\n{float(s[i]):.2g}",
            color="yellow",
            fontsize=5,
            va="top",
        )
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("likely mislabels (" + ("λ" if scores is None else "self-influence") + ")", fontsize=9)
    return ax


_HISTORY_PANELS = {
    "loss": None,
    "entropy": ("entropy",),
    "feasibility": ("feasibility", "feasibility_aug"),
}
_NOT_LOSS = ("entropy", "feasibility", "feasibility_aug", "lambda_mean", "n_active")


def plot_synthesis_history(result: DSVResult | dict, panel: str = "loss", ax: Axes | None = None) -> Axes:
    """One panel of a run's history over the steps: loss terms (log), mean entropy or feasibility.

    :func:`kktexplain.viz.plot_history` draws all three (on three Axes); this draws one on ``ax``.

    Parameters
    ----------
    result : DSVResult or dict
        A result, or its ``history`` (dict of str to list of float, one value per step).
    panel : {"loss", "entropy", "feasibility"}, default="loss"
        ``"loss"`` draws every recorded loss term (unweighted, log scale).
    ax : Axes, optional

    Returns
    -------
    Axes
    """
    if panel not in _HISTORY_PANELS:
        raise ValueError(f"panel must be 'loss', 'entropy' or 'feasibility', got {panel!r}")
    if isinstance(result, DSVResult):
        h = result.history
    elif isinstance(result, dict):
        h = result
    else:
        raise TypeError(f"result must be a DSVResult or its history dict, got {type(result).__name__}")
    ax = ax if ax is not None else plt.figure(figsize=(5, 3.2)).gca()
    keys = _HISTORY_PANELS[panel] or tuple(k for k in h if k not in _NOT_LOSS)
    for key in keys:
        vals = h.get(key)
        if not isinstance(vals, list) or not vals:
            continue
        if panel == "loss":
            if not any(v > 0 for v in vals):
                continue
            vals = [max(float(v), 1e-12) for v in vals]
        ax.plot(vals, label=key)
    if panel == "loss":
        ax.set_yscale("log")
    elif panel == "feasibility":
        ax.set_ylim(-0.05, 1.05)
    titles = {
        "loss": "loss terms (unweighted)",
        "entropy": "mean predictive entropy (nats)",
        "feasibility": "primal feasibility rate",
    }
    ax.set(title=titles[panel], xlabel="step")
    if ax.lines:
        ax.legend(fontsize=7)
    return ax
