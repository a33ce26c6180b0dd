"""The multipliers ``lambda = s * f(rho)`` of synthesis: non-negativity and the bound ``lambda_max``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["Multipliers"]


class Multipliers:
    """``lambda = s * f(rho)``, kept in ``[0, lambda_max]``.

    ``f`` is ``exp`` for ``dual="exp"`` and the identity for ``"clamp"`` and ``"prune"``.
    Non-negativity: ``exp`` is positive; ``"clamp"`` projects ``rho`` onto ``rho >= 0`` after
    every step; ``"prune"`` removes a candidate whose ``rho`` turns non-positive (its λ is zero
    from then on).

    The bound ``lambda_max`` has one mechanism, the projection ``P(rho) = min(rho, rho_max)``
    with ``rho_max`` (:meth:`rho_max`) the largest number of ``rho``'s dtype that is at most
    ``f^-1(lambda_max / s)`` and whose ``s * f(rho_max)`` does not exceed ``lambda_max`` in that
    dtype (so rounding cannot lift a multiplier at the bound above it). :meth:`project_` applies
    ``P`` in place after every step, so a multiplier at the bound keeps its gradient and can
    leave it. The starting ``rho`` has not been projected yet (``rho_init`` may lie above
    ``rho_max`` when ``lambda_max < s``): :meth:`__call__` evaluates ``s * f(P(rho))`` with the
    gradient of ``s * f(rho)`` (straight through), which changes nothing once ``rho`` has been
    projected.

    Parameters
    ----------
    dual : {"exp", "clamp", "prune"}
    scale : float
        ``s``.
    lambda_max : float, optional
    """

    def __init__(self, dual: str, scale: float, lambda_max: float | None = None) -> None:
        self.dual, self.scale, self.lambda_max = dual, scale, lambda_max
        self._rho_max: dict[torch.dtype, float] = {}

    @property
    def rho_init(self) -> float:
        """The starting ``rho``: ``lambda = s`` for every candidate."""
        return 0.0 if self.dual == "exp" else 1.0

    def _value(self, rho: Tensor) -> Tensor:
        return self.scale * (rho.exp() if self.dual == "exp" else rho)

    def rho_max(self, dtype: torch.dtype) -> float | None:
        """The bound on ``rho`` in ``dtype`` (``None`` without ``lambda_max``).

        Starts from ``f^-1(lambda_max / s)`` rounded to ``dtype`` and steps down one ulp while
        ``s * f(rho_max)`` exceeds ``lambda_max`` rounded to ``dtype`` (checked on a vector long
        enough to take both the vectorised and the scalar path of the elementwise kernels).
        """
        if self.lambda_max is None:
            return None
        if dtype not in self._rho_max:
            bound = self.lambda_max / self.scale
            r = torch.tensor(math.log(bound) if self.dual == "exp" else bound, dtype=dtype)
            limit = torch.tensor(self.lambda_max, dtype=dtype)
            down = torch.tensor(-math.inf, dtype=dtype)
            while bool((self._value(r.expand(17)) > limit).any()):
                r = torch.nextafter(r, down)
            self._rho_max[dtype] = r.item()
        return self._rho_max[dtype]

    def __call__(self, rho: Tensor, active: Tensor) -> Tensor:
        """λ of shape ``(N,)`` from ``rho (N,)`` and the active set ``(N,)`` (zero where pruned)."""
        lam = self._value(rho)
        rho_max = self.rho_max(rho.dtype)
        if rho_max is not None:  # the value of P(rho), exactly; the gradient of rho (straight through)
            lam = self._value(rho.detach().clamp(max=rho_max)) + (lam - lam.detach())
        return lam * active

    @torch.no_grad()
    def project_(self, rho: Tensor, active: Tensor) -> None:
        """After a step: keep ``rho`` feasible (in place) and prune (``active`` in place)."""
        if self.dual == "clamp":
            rho.clamp_(min=0)
        elif self.dual == "prune":
            active &= rho > 0
            rho[~active] = 0
        rho_max = self.rho_max(rho.dtype)
        if rho_max is not None:
            rho.clamp_(max=rho_max)
