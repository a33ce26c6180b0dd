"""The DeepKKT loop: the multipliers' scale, one step, a run (resumable), its result.

Synthesis optimises inputs ``x`` and multiplier parameters ``rho`` together under a
:class:`~kktexplain.kkt.KKTObjective`. Everything a run depends on between two steps lives in
a :class:`~kktexplain._state.SynthesisState` (inputs, ``rho``, the active set, the optimiser's
moments, the augmentation generator, the step and the history), so a run can be stopped and
resumed. The multipliers are :class:`~kktexplain._multipliers.Multipliers`; a step over chunks
of candidates is :func:`~kktexplain._chunked.chunked_objective_backward`.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._checkpoint import check_fingerprint, fingerprint, load_checkpoint, save_checkpoint
from ._chunked import chunked_objective_backward, gradient_sum
from ._errors import NonFiniteError
from ._lambda_solve import exact_multipliers, set_multipliers_
from ._multipliers import Multipliers
from ._result import DSVResult
from ._state import SynthesisConfig, SynthesisState, init_state
from .kkt import (
    Augmentation,
    FunctionalModel,
    KKTObjective,
    ObjectiveValue,
    kkt_residuals,
    predictive_entropy,
)
from .kkt._functional import second_order_hint

_SECOND_ORDER_ADVICE = (
    "score real samples with selection instead (attribute(model, candidates=X, labels=y): "
    "first derivatives only), restrict the scope to parameters after that operation "
    "(param_names=), or replace it (nn.Hardswish has a second derivative)"
)

__all__ = [
    "Multipliers",
    "NonFiniteError",
    "SynthesisConfig",
    "SynthesisState",
    "chunked_objective_backward",
    "init_state",
    "lambda_scale",
    "synthesis_step",
    "synthesise",
]


def lambda_scale(
    setting: float | str,
    fmodel: FunctionalModel,
    x: Tensor,
    y: Tensor,
    objective: KKTObjective,
    batch_size: int | None = None,
) -> float:
    """The multipliers' scale ``s``: the setting, or with ``"auto"`` ``||theta*|| / ||sum_i grad L_i||``
    at the initial inputs (1 for a scale-free distance); the sum is taken in chunks of
    ``batch_size`` when that is smaller than ``len(x)``.

    Raises
    ------
    NonFiniteError
        If the initial gradient sum is not finite (step 0, term ``"lambda_scale"``).
    ValueError
        If it is zero: the loss does not depend on the scope's parameters.
    """
    if setting != "auto":
        return float(setting)
    if objective.scale_free:
        return 1.0
    ones = torch.ones(len(x), device=x.device, dtype=x.dtype)
    g = gradient_sum(fmodel, x, y, ones, objective.loss_fn(), batch_size)[0]
    g_norm = math.sqrt(sum(v.pow(2).sum().item() for v in g.values()))
    t_norm = math.sqrt(sum(v.pow(2).sum().item() for v in fmodel.target.values()))
    if not math.isfinite(g_norm):
        raise NonFiniteError(0, "lambda_scale (the initial gradient sum)")
    if g_norm <= 1e-12 * max(t_norm, 1.0):
        raise ValueError(
            "the loss gives the scope's parameters no gradient (the starting inputs' gradient "
            f"sum is {g_norm:.3g}): no multiplier can reach stationarity in this scope; choose "
            "parameters the logits depend on (param_names=), or a scale-free objective"
        )
    return t_norm / g_norm


def _set_learning_rates(state: SynthesisState, config: SynthesisConfig) -> None:
    """The step sizes of step ``state.step``: constant, or a half cosine from ``lr`` to 0.

    Computed from the step number alone (not accumulated), so a resumed run takes the same
    steps as an uninterrupted one.
    """
    factor = 1.0
    if config.lr_schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * state.step / max(config.steps, 1)))
    groups = state.optimizer.param_groups
    groups[0]["lr"] = config.lr * factor
    groups[1]["lr"] = config.lr_lambda * factor


def synthesis_step(
    state: SynthesisState,
    fmodel: FunctionalModel,
    labels: Tensor,
    objective: KKTObjective,
    augmentation: Augmentation | None,
    multipliers: Multipliers,
    input_range: tuple[float, float] | None,
    batch_size: int | None = None,
) -> ObjectiveValue:
    """One DeepKKT step on ``state`` (in place): objective, backward, optimiser step, projections.

    With ``batch_size`` smaller than the number of candidates the objective and its gradients
    are computed chunk by chunk (:func:`chunked_objective_backward`); otherwise in one batch.

    Raises :class:`NonFiniteError` before the optimiser step if a loss term or a gradient is
    not finite (the inputs, ``rho`` and the optimiser are then untouched).
    """
    x, rho, active, opt = state.inputs, state.rho, state.active, state.optimizer
    lam = multipliers(rho, active)
    if batch_size is not None and batch_size < len(x):
        opt.zero_grad(set_to_none=True)
        value = chunked_objective_backward(
            objective, fmodel, x, labels, lam, augmentation, state.aug_generator, batch_size, state.step
        )
    else:
        value = objective(fmodel, x, labels, lam, augmentation, state.aug_generator)
        for term, number in value.terms.items():
            if not math.isfinite(number):
                raise NonFiniteError(state.step, term)
        opt.zero_grad(set_to_none=True)
        # only the inputs and rho: without ``inputs=`` autograd would also accumulate the
        # (discarded) second-order gradients of the parameter copies, about 10% of the step
        value.total.backward(inputs=[t for t in (x, rho) if t.requires_grad])
    x.grad[~active] = 0
    for term, grad in (("gradient of the inputs", x.grad), ("gradient of rho", rho.grad)):
        if grad is not None and not bool(torch.isfinite(grad).all()):
            raise NonFiniteError(state.step, term)
    frozen = None if bool(active.all()) else x.detach()[~active].clone()
    opt.step()
    with torch.no_grad():
        if frozen is not None:
            # a zero gradient does not stop Adam (its momentum carries on): put the pruned
            # inputs back where they were frozen
            x[~active] = frozen
        multipliers.project_(rho, active)
        if input_range is not None:
            x.clamp_(*input_range)
        # the step itself can overflow (a step size too large for the dtype, exp of a large
        # rho): the caller puts back the state before the step and keeps it as the result
        for term, after in (
            ("inputs after the step", x),
            ("multipliers after the step", multipliers(rho, active)),
        ):
            if not bool(torch.isfinite(after).all()):
                raise NonFiniteError(state.step, term)
    _record(state.history, value, labels, lam, active)
    state.step += 1
    return value


def _record(history: dict[str, list[float]], value, labels: Tensor, lam: Tensor, active: Tensor) -> None:
    y = labels if labels.ndim == 1 else labels.argmax(-1)
    row = dict(value.terms)
    row["entropy"] = predictive_entropy(value.logits).mean().item()
    row["feasibility"] = (value.logits.argmax(-1) == y).float().mean().item()
    if value.augmented_logits is not None:
        row["feasibility_aug"] = (value.augmented_logits.argmax(-1) == y).float().mean().item()
    row["lambda_mean"] = lam.detach().mean().item()
    row["n_active"] = float(active.sum().item())
    for k, v in row.items():
        history.setdefault(k, []).append(v)


def synthesise(
    fmodel: FunctionalModel,
    x0: Tensor,
    labels: Tensor,
    objective: KKTObjective,
    augmentation: Augmentation | None,
    config: SynthesisConfig,
    indices: Tensor | None,
    settings: dict[str, Any],
    checkpoint: Path | None = None,
    checkpoint_every: int | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> DSVResult:
    """Run synthesis from ``x0`` (or resume it from ``checkpoint``) and return the DSVs.

    Parameters
    ----------
    fmodel : FunctionalModel
    x0 : Tensor of shape (N, *input_shape)
        On the model's device and dtype.
    labels : Tensor of shape (N,) or (N, C)
    objective : KKTObjective
    augmentation : Augmentation or None
    config : SynthesisConfig
    indices : Tensor of shape (N,) or None
        Rows of the initialisation data, stored in the result.
    settings : dict
        The explainer's settings and what was inferred; completed and stored in the result.
    checkpoint : Path, optional
        Resume from this file if it exists (its run must have the same settings, labels,
        initial inputs and model); write the state to it every ``checkpoint_every`` steps, when
        interrupted, when stopped by a non-finite value, and at the end.
    checkpoint_every : int, optional
    callback : callable, optional
        ``callback(step, row)`` after every step, with the 0-based step and its history row.

    Returns
    -------
    DSVResult
        ``settings["partial"]`` is True when a ``KeyboardInterrupt`` stopped the run
        (``settings["stopped"]`` says at which step); the checkpoint then holds that state.

    Raises
    ------
    NonFiniteError
        A loss term or gradient was not finite; ``.result`` holds the last good state.
    """
    scale = lambda_scale(config.lambda_scale, fmodel, x0, labels, objective, config.batch_size)
    multipliers = Multipliers(config.dual, scale, config.lambda_max)
    state = init_state(x0, multipliers, config, scale)
    resolved = {
        "lr": config.lr,
        "objective": objective.to_dict(),
        "augmentation": None if augmentation is None else vars(augmentation),
        "lambda_scale_value": scale,
    }
    settings = dict(settings)
    settings.update(
        steps=config.steps,
        lr=config.lr,
        objective=resolved["objective"],
        lambda_scale_value=scale,
        augmentation=resolved["augmentation"],
    )
    state_tensors = [*fmodel.theta.values(), *fmodel.fixed.values(), *fmodel.buffers.values()]
    run_id = (
        fingerprint(settings, resolved, labels, x0, fmodel.target, state_tensors, fmodel.args)
        if checkpoint
        else None
    )
    if checkpoint is not None and checkpoint.exists():
        saved, saved_id = load_checkpoint(checkpoint)
        check_fingerprint(saved_id, run_id, checkpoint)
        if saved["step"] > config.steps:
            raise ValueError(
                f"steps={config.steps} is fewer than the {saved['step']} steps already in checkpoint "
                f"{str(checkpoint)!r}"
            )
        state.load_state_dict(saved)
        settings["resumed_from_step"] = state.step
    start = time.perf_counter()
    stopped: dict[str, Any] | None = None
    bar = tqdm(
        total=config.steps, initial=state.step, desc="DeepKKT", disable=not config.progress, leave=False
    )
    try:
        while state.step < config.steps:
            before = state.state_dict(history=False)  # the last good state, if this step fails
            try:
                # every forward runs attention on its math kernel (call_functional), whose double
                # backward the step takes; an operation with none is named
                _set_learning_rates(state, config)
                with second_order_hint("synthesis", _SECOND_ORDER_ADVICE):
                    synthesis_step(
                        state,
                        fmodel,
                        labels,
                        objective,
                        augmentation,
                        multipliers,
                        config.input_range,
                        config.batch_size,
                    )
                k = config.lambda_solve_every
                if k is not None and state.step % k == 0 and state.step < config.steps:
                    _solve(state, fmodel, labels, objective, multipliers, config)
            except BaseException:
                state.load_state_dict(before)
                raise
            bar.update(1)
            if callback is not None:
                try:
                    callback(state.step - 1, {k: v[-1] for k, v in state.history.items()})
                except Exception as e:  # the user's code failed, not the step: keep the steps done
                    if checkpoint is not None:
                        save_checkpoint(checkpoint, state.state_dict(), run_id)
                    e.add_note(
                        f"kktexplain: the callback raised after step {state.step}; "
                        + (
                            f"the state after it is in checkpoint {str(checkpoint)!r} (run again to resume)"
                            if checkpoint is not None
                            else "pass checkpoint= to keep the steps done when a callback fails"
                        )
                    )
                    raise
            if checkpoint is not None and checkpoint_every and state.step % checkpoint_every == 0:
                save_checkpoint(checkpoint, state.state_dict(), run_id)
    except KeyboardInterrupt:
        stopped = {"reason": "interrupted", "step": state.step}
    except NonFiniteError as e:
        stopped = {"reason": "non-finite", "step": e.step, "term": e.term}
        if checkpoint is not None:
            save_checkpoint(checkpoint, state.state_dict(), run_id)
        e.result = _result(fmodel, state, multipliers, labels, objective, indices, settings, start, stopped)
        raise
    finally:
        bar.close()
    final = None
    if config.lambda_solve_every is not None and stopped is None:
        # the last solve, after the last step: the result reports these λ as solved (through
        # rho, exp's rounding would move them by about 1e-7 relative, which an ill-conditioned
        # solution does not tolerate: docs/defaults.md)
        try:
            final = _solve(state, fmodel, labels, objective, multipliers, config)
        except NonFiniteError as e:
            stopped = {"reason": "non-finite", "step": e.step, "term": e.term}
            e.result = _result(
                fmodel, state, multipliers, labels, objective, indices, settings, start, stopped
            )
            raise
    if checkpoint is not None:
        save_checkpoint(checkpoint, state.state_dict(), run_id)
    return _result(fmodel, state, multipliers, labels, objective, indices, settings, start, stopped, final)


def _solve(
    state: SynthesisState,
    fmodel: FunctionalModel,
    labels: Tensor,
    objective: KKTObjective,
    multipliers: Multipliers,
    config: SynthesisConfig,
) -> Tensor:
    """The exact λ step: solve λ for the current inputs, set ``rho`` to it, return the solution."""
    lam = exact_multipliers(
        fmodel,
        state.inputs,
        labels,
        objective,
        state.active,
        config.lambda_max,
        config.chunk_size,
        config.seed,
        state.step,
    )
    set_multipliers_(state, multipliers, lam)
    return lam  # zero where inactive, so also where "prune" has just pruned a zero


def _result(
    fmodel: FunctionalModel,
    state: SynthesisState,
    multipliers: Multipliers,
    labels: Tensor,
    objective: KKTObjective,
    indices: Tensor | None,
    settings: dict[str, Any],
    start: float,
    stopped: dict[str, Any] | None,
    lambdas: Tensor | None = None,
) -> DSVResult:
    lam = multipliers(state.rho, state.active).detach() if lambdas is None else lambdas.detach()
    x = state.inputs.detach()
    kkt = kkt_residuals(fmodel, x, labels, lam, objective.loss_fn())
    settings = dict(settings)
    settings.update(
        seconds=time.perf_counter() - start,
        mode="synthesis",
        param_names=fmodel.names,
        partial=stopped is not None,
    )
    if stopped is not None:
        settings["stopped"] = stopped
    return DSVResult(
        inputs=x.cpu(),
        labels=labels.cpu(),
        lambdas=lam.cpu(),
        kkt=kkt,
        history=copy.deepcopy(state.history),
        active=state.active.cpu(),
        settings=settings,
        indices=indices,
    )
