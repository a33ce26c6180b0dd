"""Binary classifiers with one logit, seen as two-class classifiers."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["TwoClassLogits"]


class TwoClassLogits(nn.Module):
    """A binary classifier with one logit ``f`` (trained with ``BCEWithLogitsLoss``) as a
    two-class classifier with logits ``[-f/2, f/2]``.

    The DeepKKT conditions, selection and the explanations take logits of shape ``(N, C)``
    with ``C >= 2``. For labels ``y`` in ``{0, 1}``, the cross-entropy of ``[-f/2, f/2]`` is the
    binary cross-entropy of ``f``: ``softmax([-f/2, f/2])[1] = sigmoid(f)``. So the wrapped
    model has the same loss, the same gradients and the same decisions (class 1 where
    ``f > 0``) as the binary classifier, and nothing of it is changed or copied. The logits are
    split symmetrically, rather than ``[0, f]``, so that explaining either class explains the
    decision function: the support-vector expansion of class 0's logit is that of class 1's
    with the opposite sign, where a constant logit 0 would have nothing to expand.

    Parameters
    ----------
    model : nn.Module
        Returns one logit per input, of shape ``(N,)`` or ``(N, 1)``.

    Notes
    -----
    The wrapped model's parameters are the model's, and their names get the prefix ``model.``
    (for ``param_names=``, e.g. ``["model.fc.weight", "model.fc.bias"]``). Load weights into
    ``model`` before wrapping it.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> from kktexplain.models import TwoClassLogits
    >>> net = nn.Linear(4, 1)
    >>> TwoClassLogits(net)(torch.randn(3, 4)).shape
    torch.Size([3, 2])
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        super().__init__()
        self.model = model
        shape = getattr(model, "input_shape", None)
        if shape is not None:  # the shape of one input, read by the explainer
            self.input_shape = tuple(shape)

    def forward(self, x: Tensor, *args: Any) -> Tensor:
        """Logits ``[-f/2, f/2]`` of shape ``(N, 2)`` for inputs of shape ``(N, *input_shape)``."""
        f = self.model(x, *args)
        if not isinstance(f, Tensor):
            raise TypeError(f"the wrapped model must return a tensor, got {type(f).__name__}")
        if f.ndim == 1:
            f = f.unsqueeze(1)
        if f.ndim != 2 or f.shape[1] != 1:
            raise ValueError(
                f"TwoClassLogits wraps a model with one logit per input, of shape (N,) or (N, 1); "
                f"it returned {tuple(f.shape)}"
            )
        return torch.cat([-0.5 * f, 0.5 * f], dim=1)
