"""Parameters that stationarity cannot explain: modules whose scale the network ignores.

If the logits do not change when a module's own parameters are scaled together (a convolution
followed by instance or batch normalisation, a normalisation layer whose output feeds another
normalised layer), Euler's theorem for degree-0 homogeneity gives
``<theta_m, grad_{theta_m} L(x, y)> = 0`` for every input and label. Every loss gradient is then
orthogonal to ``theta_m``, so no multipliers can make ``-sum_i lambda_i grad L_i`` point along
``theta_m``: its cosine with ``theta*`` on that module is zero whatever the support set, and the
cosine over all parameters is at most ``sqrt(1 - sum_m ||theta_m||^2 / ||theta||^2)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import jvp

from .._model_info import as_forward_args, cast_inputs
from .._model_state import eval_mode
from ._functional import call_functional

__all__ = ["ScaleInvariance", "cosine_bound", "scale_invariant_modules"]


@dataclass(frozen=True)
class ScaleInvariance:
    """Which modules' scale the logits ignore, and what that leaves stationarity.

    Attributes
    ----------
    modules : list of str
        Modules whose own parameters can be scaled together without changing the logits.
    param_names : list of str
        Their parameters: stationarity cannot hold on them.
    radial : dict of str to float
        For every module with parameters, ``||d f / d alpha||`` when its parameters are scaled by
        ``alpha`` at 1, relative to the largest finite such value over the modules (0:
        invariant; ``inf`` where the derivative is not finite, a module then kept free).
    max_cosine : float
        Upper bound on the stationarity cosine over all parameters:
        ``sqrt(1 - sum ||theta_m||^2 / ||theta||^2)`` over the invariant modules.
    free_param_names : list of str
        The other parameters: a scope where stationarity can hold (``param_names=``).
    """

    modules: list[str]
    param_names: list[str]
    radial: dict[str, float] = field(default_factory=dict)
    max_cosine: float = 1.0
    free_param_names: list[str] = field(default_factory=list)


def cosine_bound(theta: Mapping[str, Tensor], invariant: Sequence[str]) -> float:
    """``sqrt(1 - sum_{invariant} ||theta_p||^2 / ||theta||^2)``: the largest stationarity cosine
    over ``theta`` when the ``invariant`` parameters are orthogonal to every gradient.

    Parameters
    ----------
    theta : mapping of str to Tensor
        The parameters of the scope.
    invariant : sequence of str
        Names (keys of ``theta``) of the parameters no gradient can reach.

    Returns
    -------
    float
    """
    total = sum(float(v.double().pow(2).sum()) for v in theta.values())
    lost = sum(float(theta[p].double().pow(2).sum()) for p in invariant)
    return math.sqrt(max(1.0 - lost / total, 0.0)) if total > 0 else 0.0


def scale_invariant_modules(
    model: nn.Module, inputs: Tensor, rtol: float = 1e-3, additional_forward_args: Any = None
) -> ScaleInvariance:
    """Find the modules whose parameters the logits are invariant to scaling, on sample inputs.

    One forward-mode product (``torch.func.jvp``) per module with parameters: the tangent is
    the module's own parameters, so the product is the logits' derivative along scaling them.
    Where an operator has no forward-mode derivative (a fused kernel, such as the fast path of
    ``nn.TransformerEncoderLayer``), eight seeded reverse-mode products estimate every
    module's derivative at once (their mean square is its squared norm). A parameter shared by
    several modules (tied weights) is named once and scaled in all its uses.

    Parameters
    ----------
    model : nn.Module
        Returns logits ``(N, C)``. Only read: evaluated in eval mode, parameters untouched.
    inputs : Tensor of shape (N, *input_shape)
        A few samples (tens are enough).
    rtol : float, default=1e-3
        A module is invariant when its radial derivative is below ``rtol`` times the largest
        one. A normalisation's ``eps`` makes the invariance approximate (the derivative is then
        of the order of ``eps / variance``: 3e-6 to 1e-4 on the reference ConvNet), so exact
        zeros are not expected; a module near the threshold is reported in ``radial``.
    additional_forward_args : Any, optional
        Extra positional arguments of the forward.

    Returns
    -------
    ScaleInvariance

    Raises
    ------
    TypeError
        When ``model`` is not an ``nn.Module`` or ``inputs`` not a tensor.
    ValueError
        When ``inputs`` is empty or ``rtol`` is not in (0, 1).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(inputs, Tensor):
        raise TypeError(f"inputs must be a Tensor, got {type(inputs).__name__}")
    if len(inputs) == 0:
        raise ValueError("inputs must hold at least one sample")
    if isinstance(rtol, bool) or not isinstance(rtol, int | float) or not 0 < rtol < 1:
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    args = as_forward_args(additional_forward_args)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    first = next(iter(params.values()))
    x = cast_inputs(inputs, first.device, first.dtype)
    # a parameter shared by several modules (tied weights) has one name: the first module's
    canonical = {id(v): k for k, v in model.named_parameters()}
    owners: dict[str, list[str]] = {}
    for mod_name, module in model.named_modules():
        own = list(dict.fromkeys(canonical[id(v)] for _, v in module.named_parameters(recurse=False)))
        if own:
            owners[mod_name] = own
    with eval_mode(model):
        try:
            radial = _radial_by_jvp(model, params, buffers, owners, x, args)
        except NotImplementedError:  # an operator without forward-mode AD (e.g. a fused kernel)
            radial = _radial_by_projections(model, params, buffers, owners, x, args)
    # a non-finite derivative (NaN logits) is no evidence of invariance: that module stays free
    top = max((v for v in radial.values() if math.isfinite(v)), default=0.0)
    rel = {k: (math.inf if not math.isfinite(v) else v / top if top > 0 else 0.0) for k, v in radial.items()}
    invariant = [k for k, v in rel.items() if v < rtol]
    inv_params = list(dict.fromkeys(p for m in invariant for p in owners[m]))
    max_cos = cosine_bound(params, inv_params)
    return ScaleInvariance(
        modules=invariant,
        param_names=inv_params,
        radial=rel,
        max_cosine=max_cos,
        free_param_names=[p for p in params if p not in set(inv_params)],
    )


