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

from ._errors import NonFiniteError
from ._result import DSVResult
from .kkt import (
    CountSketch,
    FunctionalModel,
    KKTObjective,
    KroneckerSketch,
    collect_gradients,
    kkt_residuals,
    solve_multipliers,
)

__all__ = ["gather_gradients", "select"]


def gather_gradients(
    fmodel: FunctionalModel,
    candidates: Tensor,
    labels: Tensor,
    loss_fn,
    chunk_size: int,
    sketch: CountSketch | KroneckerSketch | None,
    progress: bool,
) -> tuple[Tensor, Tensor | None]:
    """All candidates' (sketched) per-sample gradients, sharded over processes if running distributed.

    Inside an initialised :mod:`torch.distributed` process group (e.g. under ``torchrun``;
    gloo on the CPU, nccl on GPUs), process ``r`` of ``W`` computes the rows
    ``[r * ceil(N / W), (r + 1) * ceil(N / W))`` with :func:`collect_gradients` and the rows are
    all-gathered, so every process holds the same ``(N, K)`` matrix and solves the same
    problem. Every process must pass the same candidates and settings (the sketch seed).

    Parameters
    ----------
    fmodel, candidates, labels, loss_fn, chunk_size, sketch, progress
        See :func:`kktexplain.kkt.collect_gradients`.

    Returns
    -------
    grads : Tensor of shape (N, P) or (N, K), on the CPU
    logits : Tensor of shape (N, C) or None
        The candidates' logits where the gradient pass computed them (the Kronecker sketch).
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return collect_gradients(
            fmodel, candidates, labels, loss_fn, chunk_size, sketch, progress=progress, return_logits=True
        )
    rank, world, n = dist.get_rank(), dist.get_world_size(), len(candidates)
    per = -(-n // world)
    start, stop = min(rank * per, n), min((rank + 1) * per, n)
    mine, logits = collect_gradients(
        fmodel,
        candidates,
        labels,
        loss_fn,
        chunk_size,
        sketch,
        rows=(start, stop),
        progress=progress,
        return_logits=True,
    )
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"

    def gather(rows: Tensor) -> Tensor:
        padded = torch.zeros(per, rows.shape[1], dtype=rows.dtype, device=device)
        padded[: len(rows)] = rows.to(device)
        parts = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        return torch.cat([part[: max(0, min(per, n - r * per))].cpu() for r, part in enumerate(parts)])

    # every process takes the same path, so all of them have logits or none has
    return gather(mine), (None if logits is None else gather(logits))


def select(
    fmodel: FunctionalModel,
    candidates: Tensor,
    labels: Tensor,
    objective: KKTObjective,
    *,
    projection_dim: int | None,
    sketch: str = "count",
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
    projection_dim, sketch, chunk_size, lambda_max, maximize_sum, ridge, seed, progress
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
    kind, sketch = sketch, None
    if projection_dim is not None and projection_dim < p:
        device = next(iter(fmodel.theta.values())).device
        if kind == "kronecker":
            sketch = KroneckerSketch(fmodel, projection_dim, seed=seed)
        else:
            sketch = CountSketch(p, projection_dim, seed=seed, device=device)
    target = torch.cat([v.flatten() for v in fmodel.target.values()])
    target = sketch(target[None])[0] if sketch is not None else target
    grads, logits = gather_gradients(
        fmodel, candidates, labels, objective.loss_fn(), chunk_size, sketch, progress
    )
    grad_seconds = time.perf_counter() - start
    for term, value in (("theta* (the model's parameters)", target), ("per-sample gradients", grads)):
        if not bool(torch.isfinite(value).all()):
            raise NonFiniteError(0, term, stage="selection")
    lam, info = solve_multipliers(
        grads, target.cpu(), upper=lambda_max, maximize_sum=maximize_sum, ridge=ridge, progress=progress
    )
    lam = lam.to(dtype)
    solve_seconds = time.perf_counter() - start - grad_seconds
    kkt = kkt_residuals(
        fmodel, candidates, labels, lam, objective.loss_fn(), chunk_size=max(chunk_size, 256), logits=logits
    )
    settings = dict(settings)
    settings.update(
        objective=objective.to_dict(),
        mode="selection",
        param_names=fmodel.names,
        solver=info,
        sketch_dim=None if sketch is None else sketch.out_features,
        sketch_kind=None if sketch is None else kind,
        gradient_seconds=grad_seconds,
        solve_seconds=solve_seconds,
        world_size=_world_size(),
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


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
