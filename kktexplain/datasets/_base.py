"""The dataset type every loader returns: tensors plus their normalisation and class names."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = ["LabeledDataset"]


class LabeledDataset(TensorDataset):
    """A :class:`~torch.utils.data.TensorDataset` of normalised inputs and integer labels.

    Parameters
    ----------
    inputs : Tensor of shape (N, *input_shape)
        Already normalised: ``(raw - mean) / std``.
    labels : Tensor of shape (N,), dtype long
    classes : sequence of str
        Class names, indexed by label.
    mean, std : Tensor of shape (input_shape[0],) or ()
        Per-channel (images) or per-feature (tabular) normalisation that was applied.
    raw_range : tuple of float, optional
        ``(low, high)`` of the un-normalised values, e.g. ``(0, 1)`` for images.
    name : str, default=""
    """

    def __init__(
        self,
        inputs: Tensor,
        labels: Tensor,
        classes: Sequence[str],
        mean: Tensor,
        std: Tensor,
        raw_range: tuple[float, float] | None = None,
        name: str = "",
    ) -> None:
        if inputs.shape[0] != labels.shape[0]:
            raise ValueError(
                f"inputs and labels must have the same length, got {inputs.shape[0]} and {labels.shape[0]}"
            )
        super().__init__(inputs, labels.long())
        self.classes = list(classes)
        self.mean = torch.as_tensor(mean, dtype=inputs.dtype)
        self.std = torch.as_tensor(std, dtype=inputs.dtype)
        self.raw_range = raw_range
        self.name = name

    @property
    def inputs(self) -> Tensor:
        """Normalised inputs, shape ``(N, *input_shape)``."""
        return self.tensors[0]

    @property
    def labels(self) -> Tensor:
        """Integer labels, shape ``(N,)``."""
        return self.tensors[1]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input."""
        return tuple(self.inputs.shape[1:])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def _stat_shape(self, t: Tensor, x: Tensor) -> Tensor:
        if t.ndim == 0:
            return t
        return t.view(1, -1, *([1] * (x.ndim - 2))).to(x.device)

    def denormalize(self, x: Tensor) -> Tensor:
        """Map normalised inputs back to raw units: ``x * std + mean``.

        Parameters
        ----------
        x : Tensor of shape (N, *input_shape)

        Returns
        -------
        Tensor of shape (N, *input_shape)
        """
        return x * self._stat_shape(self.std, x) + self._stat_shape(self.mean, x)

    @property
    def input_range(self) -> tuple[float, float] | None:
        """``(low, high)`` of valid normalised values (from ``raw_range``), if known."""
        if self.raw_range is None:
            return None
        lo, hi = self.raw_range
        mean, std = self.mean.flatten(), self.std.flatten()
        return (float(((lo - mean) / std).min()), float(((hi - mean) / std).max()))

    def per_class(self, k: int, seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """``k`` random samples of every class.

        Parameters
        ----------
        k : int
        seed : int, default=0

        Returns
        -------
        inputs : Tensor of shape (C * k, *input_shape)
        labels : Tensor of shape (C * k,)
            Sorted by class.
        indices : Tensor of shape (C * k,)
            Positions in this dataset.
        """
        gen = torch.Generator().manual_seed(seed)
        picks = []
        for c in range(self.num_classes):
            idx = (self.labels == c).nonzero().flatten()
            if len(idx) < k:
                raise ValueError(f"class {c} has {len(idx)} samples, fewer than k={k}")
            picks.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
        indices = torch.cat(picks)
        return self.inputs[indices], self.labels[indices], indices

    def subset(self, indices: Tensor) -> LabeledDataset:
        """A new dataset with the rows ``indices`` and the same metadata."""
        return LabeledDataset(
            self.inputs[indices],
            self.labels[indices],
            self.classes,
            self.mean,
            self.std,
            self.raw_range,
            self.name,
        )

    def __repr__(self) -> str:
        return (
            f"LabeledDataset(name={self.name!r}, n={len(self)}, "
            f"input_shape={self.input_shape}, classes={self.num_classes})"
        )
