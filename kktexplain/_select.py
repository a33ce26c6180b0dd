"""Selection: fixed (real) candidates, their multipliers solved from stationarity.

The per-sample gradients are collected with :func:`kktexplain.kkt.collect_gradients`
(optionally sketched), the bounded non-negative least-squares problem is solved once with
:func:`kktexplain.kkt.solve_multipliers`, and the exact residuals are measured.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ._equal import equal_multiplier
from ._errors import NonFiniteError, candidate_rows_hint
from ._gather import gather_gradients
from ._model_info import cast_inputs
from ._result import DSVResult
from ._warn import warn_user
from .kkt import (
    CountSketch,
    FunctionalModel,
    KKTObjective,
    KroneckerSketch,
    kkt_residuals,
    solve_multipliers,
)
from .kkt._columns import GradientFile
from .kkt._residuals import KKTResiduals
from .kkt._rows import rows_all_finite

__all__ = ["select"]


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
    multipliers: str = "fit",
    refit_dim: int | None = None,
    offload_dir: Path | None = None,
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
    multipliers : {"fit", "equal"}, default="fit"
        ``"fit"`` solves the non-negative least squares; ``"equal"`` gives every candidate the
        one multiplier that best fits stationarity (:func:`equal_multiplier`), with no
        per-sample gradients.
    refit_dim : int, optional
        With a sketch: re-solve the multipliers of the support found in the sketch from a
        second, wider :class:`~kktexplain.kkt.CountSketch` (``refit_dim`` dimensions, seed
        ``seed + 1``; exact when ``refit_dim`` reaches the parameter count) computed for the
        support rows only.
    offload_dir : Path, optional
        Keep the gradient matrix in a temporary file in this folder and solve by streaming
        over it (:class:`~kktexplain.kkt._columns.GradientFile`); removed at the end.
    settings : dict
        The explainer's settings and what was inferred; completed and stored in the result.

    Returns
    -------
    DSVResult
        ``inputs`` are the candidates, ``lambdas (N,)`` the solved multipliers.
    """
    start = time.perf_counter()
    dtype = next(iter(fmodel.theta.values())).dtype
    candidates = cast_inputs(candidates, candidates.device, dtype)
    if multipliers == "equal":
        return _select_equal(
            fmodel, candidates, labels, objective, chunk_size, lambda_max, settings, start, progress
        )
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
        fmodel, candidates, labels, objective.loss_fn(), chunk_size, sketch, progress, offload_dir
    )
    grad_seconds = time.perf_counter() - start
    # the bound, ridge and tie-break of every solve (the refit's second one too)
    solve_options = dict(upper=lambda_max, maximize_sum=maximize_sum, ridge=ridge, progress=progress)
    try:
        if _nonfinite_rows(target):
            raise NonFiniteError(0, "theta* (the model's parameters)", stage="selection")
        bad = _nonfinite_rows(grads)
        if bad:
            raise NonFiniteError(
                0,
                "per-sample gradients",
                stage="selection",
                hint=candidate_rows_hint("loss or its gradient", bad),
            )
        lam, info = solve_multipliers(grads, target.cpu(), rtol=_sketch_rtol(sketch), **solve_options)
    finally:
        if isinstance(grads, GradientFile):
            grads.close()
    del grads
    if refit_dim is not None and sketch is not None:
        lam, info = _refit(
            fmodel,
            candidates,
            labels,
            objective,
            lam,
            info,
            refit_dim,
            chunk_size,
            seed,
            solve_options,
        )
    lam = lam.to(dtype)
    solve_seconds = time.perf_counter() - start - grad_seconds
    kkt = kkt_residuals(
        fmodel,
        candidates,
        labels,
        lam,
        objective.loss_fn(),
        chunk_size=chunk_size,
        logits=logits,
        progress=progress,
    )
    record = dict(
        solver=info,
        sketch_dim=None if sketch is None else sketch.out_features,
        sketch_kind=None if sketch is None else kind,
        gradient_seconds=grad_seconds,
        solve_seconds=solve_seconds,
    )
    return _selection_result(fmodel, candidates, labels, lam, kkt, objective, settings, record, start)


