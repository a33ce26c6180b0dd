"""A small training set made by distillation: inputs, hard labels and optional soft labels."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from .._io import read_npz, write_npz

__all__ = ["DistilledSet"]


@dataclass(repr=False)
class DistilledSet:
    """A distilled training set.

    Attributes
    ----------
    inputs : Tensor of shape (N, *input_shape)
        On the CPU, float32.
    labels : Tensor of shape (N,), dtype long
        Hard labels (the class each input was made or picked for).
    soft_labels : Tensor of shape (N, C) or None
        The teacher's predicted probabilities on ``inputs`` (at the temperature recorded in
        ``info["temperature"]``), when asked for.
    source : str
        How it was made: ``"dsv-noise"``, ``"dsv-real"``, ``"dsv-other"``, ``"random"`` or
        ``"coreset"``.
    info : dict
        Settings and measurements (JSON-serialisable), e.g. the synthesis summary.
    """

    inputs: Tensor
    labels: Tensor
    soft_labels: Tensor | None = None
    source: str = "dsv-noise"
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def __repr__(self) -> str:
        soft = "yes" if self.soft_labels is not None else "no"
        per_class = torch.bincount(self.labels).tolist() if len(self) else []
        return (
            f"DistilledSet(source={self.source!r}, n={len(self)}, "
            f"input_shape={tuple(self.inputs.shape[1:])}, per_class={per_class}, soft_labels={soft})"
        )

    def dataset(self, soft: bool = False) -> TensorDataset:
        """The set as a ``TensorDataset`` of ``(input, label)`` pairs.

        Parameters
        ----------
        soft : bool, default=False
            Pair each input with its soft label (shape ``(C,)``) instead of its hard label.

        Returns
        -------
        TensorDataset
        """
        if soft:
            if self.soft_labels is None:
                raise ValueError("soft=True needs soft labels: distill with soft_labels=True")
            return TensorDataset(self.inputs, self.soft_labels)
        return TensorDataset(self.inputs, self.labels)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the set to an ``.npz`` file (atomic; no pickle).

        Parameters
        ----------
        path : str or PathLike
            ``.npz`` is appended when missing.

        Returns
        -------
        Path
        """
        arrays: dict[str, Any] = {"inputs": self.inputs, "labels": self.labels}
        if self.soft_labels is not None:
            arrays["soft_labels"] = self.soft_labels
        return write_npz(path, "distilled", arrays, {"source": self.source, "info": self.info})

    @classmethod
    def load(cls, path: str | os.PathLike) -> DistilledSet:
        """Read a set written by :meth:`save`.

        Parameters
        ----------
        path : str or PathLike

        Returns
        -------
        DistilledSet
        """
        arrays, meta = read_npz(path, "distilled")
        return cls(
            inputs=arrays["inputs"],
            labels=arrays["labels"].long(),
            soft_labels=arrays.get("soft_labels"),
            source=str(meta.get("source", "")),
            info=dict(meta.get("info", {})),
        )
