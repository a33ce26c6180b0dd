"""Explanation: one decision, its supporting and opposing support vectors, and feature maps."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .._model_info import check_token_ids
from ._attribution import SupportVectorAttribution
from ._influence import SupportVectorInfluence, check_query_inputs, resolve_target

__all__ = ["Explanation", "explain"]


@dataclass(repr=False)
class Explanation:
    """The support-vector explanation of ``n`` decisions (results hold no model).

    Attributes
    ----------
    inputs : Tensor of shape (n, *input_shape)
    logits : Tensor of shape (n, C)
        The model's logits.
    prediction : Tensor of shape (n,)
        The model's arg-max class.
    target : Tensor of shape (n,)
        The class whose logit is explained (the prediction unless ``target`` was given).
    supporting_indices, opposing_indices : Tensor of shape (n, k)
        Rows of the support set with the largest positive / most negative contributions.
    supporting_contributions, opposing_contributions : Tensor of shape (n, k)
    supporting_inputs, opposing_inputs : Tensor of shape (n, k, *input_shape)
    supporting_labels, opposing_labels : Tensor of shape (n, k)
        Hard labels of those support vectors.
    feature_map : Tensor of shape (n, *input_shape)
        Integrated-Gradients attribution of the whole expansion to the features of ``inputs``.
    supporting_maps, opposing_maps : Tensor of shape (n, k, *input_shape) or None
        The same for each shown support vector alone (``None`` if not computed).
    exact : Tensor of shape (n,)
        ``<theta*, grad f_c(x)>`` for the target class.
    expansion : Tensor of shape (n,)
        Sum of all contributions.
    residual : Tensor of shape (n,)
        ``exact - expansion`` (captum's convergence delta).
    class_names : list of str or None
    """

    inputs: Tensor
    logits: Tensor
    prediction: Tensor
    target: Tensor
    supporting_indices: Tensor
    supporting_contributions: Tensor
    supporting_inputs: Tensor
    supporting_labels: Tensor
    opposing_indices: Tensor
    opposing_contributions: Tensor
    opposing_inputs: Tensor
    opposing_labels: Tensor
    feature_map: Tensor
    supporting_maps: Tensor | None
    opposing_maps: Tensor | None
    exact: Tensor
    expansion: Tensor
    residual: Tensor
    class_names: list[str] | None = None

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __repr__(self) -> str:
        return (
            f"Explanation(n={len(self)}, k={self.supporting_indices.shape[1]}, "
            f"prediction={self.prediction.tolist()[:8]}, "
            f"mean |residual|={self.residual.abs().mean().item():.4g})"
        )

    def _name(self, c: int) -> str:
        return self.class_names[c] if self.class_names else str(c)

    def _check_index(self, index: int) -> int:
        if isinstance(index, bool) or not isinstance(index, int) or not -len(self) <= index < len(self):
            raise ValueError(f"index must be an int in [0, {len(self)}), got {index!r}")
        return index % len(self)

    def plot(self, index: int = 0, ax: Any = None) -> Any:
        """Bar chart of the top supporting (green) and opposing (red) contributions.

        Parameters
        ----------
        index : int, default=0
            Which decision.
        ax : matplotlib Axes, optional

        Returns
        -------
        matplotlib Axes
        """
        import matplotlib.pyplot as plt

        i = self._check_index(index)
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3))
        sup, opp = self.supporting_contributions[i], self.opposing_contributions[i]
        values = torch.cat([sup, opp.flip(0)]).tolist()
        rows = torch.cat([self.supporting_indices[i], self.opposing_indices[i].flip(0)]).tolist()
        labels = torch.cat([self.supporting_labels[i], self.opposing_labels[i].flip(0)]).tolist()
        colors = ["tab:green" if v >= 0 else "tab:red" for v in values]
        ax.bar(range(len(values)), values, color=colors)
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels([f"#{r}\n{self._name(c)}" for r, c in zip(rows, labels)], fontsize=7)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_ylabel("contribution")
        t = int(self.target[i])
        ax.set_title(
            f"logit of {self._name(t)}: exact {self.exact[i]:.3g}, expansion {self.expansion[i]:.3g}",
            fontsize=9,
        )
        return ax

    def plot_panel(self, index: int = 0, denormalize: Any = None) -> Any:
        """Images of the decision, its feature map and the top supporting and opposing vectors.

        Parameters
        ----------
        index : int, default=0
        denormalize : callable, optional
            Maps a normalised input back to pixel values for display.

        Returns
        -------
        matplotlib Figure
        """
        import matplotlib.pyplot as plt

        i = self._check_index(index)
        k = self.supporting_indices.shape[1]
        fig, axes = plt.subplots(3, k + 1, figsize=(1.6 * (k + 1), 5.2), squeeze=False)
        show = denormalize if denormalize is not None else (lambda t: t)
        _show_input(show(self.inputs[i]), axes[0, 0], f"pred {self._name(int(self.prediction[i]))}")
        _heat(self.feature_map[i], axes[1, 0], "feature map")
        axes[2, 0].axis("off")
        for j in range(k):
            for row, (_idx, con, img, lab) in enumerate(
                [
                    (
                        self.supporting_indices,
                        self.supporting_contributions,
                        self.supporting_inputs,
                        self.supporting_labels,
                    ),
                    (
                        self.opposing_indices,
                        self.opposing_contributions,
                        self.opposing_inputs,
                        self.opposing_labels,
                    ),
                ]
            ):
                ax = axes[0 if row == 0 else 2, j + 1]
                _show_input(
                    show(img[i, j]),
                    ax,
                    f"{'+' if row == 0 else ''}{con[i, j]:.2g} {self._name(int(lab[i, j]))}",
                )
            if self.supporting_maps is not None:
                _heat(self.supporting_maps[i, j], axes[1, j + 1], f"#{int(self.supporting_indices[i, j])}")
            else:
                axes[1, j + 1].axis("off")
        fig.suptitle("supporting (top), feature maps (middle), opposing (bottom)", fontsize=9)
        fig.tight_layout()
        return fig

    def to_html(self, index: int = 0, include_plotlyjs: bool | str = True) -> str:
        """A self-contained HTML fragment (plotly) of one decision.

        Parameters
        ----------
        index : int, default=0
        include_plotlyjs : bool or str, default=True
            ``True`` inlines plotly.js (the fragment opens offline); ``False`` leaves it to the
            page that embeds several fragments.

        Returns
        -------
        str
        """
        return self.figure(index).to_html(full_html=False, include_plotlyjs=include_plotlyjs)

    def figure(self, index: int = 0) -> Any:
        """The plotly figure behind :meth:`to_html`.

        Parameters
        ----------
        index : int, default=0

        Returns
        -------
        plotly.graph_objects.Figure
        """
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        i = self._check_index(index)
        k = self.supporting_indices.shape[1]
        image_like = self.inputs.ndim >= 3
        cols = max(k, 2)
        # make_subplots fills titles row by row over every cell: pad each row to `cols`
        sup = [f"+ #{int(r)}" for r in self.supporting_indices[i]]
        opp = [f"- #{int(r)}" for r in self.opposing_indices[i]]
        titles = (
            ["input", "feature map"] + [""] * (cols - 2) + sup + [""] * (cols - k) + opp + [""] * (cols - k)
        )
        if image_like:
            fig = make_subplots(rows=3, cols=cols, subplot_titles=titles)
            fig.add_trace(go.Heatmap(z=_plane(self.inputs[i]), colorscale="gray", showscale=False), 1, 1)
            fig.add_trace(go.Heatmap(z=_plane(self.feature_map[i]), colorscale="RdBu", zmid=0), 1, 2)
            for j in range(k):
                fig.add_trace(
                    go.Heatmap(z=_plane(self.supporting_inputs[i, j]), colorscale="gray", showscale=False),
                    2,
                    j + 1,
                )
                fig.add_trace(
                    go.Heatmap(z=_plane(self.opposing_inputs[i, j]), colorscale="gray", showscale=False),
                    3,
                    j + 1,
                )
            for ax in fig.layout:
                if ax.startswith("yaxis"):
                    fig.layout[ax].autorange = "reversed"
        else:  # flat features: two full-width bar charts
            fig = make_subplots(
                rows=2,
                cols=1,
                subplot_titles=["feature attribution", "top supporting (+) and opposing (-) support vectors"],
            )
            feats = self.feature_map[i].flatten().tolist()
            fig.add_trace(go.Bar(y=feats, name="feature attribution"), 1, 1)
            vals = torch.cat([self.supporting_contributions[i], self.opposing_contributions[i]]).tolist()
            names = [f"#{int(r)}" for r in torch.cat([self.supporting_indices[i], self.opposing_indices[i]])]
            fig.add_trace(go.Bar(x=names, y=vals, name="contribution"), 2, 1)
            cols = max(cols, 4)
        t = int(self.target[i])
        fig.update_layout(
            title=html.escape(
                f"{self._name(t)}: exact {float(self.exact[i]):.3g}, "
                f"expansion {float(self.expansion[i]):.3g}, residual {float(self.residual[i]):.3g}"
            ),
            height=600,
            width=200 * cols + 100,
        )
        return fig


def _plane(t: Tensor) -> list:
    """A 2-D array for display: the mean over the leading dimensions of a (..., H, W) tensor
    (the channels of an image; the channels and depth of a volume)."""
    t = t.detach().float()
    if t.ndim > 2:
        t = t.flatten(0, -3).mean(0)
    return t.tolist()


def _show_input(t: Tensor, ax: Any, title: str) -> None:
    """An image ``(C, H, W)`` as a picture, a ``(H, W)`` array as a grey map, anything else
    (flat features) as a bar per feature."""
    from ..viz import show_image

    t = t.detach().float().cpu()
    if t.ndim > 3:  # a volume: its mean plane
        t = t.flatten(0, -3).mean(0)
    if t.ndim == 3:
        show_image(t, ax=ax, title=title)
    elif t.ndim == 2:
        show_image(t.unsqueeze(0), ax=ax, title=title)
    else:
        _bars(t, ax, title, "tab:gray", 7)


def _bars(t: Tensor, ax: Any, title: str, color: Any, fontsize: int) -> None:
    """One bar per feature of a flat tensor, without ticks per feature."""
    values = t.flatten()
    ax.bar(range(values.numel()), values.tolist(), color=color)
    ax.set_xticks([])
    ax.tick_params(labelsize=6)
    ax.set_title(title, fontsize=fontsize)


def _heat(t: Tensor, ax: Any, title: str) -> None:
    """A signed map: red positive, blue negative, as a picture for images and as bars for
    flat features."""
    t = t.detach().float().cpu()
    if t.ndim < 2:
        values = t.flatten()
        _bars(values, ax, title, ["tab:red" if v >= 0 else "tab:blue" for v in values], 8)
        m = float(values.abs().max()) or 1.0
        ax.set_ylim(-1.05 * m, 1.05 * m)
        return
    plane = torch.tensor(_plane(t))
    m = float(plane.abs().max()) or 1.0
    ax.imshow(plane.numpy(), cmap="RdBu_r", vmin=-m, vmax=m)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


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
    influence: SupportVectorInfluence | None = None,
    additional_forward_args: Any = None,
) -> Explanation:
    """Explain decisions of ``model`` by the support set ``support``; see :meth:`DSVResult.explain`.

    Parameters
    ----------
    support : DSVResult
    model : nn.Module
    inputs : Tensor of shape (n, *input_shape) or (*input_shape)
        One input or a batch.
    target : None, int, list of int or Tensor, optional
        Class to explain; the model's prediction when omitted.
    k : int, default=5
        Supporting and opposing vectors to return (at most ``len(support)``: a larger ``k`` is
        lowered to it). They are the ``k`` largest and the ``k`` smallest contributions: where
        fewer than ``k`` terms are positive, the supporting list ends with terms <= 0.
    maps : {"all", "total", "none"}, default="all"
        Feature maps of the whole expansion and of each shown support vector (``"all"``), of
        the whole expansion only (``"total"``), or none (zeros). Integer inputs (token ids of
        a model whose first layer is an embedding) carry no gradient: their maps are zeros.
    n_steps : int, default=16
        Integrated Gradients' steps per map.
    param_names, reference
        The scope, as for :class:`SupportVectorInfluence`.
    class_names : list of str, optional
    influence : SupportVectorInfluence, optional
        A prepared influence object, to reuse its cached support gradients across calls.
    additional_forward_args : Any, optional
        Arguments the model takes after its inputs (captum's convention), the same for the
        inputs and for the support set (as in selection). Ignored with ``influence``, which
        holds its own.

    Returns
    -------
    Explanation
    """
    if maps not in ("all", "total", "none"):
        raise ValueError(f"maps must be 'all', 'total' or 'none', got {maps!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    shape = tuple(support.inputs.shape[1:])
    if isinstance(inputs, Tensor) and tuple(inputs.shape) == shape:
        inputs = inputs[None]  # one input is welcome here
    inputs = check_query_inputs(inputs, support)  # a tensor of that shape, finite, detached
    check_token_ids(model, "inputs", inputs)
    k = min(k, len(support))
    if influence is not None:
        _check_influence(influence, model, support)
    svi = influence or SupportVectorInfluence(
        model,
        support,
        param_names=param_names,
        reference=reference,
        additional_forward_args=additional_forward_args,
    )
    exp = svi.expansion
    args = exp.args or None  # the feature maps' forward passes take them too
    logits = exp.logits(inputs).cpu()
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
        fmap = sva.attribute(inputs, target=t, n_steps=n_steps, additional_forward_args=args).detach().cpu()
        if maps == "all":
            sup_maps = torch.zeros(n, k, *shape, dtype=fmap.dtype)
            opp_maps = torch.zeros_like(sup_maps)
            for i in range(n):
                for j in range(k):
                    for idx, out in ((sup_i, sup_maps), (opp_i, opp_maps)):
                        out[i, j] = (
                            sva.attribute(
                                inputs[i : i + 1],
                                target=t[i : i + 1],
                                support_index=int(idx[i, j]),
                                n_steps=n_steps,
                                additional_forward_args=args,
                            )[0]
                            .detach()
                            .cpu()
                        )
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
    )


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
