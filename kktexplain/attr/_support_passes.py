"""The passes over a support set behind :class:`~kktexplain.attr.SupportExpansion`.

Each reads the expansion's functional model, support set, scope, loss and chunk size and
returns what one of its properties keeps: the cache of λ-weighted (sketched) per-sample
gradients, the direction ``-sum_j λ_j grad L_j`` alone (one weighted backward per chunk), or
the squared norms alone (one per-sample pass that keeps nothing else).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._model_info import cast_inputs
from .._model_state import eval_mode
from ..kkt import CountSketch, iter_per_sample_grads, weighted_loss_grad
from ..kkt._collect import auto_sketch_dim

if TYPE_CHECKING:
    from ._expansion import SupportExpansion

__all__ = ["build_cache", "direction_pass", "norms_pass"]


@contextmanager
def _forward_args_hint(has_args: bool, what: str = "the support set") -> Iterator[None]:
    """Name the usual cause when the model's forward pass fails with a ``TypeError`` about an
    argument: the arguments it takes beyond its inputs were not given."""
    try:
        yield
    except TypeError as e:
        if has_args or "argument" not in str(e):
            raise
        raise TypeError(
            f"the model's forward pass over {what} failed ({e}): a model that takes "
            "arguments beyond its inputs needs those the support set was computed with, as "
            "additional_forward_args= (SupportVectorInfluence, SupportExpansion) or "
            "support_forward_args= (SupportVectorAttribution)"
        ) from e


def _check_rows_finite(g: Tensor, sl: Any) -> None:
    """Raise naming the support rows (of a chunk ``g`` at ``sl``) whose gradients are not finite."""
    finite = torch.isfinite(g).all(1)
    if not bool(finite.all()):
        start = sl.start if isinstance(sl, slice) else 0
        bad = (start + (~finite).nonzero().flatten()[:5]).tolist()
        raise ValueError(
            f"the support gradients are NaN or inf (rows {bad} of the support): check "
            "the loss_fn, the model and the support set's inputs"
        )


def build_cache(exp: SupportExpansion) -> dict[str, Any]:
    """The λ-weighted (sketched) gradients ``-λ_j grad L_j`` of the rows ``exp.rows`` ``(S, K)``,
    their exact squared norms ``(S,)``, the exact direction and the sketch (or ``None``)."""
    rows = exp.rows
    p = exp.fmodel.num_params
    dim = exp.projection_dim
    if dim == "auto":
        dim = auto_sketch_dim(len(rows), p)
    sketch = None if dim is None or dim >= p else CountSketch(p, dim, seed=exp.seed, device=exp.device)
    x = exp.support.inputs[rows]
    y = exp.support.labels[rows]
    lam = exp.support.lambdas[rows].to(exp.device, exp.dtype)
    sq_norms = []
    # one preallocated matrix, written chunk by chunk: no list of chunks to concatenate
    grads = torch.empty(len(rows), p if sketch is None else dim, dtype=exp.dtype, device=exp.device)
    direction = {k: torch.zeros_like(v) for k, v in exp.fmodel.theta.items()}
    with eval_mode(exp.model), _forward_args_hint(bool(exp.args)):
        chunks = iter_per_sample_grads(exp.fmodel, x, y, exp.chunk_size, exp.loss_fn, None)
        bar = tqdm(
            chunks,
            total=-(-len(rows) // exp.chunk_size),
            desc="support gradients",
            disable=not exp.progress,
            leave=False,
        )
        for sl, g in bar:
            sq_norms.append(g.pow(2).sum(1))
            g = -lam[sl, None] * g
            # the exact direction theta_hat = -sum_j lambda_j grad L_j, from the same rows
            offset = 0
            total = g.sum(0)
            for _k, v in direction.items():
                v += total[offset : offset + v.numel()].view_as(v)
                offset += v.numel()
            g = g if sketch is None else sketch(g)
            _check_rows_finite(g, sl)  # one chunk at a time, not the whole matrix
            grads[sl] = g
    return {
        "grads": grads,
        "sq_norms": torch.cat(sq_norms) if sq_norms else torch.zeros(0),
        "direction": direction,
        "sketch": sketch,
    }


def direction_pass(exp: SupportExpansion, rows: Tensor | None = None) -> dict[str, Tensor]:
    """``-sum_j λ_j grad L_j`` over ``rows`` of the support set (default ``exp.rows``, with the
    expansion's progress bar), one weighted backward per chunk, as a dict of the scope's
    parameter shapes."""
    whole = rows is None
    rows = exp.rows if whole else rows
    total = {k: torch.zeros_like(v) for k, v in exp.fmodel.theta.items()}
    with eval_mode(exp.model), _forward_args_hint(bool(exp.args)):
        starts = range(0, len(rows), exp.chunk_size)
        quiet = not (whole and exp.progress)
        for i in tqdm(starts, desc="support direction", disable=quiet, leave=False):
            idx = rows[i : i + exp.chunk_size]
            g, _ = weighted_loss_grad(
                exp.fmodel,
                cast_inputs(exp.support.inputs[idx], exp.device, exp.dtype),
                exp.support.labels[idx].to(exp.device),
                exp.support.lambdas[idx].to(exp.device, exp.dtype),
                exp.loss_fn,
                create_graph=False,
            )
            for k, v in g.items():
                total[k] -= v
    flat = torch.cat([v.flatten() for v in total.values()]) if total else torch.zeros(0)
    if not bool(torch.isfinite(flat).all()):
        raise ValueError(
            "the support gradients are NaN or inf: check the loss_fn, the model and the support set's inputs"
        )
    return total


def norms_pass(exp: SupportExpansion) -> Tensor:
    """``||grad L_j||^2`` of the rows ``exp.rows``, shape ``(S,)``, on the CPU; memory
    ``chunk_size x P``."""
    rows = exp.rows
    out = []
    with eval_mode(exp.model), _forward_args_hint(bool(exp.args)):
        x, y = exp.support.inputs[rows], exp.support.labels[rows]
        chunks = iter_per_sample_grads(exp.fmodel, x, y, exp.chunk_size, exp.loss_fn, None)
        total = -(-len(rows) // exp.chunk_size)
        for sl, g in tqdm(
            chunks, total=total, desc="support gradient norms", disable=not exp.progress, leave=False
        ):
            _check_rows_finite(g, sl)
            out.append(g.pow(2).sum(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=exp.dtype)
