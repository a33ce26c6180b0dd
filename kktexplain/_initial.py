"""The starting inputs of synthesis: noise, real samples of every class, or other data."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ._validation import check_inputs, check_labels
from ._warn import warn_user

__all__ = ["check_step_scale", "initial_inputs", "split_data"]


def split_data(data: Any) -> tuple[Tensor, Tensor | None]:
    """``(inputs, labels or None)`` from a tensor, an ``(inputs, labels)`` pair or a dataset."""
    if isinstance(data, Tensor):
        return data, None
    if isinstance(data, tuple | list) and len(data) == 2 and isinstance(data[0], Tensor):
        return data[0], torch.as_tensor(data[1])
    if isinstance(data, Dataset):
        tensors = getattr(data, "tensors", None)
        if tensors is not None and len(tensors) >= 2:
            return tensors[0], tensors[1]
        xs, ys = zip(*(data[i] for i in range(len(data))))
        return torch.stack(list(xs)), torch.as_tensor(ys)
    raise TypeError(
        f"init_data must be a Tensor, an (inputs, labels) tuple or a torch Dataset, got {type(data).__name__}"
    )


def initial_inputs(
    init: str,
    n_per_class: int,
    init_scale: float,
    input_shape: tuple[int, ...],
    num_classes: int,
    labels: Tensor | None,
    init_data: Any,
    gen: torch.Generator,
    classes: list[int] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The starting inputs of synthesis, on the CPU.

    Parameters
    ----------
    init : {"noise", "real", "other"}
    n_per_class, init_scale
        See :class:`~kktexplain.DeepSupportVectors`.
    input_shape : tuple of int
    num_classes : int
    labels : Tensor of shape (N,) or (N, C), optional
    init_data : Tensor, (Tensor, Tensor) or Dataset, optional
    gen : torch.Generator
        CPU generator; consumed in a fixed order so a seed fixes the result.
    classes : list of int, optional
        Without ``labels``: the classes to draw ``n_per_class`` candidates of (default: all).

    Returns
    -------
    x0 : Tensor of shape (N, *input_shape)
    labels : Tensor of shape (N,) or (N, C)
    indices : Tensor of shape (N,) or None
        Rows of ``init_data`` the inputs came from.
    """
    wanted = torch.arange(num_classes) if classes is None else torch.tensor(list(classes), dtype=torch.long)
    if init == "noise":
        if labels is None:
            labels = wanted.repeat_interleave(n_per_class)
        x = torch.randn(len(labels), *input_shape, generator=gen) * init_scale
        return x, labels, None
    if init_data is None:
        raise ValueError(f"init={init!r} needs init_data (real or other samples)")
    data_x, data_y = split_data(init_data)
    check_inputs("init_data", data_x, input_shape)
    if init == "other":
        n = len(labels) if labels is not None else n_per_class * len(wanted)
        if len(data_x) < n:
            raise ValueError(f"init_data has {len(data_x)} samples, {n} are needed")
        idx = torch.randperm(len(data_x), generator=gen)[:n]
        if labels is None:
            labels = wanted.repeat_interleave(n_per_class)
        return data_x[idx].clone(), labels, idx
    # init == "real"
    if labels is not None:
        if len(labels) != len(data_x):
            raise ValueError(
                "with init='real' and explicit labels, init_data must hold one input per "
                f"label: got {len(data_x)} inputs for {len(labels)} labels"
            )
        return data_x.clone(), labels, torch.arange(len(data_x))
    if data_y is None:
        raise ValueError(
            "init='real' needs labelled init_data: an (inputs, labels) tuple or a dataset, or pass labels="
        )
    data_y = check_labels(data_y, num_classes, len(data_x), name="init_data labels")
    # one-hot or probability rows: a sample's class is its arg-max (its row is kept as its label)
    hard = data_y if data_y.ndim == 1 else data_y.argmax(1)
    picks = []
    for c in wanted.tolist():
        members = (hard == c).nonzero().flatten()
        if len(members) < n_per_class:
            raise ValueError(
                f"init_data has {len(members)} samples of class {c}, fewer than n_per_class={n_per_class}"
            )
        picks.append(members[torch.randperm(len(members), generator=gen)[:n_per_class]])
    idx = torch.cat(picks)
    return data_x[idx].clone(), data_y[idx], idx


def check_step_scale(x0: Tensor, lr: float, steps: int, optimizer: str, noise: float) -> None:
    """Warn when the synthesis' absolute step sizes do not fit the scale of the starting inputs.

    ``lr`` (Adam moves a coordinate by about ``lr`` per step), ``init_scale`` and the
    augmentation's noise are in input units. Real or other-data inputs of a spread far above
    ``lr * steps`` barely move (pixels in 0-255, raw tabular features); inputs of a spread below
    ``lr`` or the noise are swamped by one step. Only the spread of ``x0`` (its standard
    deviation) is read.

    Parameters
    ----------
    x0 : Tensor of shape (N, *input_shape)
        The real or other-data starting inputs.
    lr : float
    steps : int
    optimizer : {"adam", "sgd"}
    noise : float
        The augmentation's noise standard deviation (0 without augmentation).
    """
    if optimizer != "adam" or len(x0) < 2 or not x0.is_floating_point():
        return
    spread = float(x0.double().std())
    if not spread > 0:
        return
    advice = (
        "lr, init_scale and the augmentation's noise are in input units: pass lr (and "
        "augmentation=Augmentation(noise=...)) in your data's units, or standardise the inputs"
    )
    if lr * steps < 0.05 * spread:
        warn_user(
            f"the starting inputs have a spread (standard deviation) of {spread:.3g}, and "
            f"{steps} Adam steps of about lr={lr:g} move a coordinate by at most {lr * steps:.3g} "
            f"({100 * lr * steps / spread:.2g}% of it): the DSVs will barely leave their "
            f"starting inputs; {advice}",
        )
    elif max(lr, noise) > spread:
        warn_user(
            f"the starting inputs have a spread (standard deviation) of {spread:.3g}, below one "
            f"step's size (lr={lr:g}, augmentation noise {noise:g}): the first steps swamp "
            f"them; {advice}",
        )
