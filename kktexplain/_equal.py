"""One multiplier shared by every candidate (``multipliers="equal"``): the KKT value of weight decay.

At a stationary point of training with weight decay ``wd`` over ``n`` samples,
``theta* = -1/(n wd) sum_i grad L_i``: every multiplier is the same. :func:`equal_multiplier`
fits that one value in a single pass, and records every ``||grad L_i||^2`` on the way where
the scope's per-sample gradients cost no more than a forward pass (``nn.Linear`` layers).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._errors import NonFiniteError, candidate_rows_hint
from .kkt import FunctionalModel
from .kkt._collect import _factored_chunks
from .kkt._grads import CHUNK_ENTRIES, linear_factored
from .kkt._residuals import KKTResiduals, residuals_from_sum, stationarity_sum

__all__ = ["equal_multiplier"]


def equal_multiplier(
    fmodel: FunctionalModel,
    inputs: Tensor,
    labels: Tensor,
    loss_fn: Any,
    chunk_size: int,
    upper: float | None = None,
    progress: bool = False,
) -> tuple[float, KKTResiduals]:
    """The one multiplier ``c >= 0`` that best fits stationarity when every sample shares it.

    ``c = argmin_{c >= 0} ||theta* + c sum_i grad L_i||``, the value every multiplier takes at a
    stationary point of weight-decay training (``c = 1 / (n wd)``). One forward and one backward
    per chunk: the sum of the gradients is the gradient of the summed loss.

    Parameters
    ----------
    fmodel : FunctionalModel
    inputs : Tensor of shape (N, *input_shape)
        May live on the CPU; chunks go to the model's device.
    labels : Tensor of shape (N,) or (N, C)
    loss_fn : callable
        Per-sample loss.
    chunk_size : int
    upper : float, optional
        Cap on ``c`` (``lambda_max``). The sum is linear in ``c``, so the cap needs no second pass.
    progress : bool, default=False
        A progress bar over the chunks of the pass.

    Returns
    -------
    c : float
    residuals : KKTResiduals
        Every DeepKKT residual at ``lambda_i = c`` (from the same pass).
    """
    dtype = next(iter(fmodel.theta.values())).dtype  # the parameters' (inputs may be token ids)
    with tqdm(desc="equal multiplier", unit="chunk", disable=not progress, leave=False) as bar:
        found = _factored_sum(fmodel, inputs, labels, loss_fn, chunk_size, bar)
        if found is None:
            ones = torch.ones(len(inputs), dtype=dtype)
            bar.reset(total=-(-len(inputs) // chunk_size))
            g, logits = stationarity_sum(fmodel, inputs, labels, ones, loss_fn, chunk_size, bar=bar)
            sq_norms = None
        else:
            g, logits, sq_norms = found
    theta = fmodel.target
    dot = sum(float((theta[k].double() * g[k].double()).sum()) for k in g)
    sq = sum(float(g[k].double().pow(2).sum()) for k in g)
    if not (math.isfinite(dot) and math.isfinite(sq)):
        bad = (~torch.isfinite(logits).flatten(1).all(1)).nonzero().flatten().tolist()
        hint = candidate_rows_hint("logits", bad) if bad else None
        raise NonFiniteError(0, "per-sample gradients", stage="selection", hint=hint)
    c = max(-dot / sq, 0.0) if sq > 0 else 0.0
    if upper is not None:
        c = min(c, float(upper))
    lam = torch.full((len(inputs),), c, dtype=dtype)
    scaled = {k: c * v for k, v in g.items()}
    kkt = residuals_from_sum(fmodel, inputs, labels, lam, scaled, logits)
    # recorded for forwards without extra arguments only: a reader (self_influence) cannot tell
    # which arguments a result was selected with
    kkt.grad_sq_norm = None if fmodel.args else sq_norms
    return c, kkt


def _factored_sum(
    fmodel: FunctionalModel, inputs: Tensor, labels: Tensor, loss_fn: Any, chunk_size: int, bar: Any
) -> tuple[dict[str, Tensor], Tensor, Tensor] | None:
    """``sum_i grad L_i``, the logits and every ``||grad L_i||^2`` from one forward per chunk.

    Only for a scope of ``nn.Linear`` layers, whose per-sample gradients cost a forward pass
    (:func:`~kktexplain.kkt._grads.linear_factored`); ``None`` elsewhere or if the factored
    path refuses the model, and the caller takes the summed backward instead. ``bar`` (a
    ``tqdm``) is given the number of chunks and advanced by one per chunk.
    """
    factored = linear_factored(fmodel)
    # the rows of a chunk are formed, (rows, P): bounded to CHUNK_ENTRIES, and not worth it
    # (the summed backward forms none) when that bound leaves fewer than 16 rows per forward
    # (or fewer than the chunk_size asked for, where it is smaller)
    cap = CHUNK_ENTRIES // max(fmodel.num_params, 1)
    rows = min(chunk_size, cap)
    if factored is None or cap < min(16, chunk_size):
        return None
    total, logits, sq = None, [], []
    bar.reset(total=-(-len(inputs) // chunk_size))
    device = next(iter(fmodel.theta.values())).device

    def add(s2: Tensor, t: Tensor, lg: Tensor) -> None:
        nonlocal total
        total = t if total is None else total + t
        sq.append(s2.cpu())
        logits.append(lg.cpu())

    try:
        # the first chunk forms its rows (at most `rows` at a time), which checks the factored
        # path against vmap; the others need only their squared norms and sum, which the
        # sketch forms without the rows where the layers allow it
        light = True
        for i in range(0, len(inputs), chunk_size):
            x, y = inputs[i : i + chunk_size].to(device), labels[i : i + chunk_size].to(device)
            found = factored.sq_norms_and_sum(fmodel, x, y, loss_fn) if light and i > 0 else None
            if found is not None:
                add(*found)
            else:
                light = light and i == 0  # the rows were needed: form them from here on
                for _, flat, lg in _factored_chunks(fmodel, x, y, rows, loss_fn, factored):
                    add(flat.pow(2).sum(1), flat.sum(0), lg)
            bar.update(1)
    except ValueError:  # a layer used in a way the factored path cannot see: the caller's pass
        return None
    if total is None:
        return None
    g, offset = {}, 0
    for k, v in fmodel.target.items():
        g[k] = total[offset : offset + v.numel()].view_as(v)
        offset += v.numel()
    return g, torch.cat(logits), torch.cat(sq)
