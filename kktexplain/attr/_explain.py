"""explain: one call from a support set and a model to an :class:`Explanation` of decisions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._checkpoint import describe_value
from .._model_info import check_token_ids
from .._model_state import eval_mode
from .._validation import check_positive
from ._attribution import SupportVectorAttribution
from ._explanation import Explanation
from ._influence import SupportVectorInfluence
from ._queries import check_query_inputs, resolve_target

__all__ = ["explain"]


@torch.inference_mode(False)  # autograd is needed, even inside inference_mode
def explain(
    support: Any,
    model: nn.Module,
    inputs: Tensor,
    target: Any = None,
    k: int = 5,
    maps: str = "all",
    n_steps: int = 16,
    param_names: Any = None,
    reference: Any = None,
    class_names: list[str] | None = None,
    feature_names: list[str] | None = None,
    influence: SupportVectorInfluence | None = None,
    additional_forward_args: Any = None,
    progress: bool = False,
) -> Explanation:
    """Explain decisions of ``model`` by the support set ``support``; see :meth:`DSVResult.explain`.

    Parameters
    ----------
    support : DSVResult
    model : nn.Module
    inputs : Tensor of shape (n, *input_shape) or (*input_shape)
        One input or a batch.
    target : None, int, tuple (c,), list of int or Tensor, optional
        Class to explain; the model's prediction when omitted.
    k : int, default=5
        Supporting and opposing vectors to return (at most ``len(support)``: a larger ``k`` is
        lowered to it). They are the ``k`` largest and the ``k`` smallest contributions: where
        fewer than ``k`` terms are positive, the supporting list ends with terms <= 0 (and the
        opposing list alike), which the plots, the HTML and the CLI leave out
        (:meth:`Explanation.shown`); their feature maps are not computed (zeros).
    maps : {"all", "total", "none"}, default="all"
        Feature maps of the whole expansion and of each shown support vector (``"all"``), of
        the whole expansion only (``"total"``), or none (zeros). Integer inputs (token ids of
        a model whose first layer is an embedding) carry no gradient: their maps are zeros.
    n_steps : int, default=16
        Integrated Gradients' steps per map.
    param_names, reference
        The scope, as for :class:`SupportVectorInfluence`.
    class_names : list of str, optional
    feature_names : list of str, optional
        Names of the features of flat inputs ``(n, d)`` (tabular data), one per feature: the
        feature maps' bars are labelled by them.
    influence : SupportVectorInfluence, optional
        A prepared influence object, to reuse its cached support gradients across calls.
        Without it, the one this call prepares is kept on ``support`` and reused by the next
        call with the same model (unchanged since), scope, reference and forward arguments,
        while ``support``'s inputs, labels and λ are unchanged: explaining inputs one call at
        a time computes the support gradients once. It holds the model and those gradients
        until ``support`` is garbage-collected (or :meth:`DSVResult.clear_cache`); it is not
        saved or pickled.
    additional_forward_args : Any, optional
        Arguments the model takes after its inputs (captum's convention), the same for the
        inputs and for the support set (as in selection). Refused with ``influence``, which
        holds its own (as are ``param_names`` and ``reference``: ``ValueError``).
    progress : bool, default=False
        Progress bars while the support gradients are cached and over the feature maps.

    Returns
    -------
    Explanation
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if maps not in ("all", "total", "none"):
        raise ValueError(f"maps must be 'all', 'total' or 'none', got {maps!r}")
    check_positive("k", k, integer=True)
    if feature_names is not None:
        d = support.inputs.shape[1] if support.inputs.ndim == 2 else None
        if d is None or not support.inputs.is_floating_point():
            raise ValueError(
                "feature_names name the features of flat inputs (n, d); these inputs have shape "
                f"{tuple(support.inputs.shape[1:])} {support.inputs.dtype}"
            )
        if isinstance(feature_names, str) or len(feature_names) != d:
            raise ValueError(
                f"feature_names must be a list of {d} names, one per feature, got {feature_names!r}"
            )
        feature_names = [str(f) for f in feature_names]
    shape = tuple(support.inputs.shape[1:])
    if isinstance(inputs, Tensor) and tuple(inputs.shape) == shape:
        inputs = inputs[None]  # one input is welcome here
    inputs = check_query_inputs(inputs, support)  # a tensor of that shape, finite, detached
    check_token_ids(model, "inputs", inputs)
    k = min(int(k), len(support))
    if influence is not None:
        _check_influence(influence, model, support)
        given = [
            name
            for name, value in (
                ("param_names", param_names),
                ("reference", reference),
                ("additional_forward_args", additional_forward_args),
            )
            if value is not None
        ]
        if given:
            raise ValueError(
                f"{', '.join(given)} cannot be given with influence=: the prepared "
                "SupportVectorInfluence holds its own scope, reference and forward arguments; "
                "pass them when building it, or leave influence out"
            )
    svi = influence or _cached_influence(
        support, model, param_names, reference, additional_forward_args, progress
    )
    exp = svi.expansion
    own_progress = exp.progress  # a prepared influence's setting is put back on return
    exp.progress = own_progress or progress
    try:
        with eval_mode(exp.model):  # one entry: the maps' passes inside it restore nothing twice
            out = _explain(support, exp, inputs, target, k, maps, n_steps, class_names, progress)
        out.feature_names = feature_names
        return out
    finally:
        exp.progress = own_progress


def _explain(support, exp, inputs, target, k, maps, n_steps, class_names, progress) -> Explanation:
    """The body of :func:`explain` on a prepared expansion."""
    shape = tuple(support.inputs.shape[1:])
    args = exp.args or None  # the feature maps' forward passes take them too
    logits = exp.logits(inputs).cpu()
    bad = (~torch.isfinite(logits).all(1)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"inputs rows {bad[:10]} are finite but the model's logits on them are not (NaN or "
            "inf): the model overflows there; check the inputs' scale"
        )
    if class_names is not None and (isinstance(class_names, str) or len(class_names) < logits.shape[1]):
        raise ValueError(
            f"class_names must be a list naming all {logits.shape[1]} classes, got {class_names!r}"
        )
    t = resolve_target(target, len(inputs), lambda: logits, logits.shape[1])
    scores = exp.contributions(inputs, t)
    exact = exp.exact(inputs).cpu().gather(1, t[:, None]).squeeze(1).to(scores.dtype)
    total = scores.sum(1)
    sup_v, sup_i = torch.topk(scores, k, dim=1, largest=True)
    opp_v, opp_i = torch.topk(scores, k, dim=1, largest=False)
    hard = support.hard_labels
    n = len(inputs)
    fmap = torch.zeros_like(inputs, dtype=scores.dtype)
    sup_maps = opp_maps = None
    if maps != "none" and inputs.is_floating_point():
        sva = SupportVectorAttribution._from_expansion(exp)  # same scope, same cached direction
        # the maps of each shown vector (a contribution of its list's sign), supporting then
        # opposing, input by input
        counts = torch.stack([(sup_v > 0).sum(1), (opp_v < 0).sum(1)], 1).tolist()
        jobs = (
            [(i, j, side) for i in range(n) for j in range(k) for side in (0, 1) if j < counts[i][side]]
            if maps == "all"
            else []
        )
        with tqdm(total=1 + len(jobs), desc="feature maps", disable=not progress, leave=False) as bar:
            fmap = (
                sva.attribute(inputs, target=t, n_steps=n_steps, additional_forward_args=args).detach().cpu()
            )
            bar.update(1)
            if maps == "all":
                sup_maps = torch.zeros(n, k, *shape, dtype=fmap.dtype)
                opp_maps = torch.zeros_like(sup_maps)
            for i, j, side in jobs:
                one = sva.attribute(
                    inputs[i : i + 1],
                    target=t[i : i + 1],
                    support_index=int((sup_i, opp_i)[side][i, j]),
                    n_steps=n_steps,
                    additional_forward_args=args,
                )
                (sup_maps, opp_maps)[side][i, j] = one[0].detach().cpu()
                bar.update(1)
    return Explanation(
        inputs=inputs.detach().cpu(),
        logits=logits,
        prediction=logits.argmax(1),
        target=t,
        supporting_indices=sup_i,
        supporting_contributions=sup_v,
        supporting_inputs=support.inputs[sup_i],
        supporting_labels=hard[sup_i],
        opposing_indices=opp_i,
        opposing_contributions=opp_v,
        opposing_inputs=support.inputs[opp_i],
        opposing_labels=hard[opp_i],
        feature_map=fmap,
        supporting_maps=sup_maps,
        opposing_maps=opp_maps,
        exact=exact,
        expansion=total,
        residual=exact - total,
        class_names=class_names,
        support_ids=None if support.indices is None else support.indices.detach().cpu().clone(),
    )


def _tensors_in(obj: Any) -> list[Tensor]:
    """The tensors a setting holds: itself, a mapping's or a sequence's items, a module's
    parameters and buffers."""
    if isinstance(obj, Tensor):
        return [obj]
    if isinstance(obj, nn.Module):
        return [*obj.parameters(), *obj.buffers()]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors_in(v)]
    if isinstance(obj, list | tuple):
        return [t for v in obj for t in _tensors_in(v)]
    return []


