"""The sections of the HTML audit report: each builds one part of the page from results."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._result import DSVResult
from ..viz._audit import (
    STATIONARITY_THRESHOLDS,
    _mosaic,
    class_lambda_sums,
    feasibility_verdict,
    stationarity_verdict,
)

__all__: list[str] = []


def _verdict_class(text: str) -> str:
    return text.split(":")[0].split(",")[0].strip()


def _verdict_td(text: str) -> str:
    return f'<td class="{_verdict_class(text)}">{html.escape(text)}</td>'


def _fig_html(fig: Any) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _name(c: int, class_names: Sequence[str] | None) -> str:
    return str(class_names[c]) if class_names is not None and c < len(class_names) else f"class {c}"


def _mosaic_figure(tiles, labels, row_names, denormalize, title, height_per_row=110, label_lines=1):
    """A plotly heatmap of a tiled mosaic with one annotation per tile."""
    import plotly.graph_objects as go

    first = next(x for row in tiles for x in row if x is not None)
    h = first.shape[-2] if first.ndim >= 2 else 1
    img, dh, dw = _mosaic(tiles, denormalize, vpad=1 + int(np.ceil(0.2 * label_lines * h)))
    fig = go.Figure(
        go.Heatmap(
            z=np.where(np.isnan(img), None, img).tolist(),
            colorscale="gray",
            showscale=False,
            zmin=0,
            zmax=1,
            hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>",
        )
    )
    for r, row in enumerate(labels):
        for j, text in enumerate(row):
            if text:
                fig.add_annotation(
                    x=j * dw - 0.5,
                    y=r * dh - 0.5,
                    text=text,
                    showarrow=False,
                    xanchor="left",
                    yanchor="bottom",
                    font={"size": 9},
                )
    cols = max(len(r) for r in tiles)
    fig.update_yaxes(
        autorange="reversed",
        scaleanchor="x",
        tickvals=[r * dh + dh / 2 for r in range(len(tiles))],
        ticktext=[html.escape(n) for n in row_names],
        showgrid=False,
        zeroline=False,
    )
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_layout(
        title=html.escape(title),
        width=min(1150, 110 * cols + 160),
        height=height_per_row * len(tiles) + 120,
        margin={"t": 60, "b": 10},
        plot_bgcolor="white",
    )
    return fig


def _samples_figure(tiles, labels, row_names, denormalize, title, height_per_row=110, label_lines=1):
    """:func:`_mosaic_figure` for images; for flat features (a 1-pixel strip per sample there) a
    heatmap with a row per sample and a column per feature, named by its group and label."""
    first = next(x for row in tiles for x in row if x is not None)
    if first.ndim >= 2:
        return _mosaic_figure(tiles, labels, row_names, denormalize, title, height_per_row, label_lines)
    z, names = [], []
    for group, row, texts in zip(row_names, tiles, labels, strict=True):
        for x, text in zip(row, texts, strict=True):
            if x is not None:
                z.append(x.detach().double().cpu().flatten().tolist())
                names.append(f"{html.escape(group)}: {text.replace('<br>', ', ')}")  # text: escaped
    return _feature_heatmap(z, names, f"{title} (a row per sample, a column per feature)", first.numel())


def _pager(name: str, pages: list[str], labels: list[str]) -> str:
    if len(pages) == 1:
        return f'<div class="page" data-pager="{name}" data-page="0">{pages[0]}</div>'
    opts = "".join(f'<option value="{i}">{html.escape(t)}</option>' for i, t in enumerate(labels))
    bar = (
        f'<div class="pager" data-pager="{name}" data-current="0"><button class="prev">◀ previous</button>'
        f'<select aria-label="page">{opts}</select><button class="next">next ▶</button>'
        f'<span class="page-label">page 1 of {len(pages)}</span></div>'
    )
    body = "".join(
        f'<div class="page" data-pager="{name}" data-page="{i}">{p}</div>' for i, p in enumerate(pages)
    )
    return bar + body


def _feature_heatmap(z: list, names: list[str], title: str, n_features: int) -> Any:
    """Samples with flat features as a heatmap: a row per sample (``names``, already escaped),
    a column per feature, on a diverging scale centred at 0."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(
            z=z,
            y=list(range(len(z))),
            colorscale="RdBu_r",
            zmid=0,
            hovertemplate="feature %{x}: %{z:.3g}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", tickvals=list(range(len(z))), ticktext=names)
    fig.update_xaxes(title="feature")
    fig.update_layout(
        title=html.escape(title),
        height=22 * len(z) + 160,
        width=min(1150, 28 * n_features + 420),
        margin={"t": 60, "b": 40},
    )
    return fig


