"""The parameters stationarity is asked of: ``param_names`` (names, ``"free"`` or ``None``) resolved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .kkt import scale_invariant_modules

__all__ = ["resolve_param_names"]

# Samples of the data that the scale-invariance probe reads (invariance is structural: a few do).
_PROBE_ROWS = 32


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
        the logits ignore, found on ``data[:32]`` or, without data, on 8 standard-normal inputs
        drawn with ``seed``.
    data : Tensor of shape (N, *input_shape), optional
        Candidates or initialisation data.
    input_shape : sequence of int
        Shape of one input, for the seeded probe.
    seed : int
    additional_forward_args : tuple, default=()

    Returns
    -------
    names : list of str or None
        ``None`` means every parameter.
    recorded : dict
        For ``"free"``: ``resolved_param_names`` and ``invariant_param_names``; else empty.

    Raises
    ------
    ValueError
        ``"free"`` on a model whose logits ignore the scale of every module.
    """
    if param_names is None:
        return None, {}
    if param_names != "free":
        return list(param_names), {}
    probe = (
        data[:_PROBE_ROWS]
        if data is not None
        else torch.randn(8, *input_shape, generator=torch.Generator().manual_seed(seed))
    )
    invariance = scale_invariant_modules(model, probe, additional_forward_args=additional_forward_args)
    names = invariance.free_param_names
    if not names:
        raise ValueError(
            "param_names='free' leaves no parameter: the logits ignore the scale of every module"
        )
    return names, {"resolved_param_names": names, "invariant_param_names": invariance.param_names}
