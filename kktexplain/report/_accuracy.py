"""Per-class accuracy of a model on a labelled test set, for the report's Σλ-against-accuracy plot."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._model_info import cast_inputs
from .._model_state import eval_mode
from .._validation import check_finite, check_labels

__all__ = ["per_class_accuracy", "predict_classes"]


def per_class_accuracy(
    model: nn.Module, inputs: Tensor, labels: Tensor, num_classes: int, batch_size: int = 256
) -> Tensor:
    """Accuracy of ``model`` on every class of a labelled test set.

    Parameters
    ----------
    model : nn.Module
        Returns logits ``(n, C)``.
    inputs : Tensor of shape (n, *input_shape)
    labels : Tensor of shape (n,)
        Hard labels.
    num_classes : int
    batch_size : int, default=256

    Returns
    -------
    Tensor of shape (C,)
        ``nan`` for classes absent from ``labels``.
    """
    if not isinstance(inputs, Tensor) or not isinstance(labels, Tensor):
        raise TypeError("test_data must be a pair of Tensors (inputs (n, ...), labels (n,))")
    if labels.ndim != 1 or len(labels) != len(inputs):
        raise ValueError(f"test_data labels must have shape ({len(inputs)},), got {tuple(labels.shape)}")
    if labels.is_floating_point():
        raise ValueError(f"test_data labels must be class indices, got dtype {labels.dtype}")
    check_labels(labels, num_classes, name="test_data labels")  # classes in [0, num_classes)
    check_finite("test_data inputs", inputs)
    preds = predict_classes(model, inputs, batch_size) if len(inputs) else None
    correct = (preds == labels.long()).double() if preds is not None else torch.zeros(0, dtype=torch.float64)
    y = labels.long()
    total = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, y, torch.ones_like(correct))
    hits = torch.zeros(num_classes, dtype=torch.float64).index_add_(0, y, correct)
    return hits / total  # nan where total == 0


def predict_classes(model: nn.Module, inputs: Tensor, batch_size: int = 256) -> Tensor:
    """The model's classes for ``inputs``, in eval mode (every module's own mode put back)."""
    p = next(model.parameters(), None)
    device, dtype = (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)
    try:
        with torch.no_grad(), eval_mode(model):
            return torch.cat(
                [
                    model(cast_inputs(inputs[i : i + batch_size], device, dtype)).argmax(-1).cpu()
                    for i in range(0, len(inputs), batch_size)
                ]
            )
    except RuntimeError as e:  # e.g. a model of other inputs than the results'
        raise ValueError(f"model failed on inputs of shape {tuple(inputs.shape[1:])}: {e}") from e
