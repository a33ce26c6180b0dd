"""What a query of the support-vector expansion may be: inputs checked against the support set,
captum's ``target`` forms, and captum's influence ``inputs`` (a batch ``(x, y)``, ``x``, or a
``DataLoader``)."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._tensors import readable
from .._validation import check_finite, check_labels

__all__ = ["check_query_inputs", "labels_as_classes", "resolve_target", "split_influence_inputs"]


def check_query_inputs(inputs: Any, support: Any, name: str = "inputs") -> Tensor:
    """The inputs of decisions to explain, checked against the support set; detached.

    Parameters
    ----------
    inputs : Tensor of shape (n, *input_shape)
        ``input_shape`` is the support set's (``support.inputs.shape[1:]``).
    support : DSVResult
    name : str, default="inputs"
        The parameter's name, for the errors.

    Returns
    -------
    Tensor of shape (n, *input_shape)
        ``inputs`` detached (the outputs carry no autograd graph of the caller's).

    Raises
    ------
    TypeError
        For a non-tensor.
    ValueError
        For an empty batch, another shape (a single unbatched input is named as such), or
        NaN or inf values.
    """
    if not isinstance(inputs, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(inputs).__name__}")
    shape = tuple(support.inputs.shape[1:])
    if tuple(inputs.shape) == shape:
        raise ValueError(
            f"{name} must be a batch (n, {', '.join(map(str, shape))}), got one input of shape {shape}: "
            f"add the batch dimension ({name}[None])"
        )
    if inputs.ndim != len(shape) + 1 or tuple(inputs.shape[1:]) != shape:
        raise ValueError(
            f"{name} must have shape (n, {', '.join(map(str, shape))}), the support set's inputs, "
            f"got {tuple(inputs.shape)}"
        )
    if len(inputs) == 0:
        raise ValueError(f"{name} is empty: give at least one input")
    if inputs.is_floating_point() != support.inputs.is_floating_point() or inputs.dtype == torch.bool:
        want = "a floating-point" if support.inputs.is_floating_point() else "an integer (token ids)"
        raise TypeError(
            f"{name} must be {want} tensor, as the support set's inputs ({support.inputs.dtype}), "
            f"got {inputs.dtype}"
        )
    if inputs.device.type == "meta":
        raise ValueError(f"{name} is on the 'meta' device, which holds no values")
    check_finite(name, inputs.detach())
    if not inputs.is_floating_point() and inputs.dtype != support.inputs.dtype:
        return inputs.to(support.inputs.dtype)  # token ids as the support set's (uint8 -> long)
    return readable(inputs).detach()


def resolve_target(
    target: Any, n: int, logits: Callable[[], Tensor], num_classes: int, name: str = "target"
) -> Tensor:
    """captum's ``target`` as a long tensor of shape ``(n,)``; ``None`` takes the model's arg-max.

    Parameters
    ----------
    target : None, int, tuple (c,), list of int, list of (c,) or Tensor
        captum's forms: a tuple indexes the output after the batch axis (one class for every
        input), a list gives one class (or one ``(c,)``) per input.
    n : int
        Number of inputs.
    logits : callable
        Returns the model's logits ``(n, C)``, called only for ``target=None``.
    num_classes : int
    name : str, default="target"
        What the caller's user calls it, for the messages.

    Returns
    -------
    Tensor of shape (n,), dtype long
    """
    if target is None:
        return logits().argmax(-1).cpu()
    if isinstance(target, bool | np.bool_):
        raise TypeError("target must be an int, a list of ints or an integer tensor, got bool")

    def one_index(v: Any) -> bool:  # captum's tuple: the output's index after the batch axis
        return isinstance(v, tuple) and len(v) == 1 and _is_int(v[0])

    if isinstance(target, tuple):
        if not one_index(target):
            raise ValueError(
                "target as a tuple is the output's index after the batch axis (captum's "
                f"convention): the logits (N, C) take a tuple of one class, (c,); got {target!r}; "
                "give one class per input as a list or a tensor"
            )
        target = int(target[0])
    elif isinstance(target, list) and target and all(one_index(v) for v in target):
        target = [int(v[0]) for v in target]  # one (c,) per input
    if isinstance(target, numbers.Integral):
        t = torch.full((n,), int(target), dtype=torch.long)
    elif isinstance(target, list) and all(_is_int(v) for v in target):
        t = torch.tensor([int(v) for v in target], dtype=torch.long)
    elif isinstance(target, np.ndarray) and target.dtype.kind in "iu":
        t = torch.from_numpy(target.astype(np.int64).reshape(-1))
        if t.numel() == 1:
            t = t.expand(n).clone()
    elif isinstance(target, Tensor) and not target.is_floating_point() and target.dtype != torch.bool:
        t = readable(target.detach().cpu().long().reshape(-1))
        if t.numel() == 1:
            t = t.expand(n).clone()
    else:
        raise TypeError(
            f"target must be None, an int, a list of ints or an integer tensor, got {type(target).__name__}"
        )
    if len(t) != n:
        raise ValueError(f"{name} must give one class per input: {n} inputs, {len(t)} classes")
    if len(t) and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}), got values in [{int(t.min())}, {int(t.max())}]"
        )
    return t


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool | np.bool_)


def split_influence_inputs(inputs: Any) -> tuple[Tensor, Tensor | None]:
    """captum's influence ``inputs``: an ``(x, y)`` batch (labels last), a tensor ``x``, or a
    ``DataLoader`` of those (its batches stacked)."""
    from torch.utils.data import DataLoader

    if isinstance(inputs, DataLoader):
        parts = [split_influence_inputs(batch) for batch in inputs]
        if not parts:
            raise ValueError("inputs is an empty DataLoader")
        if len({y is None for _, y in parts}) > 1:
            raise ValueError("inputs' batches must all carry labels or none")
        xs = torch.cat([x for x, _ in parts])
        ys = None if parts[0][1] is None else torch.cat([torch.as_tensor(y) for _, y in parts])
        return xs, ys
    if isinstance(inputs, Tensor):
        return inputs, None
    if isinstance(inputs, tuple | list):
        if len(inputs) == 2 and isinstance(inputs[0], Tensor):
            y = np.asarray(inputs[1]) if not isinstance(inputs[1], Tensor) else inputs[1]
            if isinstance(y, np.ndarray) and y.dtype.kind not in "biuf":
                raise TypeError(
                    f"the labels of an (x, y) batch must be class indices (ints) or rows of "
                    f"probabilities, got {type(inputs[1]).__name__} of dtype {y.dtype}"
                )
            return inputs[0], torch.as_tensor(y)
        raise ValueError(
            "inputs must be a tensor x or an (x, y) batch whose last element holds the labels; "
            f"got a {type(inputs).__name__} of length {len(inputs)}"
        )
    raise TypeError(f"inputs must be a Tensor or an (x, y) tuple, got {type(inputs).__name__}")


def labels_as_classes(y: Tensor, num_classes: int) -> Tensor:
    """The labels of an ``(x, y)`` batch as class indices ``(n,)``.

    Class indices ``(n,)`` or ``(n, 1)`` pass; rows of probabilities ``(n, C)`` give their
    arg-max class (the class whose logit is explained). Anything else raises.
    """
    if y.is_floating_point():
        if y.ndim == 2 and y.shape[1] == num_classes:  # soft labels: explain the arg-max class
            return check_labels(y, num_classes, name="labels (the y of an (x, y) batch)").argmax(-1)
        raise TypeError(
            "the labels of an (x, y) batch must be class indices (an integer tensor of shape (n,) or "
            f"(n, 1)) or rows of probabilities of shape (n, {num_classes}); got a floating-point "
            f"tensor of shape {tuple(y.shape)}"
        )
    if y.dtype == torch.bool:
        raise TypeError("the labels of an (x, y) batch must be class indices, got a bool tensor")
    if y.ndim == 2 and y.shape[1] == 1:
        return y[:, 0]
    if y.ndim > 1:
        raise ValueError(
            "the labels of an (x, y) batch must be class indices of shape (n,) or (n, 1), or rows "
            f"of probabilities of shape (n, {num_classes}); got shape {tuple(y.shape)}"
        )
    return y
