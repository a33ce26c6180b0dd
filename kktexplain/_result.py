"""Result objects: DSVResult and the coreset, and their persistence (no pickle).

:class:`KKTResiduals` lives in :mod:`kktexplain.kkt._residuals` and is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from ._io import read_npz, write_npz
from ._validation import check_positive
from .kkt import KKTResiduals, hard_labels

__all__ = ["DSVResult", "KKTResiduals", "Coreset"]

_PER_SAMPLE = ("margin", "feasible", "primal_loss", "entropy", "dual_violation", "tv", "norm")


class Coreset(NamedTuple):
    """The top-λ samples of every class.

    Attributes
    ----------
    indices : Tensor of shape (C, k), dtype long
        Rows of the result, best first; ``-1`` pads classes with fewer than ``k`` members.
    lambdas : Tensor of shape (C, k)
        Their multipliers; ``nan`` where padded.
    """

    indices: Tensor
    lambdas: Tensor


def _check_loaded(path: object, arrays: dict, meta: dict) -> None:
    """Raise ``ValueError`` where a file's arrays or metadata do not fit together as a result."""
    n = len(arrays["inputs"])
    bad = []
    for key in ("labels", "lambdas", "active", *(f"kkt_{k}" for k in _PER_SAMPLE)):
        value = arrays[key]
        if value.ndim == 0 or len(value) != n:
            bad.append(f"{key} has shape {tuple(value.shape)}, not {n} rows")
        elif value.is_complex():
            bad.append(f"{key} holds {value.dtype} values, not real numbers")
    if arrays["active"].dtype != torch.bool:
        bad.append(f"active holds {arrays['active'].dtype} values, not booleans")
    for key, kind in (("settings", dict), ("history", dict), ("stationarity", dict)):
        if not isinstance(meta[key], kind):
            bad.append(f"{key} is a {type(meta[key]).__name__}, not a {kind.__name__}")
    if bad:
        raise ValueError(f"{str(path)!r} is not a consistent DSVResult: {'; '.join(bad)}")


