"""How close a trained model is to a KKT point: how much any support-vector expansion can explain.

Stationarity ``theta* = -sum_i lambda_i grad L_i`` is what training reaches at a stationary point
of a regularised loss. With weight decay ``wd`` on the mean loss over ``n`` samples,

    (1/n) sum_i grad L_i + wd * theta* = 0   =>   theta* = -(1 / (n wd)) sum_i grad L_i,

so every multiplier equals ``1 / (n wd)`` there. :func:`kkt_readiness` measures how far the
model is from that point on a sample of its training data: the cosine between ``theta*`` and
``-sum_i grad L_i``, overall and per parameter tensor, the best single multiplier, and the
weight decay that this multiplier implies. It costs one forward and one backward per chunk
(the sum of gradients is the gradient of the summed loss; no per-sample gradients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._data import as_data
from ._model_info import (
    cast_inputs,
    check_token_ids,
    computable_model,
    infer_num_classes,
    model_dtype,
    token_layer,
)
from ._model_state import eval_mode
from ._scope import scoped_model, without_frozen
from ._validation import check_inputs, check_labels, check_model, check_positive
from .kkt import FunctionalModel, cross_entropy
from .kkt._grads import parameter_jvp
from .kkt._residuals import residuals_from_sum, stationarity_sum

__all__ = ["KKTReadiness", "kkt_readiness"]

# Verdict bands of the equal-multiplier cosine (benchmarks/readiness.py). The digits MLP trained
# full-batch with weight decay reaches 0.93 (all parameters) and its expansion reproduces every
# test prediction; the digits reference MLP (Adam, minibatches) 0.29, the Fashion-MNIST reference
# ConvNet (Adam, 3 epochs) 0.011. Equal multipliers are what a weight-decay stationary point
# gives; selection's non-negative multipliers can fit better than this bound.
NEAR, PARTIAL = 0.9, 0.5
# "near" also needs the equal-multiplier expansion to pick the model's class on this share of
# the samples measured (the 95 % argmax agreement asked of an expansion): a cosine of 0.906 in
# the last layer of a digits MLP left 0.42 of theta* unexplained and reproduced only 72 % of its
# test decisions (examples/04_explain_a_decision.py)
AGREE = 0.95


@dataclass
class KKTReadiness:
    """How close a model is to a stationary point of its regularised training loss.

    Attributes
    ----------
    cosine : float
        ``cos(theta*, -sum_i grad L_i)`` over the measured parameters: 1 at a stationary point
        of training with weight decay, near 0 far from one.
    per_layer_cosine : dict of str to float
        The same cosine for every parameter tensor.
    scale : float
        The best single multiplier ``c >= 0``: ``argmin_c ||theta* + c sum_i grad L_i||``.
    relative_residual : float
        ``||theta* + c sum_i grad L_i|| / ||theta*||`` at that ``c``: the part of ``theta*``
        that equal multipliers leave unexplained (``sqrt(1 - cosine^2)`` when ``cosine >= 0``).
    implied_weight_decay : float
        ``1 / (n c)``: the weight decay (on the mean loss) at whose stationary point these
        samples would be. Compare it with the one used in training; ``inf`` when ``c = 0``
        (``None`` in :meth:`to_dict`, which stays strict JSON).
    n : int
        Number of samples measured.
    param_names : list of str
        The parameters measured.
    verdict : str
        ``"near"`` (cosine >= 0.9 and, where measured, argmax agreement >= 0.95),
        ``"partial"`` (cosine >= 0.5) or ``"far"``.
    message : str
        The verdict in plain words.
    invariant_param_names : list of str
        Measured parameters in scale-invariant modules
        (:func:`kktexplain.kkt.scale_invariant_modules`): every loss gradient is orthogonal to
        them, so no multipliers can rebuild them.
    max_cosine : float or None
        The resulting upper bound on any stationarity cosine over the measured parameters
        (1.0 when none is invariant; ``None`` for the displacement ``reference=``, to which
        the bound does not apply).
    argmax_agreement : float or None
        On the samples measured, the fraction whose equal-multiplier expansion
        ``<-c sum_i grad L_i, grad_theta f_k(x)>`` (over every class ``k``) has the model's
        arg-max: how much of the model's decisions an expansion with these multipliers
        reproduces. A high cosine does not guarantee it (the residual left is
        ``relative_residual`` of ``theta*``). ``None`` when the model has no forward-mode
        derivative it could be computed with.
    frozen_param_names : list of str
        Parameters left out of the default measure because they are frozen
        (``requires_grad=False``) beside trainable ones: they were not trained, so no KKT
        point holds on them. Empty when every parameter is trainable, every one is frozen, or
        ``param_names`` was given.
    """

    cosine: float
    per_layer_cosine: dict[str, float]
    scale: float
    relative_residual: float
    implied_weight_decay: float
    n: int
    param_names: list[str] = field(default_factory=list)
    verdict: str = ""
    message: str = ""
    invariant_param_names: list[str] = field(default_factory=list)
    max_cosine: float | None = 1.0
    argmax_agreement: float | None = None
    frozen_param_names: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python copy (JSON-serialisable)."""
        return {
            "cosine": self.cosine,
            "per_layer_cosine": dict(self.per_layer_cosine),
            "scale": self.scale,
            "relative_residual": self.relative_residual,
            # inf (no positive multiplier fits) is not JSON: None, as json.dumps(allow_nan=False) needs
            "implied_weight_decay": (
                self.implied_weight_decay if math.isfinite(self.implied_weight_decay) else None
            ),
            "n": self.n,
            "param_names": list(self.param_names),
            "verdict": self.verdict,
            "message": self.message,
            "invariant_param_names": list(self.invariant_param_names),
            "max_cosine": self.max_cosine,
            "argmax_agreement": self.argmax_agreement,
            "frozen_param_names": list(self.frozen_param_names),
        }


