"""The checks of :class:`~kktexplain.DeepSupportVectors`' settings, made when ``attribute`` runs.

The constructor only stores (scikit-learn's convention); :func:`normalized_settings` turns numpy
scalars into Python numbers and resolves the seed, and :func:`check_settings` raises a
``ValueError`` or ``TypeError`` naming the setting and what was expected.
"""

from __future__ import annotations

import copy
import math
import numbers
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from ._validation import check_choice, check_positive, resolve_seed, to_python
from .kkt import Augmentation, KKTObjective

if TYPE_CHECKING:
    from ._explainer import DeepSupportVectors

__all__ = ["check_settings", "normalized_settings"]

_INITS = ("noise", "real", "other")
_DUALS = ("prune", "clamp", "exp")
_OPTIMIZERS = ("adam", "sgd")
_SKETCHES = ("count", "kronecker")
_MULTIPLIERS = ("fit", "equal")


def normalized_settings(est: DeepSupportVectors) -> DeepSupportVectors:
    """A copy of ``est`` with numpy scalars as Python numbers and ``seed`` resolved to an int.

    Parameters
    ----------
    est : DeepSupportVectors

    Returns
    -------
    DeepSupportVectors
        A shallow copy; ``est`` itself is not changed.
    """
    out = copy.copy(est)
    for k in est._param_names():
        setattr(out, k, to_python(getattr(est, k)))
    if isinstance(out.input_range, tuple | list):
        out.input_range = tuple(to_python(v) for v in out.input_range)
    if isinstance(out.classes, torch.Tensor):  # as generate.sample takes them
        out.classes = out.classes.tolist()
    if out.classes is not None and not isinstance(out.classes, str):
        try:
            out.classes = [to_python(c) for c in out.classes]
        except TypeError:
            pass  # not iterable: reported by check_settings
    out.seed = resolve_seed(est.seed)
    if isinstance(out.offload_dir, os.PathLike):
        out.offload_dir = os.fspath(out.offload_dir)  # settings are JSON
    return out


def check_settings(est: DeepSupportVectors) -> tuple[KKTObjective, Augmentation | None]:
    """Check every setting of ``est`` and resolve the objective and augmentation presets.

    Parameters
    ----------
    est : DeepSupportVectors
        Normalised settings (:func:`normalized_settings`).

    Returns
    -------
    objective : KKTObjective
    augmentation : Augmentation or None

    Raises
    ------
    ValueError, TypeError
        Naming the first setting that is out of range or of the wrong type.
    """
    check_positive("n_per_class", est.n_per_class, integer=True)
    check_choice("init", est.init, _INITS)
    check_choice("dual", est.dual, _DUALS)
    check_choice("optimizer", est.optimizer, _OPTIMIZERS)
    check_choice("sketch", est.sketch, _SKETCHES)
    check_choice("multipliers", est.multipliers, _MULTIPLIERS)
    for name in ("maximize_sum", "progress"):
        if not isinstance(getattr(est, name), bool | np.bool_):
            raise TypeError(f"{name} must be a bool, got {getattr(est, name)!r}")
    if est.steps is not None:
        check_positive("steps", est.steps, integer=True, allow_zero=True)
    if est.lr is not None:
        check_positive("lr", est.lr)
    check_positive("lr_lambda", est.lr_lambda, allow_zero=True)
    check_choice("lr_schedule", est.lr_schedule, ("constant", "cosine"))
    if est.lambda_solve_every is not None:
        check_positive("lambda_solve_every", est.lambda_solve_every, integer=True)
    check_positive("init_scale", est.init_scale, allow_zero=True)
    check_positive("chunk_size", est.chunk_size, integer=True)
    if est.projection_dim is not None:
        check_positive("projection_dim", est.projection_dim, integer=True)
    if est.lambda_scale != "auto":
        check_positive("lambda_scale", est.lambda_scale)
    if est.lambda_max is not None:
        check_positive("lambda_max", est.lambda_max)
    if est.ridge is not None:
        check_positive("ridge", est.ridge)
    if est.sketch != "count" and est.projection_dim is None:
        raise ValueError(
            f"sketch={est.sketch!r} sketches the gradients to projection_dim dimensions: set "
            "projection_dim as well (without it the gradients are exact and no sketch is used)"
        )
    if est.refit_dim is not None:
        check_positive("refit_dim", est.refit_dim, integer=True)
        if est.projection_dim is None:
            raise ValueError("refit_dim re-solves a sketched selection: set projection_dim as well")
        if est.refit_dim <= est.projection_dim:
            raise ValueError(
                f"refit_dim must exceed projection_dim ({est.projection_dim}), got {est.refit_dim}"
            )
    if est.batch_size is not None:
        check_positive("batch_size", est.batch_size, integer=True)
    if isinstance(est.param_names, str) and est.param_names != "free":
        raise ValueError(
            f"param_names must be a sequence of parameter names, 'free' or None, got {est.param_names!r}"
        )
    if est.classes is not None:
        if isinstance(est.classes, str) or not isinstance(est.classes, Sequence):
            raise TypeError(f"classes must be a sequence of ints, got {type(est.classes).__name__}")
        if len(est.classes) == 0:
            raise ValueError("classes must name at least one class, got an empty sequence")
        for c in est.classes:
            if isinstance(c, bool) or not isinstance(c, int):
                raise TypeError(f"classes must be a sequence of ints, got {c!r}")
        if len(set(est.classes)) != len(est.classes):
            raise ValueError(f"classes must not repeat a class, got {list(est.classes)}")
    if est.input_range is not None:
        bounds = est.input_range
        if (
            not isinstance(bounds, tuple | list)
            or len(bounds) != 2
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in bounds)
        ):
            raise TypeError(f"input_range must be a pair of numbers (low, high), got {bounds!r}")
        if not all(math.isfinite(v) for v in bounds) or bounds[0] >= bounds[1]:
            raise ValueError(f"input_range must be finite (low, high) with low < high, got {bounds!r}")
    if isinstance(est.objective, str):
        objective = KKTObjective.from_preset(est.objective)
    elif isinstance(est.objective, KKTObjective):
        objective = est.objective
    else:
        raise TypeError(
            f"objective must be a preset name or a KKTObjective, got {type(est.objective).__name__}"
        )
    if isinstance(est.augmentation, str):
        check_choice("augmentation", est.augmentation, ("default",))
        augmentation: Augmentation | None = Augmentation()
    elif est.augmentation is None or isinstance(est.augmentation, Augmentation):
        augmentation = est.augmentation
    else:
        raise TypeError(
            f"augmentation must be an Augmentation, 'default' or None, got {type(est.augmentation).__name__}"
        )
    return objective, augmentation