def _feature_rows_figure(result, core, rows, class_names) -> Any:
    """DSVs with flat features as a heatmap: a row per DSV (by class, best λ first), a column
    per feature, on a diverging scale centred at 0."""
    z, names = [], []
    for c in rows:
        for j, i in enumerate(core.indices[c].tolist()):
            if i >= 0:
                z.append(result.inputs[i].detach().double().cpu().tolist())
                names.append(html.escape(f"{_name(c, class_names)}, λ={float(core.lambdas[c, j]):.3g}"))
    title = f"DSVs of {len(rows)} classes, best λ first (a row per DSV)"
    return _feature_heatmap(z, names, title, result.inputs.shape[1])


def _gallery(result, classes, per_page, per_class, class_names, denormalize) -> str:
    y = result.hard_labels
    cls = [c for c in classes if int((y == c).sum()) > 0]
    if not cls:
        return '<p class="note">No DSVs in the chosen classes.</p>'
    k = per_class or max(1, int(max((y == c).sum() for c in cls)))
    core = result.top_k_per_class(int(k))
    pages, labels = [], []
    for start in range(0, len(cls), per_page):
        rows = cls[start : start + per_page]
        if result.inputs.ndim == 2:  # flat features: one row per DSV, one column per feature
            pages.append(_fig_html(_feature_rows_figure(result, core, rows, class_names)))
            labels.append(f"{_name(rows[0], class_names)} … {_name(rows[-1], class_names)}")
            continue
        tiles = [[result.inputs[int(i)] if i >= 0 else None for i in core.indices[c]] for c in rows]
        texts = [
            [f"λ={float(core.lambdas[c, j]):.3g}" if core.indices[c, j] >= 0 else "" for j in range(k)]
            for c in rows
        ]
        fig = _mosaic_figure(
            tiles,
            texts,
            [_name(c, class_names) for c in rows],
            denormalize,
            f"DSVs of {len(rows)} classes, best λ first",
        )
        pages.append(_fig_html(fig))
        labels.append(f"{_name(rows[0], class_names)} … {_name(rows[-1], class_names)}")
    return _pager("gallery", pages, labels)


def _scope_row(settings: dict) -> tuple[str, str, str]:
    """Which parameters stationarity was measured on: the free scope says what it left out."""
    resolved = settings.get("resolved_param_names")
    names = resolved if resolved is not None else settings.get("param_names")
    invariant = settings.get("invariant_param_names") or []
    if resolved is not None and invariant:
        return (
            "stationarity measured on",
            f"{len(names)} of {len(names) + len(invariant)} parameter tensors",
            "free scope: the others lie in scale-invariant modules, where no λ can help",
        )
    if isinstance(names, list | tuple):
        tensors = "parameter tensor" if len(names) == 1 else "parameter tensors"
        return ("stationarity measured on", f"{len(names)} {tensors}", "the scope of the run")
    return ("stationarity measured on", "every parameter", "the scope of the run")


