"""How well each DeepKKT condition holds for given inputs, labels and multipliers.

:func:`kkt_residuals` evaluates every condition exactly (no sketch, no augmentation), in
chunks, and returns them as :class:`KKTResiduals`. Every "cosine" it reports is a similarity
(1 is perfect stationarity), see :func:`kktexplain.kkt.stationarity_cosine`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._conditions import (
    cross_entropy,
    dual_feasibility,
    primal_feasibility,
    primal_margin,
    stationarity,
    stationarity_cosine,
)
from ._functional import FunctionalModel
from ._grads import LossFn, weighted_loss_grad
from ._priors import input_norm, total_variation
from ._rows import map_rows

__all__ = ["KKTResiduals", "kkt_residuals", "predictive_entropy", "residuals_from_sum", "stationarity_sum"]


def predictive_entropy(logits: Tensor) -> Tensor:
    """Predictive entropy (nats) of ``softmax(logits)``: large near the decision boundary.

    Parameters
    ----------
    logits : Tensor of shape (N, C)

    Returns
    -------
    Tensor of shape (N,)
    """
    logp = torch.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)


@dataclass
class KKTResiduals:
    """How well each DeepKKT condition holds at the end of a run.

    Per-sample attributes are tensors of shape ``(N,)``:

    Attributes
    ----------
    margin : Tensor
        ``Phi_y(x) - max_{c != y} Phi_c(x)``; positive means primal feasible.
    feasible : Tensor of bool
        Primal feasibility: classified as its (arg-max) label.
    primal_loss : Tensor
        The masked cross-entropy of Eq 7 (zero when feasible).
    entropy : Tensor
        Predictive entropy (nats); large near the decision boundary.
    dual_violation : Tensor
        ``max(0, -lambda)``.
    tv, norm : Tensor
        The manifold priors (total variation, mean squared value).
    stationarity : dict of str to float
        Set-level residuals between ``theta*`` and ``g = -sum_i lambda_i grad L_i``:
        ``cosine`` (the similarity cos(theta*, g), 1 is perfect), ``rel_l1`` (``||theta* -
        g||_1 / ||theta*||_1``, 0 is perfect), ``rel_l2``, ``l1`` (mean absolute residual, the
        paper's Eq 8), ``g_norm_ratio`` (``||g|| / ||theta*||``).
    per_layer_cosine : dict of str to float
        The similarity ``cos(theta*_l, g_l)`` for every parameter tensor ``l``.
    grad_sq_norm : Tensor or None
        ``||grad_theta L_i||^2`` in the scope, exact, where the run computed it on the way (a
        selection with ``multipliers="equal"`` in a scope of ``nn.Linear`` layers, without
        ``additional_forward_args``); ``None`` elsewhere.
    """

    margin: Tensor
    feasible: Tensor
    primal_loss: Tensor
    entropy: Tensor
    dual_violation: Tensor
    tv: Tensor
    norm: Tensor
    stationarity: dict[str, float] = field(default_factory=dict)
    per_layer_cosine: dict[str, float] = field(default_factory=dict)
    grad_sq_norm: Tensor | None = None

    @property
    def feasibility_rate(self) -> float:
        """Fraction of samples that are primal feasible."""
        return self.feasible.float().mean().item()

    def summary(self) -> dict[str, float]:
        """Scalar summary: feasibility rate, mean entropy, stationarity residuals."""
        return {
            "feasibility_rate": self.feasibility_rate,
            "mean_entropy": self.entropy.mean().item(),
            "mean_margin": self.margin.mean().item(),
            **{f"stationarity_{k}": v for k, v in self.stationarity.items()},
        }


def kkt_residuals(
    fmodel: FunctionalModel,
    inputs: Tensor,
    labels: Tensor,
    lambdas: Tensor,
    loss_fn: LossFn | None = None,
    chunk_size: int = 1024,
    logits: Tensor | None = None,
    progress: bool = False,
) -> KKTResiduals:
    """Every DeepKKT residual of given inputs, labels and multipliers (exact, chunked).

    Parameters
    ----------
    fmodel : FunctionalModel
    inputs : Tensor of shape (N, *input_shape)
        May live on the CPU; chunks go to the model's device.
    labels : Tensor of shape (N,) or (N, C)
    lambdas : Tensor of shape (N,)
    loss_fn : callable, optional
        Per-sample loss of the stationarity sum; cross-entropy when omitted.
    chunk_size : int, default=1024
        Samples per forward/backward, to bound memory.
    logits : Tensor of shape (N, C), optional
        The inputs' logits if already computed (selection's gradient pass): a sparse ``lambdas``
        then needs no forward over the samples outside its support.
    progress : bool, default=False
        A progress bar over the chunks of the backward pass.

    Returns
    -------
    KKTResiduals
        Per-sample tensors on the CPU.
    """
    with tqdm(desc="KKT residuals", unit="chunk", disable=not progress, leave=False) as bar:
        g, logits = stationarity_sum(fmodel, inputs, labels, lambdas, loss_fn, chunk_size, logits, bar=bar)
    return residuals_from_sum(fmodel, inputs, labels, lambdas, g, logits)


def stationarity_sum(
    fmodel: FunctionalModel,
    inputs: Tensor,
    labels: Tensor,
    lambdas: Tensor,
    loss_fn: LossFn | None = None,
    chunk_size: int = 1024,
    logits: Tensor | None = None,
    bar: Any = None,
) -> tuple[dict[str, Tensor], Tensor]:
    """``sum_i lambda_i grad L_i`` (no graph) and the inputs' logits, chunk by chunk.

    The pass behind :func:`kkt_residuals`; parameters as there. ``bar``: a progress bar
    (``tqdm``) advanced by one per chunk of the backward pass, if given.

    Returns
    -------
    grad_sum : dict of str to Tensor
        Shaped as ``fmodel.target``.
    logits : Tensor of shape (N, C), on the CPU
    """
    loss_fn = cross_entropy if loss_fn is None else loss_fn
    if logits is not None and (logits.ndim != 2 or len(logits) != len(inputs)):
        raise ValueError(f"logits must have shape (N, C) with N = {len(inputs)}, got {tuple(logits.shape)}")
    device = next(iter(fmodel.theta.values())).device
    g: dict[str, Tensor] = {k: torch.zeros_like(v) for k, v in fmodel.target.items()}
    nonzero = torch.nonzero(lambdas.detach().cpu() != 0).flatten()
    # a sparse solution over many samples (selection): a sample with lambda = 0 adds nothing
    # to the sum, so the backward runs over the support only and the logits come from one
    # no-grad forward. Under four chunks the saving is small and the sums keep their order.
    sparse = 2 * len(nonzero) < len(inputs) and len(inputs) > 4 * chunk_size
    grad_rows = nonzero if sparse else torch.arange(len(inputs))
    chunks = []
    if sparse and logits is not None:
        chunks.append(logits.detach().cpu())
    elif sparse:
        with torch.no_grad():
            for start in range(0, len(inputs), chunk_size):
                chunks.append(fmodel(inputs[start : start + chunk_size].to(device)).cpu())
    if bar is not None and bar.total is None:
        bar.reset(total=-(-len(grad_rows) // chunk_size))
    for start in range(0, len(grad_rows), chunk_size):
        rows = grad_rows[start : start + chunk_size]
        gc, logits = weighted_loss_grad(
            fmodel,
            inputs[rows].to(device),
            labels[rows].to(device),
            lambdas[rows].to(device),
            loss_fn,
            create_graph=False,
        )
        for k in g:
            g[k] += gc[k]
        if not sparse:
            chunks.append(logits.detach().cpu())
        if bar is not None:
            bar.update(1)
    return g, torch.cat(chunks)


def residuals_from_sum(
    fmodel: FunctionalModel,
    inputs: Tensor,
    labels: Tensor,
    lambdas: Tensor,
    g: dict[str, Tensor],
    logits: Tensor,
) -> KKTResiduals:
    """The residuals from a computed stationarity sum and the inputs' logits (no pass).

    Parameters
    ----------
    fmodel : FunctionalModel
    inputs : Tensor of shape (N, *input_shape)
    labels : Tensor of shape (N,) or (N, C)
    lambdas : Tensor of shape (N,)
    g : dict of str to Tensor
        ``sum_i lambda_i grad L_i``, one tensor per parameter of the scope.
    logits : Tensor of shape (N, C)

    Returns
    -------
    KKTResiduals
    """
    logits = logits.detach().cpu()
    labels, lambdas = labels.cpu(), lambdas.cpu()
    theta = fmodel.target
    t_norm = math.sqrt(sum(v.pow(2).sum().item() for v in theta.values()))
    g_norm = math.sqrt(sum(v.pow(2).sum().item() for v in g.values()))
    stat = {
        # the similarity of stationarity_cosine, with the subtraction done in float64
        "cosine": 1.0 - stationarity(theta, g, "cosine").item(),
        "rel_l1": stationarity(theta, g, "rel_l1").item(),
        "rel_l2": stationarity(theta, g, "rel_l2").item(),
        "l1": stationarity(theta, g, "l1").item(),
        "g_norm_ratio": g_norm / max(t_norm, 1e-12),
    }
    layer = stationarity_cosine(theta, g, per_layer=True)
    y = labels if labels.ndim == 1 else labels.argmax(-1)
    inputs = inputs.detach().cpu()
    if inputs.is_floating_point():
        tv, norm = map_rows(total_variation, inputs), map_rows(input_norm, inputs)  # in blocks
    else:  # token ids: the priors act on continuous inputs and do not apply
        tv = norm = torch.zeros(len(inputs), dtype=logits.dtype)
    return KKTResiduals(
        margin=primal_margin(logits, labels),
        feasible=(logits.argmax(-1) == y) & torch.isfinite(logits).all(-1),  # NaN rows: infeasible
        primal_loss=primal_feasibility(logits, labels, "masked_ce"),
        entropy=predictive_entropy(logits),
        dual_violation=dual_feasibility(lambdas),
        tv=tv,
        norm=norm,
        stationarity=stat,
        per_layer_cosine={k: v.item() for k, v in zip(theta, layer)},
    )
