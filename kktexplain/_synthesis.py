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
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ._result import DSVResult
from ._validation import check_inputs, check_labels
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
    "SynthesisConfig",
    "SynthesisState",
    "initial_inputs",
    "lambda_scale",
    "split_data",
    "synthesis_step",
    "synthesise",
]


def split_data(data: Any) -> tuple[Tensor, Tensor | None]:
    """``(inputs, labels or None)`` from a tensor, an ``(inputs, labels)`` pair or a dataset."""
    if isinstance(data, Tensor):
        return data, None
    if isinstance(data, tuple | list) and len(data) == 2 and isinstance(data[0], Tensor):
        return data[0], torch.as_tensor(data[1])
    if isinstance(data, Dataset):
        tensors = getattr(data, "tensors", None)
        if tensors is not None and len(tensors) >= 2:
            return tensors[0], tensors[1]
        xs, ys = zip(*(data[i] for i in range(len(data))))
        return torch.stack(list(xs)), torch.as_tensor(ys)
    raise TypeError(
        f"init_data must be a Tensor, an (inputs, labels) tuple or a torch Dataset, got {type(data).__name__}"
    )


def initial_inputs(
    init: str,
    n_per_class: int,
    init_scale: float,
    input_shape: tuple[int, ...],
    num_classes: int,
    labels: Tensor | None,
    init_data: Any,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The starting inputs of synthesis, on the CPU.

    Parameters
    ----------
    init : {"noise", "real", "other"}
    n_per_class, init_scale
        See :class:`~kktexplain.DeepSupportVectors`.
    input_shape : tuple of int
    num_classes : int
    labels : Tensor of shape (N,) or (N, C), optional
    init_data : Tensor, (Tensor, Tensor) or Dataset, optional
    gen : torch.Generator
        CPU generator; consumed in a fixed order so a seed fixes the result.

    Returns
    -------
    x0 : Tensor of shape (N, *input_shape)
    labels : Tensor of shape (N,) or (N, C)
    indices : Tensor of shape (N,) or None
        Rows of ``init_data`` the inputs came from.
    """
    if init == "noise":
        if labels is None:
            labels = torch.arange(num_classes).repeat_interleave(n_per_class)
        x = torch.randn(len(labels), *input_shape, generator=gen) * init_scale
        return x, labels, None
    if init_data is None:
        raise ValueError(f"init={init!r} needs init_data (real or other samples)")
    data_x, data_y = split_data(init_data)
    check_inputs("init_data", data_x, input_shape)
    if init == "other":
        n = len(labels) if labels is not None else n_per_class * num_classes
        if len(data_x) < n:
            raise ValueError(f"init_data has {len(data_x)} samples, {n} are needed")
        idx = torch.randperm(len(data_x), generator=gen)[:n]
        if labels is None:
            labels = torch.arange(num_classes).repeat_interleave(n_per_class)
        return data_x[idx].clone(), labels, idx
    # init == "real"
    if labels is not None:
        if len(labels) != len(data_x):
            raise ValueError(
                "with init='real' and explicit labels, init_data must hold one input per "
                f"label: got {len(data_x)} inputs for {len(labels)} labels"
            )
        return data_x.clone(), labels, torch.arange(len(data_x))
    if data_y is None:
        raise ValueError(
            "init='real' needs labelled init_data: an (inputs, labels) tuple or a dataset, or pass labels="
        )
    data_y = check_labels(data_y, num_classes, len(data_x), name="init_data labels")
    picks = []
    for c in range(num_classes):
        members = (data_y == c).nonzero().flatten()
        if len(members) < n_per_class:
            raise ValueError(
                f"init_data has {len(members)} samples of class {c}, fewer than n_per_class={n_per_class}"
            )
        picks.append(members[torch.randperm(len(members), generator=gen)[:n_per_class]])
    idx = torch.cat(picks)
    return data_x[idx].clone(), data_y[idx], idx


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

    def state_dict(self) -> dict[str, Any]:
        """A copy of the state: tensors (on the CPU), the optimiser's per-parameter state, numbers."""
        opt = self.optimizer.state_dict()["state"]
        return {
            "inputs": self.inputs.detach().cpu().clone(),
            "rho": self.rho.detach().cpu().clone(),
            "active": self.active.cpu().clone(),
            "optimizer": {
                int(i): {k: v.detach().cpu().clone() if isinstance(v, Tensor) else v for k, v in s.items()}
                for i, s in opt.items()
            },
            "aug_generator": self.aug_generator.get_state().clone(),
            "scale": float(self.scale),
            "step": int(self.step),
            "history": copy.deepcopy(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (shapes must match: same candidates, same model)."""
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
        self.history = copy.deepcopy(state["history"])


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
    """One DeepKKT step on ``state`` (in place): objective, backward, optimiser step, projections."""
    x, rho, active, opt = state.inputs, state.rho, state.active, state.optimizer
    lam = multipliers(rho, active)
    value = objective(fmodel, x, labels, lam, augmentation, state.aug_generator)
    opt.zero_grad(set_to_none=True)
    value.total.backward()
    x.grad[~active] = 0
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
) -> DSVResult:
    """Run synthesis from ``x0`` and return the DSVs.

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

    Returns
    -------
    DSVResult
    """
    scale = lambda_scale(config.lambda_scale, fmodel, x0, labels, objective)
    multipliers = Multipliers(config.dual, scale, config.lambda_max)
    state = init_state(x0, multipliers, config, scale)
    start = time.perf_counter()
    for _ in tqdm(range(config.steps), desc="DeepKKT", disable=not config.progress, leave=False):
        synthesis_step(state, fmodel, labels, objective, augmentation, multipliers, config.input_range)
    lam = multipliers(state.rho, state.active).detach()
    x = state.inputs.detach()
    kkt = kkt_residuals(fmodel, x, labels, lam, objective.loss_fn())
    settings = dict(settings)
    settings.update(
        steps=config.steps,
        lr=config.lr,
        objective=objective.to_dict(),
        lambda_scale_value=scale,
        augmentation=None if augmentation is None else vars(augmentation),
        seconds=time.perf_counter() - start,
        mode="synthesis",
        param_names=fmodel.names,
    )
    return DSVResult(
        inputs=x.cpu(),
        labels=labels.cpu(),
        lambdas=lam.cpu(),
        kkt=kkt,
        history=state.history,
        active=state.active.cpu(),
        settings=settings,
        indices=indices,
    )