def _kkt_section(result: DSVResult, tag: str) -> str:
    import plotly.graph_objects as go

    kkt = result.kkt
    st = kkt.stationarity
    cos = st.get("cosine", float("nan"))
    fv, sv = feasibility_verdict(kkt.feasibility_rate), stationarity_verdict(cos)
    dual = float(kkt.dual_violation.max()) + 0.0 if len(result) else 0.0
    rows = [
        ("primal feasibility rate", f"{kkt.feasibility_rate:.3f}", fv),
        ("mean margin Φ_y − max_{c≠y} Φ_c", f"{float(kkt.margin.mean()):.3g}", "positive is feasible"),
        ("mean predictive entropy (nats)", f"{float(kkt.entropy.mean()):.3g}", "large near the boundary"),
        (
            "dual feasibility: max(0, −λ)",
            f"{dual:.3g}",
            "good: every λ ≥ 0" if dual == 0 else "poor: negative λ",
        ),
        ("stationarity cosine cos(θ*, −Σλ∇L)", f"{cos:.3f}", sv),
        _scope_row(result.settings),
    ]
    for key in ("rel_l1", "rel_l2", "l1", "g_norm_ratio"):
        if key in st:
            rows.append(
                (
                    f"stationarity {key}",
                    f"{st[key]:.3g}",
                    "0 is exact" if key != "g_norm_ratio" else "‖Σλ∇L‖ / ‖θ*‖; 1 matches the scale",
                )
            )
    table = (
        "<table><tr><th>condition</th><th>value</th><th>verdict</th></tr>"
        + "".join(f"<tr><td>{html.escape(a)}</td><td>{b}</td>{_verdict_td(c)}</tr>" for a, b, c in rows)
        + "</table>"
    )
    layers = kkt.per_layer_cosine
    out = f"<h3>{html.escape(tag)}: {len(result)} samples</h3>{table}"
    if layers:
        names, vals = list(layers), [float(v) for v in layers.values()]
        colors = [
            "#1a7f37" if v >= 0.9 else "#8a6d00" if v >= 0.3 else "#b35900" if v >= 0.03 else "#c62828"
            for v in vals
        ]
        fig = go.Figure(
            go.Bar(
                x=vals,
                y=names,
                orientation="h",
                marker_color=colors,
                hovertext=[stationarity_verdict(v) for v in vals],
                hovertemplate="%{y}: %{x:.3f}<br>%{hovertext}<extra></extra>",
            )
        )
        for bound, _ in STATIONARITY_THRESHOLDS[:3]:
            fig.add_vline(x=bound, line_dash="dash", line_color="grey")
        fig.update_layout(
            title="per-layer stationarity cosine (dashed: 0.03, 0.3, 0.9)",
            xaxis={"range": [-1, 1]},
            yaxis={"autorange": "reversed"},
            height=min(1200, 24 * len(names) + 200),
            width=900,
            margin={"l": 220},
        )
        out += _fig_html(fig)
        table2 = (
            "<table><tr><th>parameter tensor</th><th>cosine</th><th>verdict</th></tr>"
            + "".join(
                f"<tr><td>{html.escape(n)}</td><td>{v:.3f}</td>{_verdict_td(stationarity_verdict(v))}</tr>"
                for n, v in zip(names, vals)
            )
            + "</table>"
        )
        out += f"<details><summary>per-layer table</summary>{table2}</details>"
    return out


def _history_section(result: DSVResult, tag: str) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    h = {k: v for k, v in result.history.items() if isinstance(v, list) and v}
    if not h:
        return f'<p class="note">{html.escape(tag)}: no history recorded.</p>'
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=["loss terms (unweighted, log)", "mean predictive entropy", "primal feasibility rate"],
    )
    for key, vals in h.items():
        if key in ("entropy", "feasibility", "feasibility_aug", "lambda_mean", "n_active"):
            continue
        v = [max(float(x), 1e-12) for x in vals]
        if any(x > 1e-12 for x in v):
            fig.add_trace(go.Scatter(y=v, name=key, mode="lines"), 1, 1)
    if "entropy" in h:
        fig.add_trace(go.Scatter(y=h["entropy"], name="entropy", mode="lines"), 1, 2)
    for key in ("feasibility", "feasibility_aug"):
        if key in h:
            fig.add_trace(go.Scatter(y=h[key], name=key, mode="lines"), 1, 3)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_yaxes(range=[-0.05, 1.05], row=1, col=3)
    fig.update_xaxes(title_text="step")
    fig.update_layout(
        title=html.escape(f"{tag}: synthesis history ({len(next(iter(h.values())))} steps)"),
        height=380,
        width=1150,
    )
    return _fig_html(fig)


