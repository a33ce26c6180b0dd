"""Matplotlib figures of generation results: class grids, blend matrices, strips, edits."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from torch import Tensor

from .._validation import check_positive
from ..generate._result import GenerationResult
from ._classes import _name
from ._figures import show_image

__all__ = ["plot_blend_matrix", "plot_class_samples", "plot_edits", "plot_interpolation"]


def _check(result: object, name: str, modes: tuple[str, ...]) -> GenerationResult:
    if not isinstance(result, GenerationResult):
        raise TypeError(f"{name} must be a GenerationResult, got {type(result).__name__}")
    mode = result.settings.get("mode")
    if mode not in modes:
        raise ValueError(f"{name} must come from {' or '.join(modes)}, got a result of {mode!r}")
    if result.inputs.ndim < 4:
        raise ValueError(f"{name} must hold images (..., C, H, W), got {tuple(result.inputs.shape)}")
    return result


def _images(x: Tensor, denormalize: Callable[[Tensor], Tensor] | None) -> Tensor:
    return denormalize(x) if denormalize is not None else x


def plot_class_samples(
    result: GenerationResult,
    classes: Sequence[str] | None = None,
    denormalize: Callable[[Tensor], Tensor] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """A grid of class-conditional samples: one row per class, each titled with ``p(label)``.

    Parameters
    ----------
    result : GenerationResult
        From :func:`kktexplain.generate.sample`, with image inputs ``(N, C, H, W)``.
    classes : sequence of str, optional
        Class names, indexed by class.
    denormalize : callable, optional
        Maps inputs back to pixel units before display (e.g. ``dataset.denormalize``).
    fig : Figure, optional

    Returns
    -------
    Figure
    """
    result = _check(result, "result", ("sample",))
    wanted = list(result.settings["classes"])
    k = int(result.settings["n_per_class"])
    images = _images(result.inputs, denormalize)
    fig = fig if fig is not None else plt.figure(figsize=(1.1 * k + 1, 1.2 * len(wanted)))
    axes = fig.subplots(len(wanted), k, squeeze=False)
    for r, c in enumerate(wanted):
        for j in range(k):
            i = r * k + j
            show_image(images[i], axes[r, j], f"p={float(result.probabilities[i, c]):.2f}")
        axes[r, 0].set_ylabel(_name(c, classes), fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def plot_blend_matrix(
    blends: Sequence[GenerationResult],
    classes: Sequence[str] | None = None,
    denormalize: Callable[[Tensor], Tensor] | None = None,
    samples: GenerationResult | None = None,
    fig: Figure | None = None,
) -> Figure:
    """A class-by-class matrix: cell ``(a, b)`` shows the first sample of ``blend(a, b)``.

    Parameters
    ----------
    blends : sequence of GenerationResult
        From :func:`kktexplain.generate.blend`; the classes they mix make the rows and columns.
    classes : sequence of str, optional
    denormalize : callable, optional
    samples : GenerationResult, optional
        From :func:`~kktexplain.generate.sample`: its first sample of each class fills the
        diagonal (left blank otherwise).
    fig : Figure, optional

    Returns
    -------
    Figure
        Cells are titled with the model's probabilities of ``a`` and ``b``.
    """
    if isinstance(blends, GenerationResult) or not isinstance(blends, Sequence) or not blends:
        raise TypeError("blends must be a non-empty sequence of GenerationResult from blend()")
    blends = [_check(r, "blends[i]", ("blend",)) for r in blends]
    if samples is not None:
        samples = _check(samples, "samples", ("sample",))
    cells = {(int(r.settings["a"]), int(r.settings["b"])): r for r in blends}
    wanted = sorted({c for pair in cells for c in pair})
    n = len(wanted)
    fig = fig if fig is not None else plt.figure(figsize=(1.2 * n + 1, 1.25 * n + 0.5))
    axes = fig.subplots(n, n, squeeze=False)
    for r, a in enumerate(wanted):
        for j, b in enumerate(wanted):
            ax = axes[r, j]
            res = cells.get((a, b))
            if res is not None:
                p = res.probabilities[0]
                show_image(_images(res.inputs, denormalize)[0], ax, f"{float(p[a]):.2f}/{float(p[b]):.2f}")
            elif a == b and samples is not None and (samples.labels == a).any():
                i = int((samples.labels == a).nonzero()[0])
                show_image(
                    _images(samples.inputs, denormalize)[i], ax, f"p={float(samples.probabilities[i, a]):.2f}"
                )
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(_name(a, classes), fontsize=7, rotation=0, ha="right", va="center")
    for j, b in enumerate(wanted):
        axes[-1, j].set_xlabel(_name(b, classes), fontsize=7)
    fig.suptitle("blend(a = row, b = column); titles p(a)/p(b)", fontsize=8)
    fig.tight_layout()
    return fig


def plot_interpolation(
    result: GenerationResult,
    classes: Sequence[str] | None = None,
    denormalize: Callable[[Tensor], Tensor] | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Interpolation strips: one row per strip, one column per ``δ``, titled with ``p(b)``.

    Parameters
    ----------
    result : GenerationResult
        From :func:`kktexplain.generate.interpolate`, inputs ``(n, D, C, H, W)``.
    classes : sequence of str, optional
    denormalize : callable, optional
    fig : Figure, optional

    Returns
    -------
    Figure
    """
    result = _check(result, "result", ("interpolate",))
    n, d = result.inputs.shape[:2]
    a, b = int(result.settings["a"]), int(result.settings["b"])
    fig = fig if fig is not None else plt.figure(figsize=(1.1 * d + 1, 1.25 * n + 0.5))
    axes = fig.subplots(n, d, squeeze=False)
    for r in range(n):
        images = _images(result.inputs[r], denormalize)
        for j in range(d):
            show_image(images[j], axes[r, j], f"p(b)={float(result.probabilities[r, j, b]):.2f}")
            if r == n - 1:
                axes[r, j].set_xlabel(f"δ={float(result.deltas[j]):.2f}", fontsize=7)
    fig.suptitle(f"{_name(a, classes)} (δ=0) → {_name(b, classes)} (δ=1)", fontsize=8)
    fig.tight_layout()
    return fig


def plot_edits(
    result: GenerationResult,
    classes: Sequence[str] | None = None,
    denormalize: Callable[[Tensor], Tensor] | None = None,
    max_pairs: int = 8,
    fig: Figure | None = None,
) -> Figure:
    """Before/after pairs of edits: sources on top, edits below, titled with predictions.

    Parameters
    ----------
    result : GenerationResult
        From :func:`kktexplain.generate.edit`.
    classes : sequence of str, optional
    denormalize : callable, optional
    max_pairs : int, default=8
        Show at most this many pairs (the first ones).
    fig : Figure, optional

    Returns
    -------
    Figure
    """
    result = _check(result, "result", ("edit",))
    check_positive("max_pairs", max_pairs, integer=True)
    k = min(len(result), int(max_pairs))
    fig = fig if fig is not None else plt.figure(figsize=(1.2 * k + 0.6, 2.8))
    axes = fig.subplots(2, k, squeeze=False)
    before, after = _images(result.source, denormalize), _images(result.inputs, denormalize)
    for j in range(k):
        t = int(result.labels[j])
        show_image(before[j], axes[0, j], "source")
        show_image(after[j], axes[1, j], f"→{_name(t, classes)}\np={float(result.probabilities[j, t]):.2f}")
    axes[0, 0].set_ylabel("before", fontsize=7)
    axes[1, 0].set_ylabel("after", fontsize=7)
    fig.tight_layout()
    return fig
