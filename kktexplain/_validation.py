"""Input checks that raise ``ValueError`` / ``TypeError`` naming the parameter (never assert)."""

from __future__ import annotations

import copy
import math
import numbers
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._io import check_writable
from .kkt._rows import rows_all_finite

__all__ = [
    "check_finite",
    "check_run_options",
    "computable_model",
    "resolve_input_shape",
    "check_model",
    "check_device",
    "check_labels",
    "check_inputs",
    "infer_input_shape",
    "infer_num_classes",
    "model_device",
    "check_choice",
    "check_positive",
    "as_data",
    "resolve_seed",
    "to_python",
]


def check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def check_positive(name: str, value: object, integer: bool = False, allow_zero: bool = False) -> None:
    """Raise unless ``value`` is a finite positive (or non-negative) number (an int if ``integer``)."""
    kinds = (numbers.Integral,) if integer else (numbers.Real,)
    if isinstance(value, bool | np.bool_) or not isinstance(value, kinds):
        kind = "an int" if integer else "a float"
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
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


def check_device(device: Any) -> torch.device | None:
    """``None``, or ``device`` as a ``torch.device``; raise naming ``device`` otherwise.

    A CUDA device is refused with a ``ValueError`` where CUDA is not available.
    """
    if device is None:
        return None
    if not isinstance(device, str | torch.device):
        raise TypeError(f"device must be None, a str or a torch.device, got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device={device!r} is not a valid device: {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: CUDA is not available")
    return dev


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter."""
    return next(model.parameters()).device


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def infer_input_shape(
    model: nn.Module, input_shape: Sequence[int] | None, warn_flatten: bool = True
) -> tuple[int, ...]:
    """``input_shape`` if given, else ``model.input_shape``, else a leading Linear's width.

    A model that starts with ``nn.Flatten`` gets the flat width of its first ``nn.Linear``, with
    a ``UserWarning`` (unless ``warn_flatten`` is False) that suggests an image ``input_shape``:
    the DSVs would otherwise be flat vectors.

    Raises
    ------
    ValueError
        If the shape cannot be inferred; the message asks for ``input_shape``.
    """
    if input_shape is not None:
        shape = tuple(input_shape) if not isinstance(input_shape, numbers.Integral) else (input_shape,)
        if not shape or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s > 0 for s in shape
        ):
            raise ValueError(f"input_shape must be a tuple of positive ints, got {input_shape!r}")
        return tuple(int(s) for s in shape)
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return tuple(int(s) for s in shape)
    flatten_first = False
    for module in model.modules():
        if isinstance(module, nn.Flatten):
            flatten_first = True
        if isinstance(module, nn.Linear):
            if flatten_first and warn_flatten:
                warnings.warn(_flatten_hint(module.in_features), UserWarning, stacklevel=3)
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
    if bool(torch.isfinite(out).all()) and bool((out >= 0).all()):
        sums = out.double().sum(1)
        if bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-3)):
            warnings.warn(
                "the model's outputs look like probabilities (non-negative rows that sum to 1, "
                "e.g. a final Softmax); the DeepKKT conditions need logits: pass the model "
                "without its final Softmax",
                UserWarning,
                stacklevel=3,
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


def _flatten_hint(width: int) -> str:
    guess = ""
    for channels in (1, 3):
        side = round((width / channels) ** 0.5)
        if side > 1 and channels * side * side == width:
            guess = f", e.g. input_shape=({channels}, {side}, {side})"
            break
    return (
        f"the model starts with nn.Flatten, so the inputs are taken as flat vectors of shape "
        f"({width},); if the model takes images, pass input_shape{guess} (or set "
        "model.input_shape) to synthesise images"
    )


def to_python(value: Any) -> Any:
    """A numpy scalar as the matching Python number; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def resolve_seed(seed: Any) -> int:
    """One int seed from ``None``, an int (numpy integers included) or a numpy/torch Generator.

    ``None`` draws a fresh seed from the operating system's entropy
    (:class:`numpy.random.SeedSequence`); a Generator gives one draw from it (advancing it, as
    scikit-learn does with a ``RandomState``). The resolved int is what a result records in
    ``settings["seed"]``, so a run with ``seed=None`` can be repeated.

    Returns
    -------
    int
        In ``[0, 2**63)``.
    """
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool | np.bool_):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed!r}")
        return int(seed)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if isinstance(seed, torch.Generator):
        return int(torch.randint(0, 2**63 - 1, (1,), generator=seed).item())
    raise TypeError(
        "seed must be None, an int, a numpy integer, a numpy.random.Generator or a "
        f"torch.Generator, got {type(seed).__name__}"
    )


