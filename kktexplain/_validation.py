"""Input checks that raise ``ValueError`` / ``TypeError`` naming the parameter (never assert)."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._io import check_writable
from ._model_info import _TOKEN_LAYERS, ScriptedModel
from ._tensors import readable
from .kkt._rows import rows_all_finite

__all__ = [
    "check_finite",
    "check_run_options",
    "check_model",
    "check_device",
    "check_labels",
    "check_inputs",
    "check_choice",
    "check_positive",
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


def check_count(name: str, value: object) -> int:
    """A positive int (numpy ints included) as a Python int, or raise naming ``name``
    (``TypeError`` for a wrong type, ``ValueError`` below 1)."""
    check_positive(name, value, integer=True)
    return int(value)


def check_model(model: object) -> nn.Module:
    """The model to compute with: ``model`` itself, the module inside ``nn.DataParallel``,
    ``DistributedDataParallel`` or ``torch.compile``'s wrapper, or a TorchScript module held in a
    :class:`~kktexplain._model_info.ScriptedModel` (its parameter names get the prefix
    ``scripted.``), because ``torch.func.functional_call`` refuses a ``ScriptModule``.

    Raises
    ------
    TypeError
        Unless ``model`` is an ``nn.Module``.
    ValueError
        When it has no parameters, tensors on the ``meta`` device, a batch normalisation
        without running statistics, lazy parameters not initialised yet, or an embedding
        with ``max_norm`` (it writes its weight in place at every forward).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel):
        # the wrapped module, same parameters (without the wrapper's "module." prefix): the
        # wrapper only spreads batches over devices, and the functional calls refuse it
        model = model.module
    if type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None), nn.Module):
        # torch.compile's wrapper: the same parameters under "_orig_mod."; the original module
        # keeps the names of results computed without compile, and needs no recompilation
        model = model._orig_mod
    if next(model.parameters(), None) is None:
        raise ValueError("model must have parameters: stationarity is a condition on them")
    meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    if meta:
        raise ValueError(
            f"model has tensors on the 'meta' device, which hold no values ({meta[0]!r}): "
            "materialise its weights first (model.to_empty(device=...) and load_state_dict)"
        )
    batch_stats = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not m.track_running_stats
    ]
    if batch_stats:
        raise ValueError(
            f"model has batch normalisation without running statistics ({batch_stats[0]!r}, "
            "track_running_stats=False): even in eval mode it normalises each batch by its own "
            "statistics, so a sample's loss depends on the others in its batch and the per-sample "
            "DeepKKT conditions are undefined; use running statistics, or GroupNorm / LayerNorm"
        )
    lazy = [n for n, p in model.named_parameters() if isinstance(p, nn.parameter.UninitializedParameter)]
    if lazy:
        raise ValueError(
            f"model has lazy parameters not initialised yet ({lazy[0]!r}, e.g. nn.LazyLinear): "
            "run one forward pass of a real batch first, so that their shapes are known"
        )
    renorm = [
        (n, m.max_norm)
        for n, m in model.named_modules()
        if isinstance(m, _TOKEN_LAYERS) and m.max_norm is not None
    ]
    if renorm:
        raise ValueError(
            f"model has an embedding with max_norm={renorm[0][1]} ({renorm[0][0]!r}): it "
            "renormalises its weight in place at every forward pass, which would change the "
            "model and which torch.func cannot differentiate; renormalise the weight once "
            "(e.g. with torch.embedding_renorm_ over all rows) and set max_norm=None"
        )
    if isinstance(model, torch.jit.ScriptModule):
        return ScriptedModel(model)
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
    if dev.type == "meta":
        raise ValueError(f"device={device!r} holds no values: give a device that computes ('cpu', 'cuda')")
    return dev


def check_inputs(name: str, inputs: object, input_shape: tuple[int, ...], token_ids: bool = False) -> Tensor:
    """Raise unless ``inputs`` is a float tensor of shape ``(N, *input_shape)``.

    With ``token_ids`` (a model whose first layer is an embedding) an integer tensor is asked for.
    """
    if not isinstance(inputs, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(inputs).__name__}")
    if tuple(inputs.shape[1:]) != tuple(input_shape) or inputs.ndim != len(input_shape) + 1:
        raise ValueError(
            f"{name} must have shape (N, {', '.join(map(str, input_shape))}), got {tuple(inputs.shape)}"
        )
    if token_ids:
        if inputs.is_floating_point() or inputs.is_complex() or inputs.dtype == torch.bool:
            raise TypeError(
                f"{name} must hold integer token ids (the model's first layer is an embedding), "
                f"got dtype {inputs.dtype}"
            )
    elif not inputs.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {inputs.dtype}")
    return inputs


def refuse_float_indices(labels: Tensor, name: str) -> None:
    """Raise ``TypeError`` for labels of one axis ``(N,)`` that are not integer class indices
    (floating point or bool), with a hint where they hold whole numbers."""
    if labels.ndim == 1 and (labels.is_floating_point() or labels.dtype == torch.bool):
        whole = labels.is_floating_point() and bool((labels == labels.round()).all())
        hint = ": they hold whole numbers, convert them with .long()" if whole else ""
        raise TypeError(f"{name} must be integer class indices, got dtype {labels.dtype}{hint}")


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
    labels = readable(labels)
    if labels.ndim == 1:
        refuse_float_indices(labels, name)
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} must lie in [0, {num_classes}) for a model with {num_classes} classes, "
                f"got values in [{int(labels.min())}, {int(labels.max())}]"
            )
        labels = labels.long()
    elif labels.ndim == 2:
        if labels.shape[1] == 1 and num_classes > 1:
            raise ValueError(
                f"{name} must be class indices of shape (N,) or soft labels (N, {num_classes}), got "
                f"{tuple(labels.shape)}: flatten them (labels.reshape(-1))"
            )
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
        if not 0 <= seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {seed!r}")
        return int(seed)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if isinstance(seed, torch.Generator):
        return int(torch.randint(0, 2**63 - 1, (1,), generator=seed).item())
    raise TypeError(
        "seed must be None, an int, a numpy integer, a numpy.random.Generator or a "
        f"torch.Generator, got {type(seed).__name__}"
    )


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


def check_per_class_accuracy(accuracy: Any, num_classes: int) -> Tensor:
    """Per-class accuracy as a float64 tensor ``(num_classes,)`` of values in ``[0, 1]``.

    ``nan`` stands for a class without test samples (as :func:`per_class_accuracy` gives);
    any other value outside ``[0, 1]``, inf included, raises ``ValueError``.
    """
    try:
        acc = torch.as_tensor(accuracy, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError) as e:
        raise TypeError(f"accuracy must be a sequence of floats, got {type(accuracy).__name__}") from e
    if len(acc) != num_classes:
        raise ValueError(f"accuracy must have one value per class ({num_classes}), got {len(acc)}")
    bad = ~torch.isnan(acc) & ((acc < 0) | (acc > 1))
    if bool(bad.any()):
        c = int(bad.nonzero()[0])
        raise ValueError(
            f"accuracy must lie in [0, 1] (nan for a class without test samples), got {float(acc[c])} "
            f"for class {c}"
        )
    return acc
