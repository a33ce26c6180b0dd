"""Evaluations that show whether the explanations are faithful, each beside captum's TracInCP.

* :func:`evaluate_mislabels`: rank training samples by self-influence and see where the flipped
  labels land (ROC-AUC, the flipped fraction in the top 10%);
* :func:`evaluate_identical_class`: does the top-1 proponent have the predicted class (Hanawa
  et al. 2021)?
* :func:`evaluate_removal`: retrain without the top-k proponents of a test input and measure
  how far its margin falls; retrain without the half of lowest λ;
* the randomization check, :func:`~kktexplain.attr.evaluate_randomization`, lives in
  ``_randomization.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from .._model_info import cast_inputs, model_device, model_dtype
from .._model_state import eval_mode, isolated
from .._validation import check_positive
from ..kkt import cross_entropy
from ._baselines import last_layer_top1, last_linear, last_linear_scope, tracin
from ._influence import SupportVectorInfluence

__all__ = [
    "tracin",
    "last_linear",
    "evaluate_mislabels",
    "evaluate_identical_class",
    "evaluate_removal",
]


def _rank_metrics(scores: Tensor, flipped: Tensor) -> dict[str, float]:
    s = scores.double().numpy()
    f = flipped.numpy().astype(bool)
    top = np.argsort(-s, kind="stable")[: max(1, int(round(0.1 * len(s))))]
    return {"roc_auc": float(roc_auc_score(f, s)), "flipped_in_top10": float(f[top].mean())}


def evaluate_mislabels(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    flipped: Tensor,
    explainer: Any = None,
    batch_size: int = 256,
    compare_tracin: bool = True,
    fitted: Any = None,
    checkpoints: Sequence[tuple[str, float]] | None = None,
) -> dict[str, dict[str, float]]:
    """Rank training samples by self-influence and score how well it finds flipped labels.

    Parameters
    ----------
    model : nn.Module
        Trained on ``(inputs, labels)``.
    inputs : Tensor of shape (N, *input_shape)
    labels : Tensor of shape (N,)
        The (noisy) labels the model was trained with.
    flipped : Tensor of shape (N,), dtype bool
        Which labels were flipped: some, not all (else no ROC-AUC is defined).
    explainer : DeepSupportVectors, optional
        Settings of the selection that gives λ. Default: the model's output ``nn.Linear``
        (its weight, and its bias where it has one; :func:`~kktexplain.attr._baselines.last_linear`)
        with equal multipliers (``multipliers="equal"``, the KKT value of weight-decay
        training; one pass).
    batch_size : int, default=256
        Chunk size of every method (ours and TracInCP alike); at least 1.
    compare_tracin : bool, default=True
    fitted : DeepSupportVectors, optional
        A second selection to compare with, usually with fitted multipliers
        (``multipliers="fit"``): adds ``self_influence_fit``, ``lambda_fit`` (raw λ) and
        ``self_influence_fit_then_loss`` (the fitted support first, then the rest by loss).
    checkpoints : sequence of (str, float), optional
        ``state_dict`` files saved during the model's training and their learning rates: adds
        ``tracin_checkpoints``, TracInCP summed over them as the TracIn paper defines it (the
        ``tracin`` row uses the final model only). TracInCP loads them into a copy of
        the model (the model itself, reloaded afterwards, where it cannot be copied).

    Returns
    -------
    dict
        For each ranking (``self_influence``, ``loss``, ``tracin`` and, with ``fitted`` or
        ``checkpoints``, the rows above): ``roc_auc``, ``flipped_in_top10`` and ``seconds``
        (wall time, measured in this call; ``self_influence``'s includes its selection and
        support gradients). Beside the rankings, without ``roc_auc``: ``support_size`` (and,
        with ``fitted``, ``support_size_fit``), the selection's ``n_support`` of ``n``
        samples.

    Raises
    ------
    ValueError
        If ``inputs``, ``labels`` and ``flipped`` differ in length, ``flipped`` marks no
        sample or every sample, or ``batch_size`` is below 1.
    TypeError
        If ``batch_size`` is not an int.
    """
    from .._explainer import DeepSupportVectors

    check_positive("batch_size", batch_size, integer=True)
    flipped = torch.as_tensor(flipped).bool()
    if len(flipped) != len(inputs) or len(labels) != len(inputs):
        raise ValueError("inputs, labels and flipped must have the same length")
    if not bool(flipped.any()) or bool(flipped.all()):
        raise ValueError(
            f"flipped must mark some samples but not all ({int(flipped.sum())} of {len(flipped)} "
            "marked): the ROC-AUC of a ranking is undefined with one class"
        )
    if explainer is None:
        explainer = DeepSupportVectors(
            param_names=last_linear_scope(model, inputs),
            multipliers="equal",
            chunk_size=batch_size,
            progress=False,
        )
    out: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    sel = explainer.attribute(model, candidates=inputs, labels=labels)
    svi = SupportVectorInfluence(model, sel, chunk_size=batch_size)
    si = svi.self_influence()
    out["self_influence"] = {**_rank_metrics(si, flipped), "seconds": time.perf_counter() - start}
    out["support_size"] = {"n_support": int(sel.support.sum()), "n": len(inputs)}
    start = time.perf_counter()
    # SupportExpansion.logits already chunks by batch_size
    loss = cross_entropy(svi.expansion.logits(inputs).cpu(), labels).double()
    out["loss"] = {**_rank_metrics(loss, flipped), "seconds": time.perf_counter() - start}
    if fitted is not None:
        start = time.perf_counter()
        fit = fitted.attribute(model, candidates=inputs, labels=labels)
        lam_seconds = time.perf_counter() - start
        si_fit = SupportVectorInfluence(model, fit, chunk_size=batch_size).self_influence()
        fit_seconds = time.perf_counter() - start
        out["self_influence_fit"] = {**_rank_metrics(si_fit, flipped), "seconds": fit_seconds}
        out["lambda_fit"] = {**_rank_metrics(fit.lambdas, flipped), "seconds": lam_seconds}
        # lexicographic: the fitted support first (by self-influence), then the rest by their loss
        combo = torch.where(si_fit > 0, si_fit.double() + loss.max() + 1, loss)
        out["self_influence_fit_then_loss"] = {
            **_rank_metrics(combo, flipped),
            "seconds": fit_seconds + out["loss"]["seconds"],
        }
        out["support_size_fit"] = {"n_support": int(fit.support.sum()), "n": len(inputs)}
    if compare_tracin:
        start = time.perf_counter()
        with isolated(model) as twin:  # captum's backward and loaders, on a copy
            tr = tracin(twin, inputs, labels, batch_size).self_influence(show_progress=False)
        out["tracin"] = {**_rank_metrics(tr.detach().cpu(), flipped), "seconds": time.perf_counter() - start}
    if compare_tracin and checkpoints:
        start = time.perf_counter()
        with isolated(model) as twin:  # loaded with each checkpoint in turn: a copy
            tr = tracin(twin, inputs, labels, batch_size, checkpoints=checkpoints)
            tr = tr.self_influence(show_progress=False)
        out["tracin_checkpoints"] = {
            **_rank_metrics(tr.detach().cpu(), flipped),
            "seconds": time.perf_counter() - start,
            "n_checkpoints": len(checkpoints),
        }
    return out


def evaluate_identical_class(
    model: nn.Module,
    support: Any,
    test_inputs: Tensor,
    batch_size: int = 256,
    compare_tracin: bool = True,
    influence: SupportVectorInfluence | None = None,
) -> dict[str, dict[str, float]]:
    """Fraction of test inputs whose top-1 proponent has the class the model predicts.

    In a last-layer scope the test is passed by construction where the features are
    non-negative (after a ReLU): the contribution of training sample ``j`` to class ``c`` is
    ``-λ_j (p_jc - [y_j = c]) (<h_j, h(x)> + 1)``, and with ``h >= 0`` it is positive exactly
    when ``y_j = c``; an untrained model (with ``λ > 0``) scores 1.0 too. The test only
    tells explanations apart for scopes beyond the last layer, or features of both signs.
    Representer points pass it by the same construction.

    Parameters
    ----------
    model : nn.Module
    support : DSVResult
        A selection over the training set (its labels are the training labels).
    test_inputs : Tensor of shape (n, *input_shape)
        At least one input.
    batch_size : int, default=256
        At least 1.
    compare_tracin : bool, default=True
    influence : SupportVectorInfluence, optional
        Reuse a prepared object (and its cache).

    Returns
    -------
    dict
        ``ours``, ``representer`` (Yeh et al. 2018 on the model's last layer, without their
        L2 refit), ``grad_cosine`` (cosine of last-layer loss gradients) and ``tracin``: each
        with ``identical_class`` and ``seconds``. Where every λ of ``support`` is 0, ``ours``
        holds ``identical_class=None`` and the reason under ``skipped``.

    Raises
    ------
    ValueError
        If ``test_inputs`` is empty or ``batch_size`` below 1.
    TypeError
        If ``batch_size`` is not an int.
    """
    check_positive("batch_size", batch_size, integer=True)
    if len(test_inputs) == 0:
        raise ValueError("test_inputs must hold at least one input, got none")
    svi = influence or SupportVectorInfluence(model, support, chunk_size=batch_size)
    labels = support.hard_labels
    out: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    pred = svi.expansion.logits(test_inputs).argmax(1).cpu()
    if not bool((support.lambdas > 0).any()):
        # every influence is 0: a "top proponent" would be the tie-break's, not the model's
        out["ours"] = {
            "identical_class": None,
            "skipped": "every λ of the support set is 0 (with equal multipliers: c = 0, the model "
            "is far from a stationary point of weight-decay training), so every influence is 0 "
            "and no proponent ranks first",
            "seconds": time.perf_counter() - start,
        }
    else:
        top = torch.cat(
            [
                svi.influence((test_inputs[i : i + batch_size], pred[i : i + batch_size]), k=1).indices[:, 0]
                for i in range(0, len(test_inputs), batch_size)
            ]
        )
        out["ours"] = {
            "identical_class": float((labels[top] == pred).double().mean()),
            "seconds": time.perf_counter() - start,
        }
    if any(isinstance(m, nn.Linear) for m in model.modules()):
        out.update(
            last_layer_top1(
                model, support.inputs, labels, test_inputs, pred, svi.expansion.logits, batch_size
            )
        )
    else:  # both baselines live in the last nn.Linear
        reason = "the model has no nn.Linear layer"
        out["representer"] = out["grad_cosine"] = {"skipped": reason}
    if compare_tracin:
        start = time.perf_counter()
        with isolated(model) as twin:  # captum's backward and loaders, on a copy
            tr = tracin(twin, support.inputs, labels, batch_size)
            queries = cast_inputs(test_inputs, test_inputs.device, model_dtype(model))
            idx = tr.influence((queries, pred), k=1).indices[:, 0]
        out["tracin"] = {
            "identical_class": float((labels[idx.cpu()] == pred).double().mean()),
            "seconds": time.perf_counter() - start,
        }
    return out


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    """The model's logits on ``x``, cast to its device and dtype (eval mode, no gradients)."""
    with torch.no_grad(), eval_mode(model):
        return model(cast_inputs(x, model_device(model), model_dtype(model)))


