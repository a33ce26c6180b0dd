"""The DeepKKT conditions as small pure functions.

Every function here is free of state and of the explainer: it takes tensors and returns
per-sample tensors (or, for stationarity, per-parameter-tensor values, since stationarity is a
condition on the whole set of candidates rather than on one sample).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "hard_labels",
    "cross_entropy",
    "multiclass_hinge",
    "primal_feasibility",
    "primal_margin",
    "dual_feasibility",
    "stationarity_per_layer",
    "stationarity",
    "stationarity_cosine",
    "STATIONARITY_DISTANCES",
    "PRIMAL_KINDS",
]

PRIMAL_KINDS = ("masked_ce", "ce")
STATIONARITY_DISTANCES = ("l1", "rel_l1", "l2sq", "rel_l2", "cosine", "cosine_norm")


def hard_labels(labels: Tensor) -> Tensor:
    """Class indices of hard ``(N,)`` or soft ``(N, C)`` labels.

    Parameters
    ----------
    labels : Tensor of shape (N,) or (N, C)
        Integer class indices, or rows of class probabilities.

    Returns
    -------
    Tensor of shape (N,), dtype long
        ``labels`` itself when hard, ``labels.argmax(-1)`` when soft.
    """
    return labels if labels.ndim == 1 else labels.argmax(-1)


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-sample cross-entropy for hard or soft labels.

    Parameters
    ----------
    logits : Tensor of shape (N, C)
    labels : Tensor of shape (N,) or (N, C)
        Class indices, or class probabilities (rows summing to one).

    Returns
    -------
    Tensor of shape (N,)
        ``-log softmax(logits)[y]``, or ``-sum_c y_c log softmax(logits)_c`` for soft labels.
    """
    if labels.ndim == 1:
        return F.cross_entropy(logits, labels, reduction="none")
    return -(labels * F.log_softmax(logits, dim=-1)).sum(-1)


def multiclass_hinge(logits: Tensor, labels: Tensor, margin: float = 1.0) -> Tensor:
    """Per-sample multiclass hinge loss ``max(0, margin - (Phi_y - max_{c != y} Phi_c))``.

    For two classes with logits ``(-f/2, f/2)`` this is the SVM's ``max(0, 1 - y f)``.

    Parameters
    ----------
    logits : Tensor of shape (N, C)
    labels : Tensor of shape (N,) or (N, C)
        Soft labels are reduced to their arg-max.
    margin : float, default=1.0
        The hinge point. A value slightly above 1 keeps the samples that lie on the margin up
        to numerical tolerance in the active set.

    Returns
    -------
    Tensor of shape (N,)
    """
    return torch.relu(margin - primal_margin(logits, labels))


def primal_feasibility(
    logits: Tensor, labels: Tensor, kind: str = "masked_ce", epsilon: float = 0.0
) -> Tensor:
    """Per-sample primal-feasibility loss (paper Eq 7 and Algorithm 1).

    Parameters
    ----------
    logits : Tensor of shape (N, C)
    labels : Tensor of shape (N,) or (N, C)
    kind : {"masked_ce", "ce"}, default="masked_ce"
        ``"masked_ce"`` is the paper's Eq 7: the cross-entropy of samples whose arg-max is not
        their label, and zero for the others (a hinge-like loss that stops pushing once a sample
        is classified as its label). ``"ce"`` is the plain cross-entropy of Algorithm 1.
    epsilon : float, default=0.0
        Margin ``eps`` of Eq 3 for ``"masked_ce"``: a sample is masked (counts as feasible)
        only once ``Phi_y - max_{c != y} Phi_c > eps``. ``0`` is Eq 7 (arg-max equals label).

    Returns
    -------
    Tensor of shape (N,)
        The loss of each sample; average it for Eq 7, sum it for Algorithm 1.
    """
    ce = cross_entropy(logits, labels)
    if kind == "ce":
        return ce
    if kind != "masked_ce":
        raise ValueError(f"kind must be one of {PRIMAL_KINDS}, got {kind!r}")
    if epsilon > 0:
        feasible = primal_margin(logits, labels) > epsilon
    else:
        feasible = logits.argmax(-1) == hard_labels(labels)
    return torch.where(feasible, torch.zeros_like(ce), ce)


def primal_margin(logits: Tensor, labels: Tensor) -> Tensor:
    """Multiclass margin ``Phi_y(x) - max_{c != y} Phi_c(x)`` (paper Eq 3).

    Parameters
    ----------
    logits : Tensor of shape (N, C)
    labels : Tensor of shape (N,) or (N, C)
        Soft labels are reduced to their arg-max.

    Returns
    -------
    Tensor of shape (N,)
        Positive where the sample is primal feasible (classified as its label).
    """
    y = hard_labels(labels)
    own = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return own - others.max(-1).values


def dual_feasibility(lambdas: Tensor) -> Tensor:
    """Per-sample violation of dual feasibility ``lambda_i >= 0``.

    Parameters
    ----------
    lambdas : Tensor of shape (N,)

    Returns
    -------
    Tensor of shape (N,)
        ``max(0, -lambda_i)``: zero where the condition holds.
    """
    return torch.relu(-lambdas)