def _cached_influence(
    support: Any, model: nn.Module, param_names: Any, reference: Any, args: Any, progress: bool
) -> SupportVectorInfluence:
    """The influence ``explain`` prepared for the same request on ``support`` before, or a new
    one (kept on ``support`` for the next call)."""
    if param_names is not None and not isinstance(param_names, str) and isinstance(param_names, Iterable):
        param_names = list(param_names)  # read once: an iterator would be empty the second time
    names = tuple(map(str, param_names)) if isinstance(param_names, list) else repr(param_names)
    # the objects themselves (compared by identity, so no id is reused while the cache holds
    # them), their tensors' version counters (an in-place write bumps them; inference tensors
    # keep none) and the values of the forward args that are not tensors
    held = (model, reference, args, support.inputs, support.labels, support.lambdas)
    tensors = [t for obj in held[1:] for t in _tensors_in(obj)]
    versions = tuple(-1 if t.is_inference() else t._version for t in tensors)
    first = next(model.parameters(), None)  # a model without parameters is refused further on
    where = None if first is None else (first.dtype, first.device)
    key = (names, where, versions, describe_value(args))
    cached = getattr(support, "_explain_cache", None)
    if (
        cached is not None
        and cached[0] == key
        and len(cached[1]) == len(held)
        and all(a is b for a, b in zip(cached[1], held))
        and all(a is b for a, b in zip(cached[2], tensors))
        and not cached[3].expansion.stale
    ):
        return cached[3]
    svi = SupportVectorInfluence(
        model,
        support,
        param_names=param_names,
        reference=reference,
        additional_forward_args=args,
        progress=progress,
    )
    support._explain_cache = (key, held, tensors, svi)
    return svi


def _check_influence(influence: Any, model: nn.Module, support: Any) -> None:
    """``explain``'s prepared influence must be of this model and this support set."""
    if not isinstance(influence, SupportVectorInfluence):
        raise TypeError(f"influence must be a SupportVectorInfluence, got {type(influence).__name__}")
    if influence.model is not model:
        raise ValueError(
            "influence was built for another model: pass the model it explains, or build "
            "SupportVectorInfluence(model, support) for this one"
        )
    own = influence.train_dataset
    same = own is support or (
        own.inputs.shape == support.inputs.shape
        and torch.equal(own.inputs, support.inputs)
        and torch.equal(own.lambdas, support.lambdas)
    )
    if not same:
        raise ValueError(
            "influence was built on another support set (other samples or multipliers) than "
            "the result explain is called on: build SupportVectorInfluence(model, result) with "
            "this result"
        )
