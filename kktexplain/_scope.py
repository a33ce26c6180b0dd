"""The parameters stationarity is asked of: ``param_names`` (names, ``"free"`` or ``None``) resolved,
and the functional model over them."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .kkt import FunctionalModel, scale_invariant_modules

__all__ = [
    "check_scope_used",
    "expansion_param_names",
    "recorded_param_names",
    "resolve_param_names",
    "scoped_model",
    "without_frozen",
]

# Samples the scale-invariance probe reads: invariance is structural, so a few do, and the probe's
# cost (one jvp per module) grows with them.
_PROBE_ROWS = 8


def resolve_param_names(
    model: nn.Module,
    param_names: Sequence[str] | str | None,
    data: Tensor | None,
    input_shape: Sequence[int],
    seed: int,
    additional_forward_args: tuple = (),
) -> tuple[list[str] | None, dict[str, Any]]:
    """The scope of stationarity as parameter names, and what a result records about it.

    Parameters
    ----------
    model : nn.Module
        Only read (evaluated in eval mode by :func:`~kktexplain.kkt.scale_invariant_modules`).
    param_names : sequence of str, "free" or None
        ``None``: every parameter. ``"free"``: every parameter outside the modules whose scale
        the logits ignore, found on ``data[:8]`` or, without data, on 8 standard-normal inputs
        drawn with ``seed``; where some parameters are frozen (``requires_grad=False``) and
        others not, the frozen ones are left out too.
    data : Tensor of shape (N, *input_shape), optional
        Candidates or initialisation data (not read if its shape is another: that is reported
        by the data's own check).
    input_shape : sequence of int
        Shape of one input, for the seeded probe.
    seed : int
    additional_forward_args : tuple, default=()

    Returns
    -------
    names : list of str or None
        ``None`` means every parameter.
    recorded : dict
        For ``"free"``: ``resolved_param_names``, ``invariant_param_names`` and
        ``frozen_param_names``; else empty.

    Raises
    ------
    ValueError
        ``"free"`` where every trainable parameter is scale-invariant.

    Warns
    -----
    UserWarning
        ``"free"`` on a model whose logits ignore the scale of every module: every parameter
        is used then (``names=None``).
    """
    if param_names is None:
        return None, {}
    if param_names != "free":
        return list(param_names), {}
    probe = (
        data[:_PROBE_ROWS]
        if data is not None and tuple(data.shape[1:]) == tuple(input_shape)
        else torch.randn(_PROBE_ROWS, *input_shape, generator=torch.Generator().manual_seed(seed))
    )
    invariance = scale_invariant_modules(model, probe, additional_forward_args=additional_forward_args)
    names = invariance.free_param_names
    names, frozen = without_frozen(model, names)
    recorded = {
        "resolved_param_names": names,
        "invariant_param_names": invariance.param_names,
        "frozen_param_names": frozen,
    }
    if not names and frozen:
        raise ValueError(
            "param_names='free' leaves no parameter: every trainable one is scale-invariant (the "
            f"others are frozen: {frozen[:5]}); pass param_names= explicitly"
        )
    if not names:
        warnings.warn(
            "param_names='free' leaves no parameter: the logits ignore the scale of every module, so "
            "stationarity cannot hold in any scope (its cosine is 0 up to rounding); every parameter "
            "is used (param_names=None)",
            UserWarning,
            stacklevel=4,
        )
        return None, {**recorded, "resolved_param_names": None}
    return names, recorded


def recorded_param_names(settings: Mapping[str, Any]) -> list[str] | None:
    """The parameter names a result's stationarity was measured on, from its ``settings``.

    Parameters
    ----------
    settings : mapping
        A :class:`~kktexplain.DSVResult`'s ``settings``.

    Returns
    -------
    list of str or None
        ``settings["resolved_param_names"]`` where ``"free"`` was resolved, else
        ``settings["param_names"]``; ``None`` means every parameter (also for results that
        record neither).
    """
    if "resolved_param_names" in settings:
        names = settings["resolved_param_names"]
    else:
        names = settings.get("param_names")
    if names == "free":
        raise ValueError(
            "the result's settings say param_names='free' without the resolved names "
            "(settings['resolved_param_names']); pass param_names= explicitly"
        )
    return None if names is None else list(names)


def without_frozen(model: nn.Module, names: Sequence[str] | None) -> tuple[list[str] | None, list[str]]:
    """``names`` (``None``: every parameter) without the frozen ones, where some are frozen.

    Frozen parameters (``requires_grad=False`` beside trainable ones, e.g. a fine-tuned head
    on a frozen backbone) were not trained, so no stationarity condition holds on them. A model
    with every parameter frozen (frozen for inference) or none keeps ``names`` as given.

    Returns
    -------
    names : list of str or None
        Unchanged (``None`` stays ``None``) when nothing is left out.
    frozen : list of str
        The names left out.
    """
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    if all(flags.values()) or not any(flags.values()):
        return (None if names is None else list(names)), []
    every = list(flags) if names is None else list(names)
    return [n for n in every if flags.get(n, True)], [n for n in every if not flags.get(n, True)]


@torch.inference_mode(False)  # the probe differentiates, also when called inside inference_mode
def check_scope_used(fmodel: Any, inputs: Tensor, explicit: bool) -> None:
    """Refuse a scope whose parameters the forward pass never reaches.

    One forward and backward on ``inputs[:2]`` (two inputs suffice: use is structural). Their
    gradients would be identically zero, so no multipliers rebuild them and stationarity
    cannot hold there.

    Parameters
    ----------
    fmodel : FunctionalModel
    inputs : Tensor of shape (n, *input_shape)
        Valid inputs (any device and float dtype: cast to the parameters').
    explicit : bool
        Whether the user named the parameters: then any unused one is refused; otherwise
        (every parameter) only a scope that the logits do not reach at all.

    Raises
    ------
    ValueError
        Naming the unused parameters.
    """
    first = next(iter(fmodel.theta.values()))
    dtype = first.dtype if inputs.is_floating_point() else inputs.dtype
    probe = inputs[:2].to(first.device, dtype).clone()  # clones: no inference tensors in the graph
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in fmodel.theta.items()}
    with torch.enable_grad():
        out = fmodel(probe, theta)
        if out.requires_grad:
            grads = torch.autograd.grad(out.sum(), list(theta.values()), allow_unused=True)
        else:
            grads = [None] * len(theta)
    unused = [k for k, g in zip(theta, grads) if g is None]
    if unused and (explicit or len(unused) == len(theta)):
        raise ValueError(
            f"param_names: {unused[:5]} do not affect the logits (the forward pass never uses "
            "them), so no stationarity condition can hold on them; leave them out of param_names"
        )


def expansion_param_names(
    model: nn.Module, support: Any, param_names: Any, args: tuple = ()
) -> tuple[list[str] | None, bool]:
    """The scope of an expansion of ``support``: its own, every parameter, ``"free"`` or a list.

    Parameters
    ----------
    model : nn.Module
    support : DSVResult
    param_names : None, "all", "free" or sequence of str
        ``None``: the result's own scope (``settings``); ``"all"``: every parameter whatever
        the result's scope; ``"free"``: resolved on ``support.inputs[:8]``.
    args : tuple, default=()
        The model's extra forward arguments.

    Returns
    -------
    names : list of str or None
        ``None`` means every parameter.
    named : bool
        Whether the user gave the list (then every name must reach the logits).
    """
    named = param_names is not None and not isinstance(param_names, str)
    if param_names is None:
        param_names = recorded_param_names(support.settings)
    elif isinstance(param_names, str) and param_names == "all":
        param_names = None
    elif isinstance(param_names, str) and param_names == "free":
        probe = support.inputs[:8]
        param_names, _ = resolve_param_names(
            model, "free", probe, tuple(probe.shape[1:]), seed=0, additional_forward_args=args
        )
    if param_names is not None and (isinstance(param_names, str) or not isinstance(param_names, Iterable)):
        raise TypeError(
            "param_names must be a list of parameter names, 'all', 'free' or None (the "
            f"result's scope), got {param_names!r}"
        )
    return (None if param_names is None else list(param_names)), named


def scoped_model(
    model: nn.Module,
    names: Sequence[str] | None,
    args: tuple = (),
    reference: Any = None,
    probe: Tensor | None = None,
    explicit: bool = True,
) -> FunctionalModel:
    """The functional model over ``names``, checked by :func:`check_scope_used` on ``probe``.

    Parameters
    ----------
    model : nn.Module
    names : sequence of str or None
        ``None``: every parameter.
    args : tuple, default=()
    reference : nn.Module or mapping, optional
        ``theta_0`` of a displacement scope.
    probe : Tensor of shape (n, *input_shape), optional
        Inputs for the check; without them no check is made.
    explicit : bool, default=True
        As in :func:`check_scope_used`.

    Returns
    -------
    FunctionalModel
    """
    fmodel = FunctionalModel(model, None if names is None else list(names), args, reference=reference)
    if probe is not None:
        check_scope_used(fmodel, probe, explicit)
    return fmodel
