"""The DeepKKT loop: initial inputs, the multipliers, a checkpointable state, one step, a run.

Synthesis optimises inputs ``x`` and multiplier parameters ``rho`` together under a
:class:`~kktexplain.kkt.KKTObjective`. Everything a run depends on between two steps lives in
a :class:`SynthesisState` (inputs, ``rho``, the active set, the optimiser's moments, the
augmentation generator, the step and the history), so a run can be stopped and resumed.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ._checkpoint import check_fingerprint, fingerprint, load_checkpoint, save_checkpoint
from ._result import DSVResult
from .kkt import (
    Augmentation,
    FunctionalModel,
    KKTObjective,
    ObjectiveValue,
    kkt_residuals,
    predictive_entropy,
    weighted_loss_grad,
)

__all__ = [
    "Multipliers",
    "NonFiniteError",
    "SynthesisConfig",
    "SynthesisState",
    "lambda_scale",
    "synthesis_step",
    "synthesise",
]


class NonFiniteError(FloatingPointError):
    """A NaN or inf stopped synthesis.

    Attributes
    ----------
    step : int
        The step (0-based) whose evaluation produced it; no update of that step was applied.
    term : str
        The loss term (a key of ``history``) or the gradient that was not finite.
    result : DSVResult or None
        The partial result of the last good state (after ``step`` steps), marked
        ``settings["partial"] = True``; that state is also in the checkpoint, if one was given.
    """

    def __init__(self, step: int, term: str, result: DSVResult | None = None) -> None:
        super().__init__(
            f"non-finite value (NaN or inf) in {term!r} at step {step}: synthesis stopped; "
            f"the error's .result holds the state after the last good step ({step} steps done)"
        )
        self.step, self.term, self.result = step, term, result


def lambda_scale(
    setting: float | str, fmodel: FunctionalModel, x: Tensor, y: Tensor, objective: KKTObjective
) -> float:
    """The multipliers' scale ``s``: the setting, or with ``"auto"`` ``||theta*|| / ||sum_i grad L_i||``
    at the initial inputs (1 for a scale-free distance)."""
    if setting != "auto":
        return float(setting)
    if objective.scale_free:
        return 1.0
    g, _ = weighted_loss_grad(
        fmodel,
        x,
        y,
        torch.ones(len(x), device=x.device, dtype=x.dtype),
        objective.loss_fn(),
        create_graph=False,
    )
    g_norm = math.sqrt(sum(v.pow(2).sum().item() for v in g.values()))
    t_norm = math.sqrt(sum(v.pow(2).sum().item() for v in fmodel.target.values()))
    return t_norm / max(g_norm, 1e-12)


class Multipliers:
    """``lambda = s * f(rho)``, kept in ``[0, lambda_max]``.

    ``f`` is ``exp`` for ``dual="exp"`` and the identity for ``"clamp"`` and ``"prune"``.
    Non-negativity: ``exp`` is positive; ``"clamp"`` projects ``rho`` onto ``rho >= 0`` after
    every step; ``"prune"`` removes a candidate whose ``rho`` turns non-positive (its λ is zero
    from then on).

    The bound ``lambda_max`` has one mechanism: ``rho`` is projected onto ``rho <= rho_max =
    f^-1(lambda_max / s)`` after every step (:meth:`project_`), so a multiplier at the bound
    keeps its gradient and can leave it. :meth:`__call__` only removes the rounding of
    ``s * f(rho_max)``, which may exceed ``lambda_max`` by an ulp, as a constant (so the
    gradient is untouched).

    Parameters
    ----------
    dual : {"exp", "clamp", "prune"}
    scale : float
        ``s``.
    lambda_max : float, optional
    """

    def __init__(self, dual: str, scale: float, lambda_max: float | None = None) -> None:
        self.dual, self.scale, self.lambda_max = dual, scale, lambda_max
        self.rho_max: float | None = None
        if lambda_max is not None:
            bound = lambda_max / scale
            self.rho_max = math.log(bound) if dual == "exp" else bound

    @property
    def rho_init(self) -> float:
        """The starting ``rho``: ``lambda = s`` for every candidate."""
        return 0.0 if self.dual == "exp" else 1.0

    def __call__(self, rho: Tensor, active: Tensor) -> Tensor:
        """λ of shape ``(N,)`` from ``rho (N,)`` and the active set ``(N,)`` (zero where pruned)."""
        lam = self.scale * (rho.exp() if self.dual == "exp" else rho)
        if self.lambda_max is not None:
            lam = lam - (lam - self.lambda_max).clamp(min=0).detach()
        return lam * active

    @torch.no_grad()
    def project_(self, rho: Tensor, active: Tensor) -> None:
        """After a step: keep ``rho`` feasible (in place) and prune (``active`` in place)."""
        if self.dual == "clamp":
            rho.clamp_(min=0)
        elif self.dual == "prune":
            active &= rho > 0
            rho[~active] = 0
        if self.rho_max is not None:
            rho.clamp_(max=self.rho_max)


@dataclass(frozen=True)
class SynthesisConfig:
    """The settings of one synthesis run (resolved: no ``None`` schedule)."""

    dual: str
    lambda_scale: float | str
    lambda_max: float | None
    steps: int
    lr: float
    lr_lambda: float
    optimizer: str
    input_range: tuple[float, float] | None
    seed: int
    progress: bool


@dataclass
class SynthesisState:
    """Everything a run carries from one step to the next.

    Attributes
    ----------
    inputs : Tensor of shape (N, *input_shape)
        The candidates (a leaf that requires grad).
    rho : Tensor of shape (N,)
        The multipliers' parameters.
    active : Tensor of shape (N,), dtype bool
        ``False`` for pruned candidates.
    optimizer : torch.optim.Optimizer
        Over ``[inputs]`` and ``[rho]`` (two parameter groups).
    aug_generator : torch.Generator
        Draws the augmentations.
    scale : float
        The multipliers' scale ``s``.
    step : int
        Steps taken.
    history : dict of str to list of float
        One entry per step taken.
    """

    inputs: Tensor
    rho: Tensor
    active: Tensor
    optimizer: torch.optim.Optimizer
    aug_generator: torch.Generator
    scale: float
    step: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)

    def state_dict(self, history: bool = True) -> dict[str, Any]:
        """A copy of the state: tensors (on their device), the optimiser's per-parameter state, numbers.

        Parameters
        ----------
        history : bool, default=True
            Include (a copy of) the history. Without it, :meth:`load_state_dict` truncates the
            history it has to the step of the state (a cheap snapshot within a run).

        Returns
        -------
        dict
            ``inputs``, ``rho``, ``active``, ``optimizer`` (``{param index: {name: value}}``),
            ``aug_generator``, ``scale``, ``step`` and ``history``.
        """
        opt = self.optimizer.state_dict()["state"]
        return {
            "inputs": self.inputs.detach().clone(),
            "rho": self.rho.detach().clone(),
            "active": self.active.clone(),
            "optimizer": {
                int(i): {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in s.items()}
                for i, s in opt.items()
            },
            "aug_generator": self.aug_generator.get_state().clone(),
            "scale": float(self.scale),
            "step": int(self.step),
            **({"history": copy.deepcopy(self.history)} if history else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (shapes must match: same candidates, same model).

        Parameters
        ----------
        state : dict
            From :meth:`state_dict`.
        """
        for name in ("inputs", "rho", "active"):
            mine, theirs = getattr(self, name), state[name]
            if tuple(theirs.shape) != tuple(mine.shape):
                raise ValueError(
                    f"state {name!r} has shape {tuple(theirs.shape)}, expected {tuple(mine.shape)}"
                )
        with torch.no_grad():
            self.inputs.copy_(state["inputs"])
            self.rho.copy_(state["rho"])
            self.active.copy_(state["active"])
        full = self.optimizer.state_dict()
        full["state"] = {int(i): dict(s) for i, s in state["optimizer"].items()}
        self.optimizer.load_state_dict(full)
        self.aug_generator.set_state(state["aug_generator"])
        self.scale = float(state["scale"])
        self.step = int(state["step"])
        if "history" in state:
            self.history = copy.deepcopy(state["history"])
        else:
            self.history = {k: v[: self.step] for k, v in self.history.items() if v[: self.step]}