def _refit(
    fmodel: FunctionalModel,
    candidates: Tensor,
    labels: Tensor,
    objective: KKTObjective,
    lam: Tensor,
    info: dict,
    refit_dim: int,
    chunk_size: int,
    seed: int,
    solve_options: dict[str, Any],
) -> tuple[Tensor, dict]:
    """Re-solve the multipliers of the support ``lam > 0`` from a wider sketch of its rows only.

    The second solve has the first's ``solve_options`` (bound, ridge, tie-break, progress).

    The narrow sketch over every candidate picks the support; its multipliers fit the sketch,
    not ``theta*``. The support's rows are few (at most the narrow sketch's width), so their
    gradients can be sketched far wider, and the problem restricted to them solved again.
    """
    start = time.perf_counter()
    support = torch.nonzero(lam > 0).flatten()
    p = fmodel.num_params
    wide = None if refit_dim >= p else CountSketch(p, refit_dim, seed=seed + 1, device=_device(fmodel))
    target = torch.cat([v.flatten() for v in fmodel.target.values()])
    target = wide(target[None])[0] if wide is not None else target
    grads, _ = gather_gradients(
        fmodel,
        candidates[support],
        labels[support],
        objective.loss_fn(),
        chunk_size,
        wide,
        solve_options["progress"],
    )
    sub, sub_info = solve_multipliers(grads, target.cpu(), rtol=_sketch_rtol(wide), **solve_options)
    out = torch.zeros_like(lam)
    out[support] = sub.to(lam.dtype)
    info = dict(info)
    info["screen_residual"] = info.get("residual")
    info["residual"] = sub_info["residual"]
    # the λ returned are the refit's: so is their largest term (the warning reads it)
    info["screen_largest_term"] = info.get("largest_term")
    info["largest_term"] = sub_info.get("largest_term", 0.0)
    info["refit"] = {
        "dim": None if wide is None else wide.out_features,
        "n_rows": int(len(support)),
        "seconds": time.perf_counter() - start,
        **{k: v for k, v in sub_info.items() if k != "n_zero_gradient"},
    }
    return out, info


def _nonfinite_rows(value: Tensor | GradientFile) -> list[int]:
    """The rows holding a NaN or inf, in blocks of rows (``torch.isfinite`` copies ``|value|``)."""
    rows = value.per_row(rows_all_finite) if isinstance(value, GradientFile) else rows_all_finite(value)
    return (~rows).nonzero().flatten().tolist()


def _sketch_rtol(sketch: Any) -> float:
    """The working-set tolerance: ``1 / sqrt(K)`` for a ``K``-dimensional sketch, 1e-5 when exact.

    A sketch keeps inner products only to about ``1 / sqrt(K)``; fitting below that fits its
    error (measured: docs/selection.md, "Two stages").
    """
    return 1e-5 if sketch is None else 1.0 / math.sqrt(sketch.out_features)


def _device(fmodel: FunctionalModel) -> torch.device:
    return next(iter(fmodel.theta.values())).device


def _select_equal(
    fmodel: FunctionalModel,
    candidates: Tensor,
    labels: Tensor,
    objective: KKTObjective,
    chunk_size: int,
    lambda_max: float | None,
    settings: dict[str, Any],
    start: float,
    progress: bool,
) -> DSVResult:
    """Selection with one shared multiplier (``multipliers="equal"``): one pass, no solve."""
    c, kkt = equal_multiplier(
        fmodel,
        candidates,
        labels,
        objective.loss_fn(),
        chunk_size,
        upper=lambda_max,
        progress=progress,
    )
    lam = torch.full((len(candidates),), c, dtype=kkt.margin.dtype)
    record = dict(
        solver={"solver": "equal", "multiplier": c, "residual": kkt.stationarity["rel_l2"]},
        sketch_dim=None,
        sketch_kind=None,
        gradient_seconds=time.perf_counter() - start,
        solve_seconds=0.0,
    )
    return _selection_result(fmodel, candidates, labels, lam, kkt, objective, settings, record, start)