def _verdict(cosine: float, agreement: float | None = None) -> tuple[str, str]:
    share = (
        ""
        if agreement is None
        else f", and the expansion picks the model's class on {agreement:.1%} of these samples"
    )
    if cosine >= NEAR and (agreement is None or agreement >= AGREE):
        return "near", (
            f"Near a stationary point of weight-decay training (cosine {cosine:.3f}{share}): equal "
            "multipliers already reproduce the parameters, so support-vector expansions of this "
            "model can be read term by term."
        )
    if cosine >= PARTIAL:
        return "partial", (
            f"Partly stationary (cosine {cosine:.3f}{share}): equal multipliers explain part of the "
            "parameters. Read the selection's stationarity cosine and the expansion's fidelity "
            "(argmax agreement) before reading individual terms."
        )
    return "far", (
        f"Far from a stationary point of weight-decay training (cosine {cosine:.3f}{share}): equal "
        "multipliers explain little of the parameters. Selection's multipliers may still fit a "
        "smaller scope (the last layer, param_names=) or the displacement from the initialisation "
        "(reference=): check the selection's stationarity cosine and the expansion's fidelity first."
    )


@torch.inference_mode(False)  # autograd is needed, even inside inference_mode
def kkt_readiness(
    model: nn.Module,
    data: Any,
    labels: Any = None,
    param_names: list[str] | str | None = None,
    reference: nn.Module | None = None,
    chunk_size: int = 256,
    progress: bool = False,
) -> KKTReadiness:
    """How close ``model`` is to a KKT point of its training loss, on a sample of its training data.

    Parameters
    ----------
    model : nn.Module
        The trained classifier (returns logits). It is only read: parameters, buffers,
        ``requires_grad``, mode and ``.grad`` are left as found.
    data : Tensor, numpy array, (inputs, labels) pair, Dataset or DataLoader
        Training samples ``(N, *input_shape)``, with their labels unless ``labels`` is given.
        Use the training set (or a uniform sample of it) with the labels the model was trained on.
    labels : Tensor of shape (N,) or (N, C), optional
        Hard or soft labels, when ``data`` holds inputs only.
    param_names : list of str or "free", optional
        The parameters to measure (e.g. the last layer's); when omitted, all of them, or the
        trainable ones where some are frozen (``requires_grad=False``). ``"free"``: those
        outside scale-invariant modules (and not frozen), as selection's default scope
        resolves it.
    reference : nn.Module, optional
        Measure the displacement ``theta* - theta_0`` from this module's parameters (the
        initialisation the model was trained from) instead of ``theta*``.
    chunk_size : int, default=256
        Samples per forward/backward.
    progress : bool, default=False
        Show a progress bar over the two passes (the gradient sum, then the expansion's
        decisions), one step per chunk.

    Returns
    -------
    KKTReadiness

    Raises
    ------
    TypeError
        When ``model`` is not an ``nn.Module`` or ``data`` is of an unsupported type.
    ValueError
        When ``data`` is empty or has no labels, when labels do not match the model's classes,
        or ``chunk_size`` is not a positive integer.

    Examples
    --------
    >>> r = kkt_readiness(model, (x_train[:2000], y_train[:2000]))  # doctest: +SKIP
    >>> r.cosine, r.verdict  # doctest: +SKIP
    """
    model = check_model(model)
    check_positive("chunk_size", chunk_size, integer=True)
    if not isinstance(progress, bool | np.bool_):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
    layer = token_layer(model)
    inputs, found = as_data(data, "data", layer is not None)
    if labels is None:
        labels = found
    if labels is None:
        raise ValueError("data must carry labels (an (inputs, labels) pair) or labels must be given")
    if len(inputs) == 0:
        raise ValueError("data must hold at least one sample")
    if layer is not None:  # integer ids, as selection asks of its candidates
        check_inputs("data", inputs, tuple(inputs.shape[1:]), token_ids=True)
    check_token_ids(model, "data", inputs)  # ids in the vocabulary (torch's IndexError otherwise)
    model, _ = computable_model(model)  # a float32 copy of a half-precision model
    inputs = cast_inputs(inputs, inputs.device, model_dtype(model))
    with eval_mode(model):
        num_classes = infer_num_classes(model, tuple(inputs.shape[1:]), source="data")
    labels = check_labels(labels, num_classes, len(inputs))
    named = param_names is not None and not isinstance(param_names, str)  # the user's own list
    if isinstance(param_names, str):
        if param_names != "free":
            raise ValueError(f"param_names must be a list of names, 'free' or None, got {param_names!r}")
        from ._scope import resolve_param_names

        param_names, _ = resolve_param_names(model, "free", inputs, tuple(inputs.shape[1:]), 0)
    frozen: list[str] = []
    if param_names is None:  # the trainable parameters, where some are frozen (a fine-tuned head)
        param_names, frozen = without_frozen(model, None)
    ones = torch.ones(len(inputs))
    chunks = -(-len(inputs) // chunk_size)
    bar = tqdm(total=2 * chunks, desc="readiness", disable=not progress, leave=False)
    with eval_mode(model):
        fmodel = scoped_model(model, param_names, reference=reference, probe=inputs if named else None)
        # the stationarity residuals of every sample at lambda = 1: g = -sum_i grad L_i
        grad_sum, logits = stationarity_sum(fmodel, inputs, labels, ones, cross_entropy, chunk_size, bar=bar)
        res = residuals_from_sum(fmodel, inputs, labels, ones, grad_sum, logits)
    cosine, ratio = res.stationarity["cosine"], res.stationarity["g_norm_ratio"]  # ratio = ||g|| / ||theta*||
    if not (math.isfinite(cosine) and math.isfinite(ratio)):
        raise ValueError("the gradients or parameters are not finite: check the model and data for NaN/inf")
    # argmin_c ||theta* - c g|| = cos ||theta*|| / ||g||, clipped at 0; the residual left is then
    # sqrt(1 - cos^2) of ||theta*|| (all of it when c = 0)
    scale = max(cosine / ratio, 0.0) if ratio > 0 else 0.0
    relative_residual = math.sqrt(max(1.0 - cosine**2, 0.0)) if scale > 0 else 1.0
    per_layer = res.per_layer_cosine
    with eval_mode(model):
        agreement = _argmax_agreement(fmodel, inputs, logits, grad_sum, scale, chunk_size, bar)
    bar.close()
    verdict, message = _verdict(cosine, agreement)
    from .kkt._invariance import cosine_bound, scale_invariant_modules

    inv = scale_invariant_modules(model, inputs[:32])
    measured = set(fmodel.names)
    invariant = [p for p in inv.param_names if p in measured]
    max_cosine = cosine_bound(fmodel.target, invariant) if reference is None else None
    if invariant:
        # a tensor these samples give no gradient at all (unused by the forward, or zero) looks
        # scale-invariant to the probe too: name the two apart
        unused = [p for p in invariant if p in grad_sum and not bool(grad_sum[p].ne(0).any())]
        zero = [p for p in invariant if p not in unused and not bool(fmodel.target[p].ne(0).any())]
        scaled = [p for p in invariant if p not in unused and p not in zero]
        kinds = []
        if scaled:
            kinds.append(f"{len(scaled)} lie in scale-invariant modules (a layer before a normalisation)")
        if unused:
            kinds.append(f"{len(unused)} get no gradient from these samples (unused by the forward)")
        if zero:
            kinds.append(f"{len(zero)} are zero (scaling them changes nothing)")
        message += (
            f" Of {len(measured)} parameter tensors, {' and '.join(kinds)}: their gradients are "
            "orthogonal to them, so no multipliers rebuild them"
            + ("." if max_cosine is None else f"; no stationarity cosine here can exceed {max_cosine:.3f}.")
            + " DeepSupportVectors(param_names='free') measures stationarity on the others."
        )
    if frozen:
        message += (
            f" {len(frozen)} frozen parameter tensors (requires_grad=False) are left out: they were "
            "not trained, so no KKT point holds on them."
        )
    return KKTReadiness(
        cosine=float(cosine),
        per_layer_cosine=per_layer,
        scale=float(scale),
        relative_residual=relative_residual,
        implied_weight_decay=1.0 / (len(inputs) * scale) if scale > 0 else math.inf,
        n=len(inputs),
        param_names=list(fmodel.names),
        verdict=verdict,
        message=message,
        invariant_param_names=invariant,
        max_cosine=max_cosine,
        argmax_agreement=agreement,
        frozen_param_names=frozen,
    )


def _argmax_agreement(
    fmodel: FunctionalModel,
    inputs: Tensor,
    logits: Tensor,
    grad_sum: dict,
    scale: float,
    chunk_size: int,
    bar: Any = None,
) -> float | None:
    """Fraction of ``inputs`` whose expansion along ``-scale * grad_sum`` picks the model's class
    (one forward-mode product per chunk), ``None`` where no such product can be formed."""
    if scale <= 0:  # the expansion is identically zero: it reproduces no decision
        return 0.0
    theta = fmodel.theta
    tangent = {k: (-scale * grad_sum[k]).to(theta[k].dtype) for k in theta}
    device = next(iter(theta.values())).device
    hits = 0
    try:
        for start in range(0, len(inputs), chunk_size):
            x = inputs[start : start + chunk_size].to(device)
            _, expanded = parameter_jvp(lambda th, x=x: fmodel(x, th), theta, tangent)
            model_class = logits[start : start + chunk_size].argmax(1)
            hits += int((expanded.detach().argmax(1).cpu() == model_class).sum())
            if bar is not None:
                bar.update(1)
    except (NotImplementedError, RuntimeError):  # no forward- or double-reverse-mode rule
        return None
    return hits / len(inputs)
