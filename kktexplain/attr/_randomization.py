"""The randomization sanity check (Adebayo et al. 2018) of the support-vector feature maps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

from .._model_info import model_device, model_dtype
from .._warn import warn_user
from ._attribution import SupportVectorAttribution

__all__ = ["cascade_layers", "evaluate_randomization"]


def _constant(t: Tensor) -> bool:
    return bool((t == t.flatten()[0]).all())


def _spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's ρ of an original map ``a`` (never constant: checked) and a randomised ``b``;
    a ``b`` made constant by the randomisation keeps no ranking of ``a``: 0."""
    if _constant(b):
        return 0.0
    return float(spearmanr(a.flatten().double().numpy(), b.flatten().double().numpy()).statistic)


def cascade_layers(model: nn.Module) -> tuple[list[str], list[str]]:
    """The default cascade of :func:`evaluate_randomization`, and the modules it leaves out.

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    layers : list of str
        Every module with parameters of its own and a ``reset_parameters()``, in reverse order
        of registration (top first).
    left_out : list of str
        Modules with parameters of their own but no ``reset_parameters()`` (e.g. the model
        itself owning a temperature ``nn.Parameter``): they cannot be re-initialised, so the
        cascade keeps their values.
    """
    owners = [k for k, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))][::-1]
    mods = dict(model.named_modules())
    layers = [k for k in owners if hasattr(mods[k], "reset_parameters")]
    return layers, [k for k in owners if k not in layers]


def evaluate_randomization(
    model: nn.Module,
    support: Any,
    inputs: Tensor,
    n_steps: int = 16,
    seed: int = 0,
    layers: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Cascading parameter randomisation (Adebayo et al. 2018) of the feature maps.

    Layers are re-initialised (``reset_parameters`` under ``seed``) from the top down; after
    each, the maps of :class:`SupportVectorAttribution` (λ kept, gradients recomputed on the
    randomised model) are compared with the original ones by Spearman's rank correlation,
    averaged over the inputs. captum's plain Integrated Gradients of the logit is measured
    beside it. A faithful explainer's maps must decorrelate.

    Parameters
    ----------
    model : nn.Module
        Only read: randomisation happens on a deep copy.
    support : DSVResult
    inputs : Tensor of shape (n, *input_shape)
    n_steps : int, default=16
    seed : int, default=0
    layers : sequence of str, optional
        Modules to randomise, top first; each must have a ``reset_parameters()``. Default:
        :func:`cascade_layers`, every module with its own parameters and a
        ``reset_parameters()``, in reverse order of registration (the others are left out,
        with a warning naming them).

    Returns
    -------
    list of dict
        One row per cascade stage: ``layer``, ``spearman`` (ours) and ``spearman_ig``, each
        the mean over inputs of Spearman's ρ between the original and the randomised maps (0
        for a map the randomisation makes constant).

    Raises
    ------
    ValueError
        If an original map is constant (every λ zero, or a logit that ignores its input): ρ
        is undefined there; if a module of ``layers`` is not in the model or has no
        ``reset_parameters()``; if the default cascade is empty (no module has one).

    Warns
    -----
    UserWarning
        Where the default cascade leaves out modules that have parameters of their own but no
        ``reset_parameters()``, naming them.
    """
    import copy

    from captum.attr import IntegratedGradients

    if not isinstance(inputs, Tensor) or not inputs.is_floating_point():
        kind = f"dtype {inputs.dtype}" if isinstance(inputs, Tensor) else type(inputs).__name__
        raise TypeError(
            f"inputs must be a floating-point tensor, got {kind}: integer inputs (token ids) have "
            "no feature attributions to randomise"
        )
    work = copy.deepcopy(model).eval()
    if layers is None:
        layers, left_out = cascade_layers(work)
        if not layers:
            raise ValueError(
                "no module of the model has a reset_parameters() to re-initialise it "
                f"(modules with parameters: {left_out[:5]}); pass layers= explicitly"
            )
        if left_out:
            named = [k or "'' (the model itself)" for k in left_out]
            warn_user(
                f"the randomization cascade leaves out {', '.join(named)}: parameters of their "
                "own but no reset_parameters(), so they keep their trained values"
            )
    mods = dict(work.named_modules())
    missing = [k for k in layers if k not in mods]
    if missing:
        raise ValueError(f"layers must name modules of the model; not found: {missing}")
    no_reset = [k for k in layers if not hasattr(mods[k], "reset_parameters")]
    if no_reset:
        raise ValueError(f"layers must name modules with a reset_parameters(); {no_reset} have none")
    inputs = inputs.to(model_device(work), model_dtype(work))
    with torch.no_grad():
        pred = work(inputs).argmax(1)

    def maps(m: nn.Module) -> tuple[Tensor, Tensor]:
        ours = SupportVectorAttribution(m, support).attribute(inputs, target=pred, n_steps=n_steps)
        ig = IntegratedGradients(m).attribute(inputs, target=pred, n_steps=n_steps)
        return ours.detach(), ig.detach()

    ref_ours, ref_ig = maps(work)
    flat = [i for maps_ in (ref_ours, ref_ig) for i, a in enumerate(maps_) if _constant(a)]
    if flat:
        raise ValueError(
            f"the original attribution maps of inputs {sorted(set(flat))[:5]} are constant (every λ "
            "zero, or a logit that ignores its input): their rank correlation with randomised "
            "maps is undefined, so the check cannot be run on them"
        )
    rows = []
    dev = model_device(work)
    cuda = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # the re-initialisations' draws; the caller's state kept
        torch.manual_seed(seed)
        for name in layers:
            mods[name].reset_parameters()
            ours, ig = maps(work)
            rows.append(
                {
                    "layer": name,
                    "spearman": float(np.mean([_spearman(a, b) for a, b in zip(ref_ours, ours)])),
                    "spearman_ig": float(np.mean([_spearman(a, b) for a, b in zip(ref_ig, ig)])),
                }
            )
    return rows
