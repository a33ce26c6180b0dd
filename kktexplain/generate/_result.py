"""The result of a generation call: inputs, their latent labels, the teacher's probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["GenerationResult"]


@dataclass(repr=False)
class GenerationResult:
    """What :func:`~kktexplain.generate.sample`, :func:`~kktexplain.generate.blend`,
    :func:`~kktexplain.generate.interpolate` and :func:`~kktexplain.generate.edit` return.

    Attributes
    ----------
    inputs : Tensor of shape (N, *input_shape), or (n, D, *input_shape) for interpolate
        The generated inputs, on the CPU, in the model's input units.
    labels : Tensor of shape (N,) or (N, C), or (n, D, C) for interpolate
        The latent labels they were generated with: class indices (``sample``, ``edit``) or
        probability rows (``blend``, ``interpolate``).
    probabilities : Tensor of shape (N, C), or (n, D, C) for interpolate
        The model's softmax on ``inputs`` (eval mode).
    source : Tensor of shape (N, *input_shape), optional
        ``edit`` only: the images the edits started from.
    deltas : Tensor of shape (D,), optional
        ``blend`` and ``interpolate``: the mixing weights ``δ`` of class ``b``.
    settings : dict
        Everything the run was made with: the call's arguments, the DeepSupportVectors
        settings, and what was inferred (input shape, number of classes, seconds).
    history : dict of str to list of float
        Per-step loss terms of the DeepKKT run (see :class:`~kktexplain.DSVResult`).
    """

    inputs: Tensor
    labels: Tensor
    probabilities: Tensor
    source: Tensor | None = None
    deltas: Tensor | None = None
    settings: dict = field(default_factory=dict)
    history: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @property
    def predictions(self) -> Tensor:
        """The model's arg-max class of every input, shape ``probabilities.shape[:-1]``."""
        return self.probabilities.argmax(-1)

    @property
    def targets(self) -> Tensor:
        """The arg-max of the latent labels, shape ``probabilities.shape[:-1]``."""
        return self.labels if self.labels.ndim == self.probabilities.ndim - 1 else self.labels.argmax(-1)

    def __repr__(self) -> str:
        mode = self.settings.get("mode", "?")
        hit = (
            float((self.predictions == self.targets).float().mean()) if self.inputs.numel() else float("nan")
        )
        return (
            f"GenerationResult(mode={mode!r}, shape={tuple(self.inputs.shape)}, "
            f"model_agrees_with_label={hit:.3f})"
        )
