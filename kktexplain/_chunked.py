"""Sums of weighted per-sample loss gradients over chunks of candidates, and the chunked step.

A synthesis step with ``batch_size`` smaller than the number of candidates computes the
objective and its gradients chunk by chunk (:func:`chunked_objective_backward`): the memory of
one chunk's double backward, the step of the full batch up to the order of the float sums.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._errors import NonFiniteError
from .kkt import (
    Augmentation,
    FunctionalModel,
    KKTObjective,
    ObjectiveValue,
    input_norm,
    primal_feasibility,
    stationarity,
    stationarity_cosine,
    total_variation,
    weighted_loss_grad,
)

__all__ = ["chunked_objective_backward", "gradient_sum"]


def _chunks(n: int, batch_size: int | None) -> list[slice]:
    size = n if batch_size is None or batch_size >= n else batch_size
    return [slice(i, min(i + size, n)) for i in range(0, n, max(size, 1))]


def gradient_sum(
    fmodel: FunctionalModel, x: Tensor, y: Tensor, weights: Tensor, loss_fn, batch_size: int | None
) -> tuple[dict[str, Tensor], Tensor]:
    """``sum_i w_i grad L_i`` (no graph) and the logits (detached), chunk by chunk.

    Parameters
    ----------
    fmodel : FunctionalModel
    x : Tensor of shape (N, *input_shape)
    y : Tensor of shape (N,) or (N, C)
    weights : Tensor of shape (N,)
    loss_fn : callable
        Per-sample loss ``(logits, labels) -> (n,)``.
    batch_size : int or None
        Candidates per chunk; ``None`` or ``>= N``: one batch.

    Returns
    -------
    grad_sum : dict of str to Tensor
        Shaped as the parameters.
    logits : Tensor of shape (N, C)
    """
    if batch_size is None or batch_size >= len(x):
        g, logits = weighted_loss_grad(fmodel, x, y, weights, loss_fn, create_graph=False)
        return g, logits.detach()
    total: dict[str, Tensor] = {}  # the first chunk's sum, then the running sum (never empty after)
    logits = []
    for rows in _chunks(len(x), batch_size):
        g, lg = weighted_loss_grad(fmodel, x[rows], y[rows], weights[rows], loss_fn, create_graph=False)
        total = {k: total[k] + g[k] for k in g} if total else g
        logits.append(lg.detach())
    return total, torch.cat(logits)


def chunked_objective_backward(
    objective: KKTObjective,
    fmodel: FunctionalModel,
    inputs: Tensor,
    labels: Tensor,
    lambdas: Tensor,
    augmentation: Augmentation | None,
    generator: torch.Generator | None,
    batch_size: int,
    step: int = 0,
) -> ObjectiveValue:
    """The objective's value and its gradients, ``batch_size`` candidates at a time.

    The stationarity distance ``D(theta*, g)`` depends on the sum ``g = sum_i lambda_i grad
    L_i`` over all candidates, so it cannot be split into per-chunk losses. Instead, for each
    view (clean, augmented):

    1. ``g`` is accumulated chunk by chunk without a graph, with the logits;
    2. ``v = dD/dg`` is taken at that ``g`` (a parameter-sized vector);
    3. chunk by chunk, ``<v, g_chunk(x, lambda)>`` plus the chunk's share of the primal loss is
       backpropagated with the double backward. By the chain rule its gradient in the chunk's
       inputs and multipliers is exactly the full objective's.

    The gradients are accumulated into ``inputs.grad`` and into the graph of ``lambdas`` (so
    ``rho.grad``); the priors are computed on all inputs at once (they need no model). Memory
    is one chunk's double backward; time is one extra forward and backward per chunk.

    Parameters
    ----------
    objective : KKTObjective
    fmodel : FunctionalModel
    inputs : Tensor of shape (N, *input_shape)
        A leaf that requires grad.
    labels : Tensor of shape (N,) or (N, C)
    lambdas : Tensor of shape (N,)
        Differentiable in the multipliers' parameters.
    augmentation : Augmentation or None
    generator : torch.Generator or None
        Draws the augmentation of all ``N`` inputs at once, as the unchunked objective does.
    batch_size : int
    step : int, default=0
        For the :class:`NonFiniteError` raised (before any backward) if a term is not finite.

    Returns
    -------
    ObjectiveValue
        ``total`` is detached (the backward has been done); ``terms`` and logits as
        :class:`~kktexplain.kkt.KKTObjective` returns them.
    """
    loss_fn = objective.loss_fn()
    n = len(inputs)
    lam_leaf = lambdas.detach().requires_grad_(True)
    terms: dict[str, float] = {}
    total = 0.0
    views = []  # (view inputs (leaf or graph), leaf, v, weight)

    def first_pass(view: Tensor) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor]:
        g, logits = gradient_sum(fmodel, view.detach(), labels, lam_leaf.detach(), loss_fn, batch_size)
        g_leaf = {k: t.detach().requires_grad_(True) for k, t in g.items()}
        with torch.enable_grad():
            stat = stationarity(fmodel.target, g_leaf, objective.distance, objective.per_layer)
        dg = torch.autograd.grad(stat, list(g_leaf.values()), allow_unused=True)
        v = {k: torch.zeros_like(g[k]) if d is None else d for k, d in zip(g_leaf, dg)}
        primal = primal_feasibility(logits, labels, objective.primal_kind, objective.epsilon)
        primal = primal.mean() if objective.primal_reduction == "mean" else primal.sum()
        cos = stationarity_cosine(fmodel.target, g)
        return stat.detach(), v, primal, logits, cos

    logits_aug = None
    if objective.clean > 0:
        stat, v, primal, logits, cos = first_pass(inputs)
        total += objective.clean * (objective.stationarity * stat.item() + objective.primal * primal.item())
        terms.update(stationarity=stat.item(), primal=primal.item(), cosine=cos.item())
        views.append((inputs, inputs, v, objective.clean))
    else:
        with torch.no_grad():
            logits = torch.cat([fmodel(inputs[rows]) for rows in _chunks(n, batch_size)])
    if objective.augmented > 0 and augmentation is not None and augmentation.enabled:
        x_aug = augmentation(inputs, generator)
        stat_a, v_a, primal_a, logits_aug, cos_a = first_pass(x_aug)
        total += objective.augmented * (
            objective.stationarity * stat_a.item() + objective.primal * primal_a.item()
        )
        terms.update(stationarity_aug=stat_a.item(), primal_aug=primal_a.item())
        terms.setdefault("cosine", cos_a.item())
        views.append((x_aug, x_aug.detach().requires_grad_(True), v_a, objective.augmented))
    prior = inputs.new_zeros(())
    if objective.tv > 0:
        tv = total_variation(inputs, objective.tv_p).mean()
        prior = prior + objective.tv * tv
        terms["tv"] = tv.item()
    if objective.norm > 0:
        nrm = input_norm(inputs, objective.norm_p).mean()
        prior = prior + objective.norm * nrm
        terms["norm"] = nrm.item()
    total += prior.item()
    terms["total"] = total
    for term, number in terms.items():
        if not math.isfinite(number):
            raise NonFiniteError(step, term)
    denominator = n if objective.primal_reduction == "mean" else 1
    for _view, leaf, v, weight in views:
        for rows in _chunks(n, batch_size):
            g, lg = weighted_loss_grad(fmodel, leaf[rows], labels[rows], lam_leaf[rows], loss_fn)
            inner = sum((v[k] * g[k]).sum() for k in g)
            primal_c = primal_feasibility(lg, labels[rows], objective.primal_kind, objective.epsilon).sum()
            chunk_loss = weight * (objective.stationarity * inner + objective.primal * primal_c / denominator)
            # the parameter copies' second-order gradients are not needed: skip them
            chunk_loss.backward(inputs=[leaf, lam_leaf] if leaf.requires_grad else [lam_leaf])
    outputs, grads = [prior], [torch.ones_like(prior)]
    for view, leaf, _, _ in views:
        if view is not leaf and leaf.grad is not None:
            outputs.append(view)
            grads.append(leaf.grad)
    if lam_leaf.grad is not None and lambdas.requires_grad:
        outputs.append(lambdas)
        grads.append(lam_leaf.grad)
    outputs_grads = [(o, g) for o, g in zip(outputs, grads) if o.requires_grad]
    if outputs_grads:
        torch.autograd.backward([o for o, _ in outputs_grads], [g for _, g in outputs_grads])
    return ObjectiveValue(torch.tensor(total, dtype=inputs.dtype), terms, logits.detach(), logits_aug)