def _lambda_accuracy_section(results, accuracy, classes, class_names) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    for tag, res in results:
        sums = class_lambda_sums(res)
        names = [_name(c, class_names) for c in classes]
        if accuracy is not None:
            fig.add_trace(
                go.Scatter(
                    x=[float(accuracy[c]) for c in classes],
                    y=[float(sums[c]) for c in classes],
                    mode="markers+text" if len(classes) <= 30 else "markers",
                    text=names,
                    textposition="top center",
                    name=f"Σλ ({tag})",
                    hovertemplate="%{text}: accuracy %{x:.3f}, Σλ %{y:.3g}<extra></extra>",
                )
            )
        else:
            fig.add_trace(go.Bar(x=names, y=[float(sums[c]) for c in classes], name=f"Σλ ({tag})"))
    if accuracy is not None:
        fig.update_layout(xaxis_title="per-class accuracy", yaxis_title="Σλ of the class")
    else:
        fig.update_layout(yaxis_title="Σλ of the class")
    fig.update_layout(
        title="per-class Σλ" + (" against per-class accuracy" if accuracy is not None else ""),
        height=450,
        width=900,
    )
    note = (
        ""
        if accuracy is not None
        else '<p class="note">No accuracy given (pass <code>accuracy=</code>, or a model with '
        "<code>test_data=</code>): Σλ per class only.</p>"
    )
    return note + _fig_html(fig)


def _sample_labels(res, rows, values, value_name, class_names, preds=None):
    y = res.hard_labels
    out = []
    for i in rows.tolist():
        idx = i if res.indices is None else int(res.indices[i])
        t = f"#{idx} {html.escape(_name(int(y[i]), class_names))}"
        if preds is not None:
            t += f" (pred {html.escape(_name(int(preds[i]), class_names))})"
        out.append(t + f"<br>{value_name}={float(values[i]):.3g}")
    return out


def _readiness_section(r: Any) -> str:
    from .._readiness import KKTReadiness

    if not isinstance(r, KKTReadiness):
        raise TypeError(
            f"readiness must be a KKTReadiness (kktexplain.kkt_readiness) or False, got {type(r).__name__}"
        )
    rows = [
        ("equal-multiplier cosine cos(θ*, −Σ∇θL)", f"{r.cosine:.3f}", r.verdict),
        ("best single multiplier c", f"{r.scale:.3g}", ""),
        ("unexplained part ‖θ* + cΣ∇θL‖ / ‖θ*‖", f"{r.relative_residual:.3f}", ""),
        (
            "samples whose expansion picks the model's class",
            "n/a" if r.argmax_agreement is None else f"{r.argmax_agreement:.1%}",
            "",
        ),
        ("implied weight decay 1/(n c)", f"{r.implied_weight_decay:.3g}", "compare with training's"),
        ("samples", f"{r.n}", ""),
        (
            "tensors in scale-invariant modules (stationarity impossible there)",
            f"{len(r.invariant_param_names)} of {len(r.per_layer_cosine)}",
            "",
        ),
        (
            "upper bound on any stationarity cosine",
            "n/a (displacement)" if r.max_cosine is None else f"{r.max_cosine:.3f}",
            "",
        ),
    ]
    css = {"near": "good", "partial": "fair", "far": "poor"}
    body = "".join(
        f'<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td><td class="{css.get(c, "")}">'
        f"{html.escape(c)}</td></tr>"
        for a, b, c in rows
    )
    layers = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{v:.3f}</td></tr>" for k, v in r.per_layer_cosine.items()
    )
    return (
        f'<p class="note">{html.escape(r.message)} At a stationary point of training with weight '
        "decay wd over n samples, θ* = −(1/(n·wd)) Σ∇θL exactly, every multiplier equal.</p>"
        f'<table id="readiness-table"><tr><th>measure</th><th>value</th><th>verdict</th></tr>{body}</table>'
        f"<details><summary>per parameter tensor</summary><table><tr><th>tensor</th><th>cosine</th></tr>"
        f"{layers}</table></details>"
    )
