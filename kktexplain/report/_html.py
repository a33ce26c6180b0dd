"""One self-contained HTML page (plotly inlined) that audits a model through its support vectors."""

from __future__ import annotations

import datetime
import html
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._data import _writable
from .._result import DSVResult
from .._scope import recorded_param_names
from .._validation import check_count, check_per_class_accuracy
from ..viz._audit import (
    FEASIBILITY_THRESHOLDS,
    STATIONARITY_THRESHOLDS,
    _class_list,
    _num_classes,
)
from ._accuracy import per_class_accuracy, predict_classes
from ._sections import (
    _gallery,
    _history_section,
    _kkt_section,
    _lambda_accuracy_section,
    _readiness_section,
)
from ._selection import mislabels_section, top_bottom_section

__all__ = ["write_html"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: .9em; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: left; }
th { background: #f4f4f4; }
.good { color: #1a7f37; } .fair { color: #8a6d00; } .weak { color: #b35900; }
.poor, .fails { color: #c62828; }
.pager { margin: .5em 0; } .pager button { margin: 0 .3em; }
.note { color: #555; font-size: .9em; }
nav a { margin-right: 1em; }
"""

_JS = """
function kkxShowPage(pager, page) {
  var pages = document.querySelectorAll('.page[data-pager="' + pager + '"]');
  var n = pages.length;
  page = Math.max(0, Math.min(n - 1, page));
  pages.forEach(function (el) {
    var on = Number(el.dataset.page) === page;
    el.style.display = on ? '' : 'none';
    if (on && window.Plotly) {
      el.querySelectorAll('.js-plotly-plot').forEach(function (gd) { Plotly.Plots.resize(gd); });
    }
  });
  var bar = document.querySelector('.pager[data-pager="' + pager + '"]');
  bar.dataset.current = page;
  bar.querySelector('select').value = String(page);
  bar.querySelector('.page-label').textContent = 'page ' + (page + 1) + ' of ' + n;
}
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('.pager').forEach(function (bar) {
    var name = bar.dataset.pager;
    bar.querySelector('.prev').addEventListener('click', function () {
      kkxShowPage(name, Number(bar.dataset.current) - 1);
    });
    bar.querySelector('.next').addEventListener('click', function () {
      kkxShowPage(name, Number(bar.dataset.current) + 1);
    });
    bar.querySelector('select').addEventListener('change', function (ev) {
      kkxShowPage(name, Number(ev.target.value));
    });
    kkxShowPage(name, 0);
  });
});
"""


def write_html(
    path: str | Path,
    synthesis: DSVResult | None = None,
    selection: DSVResult | None = None,
    *,
    model: nn.Module | None = None,
    accuracy: Sequence[float] | Tensor | None = None,
    test_data: tuple[Tensor, Tensor] | None = None,
    explain_inputs: Tensor | None = None,
    explanations: Any = None,
    k: int = 5,
    explain_kwargs: Mapping[str, Any] | None = None,
    class_names: Sequence[str] | None = None,
    classes: Sequence[int] | None = None,
    per_page: int = 10,
    per_class: int | None = None,
    n_top: int = 8,
    n_mislabels: int = 10,
    denormalize: Callable[[Tensor], Tensor] | None = None,
    title: str = "kktexplain audit report",
    readiness: Any = None,
    progress: bool = False,
) -> Path:
    """Write one self-contained HTML audit page (plotly.js inlined once; opens offline).

    Sections, each present when its inputs are: the DSV gallery per class with λ
    (``synthesis``); the KKT residuals, per condition and per layer, with plain-words verdicts
    and the thresholds they use; the synthesis history; per-class Σλ against per-class
    accuracy; the top- and bottom-λ real samples and the likely mislabels (``selection``); the
    per-decision explanations of ``explain_inputs`` (or of prepared ``explanations``).

    Parameters
    ----------
    path : str or Path
        The ``.html`` file to write (parent folders are created).
    synthesis : DSVResult, optional
        A synthesis result (the model's DSVs), e.g. ``DSVResult.load(path)``.
    selection : DSVResult, optional
        A selection result (real samples with λ). At least one of the two is needed.
    model : nn.Module, optional
        The model both results were computed for. Enables self-influence for mislabels,
        accuracy from ``test_data`` and explanations of ``explain_inputs``.
    accuracy : sequence of float or Tensor of shape (C,), optional
        Per-class accuracy in ``[0, 1]`` (``nan`` for a class without test samples: left out
        of the plot); computed from ``test_data`` when omitted.
    test_data : (Tensor of shape (n, *input_shape), Tensor of shape (n,)), optional
        A labelled test set for the per-class accuracy (needs ``model``); numpy arrays too.
    explain_inputs : Tensor or numpy array of shape (m, *input_shape), optional
        Test inputs whose decisions are explained by the selection (else the synthesis)
        with ``result.explain(model, explain_inputs, k=k, **explain_kwargs)``; needs ``model``.
    explanations : Explanation or sequence of Explanation, optional
        Prepared explanations, embedded instead of computing them.
    k : int, default=5
        Supporting and opposing support vectors per decision.
    explain_kwargs : mapping, optional
        Further arguments of :meth:`DSVResult.explain` (e.g. ``maps="total"``, ``n_steps=8``).
    class_names : sequence of str, optional
    classes : sequence of int, optional
        Classes shown in the per-class sections (default all).
    per_page : int, default=10
        Classes per page of the gallery (a selector and previous/next buttons page through).
    per_class : int, optional
        DSVs per class in the gallery; default the largest class size.
    n_top : int, default=8
        Samples in each of the top- and bottom-λ rows.
    n_mislabels : int, default=10
    denormalize : callable, optional
        Maps a batch of inputs back to pixel units before display.
    title : str, default="kktexplain audit report"
    readiness : KKTReadiness or bool, optional
        How close the model is to a KKT point (:func:`kktexplain.kkt_readiness`), shown first.
        Default: computed on the selection's samples and labels when ``model`` and
        ``selection`` are given (one forward and backward pass over them); ``False`` leaves the
        section out.
    progress : bool, default=False
        Progress bars over the passes that need the model (readiness, self-influence, the
        explanations' support gradients and feature maps).

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> write_html("report.html", synthesis=dsv, selection=sel, model=model,
    ...            test_data=(x_test, y_test), explain_inputs=x_test[:3])  # doctest: +SKIP
    """
    from plotly.offline import get_plotlyjs

    if synthesis is None and selection is None:
        raise ValueError("synthesis and selection are both None: pass at least one DSVResult")
    if isinstance(test_data, tuple | list):  # numpy arrays, as the other entry points take them
        test_data = tuple(
            torch.from_numpy(_writable(t)) if isinstance(t, np.ndarray) else t for t in test_data
        )
    if isinstance(explain_inputs, np.ndarray):
        explain_inputs = torch.from_numpy(_writable(explain_inputs))
    for name, res in (("synthesis", synthesis), ("selection", selection)):
        if res is not None and not isinstance(res, DSVResult):
            raise TypeError(f"{name} must be a DSVResult, got {type(res).__name__}")
        mode = None if res is None else res.settings.get("mode", name)
        if mode is not None and mode != name:
            raise ValueError(f"{name} holds a {mode} result; pass it as {mode}=")
    shapes = {
        name: tuple(r.inputs.shape[1:])
        for name, r in (("synthesis", synthesis), ("selection", selection))
        if r is not None
    }
    if len(set(shapes.values())) > 1:
        raise ValueError(
            f"synthesis and selection hold inputs of different shapes {shapes['synthesis']} and "
            f"{shapes['selection']}: they must come from the same model"
        )
    for name, data in (
        ("test_data", test_data[0] if isinstance(test_data, tuple | list) else None),
        ("explain_inputs", explain_inputs),
    ):
        shape = next(iter(shapes.values()), None)
        if (
            isinstance(data, Tensor)
            and shape is not None
            and shape not in (tuple(data.shape[1:]), tuple(data.shape))
        ):
            raise ValueError(
                f"{name} holds inputs of shape {tuple(data.shape[1:])}; the results' inputs have "
                f"shape {shape}"
            )
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if model is not None:  # before any pass: a model of other parameters than the results'
        own = {k for k, _ in model.named_parameters()}
        for name, result in (("synthesis", synthesis), ("selection", selection)):
            missing = [] if result is None else sorted(set(recorded_param_names(result.settings) or []) - own)
            if missing:
                raise ValueError(
                    f"model must be the model the {name} was computed for: it has no parameter "
                    f"{missing[:4]}{' ...' if len(missing) > 4 else ''}"
                )
    per_page = check_count("per_page", per_page)
    n_top = check_count("n_top", n_top)
    n_mislabels = check_count("n_mislabels", n_mislabels)
    k = check_count("k", k)
    if per_class is not None:
        per_class = check_count("per_class", per_class)
    results = [(t, r) for t, r in (("synthesis", synthesis), ("selection", selection)) if r is not None]
    num_classes = max(_num_classes(r) for _, r in results)
    cls = _class_list(classes, num_classes)
    if class_names is not None and len(class_names) < num_classes:
        raise ValueError(f"class_names must name all {num_classes} classes, got {len(class_names)}")

    if accuracy is None and test_data is not None:
        if model is None:
            raise ValueError("test_data needs model= to compute the per-class accuracy")
        if not isinstance(test_data, (tuple, list)) or len(test_data) != 2:
            raise TypeError("test_data must be a pair (inputs, labels)")
        accuracy = per_class_accuracy(model, test_data[0], test_data[1], num_classes)
    if accuracy is not None:
        accuracy = check_per_class_accuracy(accuracy, num_classes)

    sections: list[tuple[str, str, str]] = []  # (anchor, heading, html)
    if readiness is None and model is not None and selection is not None and len(selection):
        from .._readiness import kkt_readiness

        readiness = kkt_readiness(model, (selection.inputs, selection.labels), progress=progress)
    if readiness is not None and readiness is not False:
        sections.append(("readiness", "Is the model near a KKT point?", _readiness_section(readiness)))
    if synthesis is not None:
        caption = (
            "Each row is one DSV and each column one feature, grouped by class, largest λ first."
            if synthesis.inputs.ndim == 2
            else "Each row is one class; tiles are its DSVs, largest λ first (channel mean, each "
            "tile scaled to its own range)."
        )
        sections.append(
            (
                "gallery",
                "DSV gallery per class",
                f'<p class="note">{caption}</p>'
                + _gallery(synthesis, cls, per_page, per_class, class_names, denormalize),
            )
        )
    thresholds = "".join(
        f"<li>≥ {b:g}: {html.escape(t)}</li>" if np.isfinite(b) else f"<li>below: {html.escape(t)}</li>"
        for b, t in STATIONARITY_THRESHOLDS
    )
    fthr = "".join(
        f"<li>≥ {b:g}: {html.escape(t)}</li>" if np.isfinite(b) else f"<li>below: {html.escape(t)}</li>"
        for b, t in FEASIBILITY_THRESHOLDS
    )
    kkt_html = (
        '<p class="note">How a verdict is read. The <b>stationarity cosine</b> '
        "cos(θ*, −Σλ∇θL) is 1 when the parameters are exactly the λ-weighted sum of the support "
        "vectors' loss gradients (a linear SVM). A deep network trained with Adam is not a KKT "
        "point: on the reference Fashion-MNIST ConvNet, 2,000 real training images with λ = 1 "
        "reach 0.011 to 0.019, and DSVs synthesized with the defaults 0.31 to 0.32 (0.03 to 0.15 "
        "with the per-tensor objective of earlier versions). Thresholds:</p>"
        f'<ul>{thresholds}</ul><p class="note">Primal feasibility rate:</p><ul>{fthr}</ul>'
    ) + "".join(_kkt_section(r, t) for t, r in results)
    sections.append(("kkt", "KKT residuals", kkt_html))
    hist = [(t, r) for t, r in results if any(isinstance(v, list) and v for v in r.history.values())]
    if hist:
        sections.append(("history", "Synthesis history", "".join(_history_section(r, t) for t, r in hist)))
    sections.append(
        (
            "lambda-accuracy",
            "Σλ per class against accuracy",
            _lambda_accuracy_section(results, accuracy, cls, class_names),
        )
    )

    if selection is not None:
        preds = predict_classes(model, selection.inputs) if model is not None else None
        sections.append(top_bottom_section(selection, n_top, cls, class_names, preds, denormalize))
        sections.append(
            mislabels_section(selection, model, n_mislabels, cls, class_names, preds, denormalize, progress)
        )

    if explanations is None and explain_inputs is not None:
        if model is None:
            raise ValueError("explain_inputs needs model= to explain the decisions")
        support = selection if selection is not None else synthesis
        kw = {"progress": progress, **(explain_kwargs or {})}
        kw.setdefault("class_names", list(class_names) if class_names is not None else None)
        explanations = support.explain(model, explain_inputs, k=k, **kw)
    if explanations is not None:
        items = explanations if isinstance(explanations, (list, tuple)) else [explanations]
        parts = []
        for e in items:
            if not hasattr(e, "to_html"):
                raise TypeError(f"explanations must be Explanation objects, got {type(e).__name__}")
            for i in range(len(e)):
                parts.append(f'<div class="explanation">{e.to_html(i, include_plotlyjs=False)}</div>')
        sections.append(
            (
                "explanations",
                "Per-decision explanations",
                '<p class="note">For each input: its feature map, the support vectors that push '
                "the explained logit up (+) and down (−) with their contributions (for images: the "
                "middle and bottom rows; for flat features: the lower bar chart), numbered as "
                "elsewhere on this page, and the residual between the exact logit term and its "
                "support-vector expansion.</p>" + "".join(parts),
            )
        )

    what = "; ".join(f"{t}: {len(r)} samples" for t, r in results)
    nav = "".join(f'<a href="#{a}">{html.escape(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{html.escape(h)}</h2>{s}</section>' for a, h, s in sections)
    now = datetime.datetime.now(datetime.timezone.utc)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script><script>{_JS}</script></head><body>'
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="note">Written by kktexplain on {now:%Y-%m-%d %H:%M} UTC; '
        f"{num_classes} classes; {what}. Self-contained: opens offline.</p>"
        f"<nav>{nav}</nav>{body}</body></html>"
    )
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path {str(path)!r} is a folder: give the report's file name (e.g. report.html)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
