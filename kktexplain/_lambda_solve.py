"""The exact multiplier step of synthesis: λ given the inputs, solved as selection solves it.

With the inputs fixed, stationarity is a bounded non-negative least-squares problem in λ,
``min_{0 <= λ <= lambda_max} || theta* + sum_i λ_i grad L_i ||``, whose solution is also the
λ of largest cosine ``cos(theta*, -sum_i λ_i grad L_i)`` (the projection of ``theta*`` on the
cone of the negated gradients). Synthesis can replace its gradient steps on λ by this solve
every few steps (``DeepSupportVectors(lambda_solve_every=k)``): the inputs then move towards
the multipliers that best explain ``theta*`` rather than towards the ones a few Adam steps on
``rho`` reached (docs/residuals.md).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._errors import NonFiniteError
from ._multipliers import Multipliers
from ._state import SynthesisState
from .kkt import CountSketch, FunctionalModel, KKTObjective, collect_gradients, solve_multipliers
from .kkt._collect import auto_sketch_dim
from .kkt._rows import rows_all_finite

__all__ = ["exact_multipliers", "set_multipliers_"]
# A multiplier the solve sets to zero keeps this fraction of the largest one under dual="exp",
# whose parametrisation cannot reach zero; its term in the stationarity sum is then negligible.
_EXP_FLOOR = 1e-6


def exact_multipliers(
    fmodel: FunctionalModel,
    inputs: Tensor,
    labels: Tensor,
    objective: KKTObjective,
    active: Tensor,
    lambda_max: float | None,
    chunk_size: int,
    seed: int,
    step: int,
) -> Tensor:
    """The multipliers of least stationarity residual for fixed inputs.

    Parameters
    ----------
    fmodel : FunctionalModel
        Its ``target`` (``theta*``, or the displacement) and scope define the problem.
    inputs : Tensor of shape (N, *input_shape)
    labels : Tensor of shape (N,) or (N, C)
    objective : KKTObjective
        Only its per-sample loss is used.
    active : Tensor of shape (N,), dtype bool
        Pruned candidates (``False``) get λ = 0 and take no part in the solve.
    lambda_max : float, optional
        Upper bound of every λ.
    chunk_size : int
        Samples per per-sample-gradient call.
    seed : int
        Seed of the CountSketch, used when the exact gradients would exceed 1 GiB.
    step : int
        The synthesis step, for the error message.

    Returns
    -------
    Tensor of shape (N,)
        On the inputs' device and dtype; zero for inactive candidates.

    Raises
    ------
    NonFiniteError
        If a per-sample gradient or ``theta*`` is not finite.
    """
    rows = torch.nonzero(active.cpu()).flatten()
    lam = torch.zeros(len(inputs), dtype=inputs.dtype, device=inputs.device)
    if len(rows) == 0:
        return lam
    p = fmodel.num_params
    # exact up to 1 GiB, sketched beyond: the rule of the explanations' cache
    dim = auto_sketch_dim(len(rows), p)
    sketch = None
    if dim is not None and dim < p:
        sketch = CountSketch(p, dim, seed=seed, device=next(iter(fmodel.theta.values())).device)
    idx = rows.to(inputs.device)
    grads = collect_gradients(
        fmodel, inputs.detach()[idx], labels[idx], objective.loss_fn(), chunk_size, sketch
    )
    target = torch.cat([v.detach().flatten() for v in fmodel.target.values()])
    target = (target if sketch is None else sketch(target[None])[0]).cpu()
    # in blocks of rows, as selection checks them: torch.isfinite would copy the whole matrix
    for term, value in (
        ("per-sample gradients (exact λ step)", grads),
        ("theta* (exact λ step)", target[None]),
    ):
        if not bool(rows_all_finite(value).all()):
            raise NonFiniteError(step, term)
    solved, _ = solve_multipliers(grads.double(), target.double(), upper=lambda_max)
    lam[idx] = solved.to(lam.device, lam.dtype)
    return lam


@torch.no_grad()
def set_multipliers_(state: SynthesisState, multipliers: Multipliers, lam: Tensor) -> None:
    """Set ``state.rho`` (in place) so that ``multipliers(rho, active)`` gives ``lam``.

    ``dual="exp"`` cannot express zero: a zero multiplier gets ``1e-6`` of the largest one.
    ``"clamp"`` and ``"prune"`` take ``lam`` as is, and ``"prune"`` then prunes the zeros, as
    it prunes any multiplier that reaches zero. The optimiser's moments of ``rho`` are reset,
    since they belong to the multipliers before the solve. Nothing changes where every
    multiplier is zero (``theta*`` has no positive component along any gradient).

    Parameters
    ----------
    state : SynthesisState
    multipliers : Multipliers
    lam : Tensor of shape (N,)
    """
    top = float(lam.max()) if len(lam) else 0.0
    if not math.isfinite(top) or top <= 0:
        return
    ratio = lam / multipliers.scale
    if multipliers.dual == "exp":
        value = ratio.clamp(min=_EXP_FLOOR * top / multipliers.scale).log()
    else:
        value = ratio
    active = state.active
    state.rho[active] = value[active].to(state.rho.dtype)
    state.optimizer.state.pop(state.rho, None)
    multipliers.project_(state.rho, active)