def _writable(a: np.ndarray) -> np.ndarray:
    """A contiguous, writable array (a copy only where needed) that torch.from_numpy accepts."""
    a = np.ascontiguousarray(a)
    return a if a.flags.writeable else a.copy()


def _as_float_tensor(x: Any, name: str) -> Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got a numpy array of dtype object")
        x = torch.from_numpy(_writable(x))
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must hold tensors or numpy arrays, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must hold floating-point inputs, got dtype {x.dtype}; convert them to the "
            "model's input scale first (e.g. x.float() / 255 for 8-bit images)"
        )
    return x


def _labels_tensor(y: Any, name: str) -> Tensor:
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(_writable(y))
    return y if isinstance(y, Tensor) else torch.as_tensor(y)


def as_data(data: Any, name: str) -> tuple[Tensor, Tensor | None]:
    """``(inputs, labels or None)`` from the forms ``candidates`` and ``init_data`` take.

    Parameters
    ----------
    data : Tensor, numpy array, (inputs, labels) pair, Dataset or DataLoader
        A tensor or array ``(N, *input_shape)``; a pair of those with labels ``(N,)`` or
        ``(N, C)``; a map-style ``torch.utils.data.Dataset`` whose items are ``input`` or
        ``(input, label)``; or a ``DataLoader`` whose batches are ``inputs`` or
        ``(inputs, labels)`` (read once, in its order).
    name : str
        The parameter's name, for the errors.

    Returns
    -------
    inputs : Tensor of shape (N, *input_shape)
        Floating point, on the CPU unless given elsewhere.
    labels : Tensor of shape (N,) or (N, C), or None

    Raises
    ------
    TypeError
        For another type, integer inputs, or items that are neither tensors nor pairs.
    ValueError
        For empty data or inputs and labels of different lengths.
    """
    from torch.utils.data import DataLoader, Dataset

    x: Any
    y: Any = None
    if isinstance(data, Tensor | np.ndarray):
        x = data
    elif isinstance(data, tuple | list) and len(data) == 2 and isinstance(data[0], Tensor | np.ndarray):
        x, y = data
    elif isinstance(data, DataLoader):
        xs, ys = [], []
        for i, batch in enumerate(data):
            bx, by = _split_item(batch, f"{name} (a DataLoader; batch {i})")
            xs.append(_as_float_tensor(bx, f"{name} (a DataLoader; batch {i})"))
            if by is not None:
                ys.append(_labels_tensor(by, name))
        if not xs:
            raise ValueError(f"{name} is an empty DataLoader")
        x = torch.cat(xs)
        y = torch.cat(ys) if len(ys) == len(xs) else None
    elif isinstance(data, Dataset):
        tensors = getattr(data, "tensors", None)
        if isinstance(tensors, tuple) and tensors and all(isinstance(t, Tensor) for t in tensors):
            x, y = tensors[0], tensors[1] if len(tensors) >= 2 else None
        else:
            try:
                n = len(data)  # type: ignore[arg-type]
            except TypeError as e:
                raise TypeError(
                    f"{name} must be a map-style Dataset with __len__ (or wrap it in a DataLoader)"
                ) from e
            if n == 0:
                raise ValueError(f"{name} is an empty Dataset")
            items = [_split_item(data[i], f"{name} (a Dataset; item {i})") for i in range(n)]
            xs = [_as_float_tensor(item[0], f"{name} (a Dataset; item {i})") for i, item in enumerate(items)]
            x = torch.stack(xs)
            if all(item[1] is not None for item in items):
                y = torch.stack([_labels_tensor(item[1], name) for item in items])
    else:
        raise TypeError(
            f"{name} must be a Tensor, a numpy array, an (inputs, labels) pair, a torch Dataset "
            f"or a DataLoader, got {type(data).__name__}"
        )
    x = _as_float_tensor(x, name)
    if len(x) == 0:
        raise ValueError(f"{name} is empty: it must hold at least one input")
    if y is not None:
        y = _labels_tensor(y, name)
        if len(y) != len(x):
            raise ValueError(f"{name} has {len(x)} inputs but {len(y)} labels")
    return x, y


