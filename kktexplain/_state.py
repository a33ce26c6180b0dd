"""What a synthesis run carries from one step to the next, and the settings it runs with."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ._multipliers import Multipliers

__all__ = ["SynthesisConfig", "SynthesisState", "init_state"]


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
    lambda_solve_every: int | None = None
    chunk_size: int = 256
    lr_schedule: str = "constant"


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
