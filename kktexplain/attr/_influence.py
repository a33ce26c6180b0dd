"""SupportVectorInfluence: the support-vector expansion as a captum ``DataInfluence``."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from captum.influence import DataInfluence
from captum.influence._utils.common import KMostInfluentialResults
from torch import Tensor, nn

from .._model_info import check_token_ids
from .._validation import check_positive
from ._expansion import SupportExpansion, objective_from_settings
from ._queries import check_query_inputs, labels_as_classes, resolve_target, split_influence_inputs

__all__ = ["SupportVectorInfluence", "equal_multipliers"]


def equal_multipliers(
    model: nn.Module, support: Any, reference: Any = None, chunk_size: int = 256, progress: bool = False
) -> Any:
    """The same samples with one shared multiplier, in the scope and loss ``support`` was solved with.

    Re-runs the selection with ``DeepSupportVectors(multipliers="equal")`` over
    ``support.inputs`` and ``support.labels``: one forward and one backward per chunk. Use it to
    rank (self-influence, proponents) when ``support`` holds fitted multipliers, whose sparse
    vertex leaves interchangeable samples at zero (docs: Explaining a decision).

    Parameters
    ----------
    model : nn.Module
        The model ``support`` was computed for.
    support : DSVResult
        A selection (or synthesis) result.
    reference : nn.Module or mapping, optional
        ``theta_0`` of a displacement scope, as given to the original ``attribute`` call.
    chunk_size : int, default=256
    progress : bool, default=False
        A progress bar over the pass.

    Returns
    -------
    DSVResult
        Same ``inputs`` ``(N, *input_shape)`` and ``labels``; ``lambdas (N,)`` all equal.
    """
    from .._explainer import DeepSupportVectors
    from .._result import DSVResult
    from .._scope import recorded_param_names
    from .._validation import check_model

    if not isinstance(support, DSVResult):
        raise TypeError(f"support must be a DSVResult, got {type(support).__name__}")
    with warnings.catch_warnings():  # its note on an all-zero λ is not about equal multipliers
        warnings.simplefilter("ignore")
        _ = SupportExpansion(model, support, reference=reference).num_classes  # another class count: refused
    names = recorded_param_names(support.settings)
    if names is not None and names == [n for n, _ in check_model(model).named_parameters()]:
        names = None  # every parameter, as the result was taken (unused ones included)
    explainer = DeepSupportVectors(
        param_names=names,
        objective=objective_from_settings(support.settings),
        multipliers="equal",
        chunk_size=chunk_size,
        progress=progress,
    )
    out = explainer.attribute(model, candidates=support.inputs, labels=support.labels, reference=reference)
    out.indices = support.indices
    return out


class SupportVectorInfluence(DataInfluence):
    """Influence of each support vector on a decision, from the DeepKKT stationarity condition.

    For a test input ``x`` and its class ``c`` the influence of support vector ``j`` is its term
    in the expansion of ``<theta*, grad_theta f_c(x)>``:

        influence_j(x, c) = -λ_j <grad_theta L(x_j, y_j), grad_theta f_c(x)>

    Positive terms push the logit of ``c`` up (proponents), negative terms push it down
    (opponents). They sum to the represented quantity; what is left over is reported by
    :meth:`convergence_delta`. The λ-weighted support gradients are computed once (chunked,
    sketched where large) and cached, so each query costs one batch of test gradients and one
    matrix product.

    Parameters
    ----------
    model : nn.Module
        The trained classifier. Only read; left exactly as found.
    support : DSVResult
        The support set: synthesised DSVs, or real samples scored by selection.
    param_names : sequence of str, "all" or "free", optional
        The scope. Default: the scope the support set was solved on; ``"all"``: every
        parameter; ``"free"``: every parameter outside the scale-invariant modules.
    reference : nn.Module or dict of str to Tensor, optional
        ``theta_0``; expand the displacement ``<theta* - theta_0, grad f_c(x)>``.
    additional_forward_args : Any, optional
        Extra arguments passed to the model after the inputs.
    loss_fn : callable, optional
        Per-sample loss of the stationarity sum. Default: the support set's.
    projection_dim : int, "auto" or None, default="auto"
        See :class:`~kktexplain.attr.SupportExpansion`.
    chunk_size : int, default=256
    seed : int, default=0
    progress : bool, default=False

    Examples
    --------
    >>> import torch
    >>> from kktexplain import DeepSupportVectors
    >>> from kktexplain.attr import SupportVectorInfluence
    >>> from kktexplain.models import MLP
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = MLP((4,), num_classes=3, hidden=(8,))
    >>> x, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    >>> sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    >>> svi = SupportVectorInfluence(model, sel)
    >>> svi.influence((x[:5], y[:5])).shape
    torch.Size([5, 30])
    >>> svi.influence((x[:5], y[:5]), k=3).indices.shape
    torch.Size([5, 3])
    """

    def __init__(
        self,
        model: nn.Module,
        support: Any,
        param_names: Sequence[str] | None = None,
        reference: nn.Module | Mapping[str, Tensor] | None = None,
        additional_forward_args: Any = None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        projection_dim: int | str | None = "auto",
        chunk_size: int = 256,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        self.expansion = SupportExpansion(
            model,
            support,
            param_names=param_names,
            reference=reference,
            additional_forward_args=additional_forward_args,
            loss_fn=loss_fn,
            projection_dim=projection_dim,
            chunk_size=chunk_size,
            seed=seed,
            progress=progress,
        )
        self.model = model
        self.train_dataset = support

    def _prepare(self, inputs: Any) -> tuple[Tensor, Tensor]:
        x, y = split_influence_inputs(inputs)
        x = check_query_inputs(x, self.train_dataset)
        check_token_ids(self.model, "inputs", x)
        num_classes = self.expansion.num_classes
        if y is not None:
            y = labels_as_classes(y, num_classes)
        target = resolve_target(
            y, len(x), lambda: self.expansion.logits(x), num_classes, name="labels (the y of an (x, y) batch)"
        )
        return x, target

    @torch.inference_mode(False)  # autograd is needed, even inside inference_mode
    def influence(
        self, inputs: Any, k: int | None = None, proponents: bool = True, show_progress: bool = False
    ) -> Tensor | KMostInfluentialResults:
        """Influence of every support vector on each test decision.

        Parameters
        ----------
        inputs : Tensor, tuple of (Tensor, Tensor) or DataLoader
            ``x`` of shape ``(n_test, *input_shape)``, whose decisions are the model's
            predictions, or an ``(x, y)`` batch (captum's convention: labels last) explaining
            the logit of class ``y``, or a ``DataLoader`` of such batches (read once, in its
            order, and stacked).
        k : int, optional
            Without it, the whole contribution matrix is returned. A ``k`` above the number of
            rows is lowered to it, and ``k=0`` gives empty ``(n_test, 0)`` results, as in
            captum's ``TracInCP``.
        proponents : bool, default=True
            With ``k``: the ``k`` largest contributions (proponents) or the ``k`` most negative
            (opponents, most negative first).
        show_progress : bool, default=False
            Show a progress bar while the support gradients are cached (first call only).

        Returns
        -------
        Tensor of shape (n_test, n_support) or KMostInfluentialResults
            ``n_support`` is the number of rows of the result (``len(support)``), those with
            ``λ = 0`` included (their contributions are zero). With ``k``: ``indices`` (rows
            of the result) and ``influence_scores``, both ``(n_test, k)``.
        """
        if k is not None:
            check_positive("k", k, integer=True, allow_zero=True)
        if not isinstance(proponents, bool | np.bool_):
            raise TypeError(f"proponents must be a bool, got {proponents!r}")
        k = None if k is None else min(int(k), len(self.train_dataset))  # as captum's TracInCP
        self.expansion.progress = self.expansion.progress or show_progress
        x, target = self._prepare(inputs)
        scores = self.expansion.contributions(x, target)
        if k is None:
            return scores
        values, indices = torch.topk(scores, k, dim=1, largest=bool(proponents))
        return KMostInfluentialResults(indices, values)

    @torch.inference_mode(False)  # autograd is needed, even inside inference_mode
    def convergence_delta(self, inputs: Any) -> Tensor:
        """The exact quantity minus the sum of the contributions, per input (captum's delta).

        Parameters
        ----------
        inputs : Tensor or tuple of (Tensor, Tensor)
            As for :meth:`influence`.

        Returns
        -------
        Tensor of shape (n_test,)
            ``<theta*, grad f_c(x)> - sum_j contribution_j(x, c)``. It gathers the stationarity
            residual and, when the cache is sketched, the sketch's error.
        """
        x, target = self._prepare(inputs)
        exact = self.expansion.exact(x).cpu().gather(1, target[:, None]).squeeze(1)
        return exact - self.expansion.contributions(x, target).sum(1)

    @torch.inference_mode(False)  # autograd is needed, even inside inference_mode
    def self_influence(self, inputs: Any = None, show_progress: bool = False) -> Tensor:
        """Each support vector's term in the expansion of its own loss: ``λ_j ||grad L_j||²``.

        The expansion of the directional derivative ``<theta*, -grad L(x_j, y_j)>`` (how much
        the represented parameters lower sample ``j``'s loss) has the term
        ``λ_j <grad L_j, grad L_j>`` for ``j`` itself: the sample's multiplier times the size of
        its own gradient. Samples with ``λ = 0`` (not in the support set) score zero. This is
        the λ-weighted counterpart of TracIn's self-influence ``||grad L_j||²``; raw λ alone
        ignores how large a sample's gradient is.

        Where the selection recorded the exact norms (``support.kkt.grad_sq_norm``: a selection
        with ``multipliers="equal"`` in a scope of ``nn.Linear`` layers, measured here with the
        same scope and loss), this reads them and makes no pass over the data.

        Parameters
        ----------
        inputs : None
            Self-influence is defined on the support set only (λ is known only there).
        show_progress : bool, default=False

        Returns
        -------
        Tensor of shape (n_support,)
        """
        if inputs is not None:
            raise ValueError(
                "inputs must be None: self-influence needs λ, which is known only for the support "
                "set; score new samples with DeepSupportVectors(...).attribute(model, candidates=...)"
            )
        self.expansion.progress = self.expansion.progress or show_progress
        rows = self.expansion.rows
        out = torch.zeros(len(self.train_dataset), dtype=self.expansion.dtype)
        lam = self.train_dataset.lambdas[rows].to(out.dtype)
        out[rows] = lam * self.expansion.support_sq_norms().to(out.dtype)
        return out
