"""Explanation: one decision, its supporting and opposing support vectors, and feature maps."""

from __future__ import annotations

import html
import numbers
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["Explanation"]


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
        Rows of the support set with the ``k`` largest / ``k`` smallest contributions. Where
        fewer than ``k`` are positive (negative), the tail holds terms of the other sign or
        zero; the plots and the HTML show only the signed ones (:meth:`shown`).
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
    feature_names : list of str or None
        Names of flat inputs' features, for the feature maps' bars.
    support_ids : Tensor of shape (n_support,) or None
        The support set's names for its rows, :attr:`DSVResult.indices` (a selected sample's
        index in the data the selection ran on); the plots and the HTML label support vectors
        by them (``#id``), by row when ``None``. The ``*_indices`` tensors stay rows.
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
    support_ids: Tensor | None = None
    feature_names: list[str] | None = None

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __repr__(self) -> str:
        return (
            f"Explanation(n={len(self)}, k={self.supporting_indices.shape[1]}, "
            f"prediction={self.prediction.tolist()[:8]}, "
            f"mean |residual|={self.residual.abs().mean().item():.4g})"
        )

    def _name(self, c: int) -> str:
        return self.class_names[c] if self.class_names else f"class {c}"

    def _id(self, row: Any) -> int:
        """The displayed number of support row ``row``: its id where the support set has ids."""
        return int(self.support_ids[int(row)]) if self.support_ids is not None else int(row)

    def _check_index(self, index: int) -> int:
        if (
            isinstance(index, bool)
            or not isinstance(index, numbers.Integral)
            or not -len(self) <= index < len(self)
        ):
            raise ValueError(f"index must be an int in [0, {len(self)}), got {index!r}")
        return int(index) % len(self)

    def shown(self, index: int = 0) -> tuple[int, int]:
        """How many of decision ``index``'s ranked vectors the plots and the HTML show: the
        supporting ones with a positive contribution and the opposing ones with a negative
        one (the tensors keep ``k`` of each; where fewer terms have the sign, their tails hold
        the others, which neither support nor oppose).

        Parameters
        ----------
        index : int, default=0

        Returns
        -------
        n_supporting, n_opposing : int
        """
        i = self._check_index(index)
        return int((self.supporting_contributions[i] > 0).sum()), int(
            (self.opposing_contributions[i] < 0).sum()
        )

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
        ns, no = self.shown(i)
        sup, opp = self.supporting_contributions[i, :ns], self.opposing_contributions[i, :no]
        values = torch.cat([sup, opp.flip(0)]).tolist()
        rows = torch.cat([self.supporting_indices[i, :ns], self.opposing_indices[i, :no].flip(0)]).tolist()
        labels = torch.cat([self.supporting_labels[i, :ns], self.opposing_labels[i, :no].flip(0)]).tolist()
        colors = ["tab:green" if v >= 0 else "tab:red" for v in values]
        ax.bar(range(len(values)), values, color=colors)
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels([f"#{self._id(r)}\n{self._name(c)}" for r, c in zip(rows, labels)], fontsize=7)
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
        ns, no = self.shown(i)
        k = max(ns, no, 1)
        fig, axes = plt.subplots(3, k + 1, figsize=(1.6 * (k + 1), 5.2), squeeze=False)
        show = denormalize if denormalize is not None else (lambda t: t)
        _show_input(show(self.inputs[i]), axes[0, 0], f"pred {self._name(int(self.prediction[i]))}")
        if self.inputs.is_floating_point():
            _heat(self.feature_map[i], axes[1, 0], "feature map", self.feature_names)
        else:
            axes[1, 0].text(0.5, 0.5, "no feature map\n(token ids)", ha="center", va="center", fontsize=7)
            axes[1, 0].axis("off")
        axes[2, 0].axis("off")
        for j in range(k):
            for row, (count, con, img, lab) in enumerate(
                [
                    (
                        ns,
                        self.supporting_contributions,
                        self.supporting_inputs,
                        self.supporting_labels,
                    ),
                    (
                        no,
                        self.opposing_contributions,
                        self.opposing_inputs,
                        self.opposing_labels,
                    ),
                ]
            ):
                ax = axes[0 if row == 0 else 2, j + 1]
                if j >= count:
                    ax.axis("off")
                    continue
                _show_input(
                    show(img[i, j]),
                    ax,
                    f"{'+' if row == 0 else ''}{con[i, j]:.2g} {self._name(int(lab[i, j]))}",
                )
            if self.supporting_maps is not None and j < ns:
                _heat(
                    self.supporting_maps[i, j], axes[1, j + 1], f"#{self._id(self.supporting_indices[i, j])}"
                )
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
        ns, no = self.shown(i)
        image_like = self.inputs.ndim >= 3
        cols = max(ns, no, 2)

        # make_subplots fills titles row by row over every cell: pad each row to `cols`
        def title(sign: str, rows: Tensor, con: Tensor, lab: Tensor, count: int) -> list[str]:
            return [  # "+ #38 class 2: 0.51": sign, id, label, contribution
                html.escape(
                    f"{sign} #{self._id(rows[i, j])} {self._name(int(lab[i, j]))}: {float(con[i, j]):.2g}"
                )
                for j in range(count)
            ]

        sup = title("+", self.supporting_indices, self.supporting_contributions, self.supporting_labels, ns)
        opp = title("-", self.opposing_indices, self.opposing_contributions, self.opposing_labels, no)
        titles = (
            ["input", "feature map"] + [""] * (cols - 2) + sup + [""] * (cols - ns) + opp + [""] * (cols - no)
        )
        if image_like:
            fig = make_subplots(rows=3, cols=cols, subplot_titles=titles)
            fig.add_trace(_picture(self.inputs[i]), 1, 1)
            # red positive, blue negative, as plot_panel and the report (plotly's RdBu is reversed)
            fig.add_trace(go.Heatmap(z=_plane(self.feature_map[i]), colorscale="RdBu_r", zmid=0), 1, 2)
            for row, count, shown in ((2, ns, self.supporting_inputs), (3, no, self.opposing_inputs)):
                for j in range(count):
                    fig.add_trace(_picture(shown[i, j]), row, j + 1)
            for ax in fig.layout:
                if ax.startswith("yaxis"):
                    fig.layout[ax].autorange = "reversed"
        else:  # flat features: full-width bar charts (token ids have no feature map)
            bars = "top supporting (+) and opposing (-) support vectors"
            maps = self.inputs.is_floating_point()
            fig = make_subplots(
                rows=2 if maps else 1,
                cols=1,
                subplot_titles=["feature attribution", bars] if maps else [bars],
            )
            if maps:
                feats = self.feature_map[i].flatten().tolist()
                fig.add_trace(go.Bar(x=self.feature_names, y=feats, name="feature attribution"), 1, 1)
            # as plot(): largest first, the most negative last
            vals = torch.cat(
                [self.supporting_contributions[i, :ns], self.opposing_contributions[i, :no].flip(0)]
            ).tolist()
            rows = torch.cat([self.supporting_indices[i, :ns], self.opposing_indices[i, :no].flip(0)])
            names = [f"#{self._id(r)}" for r in rows]
            fig.add_trace(go.Bar(x=names, y=vals, name="contribution"), 2 if maps else 1, 1)
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


def _picture(t: Tensor) -> Any:
    """A plotly trace of one input: an RGB picture for 3 channels (scaled together to the
    input's range), a grey map of the mean plane otherwise."""
    import plotly.graph_objects as go

    t = t.detach().float().cpu()
    if t.ndim == 3 and t.shape[0] == 3:
        lo, hi = t.amin(), t.amax()
        rgb = ((t - lo) / (hi - lo if hi > lo else 1.0) * 255).round().permute(1, 2, 0)
        return go.Image(z=rgb.tolist())
    return go.Heatmap(z=_plane(t), colorscale="gray", showscale=False)


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

    if not t.is_floating_point():  # token ids: as text
        ids = t.flatten().tolist()
        ax.text(
            0.5,
            0.5,
            " ".join(map(str, ids[:24])) + (" ..." if len(ids) > 24 else ""),
            ha="center",
            va="center",
            wrap=True,
            fontsize=6,
            transform=ax.transAxes,
        )
        ax.set_title(title, fontsize=7)
        ax.axis("off")
        return
    t = t.detach().float().cpu()
    if t.ndim > 3:  # a volume: its mean plane
        t = t.flatten(0, -3).mean(0)
    if t.ndim == 3:
        show_image(t, ax=ax, title=title)
    elif t.ndim == 2:
        show_image(t.unsqueeze(0), ax=ax, title=title)
    else:
        _bars(t, ax, title, "tab:gray", 7)


def _bars(t: Tensor, ax: Any, title: str, color: Any, fontsize: int, names: list[str] | None = None) -> None:
    """One bar per feature of a flat tensor, labelled by ``names`` where given (else no ticks)."""
    values = t.flatten()
    ax.bar(range(values.numel()), values.tolist(), color=color)
    if names is not None:
        ax.set_xticks(range(values.numel()), names, rotation=90, fontsize=5)
    else:
        ax.set_xticks([])
    ax.tick_params(labelsize=6)
    ax.set_title(title, fontsize=fontsize)


def _heat(t: Tensor, ax: Any, title: str, names: list[str] | None = None) -> None:
    """A signed map: red positive, blue negative, as a picture for images and as bars for
    flat features (labelled by ``names`` where given)."""
    t = t.detach().float().cpu()
    if t.ndim < 2:
        values = t.flatten()
        _bars(values, ax, title, ["tab:red" if v >= 0 else "tab:blue" for v in values], 8, names)
        m = float(values.abs().max()) or 1.0
        ax.set_ylim(-1.05 * m, 1.05 * m)
        return
    plane = torch.tensor(_plane(t))
    m = float(plane.abs().max()) or 1.0
    ax.imshow(plane.numpy(), cmap="RdBu_r", vmin=-m, vmax=m)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