def _split_item(item: Any, where: str) -> tuple[Any, Any]:
    if isinstance(item, Tensor | np.ndarray):
        return item, None
    if isinstance(item, tuple | list) and len(item) >= 2:
        return item[0], item[1]
    if isinstance(item, tuple | list) and len(item) == 1:
        return item[0], None
    raise TypeError(f"{where} is a {type(item).__name__}; expected an input tensor or an (input, label) pair")


def check_run_options(candidates: Any, checkpoint: Any, checkpoint_every: Any, callback: Any) -> Path | None:
    """Check ``attribute``'s run options; return the checkpoint's ``.npz`` path (or ``None``).

    Raises
    ------
    TypeError
        ``checkpoint_every`` not an int, ``callback`` not callable, ``checkpoint`` not a path.
    ValueError
        ``checkpoint_every`` not positive or without ``checkpoint``; ``checkpoint`` or
        ``callback`` with ``candidates`` (selection has no steps); an unwritable ``checkpoint``.
    """
    if checkpoint_every is not None:
        check_positive("checkpoint_every", checkpoint_every, integer=True)
        if checkpoint is None:
            raise ValueError("checkpoint_every needs checkpoint= (a file path)")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if candidates is not None and (checkpoint is not None or callback is not None):
        raise ValueError("checkpoint and callback are for synthesis; selection (candidates=) has no steps")
    return None if checkpoint is None else check_writable(checkpoint, "checkpoint")


def check_offload_dir(value: Any, selection: bool, multipliers: str) -> Path | None:
    """``offload_dir``: ``None``, or an existing, writable folder, for a fitted selection.

    Raises
    ------
    TypeError
        Not a str or path.
    ValueError
        Not an existing writable folder, or given for synthesis or ``multipliers="equal"``
        (neither forms the per-sample gradient matrix).
    """
    if value is None:
        return None
    if not isinstance(value, str | os.PathLike):
        raise TypeError(f"offload_dir must be a folder path (str or PathLike), got {type(value).__name__}")
    if not selection:
        raise ValueError("offload_dir is for selection (candidates=): synthesis forms no gradient matrix")
    if multipliers != "fit":
        raise ValueError("offload_dir needs multipliers='fit': equal multipliers form no gradient matrix")
    folder = Path(value)
    if not folder.is_dir():
        raise ValueError(f"offload_dir must be an existing folder, got {os.fspath(value)!r}")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"offload_dir must be writable, got {os.fspath(value)!r}")
    return folder


def check_finite(name: str, x: Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` and the first rows of ``x (N, ...)`` that hold NaN or inf."""
    bad = ~rows_all_finite(x)
    if bool(bad.any()):
        rows = bad.nonzero().flatten()[:5].tolist()
        more = ", ..." if int(bad.sum()) > 5 else ""
        raise ValueError(f"{name} holds NaN or inf values (rows {rows}{more})")


def computable_model(model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """The model to compute with: a float32 copy of a float16/bfloat16 model, else the model.

    Half-precision gradients of gradients overflow and underflow (all-NaN DSVs); the copy
    leaves the user's model untouched. The result records ``settings["model_dtype"]`` and
    ``settings["compute_dtype"]``.
    """
    dtype = model_dtype(model)
    if dtype in (torch.float16, torch.bfloat16):
        return copy.deepcopy(model).float(), {"model_dtype": str(dtype), "compute_dtype": "torch.float32"}
    return model, {}


def resolve_input_shape(
    model: nn.Module, input_shape: Sequence[int] | None, data_shape: tuple[int, ...] | None
) -> tuple[int, ...]:
    """The shape of one input: given, the model's, or the data's.

    A flat width read off a leading ``nn.Linear`` (e.g. after ``nn.Flatten``) gives way to the
    data's shape when that has as many elements (images for an image model that flattens).
    """
    try:
        shape = infer_input_shape(model, input_shape, warn_flatten=data_shape is None)
    except ValueError:
        if data_shape is None:
            raise
        return data_shape
    if (
        input_shape is None
        and getattr(model, "input_shape", None) is None
        and data_shape is not None
        and data_shape != shape
        and math.prod(data_shape) == math.prod(shape)
    ):
        return data_shape
    return shape
