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
    input_norm,
    kkt_residuals,
    predictive_entropy,
    primal_feasibility,
    stationarity,
    stationarity_cosine,
    total_variation,
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

    def __init__(
        self, step: int, term: str, result: DSVResult | None = None, stage: str = "synthesis"
    ) -> None:
        tail = (
            f"the error's .result holds the state after the last good step ({step} steps done)"
            if stage == "synthesis"
            else "check the model's parameters and the inputs for NaN or inf"
        )
        super().__init__(f"non-finite value (NaN or inf) in {term!r} at step {step}: {stage} stopped; {tail}")
        self.step, self.term, self.result = step, term, result


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
    """
    if setting != "auto":
        return float(setting)
    if objective.scale_free:
        return 1.0
    ones = torch.ones(len(x), device=x.device, dtype=x.dtype)
    g = _gradient_sum(fmodel, x, y, ones, objective.loss_fn(), batch_size)[0]
    g_norm = math.sqrt(sum(v.pow(2).sum().item() for v in g.values()))
    t_norm = math.sqrt(sum(v.pow(2).sum().item() for v in fmodel.target.values()))
    if not math.isfinite(g_norm):
        raise NonFiniteError(0, "lambda_scale (the initial gradient sum)")
    return t_norm / max(g_norm, 1e-12)


def _chunks(n: int, batch_size: int | None) -> list[slice]:
    size = n if batch_size is None or batch_size >= n else batch_size
    return [slice(i, min(i + size, n)) for i in range(0, n, max(size, 1))]


def _gradient_sum(
    fmodel: FunctionalModel, x: Tensor, y: Tensor, weights: Tensor, loss_fn, batch_size: int | None
) -> tuple[dict[str, Tensor], Tensor]:
    """``sum_i w_i grad L_i`` (no graph) and the logits (detached), chunk by chunk."""
    if batch_size is None or batch_size >= len(x):
        g, logits = weighted_loss_grad(fmodel, x, y, weights, loss_fn, create_graph=False)
        return g, logits.detach()
    total: dict[str, Tensor] | None = None
    logits = []
    for rows in _chunks(len(x), batch_size):
        g, lg = weighted_loss_grad(fmodel, x[rows], y[rows], weights[rows], loss_fn, create_graph=False)
        total = g if total is None else {k: total[k] + g[k] for k in total}
        logits.append(lg.detach())
    assert total is not None
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
        g, logits = _gradient_sum(fmodel, view.detach(), labels, lam_leaf.detach(), loss_fn, batch_size)
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
            chunk_loss.backward()
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
    batch_size: int | None = None


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
    run_id = fingerprint(settings, resolved, labels, x0, fmodel.target) if checkpoint else None
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