def _layer_value(theta: Tensor, g: Tensor, distance: str) -> Tensor:
    r = theta + g
    if distance == "l1":
        return r.abs().mean()
    if distance == "rel_l1":
        return r.abs().sum() / theta.abs().sum().clamp_min(1e-12)
    if distance == "l2sq":
        return r.pow(2).sum()
    if distance == "rel_l2":
        return r.norm() / theta.norm().clamp_min(1e-12)
    if distance == "cosine":
        return 1.0 + F.cosine_similarity(theta.flatten(), g.flatten(), dim=0, eps=1e-12)
    if distance == "cosine_norm":
        ratio = g.norm().clamp_min(1e-12) / theta.norm().clamp_min(1e-12)
        return 1.0 + F.cosine_similarity(theta.flatten(), g.flatten(), dim=0, eps=1e-12) + ratio.log() ** 2
    raise ValueError(f"distance must be one of {STATIONARITY_DISTANCES}, got {distance!r}")


def stationarity_per_layer(
    theta: Mapping[str, Tensor], grad_sum: Mapping[str, Tensor], distance: str = "l1"
) -> Tensor:
    """Per-parameter-tensor distance between ``theta*`` and ``-sum_i lambda_i grad L_i``.

    Parameters
    ----------
    theta : mapping of str to Tensor
        The trained parameters ``theta*``, one entry per parameter tensor.
    grad_sum : mapping of str to Tensor
        ``g = sum_i lambda_i grad_theta L(Phi(x_i), y_i)`` with the same keys and shapes.
    distance : {"l1", "rel_l1", "l2sq", "rel_l2", "cosine", "cosine_norm"}, default="l1"
        With ``r = theta + g`` (zero when stationarity holds):
        ``"l1"`` is ``mean|r|`` (the paper's "l1 averaged per parameter"), ``"rel_l1"`` is
        ``sum|r| / sum|theta|``, ``"l2sq"`` is ``||r||^2`` (Algorithm 1), ``"rel_l2"`` is
        ``||r|| / ||theta||``, ``"cosine"`` is the cosine *distance* ``1 - cos(theta, -g)`` (0 is
        perfect; the reported cosine, :func:`stationarity_cosine`, is the similarity) and
        ``"cosine_norm"`` is
        ``1 - cos(theta, -g) + log(||g|| / ||theta||)^2``: direction and magnitude separately,
        so a poorly aligned ``g`` is not rewarded for shrinking (as ``"l1"``/``"l2sq"`` do).

    Returns
    -------
    Tensor of shape (L,)
        One value per entry of ``theta`` (in its order).
    """
    return torch.stack([_layer_value(theta[k], grad_sum[k], distance) for k in theta])


def stationarity(
    theta: Mapping[str, Tensor],
    grad_sum: Mapping[str, Tensor],
    distance: str = "l1",
    per_layer: bool = False,
) -> Tensor:
    """Stationarity residual ``D(theta*, -sum_i lambda_i grad L_i)`` (paper Eq 8).

    Parameters
    ----------
    theta, grad_sum : mapping of str to Tensor
        See :func:`stationarity_per_layer`.
    distance : str, default="l1"
        See :func:`stationarity_per_layer`.
    per_layer : bool, default=False
        ``False`` treats all parameters as one vector (the paper's reading: the l1 distance is
        averaged over every parameter). ``True`` computes the distance per parameter tensor and
        averages those, so that small layers weigh as much as large ones.

    Returns
    -------
    Tensor of shape ()
    """
    if per_layer:
        return stationarity_per_layer(theta, grad_sum, distance).mean()
    keys = list(theta)
    flat_t = torch.cat([theta[k].flatten() for k in keys])
    flat_g = torch.cat([grad_sum[k].flatten() for k in keys])
    return _layer_value(flat_t, flat_g, distance)


def stationarity_cosine(
    theta: Mapping[str, Tensor], grad_sum: Mapping[str, Tensor], per_layer: bool = False
) -> Tensor:
    """Cosine *similarity* ``cos(theta*, -sum_i lambda_i grad L_i)``: 1 is perfect stationarity.

    This is what every reported "cosine" means (``DSVResult.kkt.stationarity["cosine"]``,
    ``kkt.per_layer_cosine``, ``history["cosine"]``). The objective's ``distance="cosine"`` is
    the matching distance ``1 - stationarity_cosine`` (0 is perfect).

    Parameters
    ----------
    theta, grad_sum : mapping of str to Tensor
        See :func:`stationarity_per_layer`.
    per_layer : bool, default=False
        One value per parameter tensor instead of one for all parameters as a single vector.

    Returns
    -------
    Tensor of shape () or (L,)
    """
    if per_layer:
        return 1.0 - stationarity_per_layer(theta, grad_sum, "cosine")
    return 1.0 - stationarity(theta, grad_sum, "cosine")