def _margin(model: nn.Module, x: Tensor, c: Tensor) -> Tensor:
    logits = _logits(model, x)
    c = c.to(logits.device)
    own = logits.gather(1, c[:, None]).squeeze(1)
    other = logits.scatter(1, c[:, None], float("-inf")).max(1).values
    return own - other


def evaluate_removal(
    train_fn: Callable[[Tensor, Tensor], nn.Module],
    train_inputs: Tensor,
    train_labels: Tensor,
    test_inputs: Tensor,
    explainer: Any = None,
    k: int = 20,
    n_test: int = 50,
    fraction: float = 0.5,
    seed: int = 0,
    compare_tracin: bool = True,
    progress: bool = False,
    global_explainer: Any = None,
) -> dict[str, Any]:
    """Retrain without the top-k proponents of a test decision, and without the lowest-λ half.

    Parameters
    ----------
    train_fn : callable
        ``(inputs, labels) -> trained model``, deterministic (the same seed every call), so that
        differences come from the removed samples only.
    train_inputs, train_labels : Tensor
    test_inputs : Tensor of shape (n, *input_shape)
    explainer : DeepSupportVectors, optional
        Settings of the selection whose expansion ranks the proponents (default: all
        parameters, equal multipliers, ``multipliers="equal"``).
    k : int, default=20
        Proponents removed per test input: at least 1, fewer than the training samples.
    n_test : int, default=50
        Test inputs (the first ``n_test``): at least 2, and ``test_inputs`` must hold 2, for
        the standard error of the mean drop.
    fraction : float, default=0.5
        Fraction removed in the global test, strictly between 0 and 1.
    seed : int, default=0
        Seeds the random removals.
    compare_tracin : bool, default=True
    progress : bool, default=False
    global_explainer : DeepSupportVectors, optional
        Settings of the selection whose λ orders the global removal (default: all parameters,
        fitted multipliers, exact). Equal multipliers cannot order it: they tie.

    Returns
    -------
    dict
        ``margin_drop``: mean (and standard error) of ``margin_before - margin_after`` of each
        test input's predicted class, for ``ours``, ``tracin`` and ``random`` removals
        (``per_test``: every drop; ``paired_ours_minus_tracin``: the paired difference, its
        standard error and how many test inputs ours moved more);
        ``prediction_change``: fraction of test predictions changed by removing the
        ``fraction`` of lowest λ, and a random ``fraction``.

    Raises
    ------
    ValueError
        For ``k``, ``n_test`` or ``fraction`` out of the ranges above.
    TypeError
        For ``k`` or ``n_test`` not an int, or ``fraction`` not a number.
    """
    from tqdm.auto import tqdm

    from .._explainer import DeepSupportVectors

    check_positive("k", k, integer=True)
    check_positive("n_test", n_test, integer=True)
    check_positive("fraction", fraction)
    k, n_test = int(k), int(n_test)
    if k >= len(train_inputs):
        raise ValueError(f"k must be below the number of training samples ({len(train_inputs)}), got {k}")
    if min(n_test, len(test_inputs)) < 2:
        raise ValueError(
            "n_test must be >= 2 and test_inputs must hold at least 2 inputs (the standard error "
            f"of the mean drop needs two), got n_test={n_test} and {len(test_inputs)} test inputs"
        )
    if fraction >= 1:
        raise ValueError(
            f"fraction must be below 1 (the share of training samples removed), got {fraction!r}"
        )
    gen = torch.Generator().manual_seed(seed)
    model = train_fn(train_inputs, train_labels)
    explainer = explainer or DeepSupportVectors(multipliers="equal", progress=False)
    sel = explainer.attribute(model, candidates=train_inputs, labels=train_labels)
    fit = (global_explainer or DeepSupportVectors(progress=False)).attribute(
        model, candidates=train_inputs, labels=train_labels
    )
    xt = test_inputs[:n_test]
    pred = _logits(model, xt).argmax(1).cpu()
    before = _margin(model, xt, pred)
    svi = SupportVectorInfluence(model, sel)
    removals = {"ours": svi.influence((xt, pred), k=k).indices.cpu()}
    if compare_tracin:
        queries = cast_inputs(xt, xt.device, model_dtype(model))
        with eval_mode(model):
            tr = tracin(model, train_inputs, train_labels)
            removals["tracin"] = tr.influence((queries, pred), k=k).indices.cpu()
    n = len(train_inputs)
    removals["random"] = torch.stack([torch.randperm(n, generator=gen)[:k] for _ in range(len(xt))])
    drops: dict[str, list[float]] = {m: [] for m in removals}
    total = len(xt) * len(removals)
    bar = tqdm(total=total, desc="retraining", disable=not progress, leave=False)
    for i in range(len(xt)):
        for method, idx in removals.items():
            keep = torch.ones(n, dtype=torch.bool)
            keep[idx[i]] = False
            m = train_fn(train_inputs[keep], train_labels[keep])
            drops[method].append(float(before[i] - _margin(m, xt[i : i + 1], pred[i : i + 1])[0]))
            bar.update()
    bar.close()
    out: dict[str, Any] = {
        "margin_drop": {
            m: {"mean": float(np.mean(v)), "sem": float(np.std(v, ddof=1) / np.sqrt(len(v)))}
            for m, v in drops.items()
        },
        "per_test": drops,
        "k": k,
        "n_test": len(xt),
        "n_train": n,
        "support_size": int(sel.support.sum()),
        "stationarity_cosine": sel.kkt.stationarity.get("cosine"),
        "multipliers": sel.settings.get("multipliers", "fit"),
        "global_support_size": int(fit.support.sum()),
        "global_stationarity_cosine": fit.kkt.stationarity.get("cosine"),
    }
    if "tracin" in drops and len(xt) > 1:
        diff = np.asarray(drops["ours"]) - np.asarray(drops["tracin"])
        out["paired_ours_minus_tracin"] = {
            "mean": float(diff.mean()),
            "sem": float(diff.std(ddof=1) / np.sqrt(len(diff))),
            "ours_larger": int((diff > 0).sum()),
        }
    full_pred = _logits(model, test_inputs).argmax(1)
    n_drop = int(round(fraction * n))
    order = fit.lambdas.double() + 1e-12 * torch.rand(n, generator=gen, dtype=torch.float64)  # random ties
    low = order.argsort()[:n_drop]
    rand = torch.randperm(n, generator=gen)[:n_drop]
    change = {}
    for name, drop in (("lowest_lambda", low), ("random", rand)):
        keep = torch.ones(n, dtype=torch.bool)
        keep[drop] = False
        m = train_fn(train_inputs[keep], train_labels[keep])
        change[name] = float((_logits(m, test_inputs).argmax(1).cpu() != full_pred.cpu()).double().mean())
    out["prediction_change"] = change
    out["fraction_removed"] = fraction
    out["lambda_zero_fraction"] = float((fit.lambdas == 0).double().mean())
    return out
