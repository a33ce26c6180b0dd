"""The report's sections on a selection: its top- and bottom-λ samples, and its likely
mislabels."""

from __future__ import annotations

import html
import warnings
from collections.abc import Callable, Sequence

from torch import Tensor, nn

from .._result import DSVResult
from ..viz._audit import _score_order, _top_bottom
from ._sections import _fig_html, _name, _sample_labels, _samples_figure

__all__ = ["mislabels_section", "top_bottom_section"]


def _one_lambda(selection: DSVResult) -> bool:
    """Whether every λ is the same (equal multipliers, or all zero): λ then orders nothing."""
    lam = selection.lambdas
    return len(lam) > 0 and bool((lam == lam[0]).all())


def top_bottom_section(
    selection: DSVResult,
    n_top: int,
    classes: Sequence[int] | None,
    class_names: Sequence[str] | None,
    preds: Tensor | None,
    denormalize: Callable | None,
) -> tuple[str, str, str]:
    """``(anchor, title, html)`` of the samples with the largest and smallest λ.

    Where every λ is the same, a note instead: a stable sort would show the first and the last
    rows as "top" and "bottom".
    """
    top, bottom = _top_bottom(selection, n_top, classes)  # also refuses classes without samples
    if _one_lambda(selection):
        return (
            "top-bottom",
            "Top- and bottom-λ real samples",
            f'<p class="note">Every λ of this selection is the same ({float(selection.lambdas[0]):.3g}; '
            "equal multipliers): λ ranks no sample here, so none is shown. The likely mislabels below "
            "are ranked by self-influence, which a model gives them.</p>",
        )
    fig = _samples_figure(
        [[selection.inputs[i] for i in top], [selection.inputs[i] for i in bottom]],
        [
            _sample_labels(selection, top, selection.lambdas, "λ", class_names, preds),
            _sample_labels(selection, bottom, selection.lambdas, "λ", class_names, preds),
        ],
        ["top λ", "bottom λ"],
        denormalize,
        "real samples with the largest and smallest λ",
        150,
        label_lines=2,
    )
    return (
        "top-bottom",
        "Top- and bottom-λ real samples",
        '<p class="note">#: the sample\'s index in the data the selection was run on. Samples with '
        "λ = 0 are outside the support set: the model's parameters do not lean on them.</p>" + _fig_html(fig),
    )


def mislabels_section(
    selection: DSVResult,
    model: nn.Module | None,
    n_mislabels: int,
    classes: Sequence[int] | None,
    class_names: Sequence[str] | None,
    preds: Tensor | None,
    denormalize: Callable | None,
    progress: bool,
) -> tuple[str, str, str]:
    """``(anchor, title, html)`` of the likely mislabels: ranked by self-influence with equal
    multipliers where a model is given (by the loss where that multiplier is 0), else by λ."""
    if model is not None:
        from ..attr import SupportVectorInfluence, equal_multipliers
        from ..kkt import cross_entropy

        with warnings.catch_warnings():  # c = 0 is said in the section itself
            warnings.filterwarnings("ignore", message="every λ of the (support set|selection) is 0")
            equal = equal_multipliers(model, selection, progress=progress)
            svi = SupportVectorInfluence(model, equal, progress=progress)
        scores = svi.self_influence()
        how = (
            "ranked by self-influence c‖∇θL_j‖² with equal multipliers, the KKT value of "
            'weight-decay training (<code>DeepSupportVectors(multipliers="equal")</code>); '
            "the fitted λ is a sparse vertex that ranks mislabels poorly (docs: Explaining a decision)"
        )
        name = "self-influence"
        if not bool((scores > 0).any()):  # c = 0: every self-influence is 0, no ranking
            logits = svi.expansion.logits(selection.inputs).cpu().double()
            labels = selection.labels.double() if selection.labels.ndim == 2 else selection.labels.long()
            scores = cross_entropy(logits, labels)
            how = (
                "ranked by the per-sample loss: the equal multiplier is c = 0 (the model is far "
                "from a stationary point of weight-decay training, see the readiness section), so "
                "every self-influence is 0 and ranks nothing"
            )
            name = "loss"
    else:
        scores, name = None, "λ"
        how = "ranked by λ (no model given; pass one to rank by self-influence)" + (
            ": every λ is the same here, so this order is only the samples' order; pass the model"
            if _one_lambda(selection)
            else ""
        )
    rows = _score_order(selection, scores, n_mislabels, classes)
    vals = selection.lambdas if scores is None else scores
    fig = _samples_figure(
        [[selection.inputs[i] for i in rows]],
        [_sample_labels(selection, rows, vals, name, class_names, preds)],
        ["suspects"],
        denormalize,
        "likely mislabels",
        150,
        label_lines=2,
    )
    table = (
        "<table><tr><th>rank</th><th>sample</th><th>label</th>"
        + ("<th>prediction</th>" if preds is not None else "")
        + f"<th>{name}</th><th>λ</th></tr>"
    )
    for r, i in enumerate(rows.tolist()):
        idx = i if selection.indices is None else int(selection.indices[i])
        table += (
            f"<tr><td>{r + 1}</td><td>{idx}</td>"
            f"<td>{html.escape(_name(int(selection.hard_labels[i]), class_names))}</td>"
            + (f"<td>{html.escape(_name(int(preds[i]), class_names))}</td>" if preds is not None else "")
            + f"<td>{float(vals[i]):.3g}</td><td>{float(selection.lambdas[i]):.3g}</td></tr>"
        )
    table += "</table>"
    return ("mislabels", "Likely mislabels", f'<p class="note">{how}.</p>' + _fig_html(fig) + table)
