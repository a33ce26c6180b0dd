"""The forms ``candidates`` and ``init_data`` take (arrays, pairs, Datasets, DataLoaders) as tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._tensors import readable
from ._validation import check_finite

__all__ = ["as_data", "prepare_data", "refuse_token_synthesis"]


def _writable(a: np.ndarray) -> np.ndarray:
    """A contiguous, writable array (a copy only where needed) that torch.from_numpy accepts."""
    a = np.ascontiguousarray(a)
    return a if a.flags.writeable else a.copy()


def _as_float_tensor(x: Any, name: str, token_ids: bool = False) -> Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{name} must be a numeric array, got a numpy array of dtype object")
        x = torch.from_numpy(_writable(x))
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must hold tensors or numpy arrays, got {type(x).__name__}")
    x = readable(x)
    if token_ids and not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool:
        return x.long()  # token ids of a model whose first layer is an embedding
    if not x.is_floating_point():
        raise TypeError(
            f"{name} must hold floating-point inputs, got dtype {x.dtype}; convert them to the "
            "model's input scale first (e.g. x.float() / 255 for 8-bit images)"
        )
    return x


def _labels_tensor(y: Any, name: str) -> Tensor:
    if isinstance(y, np.ndarray) and y.dtype.kind in "USO":
        raise ValueError(
            f"{name}: labels must be class indices 0..C-1 (or soft labels), got values of dtype "
            f"{y.dtype}; map them "
            "first, e.g. classes, y = np.unique(y, return_inverse=True)"
        )
    if isinstance(y, np.ndarray):
        y = torch.from_numpy(_writable(y))
    y = y if isinstance(y, Tensor) else torch.as_tensor(y)
    return readable(y)


def _same_labels(a: Tensor, b: Any) -> bool:
    """Whether labels given twice (with the candidates and as ``labels=``) agree."""
    try:
        b = _labels_tensor(b, "labels")
    except (TypeError, ValueError):
        return False  # labels= itself is refused further on, with its own message
    return a.shape == b.shape and torch.equal(a.to(torch.float64), b.to(torch.float64))


def refuse_token_synthesis(token_layer: str | None) -> None:
    """Raise ``ValueError`` for synthesis (or generation, distillation) on a model that reads
    token ids: ``token_layer`` is its embedding's name (``None`` for floating inputs)."""
    if token_layer is not None:
        raise ValueError(
            f"the model reads token ids (its first layer, {token_layer!r}, is an embedding): "
            "synthesis optimises continuous inputs and cannot make them; score real "
            "sequences with selection instead: attribute(model, candidates=X, labels=y)"
        )


def as_data(data: Any, name: str, token_ids: bool = False) -> tuple[Tensor, Tensor | None]:
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
    token_ids : bool, default=False
        Accept integer inputs (token ids of a model whose first layer is an embedding) and
        return them as ``torch.long``.

    Returns
    -------
    inputs : Tensor of shape (N, *input_shape)
        Floating point (``torch.long`` token ids with ``token_ids``), on the CPU unless given
        elsewhere.
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
            xs.append(_as_float_tensor(bx, f"{name} (a DataLoader; batch {i})", token_ids))
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
            xs = [
                _as_float_tensor(item[0], f"{name} (a Dataset; item {i})", token_ids)
                for i, item in enumerate(items)
            ]
            odd = next((i for i, t in enumerate(xs) if t.shape != xs[0].shape), None)
            if odd is not None:
                where = getattr(data, "samples", None)  # an ImageFolder names its files
                what = f" ({where[odd][0]})" if isinstance(where, list) and len(where) > odd else ""
                raise ValueError(
                    f"{name} holds inputs of different shapes: item {odd}{what} has shape "
                    f"{tuple(xs[odd].shape)}, item 0 {tuple(xs[0].shape)}; "
                    + (
                        "pad them to one length"
                        if token_ids
                        else "resize them to one shape (e.g. a torchvision Resize transform)"
                    )
                )
            x = torch.stack(xs)
            if all(item[1] is not None for item in items):
                y = torch.stack([_labels_tensor(item[1], name) for item in items])
    else:
        got = type(data).__name__
        if isinstance(data, tuple | list):  # a pair of lists, say: name what it holds
            got += (
                " of ("
                + ", ".join(type(v).__name__ for v in data[:3])
                + (", ..." if len(data) > 3 else "")
                + ")"
            )
        raise TypeError(
            f"{name} must be a Tensor, a numpy array, an (inputs, labels) pair of tensors or "
            f"arrays, a torch Dataset or a DataLoader, got {got}"
        )
    x = _as_float_tensor(x, name, token_ids)
    if len(x) == 0:
        raise ValueError(f"{name} is empty: it must hold at least one input")
    if y is not None:
        y = _labels_tensor(y, name)
        if len(y) != len(x):
            raise ValueError(f"{name} has {len(x)} inputs but {len(y)} labels")
    return x, y


def prepare_data(
    candidates: Any, labels: Any, init_data: Any, token_layer: str | None = None
) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """``DeepSupportVectors.attribute``'s data as tensors, checked for finiteness.

    Parameters
    ----------
    candidates, labels, init_data
        As :meth:`DeepSupportVectors.attribute` takes them (any form :func:`as_data` reads);
        labels carried by ``candidates`` are used where ``labels`` is ``None``.
    token_layer : str, optional
        The name of the model's first layer where it is an embedding (it reads token ids):
        integer candidates are kept (see :func:`as_data`), and synthesis (no candidates) is
        refused.

    Returns
    -------
    candidates : Tensor of shape (N, *input_shape) or None
    labels : Tensor of shape (N,) or (N, C), or None
    init_inputs : Tensor of shape (M, *input_shape) or None
    init_labels : Tensor of shape (M,) or None

    Raises
    ------
    ValueError
        For NaN or inf inputs, an empty ``labels``, or synthesis on a model reading token ids.
    """
    if candidates is None:
        refuse_token_synthesis(token_layer)
    init_x = init_y = None
    if candidates is not None:
        candidates, candidate_labels = as_data(candidates, "candidates", token_layer is not None)
        check_finite("candidates", candidates)
        if labels is None:
            labels = candidate_labels
        elif candidate_labels is not None and not _same_labels(candidate_labels, labels):
            raise ValueError(
                "candidates carries labels (a pair (inputs, labels), or a dataset of pairs) that "
                "differ from labels=: give them once. A model that takes two input tensors is not "
                "supported: wrap it in a module that takes one (docs/captum.md)"
            )
    if init_data is not None:
        init_x, init_y = as_data(init_data, "init_data")
        check_finite("init_data", init_x)
    if labels is not None:
        if not isinstance(labels, Tensor):
            array = np.asarray(labels)
            if array.dtype.kind not in "biuf":
                raise TypeError(
                    f"labels must be class indices (ints) or rows of probabilities, got "
                    f"{type(labels).__name__} of dtype {array.dtype}"
                )
            labels = torch.as_tensor(array)
        if labels.ndim >= 1 and len(labels) == 0:
            raise ValueError(
                "labels is empty: give at least one label, or omit labels= to synthesise "
                "n_per_class candidates of every class"
            )
    return candidates, labels, init_x, init_y


def _split_item(item: Any, where: str) -> tuple[Any, Any]:
    if isinstance(item, Tensor | np.ndarray):
        return item, None
    if isinstance(item, tuple | list) and len(item) >= 2:
        return item[0], item[1]
    if isinstance(item, tuple | list) and len(item) == 1:
        return item[0], None
    raise TypeError(f"{where} is a {type(item).__name__}; expected an input tensor or an (input, label) pair")