def _selection_result(
    fmodel: FunctionalModel,
    candidates: Tensor,
    labels: Tensor,
    lam: Tensor,
    kkt: KKTResiduals,
    objective: KKTObjective,
    settings: dict[str, Any],
    record: dict[str, Any],
    start: float,
) -> DSVResult:
    """The result of a selection: every candidate, its λ and residuals, and what was run."""
    _warn_degenerate(lam, kkt)
    _warn_cancelling(record.get("solver") or {}, lam.dtype)
    settings = dict(settings)
    settings.update(
        objective=objective.to_dict(),
        mode="selection",
        param_names=fmodel.names,
        **record,
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


def _warn_degenerate(lam: Tensor, kkt: KKTResiduals) -> None:
    """Say when a selection cannot mean much: every candidate's logit margin exceeds 20
    (saturated logits: cross-entropy and its gradient below about e^-20 ~ 2e-9, so λ is 0 or
    astronomically large), or every λ is 0."""
    margin = kkt.margin.double()
    flat, support = margin > 20, lam > 0
    saturated, rest = flat & support, ~flat & support
    if len(margin) and bool(flat.all()):
        warn_user(
            f"every candidate's logit margin exceeds 20 (min {float(margin.min()):.3g}): the logits "
            "are saturated and the per-sample gradients vanish, so the multipliers are 0 or "
            f"meaninglessly large (max λ {float(lam.max()):.3g}), as for inputs of another scale "
            "than the model was trained on (pixels 0-255 for a model trained on 0-1, "
            "unnormalised features) or a model trained to zero loss on them; check the "
            "candidates' scale and normalisation"
        )
    elif bool(saturated.any()) and bool(rest.any()):
        top, typical = float(lam[saturated].max()), float(lam[rest].median())
        if top > 100 * typical:
            warn_user(
                f"{int(saturated.sum())} of the samples with λ > 0 have saturated logits (margin "
                f"above 20: their gradients nearly vanish) and λ up to {top:.3g}, against a median "
                f"{typical:.3g} for the others: their λ says how small their gradient is, not how "
                "much the model leans on them; rank by the size of a sample's term λ‖∇L‖ "
                "rather than by λ, or cap λ with lambda_max"
            )
    elif len(lam) and not bool((lam != 0).any()):
        warn_user(
            "every λ of the selection is 0: no non-negative combination of the candidates' "
            "gradients points along theta* in this scope (see the stationarity residual and "
            "kkt_readiness)"
        )


def _warn_cancelling(info: dict, dtype: torch.dtype) -> None:
    """Say when the fitted terms ``λ_j ∇L_j`` cancel each other beyond the gradients'
    precision: the largest is so large that ``dtype``'s rounding of it exceeds ``1e-3 ||theta*||``
    (above 8.4e3 ``||theta*||`` in float32). Rounding, not the model, then sets those λ: exactly
    dependent gradients (one input under several labels: ``sum_c p_c grad L(x, c) = 0``) leave
    the fit blind along the dependence. (Terms of a few or a hundred times ``||theta*||`` are
    ordinary: opposite classes' gradients cancel in part, as a linear SVM's do.)"""
    largest = float(info.get("largest_term", 0.0))
    eps = torch.finfo(dtype).eps
    if largest * eps > 1e-3:
        warn_user(
            f"the selection's terms cancel each other beyond the gradients' precision: the "
            f"largest, λ_j‖∇L_j‖, is {largest:.3g} times ‖theta*‖, and {dtype}'s rounding of it "
            f"({largest * eps:.1g} ‖theta*‖) decides those λ rather than the model (e.g. the same "
            "input under two labels, whose gradients weighted by the model's probabilities sum "
            "to 0); such λ do not rank the samples: remove duplicates from the candidates, bound "
            "or spread λ (lambda_max=, multipliers='ridge'), or select on a float64 copy of the "
            "model"
        )


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