def _radial_by_jvp(model, params, buffers, owners, x, args) -> dict[str, float]:
    """``||d f / d alpha||`` per module, exactly: one forward-mode product per module."""
    radial: dict[str, float] = {}
    with torch.no_grad():

        def logits(theta):
            return call_functional(model, {**params, **theta}, buffers, (x, *args))

        for mod_name, names in owners.items():
            theta = {k: params[k] for k in names}
            _, d = jvp(logits, (theta,), (theta,))
            radial[mod_name] = float(d.double().norm())
    return radial


def _radial_by_projections(model, params, buffers, owners, x, args, probes: int = 8) -> dict[str, float]:
    """``||d f / d alpha||`` per module from reverse mode, for models without forward-mode AD.

    For ``u ~ N(0, I)`` over the logits, ``<grad_theta (u . f), theta_m> = u . (d f / d alpha_m)``,
    whose square has mean ``||d f / d alpha_m||^2``: ``probes`` backwards (seeded) estimate every
    module's radial derivative at once. Zero stays zero (up to rounding); the others are
    estimated to a factor of about 2, enough to tell invariance (``rtol``) from its absence.
    """
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    gen = torch.Generator(device=x.device).manual_seed(0)
    squares = dict.fromkeys(owners, 0.0)
    with torch.enable_grad():
        out = call_functional(model, theta, buffers, (x, *args))
        for k in range(probes):
            u = torch.randn(out.shape, generator=gen, device=out.device, dtype=out.dtype)
            grads = torch.autograd.grad(
                out, list(theta.values()), u, retain_graph=k < probes - 1, allow_unused=True
            )
            by_name = dict(zip(theta, grads, strict=True))
            for mod_name, names in owners.items():
                dot = sum(
                    float((by_name[p].double() * params[p].double()).sum())
                    for p in names
                    if by_name[p] is not None
                )
                squares[mod_name] += dot * dot
    return {m: math.sqrt(s / probes) for m, s in squares.items()}
