"""Distilled training sets: DSVs (0-shot or k-shot), random real samples, top-λ coresets."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn

from .._data import as_data, refuse_token_synthesis
from .._model_info import cast_inputs, model_device, model_dtype, token_layer
from .._model_state import eval_mode
from .._result import DSVResult
from .._validation import (
    check_choice,
    check_device,
    check_model,
    check_positive,
    refuse_float_indices,
    resolve_seed,
    to_python,
)
from ._dataset import DistilledSet

__all__ = ["distill", "random_real", "coreset", "add_soft_labels"]

# DeepSupportVectors settings that distill sets itself
_OWN = (
    "n_per_class",
    "init",
    "seed",
    "progress",
    "classes",
    "projection_dim",
    "sketch",
    "chunk_size",
    "maximize_sum",
    "ridge",
)


def _labelled(data: Any, name: str) -> tuple[Tensor, Tensor]:
    x, y = as_data(data, name)
    if y is None:
        raise ValueError(
            f"{name} must carry labels: an (inputs, labels) pair, a labelled Dataset or DataLoader"
        )
    refuse_float_indices(y, f"{name} labels of shape (N,)")
    if y.is_floating_point():
        if y.ndim != 2:
            raise ValueError(f"{name} labels must have shape (N,) or (N, C), got {tuple(y.shape)}")
        y = y.argmax(dim=1)
    if y.ndim != 1:
        raise ValueError(f"{name} labels must have shape (N,), got {tuple(y.shape)}")
    return x, y.long()


def _per_class(y: Tensor, k: int, num_classes: int, gen: torch.Generator, name: str) -> Tensor:
    picks = []
    for c in range(num_classes):
        members = (y == c).nonzero().flatten()
        if len(members) < k:
            raise ValueError(
                f"{name} has {len(members)} samples of class {c}, fewer than images_per_class={k}"
            )
        picks.append(members[torch.randperm(len(members), generator=gen)[:k]])
    return torch.cat(picks)


@torch.no_grad()
def _probabilities(model: nn.Module, x: Tensor, temperature: float, batch_size: int = 512) -> Tensor:
    device, dtype = model_device(model), model_dtype(model)
    out = []
    with eval_mode(model):
        for start in range(0, len(x), batch_size):
            try:
                logits = model(cast_inputs(x[start : start + batch_size], device, dtype)).float()
            except RuntimeError as e:
                raise ValueError(
                    f"model does not take the set's inputs of shape {tuple(x.shape[1:])} (forward "
                    f"failed: {e}): pass the model the set was distilled for"
                ) from e
            out.append(torch.softmax(logits / temperature, dim=1).cpu())
    return torch.cat(out)


def add_soft_labels(dataset: DistilledSet, model: nn.Module, temperature: float = 1.0) -> DistilledSet:
    """A copy of ``dataset`` with the teacher's probabilities as soft labels.

    Parameters
    ----------
    dataset : DistilledSet
    model : nn.Module
        The teacher, ``(B, *input_shape) -> (B, C)`` logits. Left as found.
    temperature : float, default=1.0
        ``softmax(logits / temperature)``; above 1 softens the labels.

    Returns
    -------
    DistilledSet
        ``soft_labels`` of shape ``(N, C)``, rows summing to one.
    """
    if not isinstance(dataset, DistilledSet):
        raise TypeError(f"dataset must be a DistilledSet, got {type(dataset).__name__}")
    check_model(model)
    temperature = to_python(temperature)
    check_positive("temperature", temperature)
    soft = _probabilities(model, dataset.inputs, float(temperature))
    return DistilledSet(
        dataset.inputs,
        dataset.labels,
        soft,
        dataset.source,
        {**dataset.info, "temperature": float(temperature)},
    )


def random_real(
    data: Any, images_per_class: int, num_classes: int | None = None, seed: Any = 0
) -> DistilledSet:
    """``images_per_class`` random real samples of every class: the baseline of distillation.

    Parameters
    ----------
    data : Dataset, DataLoader, (inputs, labels) pair
        Labelled samples ``(N, *input_shape)``, labels ``(N,)``.
    images_per_class : int
    num_classes : int, optional
        Default: the largest label plus one.
    seed : None, int or Generator, default=0

    Returns
    -------
    DistilledSet
        ``C * images_per_class`` samples sorted by class; ``info["indices"]`` are their rows in
        ``data``.
    """
    images_per_class = to_python(images_per_class)
    check_positive("images_per_class", images_per_class, integer=True)
    x, y = _labelled(data, "data")
    if num_classes is None:
        num_classes = int(y.max()) + 1
    num_classes = to_python(num_classes)
    check_positive("num_classes", num_classes, integer=True)
    seed = resolve_seed(seed)
    idx = _per_class(y, int(images_per_class), int(num_classes), torch.Generator().manual_seed(seed), "data")
    info = {"images_per_class": int(images_per_class), "seed": seed, "indices": idx.tolist()}
    return DistilledSet(x[idx].clone().float(), y[idx].clone(), None, "random", info)


def coreset(selection: DSVResult, images_per_class: int) -> DistilledSet:
    """The ``images_per_class`` samples of largest λ in every class of a selection result.

    Parameters
    ----------
    selection : DSVResult
        From ``DeepSupportVectors().attribute(model, candidates=...)``.
    images_per_class : int

    Returns
    -------
    DistilledSet
        Sorted by class, best first within a class; ``info["indices"]`` are rows of
        ``selection`` and ``info["lambdas"]`` their multipliers.
    """
    if not isinstance(selection, DSVResult):
        raise TypeError(f"selection must be a DSVResult, got {type(selection).__name__}")
    images_per_class = to_python(images_per_class)
    check_positive("images_per_class", images_per_class, integer=True)
    top = selection.top_k_per_class(int(images_per_class))
    short = (top.indices < 0).any(dim=1).nonzero().flatten().tolist()
    if short:
        raise ValueError(
            f"selection has fewer than images_per_class={images_per_class} samples of class(es) {short}"
        )
    idx = top.indices.flatten()
    info = {
        "images_per_class": int(images_per_class),
        "indices": (idx if selection.indices is None else selection.indices[idx]).tolist(),
        "lambdas": top.lambdas.flatten().tolist(),
    }
    return DistilledSet(
        selection.inputs[idx].clone().float(), selection.hard_labels[idx].clone(), None, "coreset", info
    )


def _settings(settings: dict[str, Any]) -> dict[str, Any]:
    from .. import DeepSupportVectors

    allowed = set(DeepSupportVectors._param_names()) - set(_OWN)
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise TypeError(
            f"unexpected setting(s) {unknown} for distill; it takes these DeepSupportVectors "
            f"settings: {sorted(allowed)}"
        )
    return settings


def distill(
    model: nn.Module,
    images_per_class: int = 10,
    init: str = "real",
    real: Any = None,
    other: Any = None,
    soft_labels: bool = False,
    temperature: float = 1.0,
    seed: Any = 0,
    input_shape: Any = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    **settings: Any,
) -> DistilledSet:
    """Distil a small training set from a trained classifier with deep support vectors.

    Parameters
    ----------
    model : nn.Module
        The teacher: ``(B, *input_shape) -> (B, C)`` logits. Left exactly as found.
    images_per_class : int, default=10
    init : {"real", "noise", "other"}, default="real"
        ``"real"`` starts the DSVs of every class from ``images_per_class`` real samples of
        that class drawn from ``real`` (the paper's k-shot rows; pass exactly that many per
        class to choose them yourself). ``"noise"`` starts from Gaussian noise, using no
        data. ``"other"`` starts from random samples of ``other``, whatever they show (the
        paper's 0-shot rows initialise from another dataset).
    real : Dataset, DataLoader or (inputs, labels), optional
        Labelled real samples, for ``init="real"``.
    other : Tensor, ndarray, Dataset or DataLoader, optional
        Unlabelled inputs of the model's shape, for ``init="other"``.
    soft_labels : bool, default=False
        Also store the teacher's probabilities on the DSVs (``softmax(logits / temperature)``).
    temperature : float, default=1.0
    seed : None, int or Generator, default=0
        Seeds the initialisation and the synthesis.
    input_shape : tuple of int, optional
        Shape of one input, when it cannot be read from the model or the data.
    device : str or torch.device, optional
        Compute on this device (a copy of the model is moved there); default: the model's.
    progress : bool, default=True
        Show synthesis' progress bar.
    **settings
        Other :class:`~kktexplain.DeepSupportVectors` settings, e.g. ``steps``, ``lr``,
        ``objective``, ``augmentation``, ``input_range``, ``batch_size``.

    Returns
    -------
    DistilledSet
        ``C * images_per_class`` inputs ``(N, *input_shape)`` with hard labels ``(N,)`` (and
        soft labels ``(N, C)``); ``info`` holds the settings and the synthesis' KKT summary.

    Examples
    --------
    >>> from kktexplain.distill import distill
    >>> from kktexplain.models import MLP
    >>> teacher = MLP((4,), num_classes=3, hidden=(8,))
    >>> small = distill(teacher, images_per_class=2, init="noise", steps=5, progress=False)
    >>> small.inputs.shape, small.labels.tolist()
    (torch.Size([6, 4]), [0, 0, 1, 1, 2, 2])
    """
    from .. import DeepSupportVectors

    check_model(model)
    images_per_class = to_python(images_per_class)
    check_positive("images_per_class", images_per_class, integer=True)
    check_choice("init", init, ("real", "noise", "other"))
    if not isinstance(soft_labels, bool):
        raise TypeError(f"soft_labels must be a bool, got {type(soft_labels).__name__}")
    temperature = to_python(temperature)
    check_positive("temperature", temperature)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
    settings = _settings(settings)
    seed = resolve_seed(seed)
    refuse_token_synthesis(token_layer(check_model(model)))  # before the data's dtype check
    init_data = None
    if init == "real":
        if real is None:
            raise ValueError("init='real' needs real=: labelled samples of every class")
        if other is not None:
            raise ValueError("other= is only used with init='other'")
        init_data = _labelled(real, "real")  # its labels and class counts are checked by
        # the explainer against the model's classes, in real='s and images_per_class's words
    elif init == "other":
        if other is None:
            raise ValueError("init='other' needs other=: inputs of the model's shape from another dataset")
        init_data = as_data(other, "other")[0]
    elif real is not None or other is not None:
        raise ValueError("init='noise' uses no data: leave real= and other= unset")
    device = check_device(device)
    if device is not None and device != model_device(model):
        model = copy.deepcopy(model).to(device)
    explainer = DeepSupportVectors(
        n_per_class=int(images_per_class), init=init, seed=seed, progress=progress, **settings
    )
    try:
        result = explainer.attribute(model, init_data=init_data, input_shape=input_shape)
    except ValueError as e:
        if "init_data" not in str(e) and "n_per_class" not in str(e):
            raise
        source = "real" if init == "real" else "other"
        text = str(e).replace("init_data", source).replace("n_per_class", "images_per_class")
        raise ValueError(text) from e
    order = torch.argsort(result.hard_labels, stable=True)
    inputs = result.inputs[order].detach().float().clone()
    info = {
        "images_per_class": int(images_per_class),
        "init": init,
        "seed": seed,
        "settings": {k: v for k, v in result.settings.items() if k not in ("objective", "param_names")},
        "kkt": result.kkt.summary(),
        "lambdas": result.lambdas[order].tolist(),
    }
    if result.indices is not None:
        info["indices"] = result.indices[order].tolist()
    out = DistilledSet(inputs, result.hard_labels[order].clone(), None, f"dsv-{init}", info)
    return add_soft_labels(out, model, float(temperature)) if soft_labels else out