def init_state(x0: Tensor, multipliers: Multipliers, config: SynthesisConfig, scale: float) -> SynthesisState:
    """The state before the first step."""
    device = x0.device
    aug_gen = torch.Generator(device).manual_seed(config.seed + 1)
    x = x0.clone().requires_grad_(True)
    rho = torch.full((len(x0),), multipliers.rho_init, device=device, dtype=x0.dtype, requires_grad=True)
    active = torch.ones(len(x0), dtype=torch.bool, device=device)
    groups = [{"params": [x], "lr": config.lr}, {"params": [rho], "lr": config.lr_lambda}]
    opt = torch.optim.Adam(groups) if config.optimizer == "adam" else torch.optim.SGD(groups)
    return SynthesisState(x, rho, active, opt, aug_gen, scale)


def synthesis_step(
    state: SynthesisState,
    fmodel: FunctionalModel,
    labels: Tensor,
    objective: KKTObjective,
    augmentation: Augmentation | None,
    multipliers: Multipliers,
    input_range: tuple[float, float] | None,
) -> ObjectiveValue:
    """One DeepKKT step on ``state`` (in place): objective, backward, optimiser step, projections.

    Raises :class:`NonFiniteError` before the optimiser step if a loss term or a gradient is
    not finite (the inputs, ``rho`` and the optimiser are then untouched).
    """
    x, rho, active, opt = state.inputs, state.rho, state.active, state.optimizer
    lam = multipliers(rho, active)
    value = objective(fmodel, x, labels, lam, augmentation, state.aug_generator)
    for term, number in value.terms.items():
        if not math.isfinite(number):
            raise NonFiniteError(state.step, term)
    opt.zero_grad(set_to_none=True)
    value.total.backward()
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
    scale = lambda_scale(config.lambda_scale, fmodel, x0, labels, objective)
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
    run_id = fingerprint(settings, resolved, labels, x0, fmodel.target) if checkpoint else None
    if checkpoint is not None and checkpoint.exists():
        try:
            saved, saved_id = load_checkpoint(checkpoint)
        except ValueError as e:
            raise ValueError(f"checkpoint: {e}") from e
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
                synthesis_step(
                    state, fmodel, labels, objective, augmentation, multipliers, config.input_range
                )
            except BaseException:
                state.load_state_dict(before)
                raise
            bar.update(1)
            if callback is not None:
                callback(state.step - 1, {k: v[-1] for k, v in state.history.items()})
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
    if checkpoint is not None:
        save_checkpoint(checkpoint, state.state_dict(), run_id)
    return _result(fmodel, state, multipliers, labels, objective, indices, settings, start, stopped)


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
) -> DSVResult:
    lam = multipliers(state.rho, state.active).detach()
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