@dataclass(repr=False)
class DSVResult:
    """Deep support vectors and everything measured while finding them.

    Attributes
    ----------
    inputs : Tensor of shape (N, *input_shape)
        The DSVs (synthesis) or the candidates (selection), on the CPU.
    labels : Tensor of shape (N,) or (N, C)
        Hard or soft labels.
    lambdas : Tensor of shape (N,)
        Multipliers, ``>= 0``; zero for pruned candidates.
    kkt : KKTResiduals
    history : dict of str to list of float
        One entry per step for every loss term, ``entropy`` (mean predictive entropy),
        ``feasibility`` and ``feasibility_aug`` (primal feasibility rates without and with
        augmentation), ``lambda_mean`` and ``n_active``.
    active : Tensor of shape (N,), dtype bool
        ``False`` for candidates pruned for a negative multiplier (the paper's dual step).
    settings : dict
        The explainer's settings and what was inferred (input shape, classes, ...).
    indices : Tensor of shape (N,) or None
        For selection or real initialisation, each row's index in the data it came from.
    """

    inputs: Tensor
    labels: Tensor
    lambdas: Tensor
    kkt: KKTResiduals
    history: dict[str, list[float]]
    active: Tensor
    settings: dict = field(default_factory=dict)
    indices: Tensor | None = None

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __repr__(self) -> str:
        mode = self.settings.get("mode", "synthesis")
        return (
            f"DSVResult(mode={mode!r}, n={len(self)}, input_shape={tuple(self.inputs.shape[1:])}, "
            f"feasibility={self.kkt.feasibility_rate:.3f}, "
            f"stationarity_cosine={self.kkt.stationarity.get('cosine', float('nan')):.3f}, "
            f"lambda_mean={float(self.lambdas.mean()) if len(self) else float('nan'):.4g})"
        )

    @property
    def hard_labels(self) -> Tensor:
        """Arg-max labels, shape ``(N,)``."""
        return hard_labels(self.labels)

    @property
    def support(self) -> Tensor:
        """The support set: ``lambdas > 0`` (and not pruned), shape ``(N,)``, dtype bool."""
        return (self.lambdas > 0) & self.active

    @property
    def ranking(self) -> Tensor:
        """Row indices sorted by decreasing λ (ties keep their order), shape ``(N,)``."""
        return self.lambdas.argsort(descending=True, stable=True)

    def clear_cache(self) -> None:
        """Drop what :meth:`explain` kept for its next call (the model and the support
        gradients it prepared)."""
        self.__dict__.pop("_explain_cache", None)

    def __getstate__(self) -> dict:
        # pickling and copying leave out explain's cache: it holds the model
        return {k: v for k, v in self.__dict__.items() if k != "_explain_cache"}

    def top_k_per_class(self, k: int) -> Coreset:
        """The ``k`` samples of largest λ in every class (a coreset).

        Parameters
        ----------
        k : int

        Returns
        -------
        Coreset
            ``indices`` and ``lambdas`` of shape ``(C, k)``, where ``C`` is the number of
            classes of the model; ``indices`` are rows of this result. A class with fewer than
            ``k`` samples is padded with index ``-1`` and λ ``nan`` (mask with
            ``indices >= 0`` before indexing ``inputs``: ``-1`` would pick the last row).
        """
        check_positive("k", k, integer=True)
        k = int(k)
        num_classes = int(self.settings.get("num_classes", int(self.hard_labels.max()) + 1))
        idx = torch.full((num_classes, k), -1, dtype=torch.long)
        lam = torch.full((num_classes, k), float("nan"), dtype=self.lambdas.dtype)
        y = self.hard_labels
        for c in range(num_classes):
            members = (y == c).nonzero().flatten()
            order = members[self.lambdas[members].argsort(descending=True, stable=True)][:k]
            idx[c, : len(order)] = order
            lam[c, : len(order)] = self.lambdas[order]
        return Coreset(idx, lam)

    def explain(self, model, inputs: Tensor, target=None, k: int = 5, **kwargs):
        """Explain decisions of ``model`` by this support set: which vectors push for and against.

        The support-vector expansion of the logit ``f_c(x)`` of the explained class ``c``
        (``<theta*, grad_theta f_c(x)> ~ sum_j -λ_j <grad L_j, grad f_c(x)>``), its top
        supporting and opposing terms, and Integrated-Gradients feature maps of the expansion.
        See :func:`kktexplain.attr.explain` for every option.

        Parameters
        ----------
        model : nn.Module
            The model this support set was computed for (not stored in the result).
        inputs : Tensor of shape (n, *input_shape) or (*input_shape)
        target : None, int, tuple (c,), list of int or Tensor, optional
            The class to explain; the model's prediction when omitted.
        k : int, default=5
        **kwargs
            ``maps``, ``n_steps``, ``param_names``, ``reference``, ``class_names``,
            ``feature_names``, ``influence``, ``additional_forward_args``, ``progress``.

        Returns
        -------
        Explanation
        """
        from .attr import explain

        return explain(self, model, inputs, target=target, k=k, **kwargs)

    @property
    def partial(self) -> bool:
        """Whether the run stopped early (interrupted, or a non-finite value); see ``settings``."""
        return bool(self.settings.get("partial", False))

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` atomically (``.npz`` of arrays with a JSON header; no pickle).

        ``".npz"`` is appended unless ``path`` ends with it, as numpy does, and :meth:`load`
        accepts the same ``path``. The file is written under a temporary name and moved into
        place, so an interrupted save leaves the previous file intact.

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        Path
            The file written.
        """
        arrays = {
            "inputs": self.inputs,
            "labels": self.labels,
            "lambdas": self.lambdas,
            "active": self.active,
            **{f"kkt_{k}": getattr(self.kkt, k) for k in _PER_SAMPLE},
        }
        if self.kkt.grad_sq_norm is not None:
            arrays["kkt_grad_sq_norm"] = self.kkt.grad_sq_norm
        if self.indices is not None:
            arrays["indices"] = self.indices
        meta = {
            "history": self.history,
            "settings": self.settings,
            "stationarity": self.kkt.stationarity,
            "per_layer_cosine": self.kkt.per_layer_cosine,
        }
        return write_npz(path, "result", arrays, meta)

    @classmethod
    def load(cls, path: str | Path) -> DSVResult:
        """Read a result written by :meth:`save`.

        Parameters
        ----------
        path : str or Path
            With or without the ``.npz`` suffix.

        Returns
        -------
        DSVResult

        Raises
        ------
        ValueError
            The file is truncated, foreign, not a result, or from a newer kktexplain.
        """
        arrays, meta = read_npz(path, "result")
        missing = {"inputs", "labels", "lambdas", "active", *(f"kkt_{k}" for k in _PER_SAMPLE)} - set(arrays)
        missing |= {"history", "settings", "stationarity", "per_layer_cosine"} - set(meta)
        if missing:
            raise ValueError(f"{str(path)!r} is not a complete DSVResult: missing {sorted(missing)}")
        _check_loaded(path, arrays, meta)
        kkt = KKTResiduals(
            **{k: arrays.pop(f"kkt_{k}") for k in _PER_SAMPLE},
            stationarity=meta["stationarity"],
            per_layer_cosine=meta["per_layer_cosine"],
            grad_sq_norm=arrays.pop("kkt_grad_sq_norm", None),
        )
        return cls(
            inputs=arrays["inputs"],
            labels=arrays["labels"],
            lambdas=arrays["lambdas"],
            kkt=kkt,
            history=meta["history"],
            active=arrays["active"],
            settings=meta["settings"],
            indices=arrays.get("indices"),
        )
