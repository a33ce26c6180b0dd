"""Selection: fixed (real) candidates, their multipliers solved from stationarity.

The per-sample gradients are collected with :func:`kktexplain.kkt.collect_gradients`
(optionally sketched), the bounded non-negative least-squares problem is solved once with
:func:`kktexplain.kkt.solve_multipliers`, and the exact residuals are measured.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from ._result import DSVResult
from .kkt import (
    CountSketch,
    FunctionalModel,
    KKTObjective,
    collect_gradients,
    kkt_residuals,
    solve_multipliers,
)

__all__ = ["select"]


def select(
    fmodel: FunctionalModel,
    candidates: Tensor,
    labels: Tensor,
    objective: KKTObjective,
    *,
    projection_dim: int | None,
    chunk_size: int,
    lambda_max: float | None,
    maximize_sum: bool,
    ridge: float | None,
    seed: int,
    progress: bool,
    settings: dict[str, Any],
) -> DSVResult:
    """Solve the multipliers of fixed candidates.

    Parameters
    ----------
    fmodel : FunctionalModel
    candidates : Tensor of shape (N, *input_shape)
        May live on the CPU.
    labels : Tensor of shape (N,) or (N, C)
    objective : KKTObjective
        Only its loss (and its dict, for the settings) is used.
    projection_dim, chunk_size, lambda_max, maximize_sum, ridge, seed, progress
        See :class:`~kktexplain.DeepSupportVectors`.
    settings : dict
        The explainer's settings and what was inferred; completed and stored in the result.

    Returns
    -------
    DSVResult
        ``inputs`` are the candidates, ``lambdas (N,)`` the solved multipliers.
    """
    start = time.perf_counter()
    dtype = next(iter(fmodel.theta.values())).dtype
    candidates = candidates.to(dtype)
    p = fmodel.num_params
    sketch = None
    if projection_dim is not None and projection_dim < p:
        device = next(iter(fmodel.theta.values())).device
        sketch = CountSketch(p, projection_dim, seed=seed, device=device)
    target = torch.cat([v.flatten() for v in fmodel.target.values()])
    target = sketch(target[None])[0] if sketch is not None else target
    grads = collect_gradients(
        fmodel, candidates, labels, objective.loss_fn(), chunk_size, sketch, progress=progress
    )
    grad_seconds = time.perf_counter() - start
    lam, info = solve_multipliers(
        grads, target.cpu(), upper=lambda_max, maximize_sum=maximize_sum, ridge=ridge
    )
    lam = lam.to(dtype)
    kkt = kkt_residuals(fmodel, candidates, labels, lam, objective.loss_fn(), chunk_size=max(chunk_size, 256))
    settings = dict(settings)
    settings.update(
        objective=objective.to_dict(),
        mode="selection",
        param_names=fmodel.names,
        solver=info,
        sketch_dim=None if sketch is None else sketch.out_features,
        gradient_seconds=grad_seconds,
        seconds=time.perf_counter() - start,
    )
    return DSVResult(
        inputs=candidates.detach().cpu(),
        labels=labels.cpu(),
        lambdas=lam.cpu(),
        kkt=kkt,
        history={},
        active=torch.ones(len(candidates), dtype=torch.bool),
        settings=settings,
        indices=torch.arange(len(candidates)),
    )
