"""Input checks that raise ``ValueError`` / ``TypeError`` naming the parameter (never assert)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "check_model",
    "check_labels",
    "check_inputs",
    "infer_input_shape",
    "infer_num_classes",
    "model_device",
    "check_choice",
    "check_positive",
]


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_positive(name: str, value: object, integer: bool = False, allow_zero: bool = False) -> None:
    """Raise unless ``value`` is a positive (or non-negative) number (an int if ``integer``)."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a float"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__} {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


def check_model(model: object) -> nn.Module:
    """Raise ``TypeError`` unless ``model`` is an ``nn.Module`` with parameters."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if next(model.parameters(), None) is None:
        raise ValueError("model must have parameters: stationarity is a condition on them")
    return model


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter."""
    return next(model.parameters()).device


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def infer_input_shape(model: nn.Module, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    """``input_shape`` if given, else ``model.input_shape``, else a leading Linear's width.

    Raises
    ------
    ValueError
        If the shape cannot be inferred; the message asks for ``input_shape``.
    """
    if input_shape is not None:
        shape = tuple(input_shape) if not isinstance(input_shape, int) else (input_shape,)
        if not shape or not all(isinstance(s, int) and s > 0 for s in shape):
            raise ValueError(f"input_shape must be a tuple of positive ints, got {input_shape!r}")
        return shape
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            return (module.in_features,)
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            break
    raise ValueError(
        "input_shape could not be inferred from the model; pass input_shape=(C, H, W) "
        "(the shape of one input, without the batch dimension)"
    )


def infer_num_classes(
    model: nn.Module, input_shape: tuple[int, ...], additional_forward_args: tuple = ()
) -> int:
    """Run one probe batch and check that the model returns logits ``(N, C)``.

    Raises
    ------
    TypeError
        If the model returns something other than a floating-point tensor.
    ValueError
        If the output is not ``(N, C)`` with ``C >= 2``, or the input shape does not fit.
    """
    device = model_device(model)
    probe = torch.zeros(2, *input_shape, device=device, dtype=model_dtype(model))
    try:
        with torch.no_grad():
            out = model(probe, *additional_forward_args)
    except RuntimeError as e:
        raise ValueError(f"input_shape={input_shape} does not fit the model (forward failed: {e})") from e
    if not isinstance(out, Tensor) or not out.is_floating_point():
        raise TypeError(
            f"model must return a floating-point tensor of logits of shape (N, C), got {type(out).__name__}"
        )
    if out.ndim != 2 or out.shape[0] != 2 or out.shape[1] < 2:
        raise ValueError(
            f"model must return logits of shape (N, C) with C >= 2; for inputs of shape "
            f"{tuple(probe.shape)} it returned {tuple(out.shape)}"
        )
    return int(out.shape[1])


def check_inputs(name: str, inputs: object, input_shape: tuple[int, ...]) -> Tensor:
    """Raise unless ``inputs`` is a float tensor of shape ``(N, *input_shape)``."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(inputs).__name__}")
    if tuple(inputs.shape[1:]) != tuple(input_shape) or inputs.ndim != len(input_shape) + 1:
        raise ValueError(
            f"{name} must have shape (N, {', '.join(map(str, input_shape))}), got {tuple(inputs.shape)}"
        )
    if not inputs.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {inputs.dtype}")
    return inputs


def check_labels(labels: object, num_classes: int, n: int | None = None, name: str = "labels") -> Tensor:
    """Validate hard ``(N,)`` integer or soft ``(N, C)`` probability labels.

    Raises
    ------
    TypeError
        For a non-tensor, or a hard-label tensor that is not integer.
    ValueError
        For a class out of ``[0, num_classes)``, soft rows that are not distributions over
        ``num_classes`` classes, or a length different from ``n``.
    """
    if not isinstance(labels, Tensor):
        labels = torch.as_tensor(labels)
    if labels.ndim == 1:
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise TypeError(f"{name} must be integer class indices, got dtype {labels.dtype}")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} must lie in [0, {num_classes}) for a model with {num_classes} classes, "
                f"got values in [{int(labels.min())}, {int(labels.max())}]"
            )
        labels = labels.long()
    elif labels.ndim == 2:
        if labels.shape[1] != num_classes or not labels.is_floating_point():
            raise ValueError(
                f"soft {name} must be a float tensor of shape (N, {num_classes}), got "
                f"{tuple(labels.shape)} {labels.dtype}"
            )
        if (labels < 0).any() or not torch.allclose(
            labels.sum(1), torch.ones(len(labels), dtype=labels.dtype), atol=1e-4
        ):
            raise ValueError(f"soft {name} must be non-negative rows that sum to 1")
    else:
        raise ValueError(f"{name} must have shape (N,) or (N, C), got {tuple(labels.shape)}")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"{name} must have length {n}, got {labels.shape[0]}")
    return labels
