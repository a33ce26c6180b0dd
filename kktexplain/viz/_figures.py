"""Matplotlib figures of DSVs and of a run's history."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from .._result import DSVResult
from .._validation import check_positive
from ._classes import _name

__all__ = ["plot_dsv_grid", "plot_history", "plot_svm_2d", "show_image"]


def show_image(image: Tensor, ax: Axes | None = None, title: str | None = None) -> Axes:
    """Draw one image ``(C, H, W)`` (RGB for ``C == 3``, otherwise grey: the channel mean for
    ``C`` other than 1 and 3), scaled to its own range.

    Parameters
    ----------
    image : Tensor of shape (C, H, W)
    ax : Axes, optional
    title : str, optional

    Returns
    -------
    Axes
    """
    if not isinstance(image, Tensor) or image.ndim not in (2, 3):
        shape = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a tensor (C, H, W) or (H, W), got {shape}")
    ax = ax if ax is not None else plt.gca()
    img = image.detach().float().cpu()
    img = img[None] if img.ndim == 2 else img
    if img.shape[0] not in (1, 3):  # 2 channels fail in matplotlib, 4 would be read as alpha
        img = img.mean(0, keepdim=True)
    img = (img - img.min()) / (img.max() - img.min()).clamp_min(1e-12)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)
    return ax


def plot_dsv_grid(
    result: DSVResult,
    classes: Sequence[str] | None = None,
    denormalize: Callable[[Tensor], Tensor] | None = None,
    per_class: int | None = None,
    fig: Figure | None = None,
) -> Figure:
    """A grid of image DSVs: one row per class, best λ first, each titled with its λ.

    Parameters
    ----------
    result : DSVResult
        With image inputs ``(N, C, H, W)``.
    classes : sequence of str, optional
        Class names for the row labels (a class beyond the list shows its index).
    denormalize : callable, optional
        Maps inputs back to pixel units before display (e.g. ``dataset.denormalize``).
    per_class : int, optional
        Columns; default the largest class size. One row per class present in ``result``.
    fig : Figure, optional

    Returns
    -------
    Figure
    """
    if result.inputs.ndim != 4:
        raise ValueError(f"plot_dsv_grid needs image inputs (N, C, H, W), got {tuple(result.inputs.shape)}")
    if per_class is not None:
        check_positive("per_class", per_class, integer=True)
    y = result.hard_labels
    present = sorted(set(y.tolist()))  # a row per class of the result, not of the model
    k = int(per_class) if per_class is not None else int(max((y == c).sum() for c in present))
    core = result.top_k_per_class(k)
    images = denormalize(result.inputs) if denormalize is not None else result.inputs
    fig = fig if fig is not None else plt.figure(figsize=(1.1 * k + 1, 1.2 * len(present)))
    axes = fig.subplots(len(present), k, squeeze=False)
    for r, c in enumerate(present):
        for j in range(k):
            ax = axes[r, j]
            i = int(core.indices[c, j])
            if i < 0:
                ax.axis("off")
                continue
            show_image(images[i], ax, f"λ={float(result.lambdas[i]):.3g}")
        axes[r, 0].set_ylabel(_name(c, classes), fontsize=7, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def plot_history(
    result: DSVResult | dict, ax: Sequence[Axes] | None = None, fig: Figure | None = None
) -> np.ndarray | Figure:
    """Three panels over the steps: mean entropy, primal feasibility, loss terms (log scale).

    Parameters
    ----------
    result : DSVResult or dict
        A result, or its ``history``.
    ax : sequence of 3 Axes, optional
        The panels to draw on, in the order entropy, feasibility, loss terms. Default: a new
        figure of one row of three.
    fig : Figure, optional
        Deprecated: draw on three new panels of ``fig`` and return ``fig``. Pass ``ax`` instead.

    Returns
    -------
    ndarray of Axes, shape (3,)
        The three panels (``fig`` itself when the deprecated ``fig`` is given).
    """
    h = result.history if isinstance(result, DSVResult) else result
    if not isinstance(h, dict) or "entropy" not in h:
        raise ValueError(
            "result has no synthesis history (entropy, feasibility and loss terms per step): a "
            "selection result, or a dict without them, has none to plot"
        )
    if fig is not None:
        if ax is not None:
            raise ValueError("pass ax or the deprecated fig, not both")
        warnings.warn(
            "plot_history(fig=...) is deprecated; pass ax=fig.subplots(1, 3) and use the returned Axes",
            DeprecationWarning,
            stacklevel=2,
        )
        axes = np.asarray(fig.subplots(1, 3))
    elif ax is None:
        axes = np.asarray(plt.figure(figsize=(12, 3.2)).subplots(1, 3))
    else:
        axes = np.asarray(ax, dtype=object).ravel()
        if axes.size != 3:
            raise ValueError(f"ax must hold 3 Axes (entropy, feasibility, loss terms), got {axes.size}")
    ax1, ax2, ax3 = axes
    ax1.plot(h["entropy"])
    ax1.set(title="mean predictive entropy of the candidates", xlabel="step", ylabel="nats")
    ax2.plot(h["feasibility"], label="clean")
    if "feasibility_aug" in h:
        ax2.plot(h["feasibility_aug"], label="augmented")
    ax2.set(title="primal feasibility rate", xlabel="step", ylim=(-0.05, 1.05))
    ax2.legend()
    for key in ("stationarity", "stationarity_aug", "primal", "primal_aug", "tv", "norm"):
        if key in h and any(v > 0 for v in h[key]):
            ax3.plot([max(v, 1e-12) for v in h[key]], label=key)
    ax3.set(title="loss terms (unweighted)", xlabel="step", yscale="log")
    ax3.legend(fontsize=7)
    if fig is not None:
        fig.tight_layout()
        return fig
    if ax is None:
        axes[0].figure.tight_layout()
    return axes


def plot_svm_2d(result, ax: Axes | None = None, grid: int = 200) -> Axes:
    """Decision boundary and margins of a 2-D linear SVM with its and our support vectors.

    Parameters
    ----------
    result : kktexplain.svm.SanityResult
        From :func:`kktexplain.svm.sanity_check` on 2-D data.
    ax : Axes, optional
    grid : int, default=200
        Resolution of the background.

    Returns
    -------
    Axes
        Training points coloured by class, the boundary ``f = 0`` and margins ``f = +-1``,
        the SVC's support vectors circled, our selected support vectors (``λ > 0``) as crosses
        sized by λ, and the synthesised DSVs as stars.
    """
    import torch

    from ..svm import SanityResult

    if not isinstance(result, SanityResult):
        raise TypeError(
            f"result must be a SanityResult (kktexplain.svm.sanity_check), got {type(result).__name__}"
        )
    x = result.selection.inputs.double().numpy()
    if x.shape[1] != 2:
        raise ValueError(f"plot_svm_2d needs 2-D inputs, got {x.shape[1]} features")
    ax = ax if ax is not None else plt.gca()
    y = result.selection.labels.numpy()
    lam = result.selection.lambdas.double().numpy()
    pts = [x]
    if result.synthesis is not None:
        pts.append(result.synthesis.inputs.double().numpy())
    lo, hi = np.concatenate(pts).min(0) - 0.5, np.concatenate(pts).max(0) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], grid), np.linspace(lo[1], hi[1], grid))
    with torch.no_grad():
        f = result.model.decision_function(torch.from_numpy(np.c_[gx.ravel(), gy.ravel()]))
    ax.contourf(
        gx,
        gy,
        f.numpy().reshape(gx.shape),
        levels=[-1e9, -1, 0, 1, 1e9],
        colors=["#c6dbef", "#eff3ff", "#fee6ce", "#fdae6b"],
        alpha=0.6,
    )
    ax.contour(
        gx,
        gy,
        f.numpy().reshape(gx.shape),
        levels=[-1, 0, 1],
        colors="k",
        linestyles=["--", "-", "--"],
        linewidths=1,
    )
    ax.scatter(x[:, 0], x[:, 1], c=np.where(y == 1, "tab:orange", "tab:blue"), s=12)
    sv = result.svc.support_
    ax.scatter(x[sv, 0], x[sv, 1], s=90, facecolors="none", edgecolors="k", label="SVC support")
    ours = lam > 0
    ax.scatter(
        x[ours, 0],
        x[ours, 1],
        marker="x",
        c="crimson",
        s=20 + 80 * lam[ours] / max(lam.max(), 1e-12),
        label="ours (λ>0)",
    )
    if result.synthesis is not None:
        s = result.synthesis.inputs.double().numpy()
        ax.scatter(s[:, 0], s[:, 1], marker="*", s=110, c="green", edgecolors="k", label="synthesised DSVs")
    ax.legend(fontsize=7, loc="best")
    ax.set_title(f"linear SVM, C={result.C:g}: F1={result.f1:.3f}, Pearson={result.pearson:.3f}")
    return ax
