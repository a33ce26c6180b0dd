"""Per-class helpers of the audit figures and the report: class lists, pages, names, λ sums, mosaics."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .._result import DSVResult
from .._validation import check_positive

__all__ = ["class_lambda_sums"]


def _num_classes(result: DSVResult) -> int:
    y = result.hard_labels
    return int(result.settings.get("num_classes", int(y.max()) + 1 if len(y) else 0))


def _check_result(result: DSVResult, name: str = "result") -> None:
    if not isinstance(result, DSVResult):
        raise TypeError(f"{name} must be a DSVResult, got {type(result).__name__}")


def _class_list(classes: Sequence[int] | None, num_classes: int, name: str = "classes") -> list[int]:
    """Validated class indices (all classes when ``None``)."""
    if classes is None:
        return list(range(num_classes))
    if isinstance(classes, (int, np.integer)):
        classes = [int(classes)]
    try:
        out = [int(c) for c in classes]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of int class indices, got {classes!r}") from None
    bad = [c for c in out if not 0 <= c < num_classes]
    if bad or not out:
        raise ValueError(f"{name} must be non-empty class indices in [0, {num_classes}), got {out}")
    return out


def _page(items: list[int], page: int, per_page: int) -> list[int]:
    check_positive("per_page", per_page, integer=True)
    check_positive("page", page, integer=True, allow_zero=True)
    pages = max(1, -(-len(items) // per_page))
    if page >= pages:
        raise ValueError(f"page must be an int in [0, {pages}), got {page!r}")
    return items[page * per_page : (page + 1) * per_page]


def _name(c: int, class_names: Sequence[str] | None) -> str:
    return str(class_names[c]) if class_names is not None and c < len(class_names) else str(c)


def _plane(x: Tensor) -> np.ndarray:
    """A 2-D array to show one input: channel mean of ``(C, H, W)``, a strip ``(1, D)`` for vectors."""
    x = x.detach().float().cpu()
    if x.ndim == 3:
        x = x.mean(0)
    elif x.ndim != 2:
        x = x.reshape(1, -1)
    return x.numpy()


def class_lambda_sums(result: DSVResult, num_classes: int | None = None) -> Tensor:
    """Σλ of every class (over the active samples of that hard label).

    Parameters
    ----------
    result : DSVResult
    num_classes : int, optional
        Default: ``result.settings["num_classes"]``, else the largest label plus one.

    Returns
    -------
    Tensor of shape (C,)
    """
    _check_result(result)
    c = int(num_classes) if num_classes is not None else _num_classes(result)
    lam = torch.where(result.active, result.lambdas, torch.zeros_like(result.lambdas)).double()
    return torch.zeros(c, dtype=torch.float64).index_add_(0, result.hard_labels.long(), lam)


def _mosaic(
    rows: list[list[Tensor | None]],
    denormalize: Callable[[Tensor], Tensor] | None,
    pad: int = 1,
    vpad: int | None = None,
) -> tuple[np.ndarray, int, int]:
    """Tile rows of inputs (each scaled to [0, 1]) into one array with NaN gutters.

    ``pad`` columns separate tiles, ``vpad`` (default ``pad``) rows separate the rows of tiles
    (room for labels). Returns the array and the row and column strides.
    """
    vpad = pad if vpad is None else vpad
    first = next(x for row in rows for x in row if x is not None)
    h, w = _plane(first).shape
    cols = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + vpad), cols * (w + pad)), np.nan)
    for i, row in enumerate(rows):
        for j, x in enumerate(row):
            if x is None:
                continue
            img = _plane(denormalize(x[None])[0] if denormalize is not None else x)
            lo, hi = np.nanmin(img), np.nanmax(img)
            r0, c0 = i * (h + vpad), j * (w + pad)
            out[r0 : r0 + h, c0 : c0 + w] = (img - lo) / max(hi - lo, 1e-12)
    return out, h + vpad, w + pad
