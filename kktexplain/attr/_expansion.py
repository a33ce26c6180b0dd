"""The support-vector expansion of a decision.

Stationarity says ``theta* ~ -sum_j lambda_j grad_theta L(x_j, y_j)``. Any quantity linear in
``theta*`` therefore splits into one term per support vector. For a test input ``x`` and a
class ``c`` the quantity we expand is ``<theta*, grad_theta f_c(x)>`` (the directional
derivative of the logit along the parameters themselves):

    <theta*, grad f_c(x)>  ~  sum_j  -lambda_j <grad L_j, grad f_c(x)>  =  sum_j contribution_j

For a model that is linear in the chosen parameters (the last layer, with its bias) the left
side *is* the logit ``f_c(x)``; for a positively homogeneous network of degree ``L`` in all its
parameters (ReLU, no biases, no normalisation) it is ``L * f_c(x)``; elsewhere it is a
first-order quantity of its own, and the docs say how far it is from the logit.

Everything here works on a functional copy of the model (:class:`~kktexplain.kkt.FunctionalModel`)
in eval mode, so the user's module is left exactly as found.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._model_info import as_forward_args, cast_inputs, check_logits, model_device, model_dtype
from .._model_state import ModelFingerprint, eval_mode
from .._scope import expansion_param_names, recorded_param_names, scoped_model
from .._validation import check_model, check_positive, resolve_seed
from ..kkt import KKTObjective, iter_per_sample_grads
from ..kkt._functional import call_functional
from ..kkt._grads import parameter_jvp
from ._fidelity import ExpansionFidelity, pearson
from ._support_passes import _forward_args_hint, build_cache, direction_pass, norms_pass

__all__ = ["SupportExpansion", "logit_of", "objective_from_settings"]


def logit_of(logits: Tensor, target: Tensor) -> Tensor:
    """``logits[i, target[i]]``: the "loss" whose parameter gradient is ``grad f_c(x)``.

    Parameters
    ----------
    logits : Tensor of shape (N, C)
    target : Tensor of shape (N,), dtype long

    Returns
    -------
    Tensor of shape (N,)
    """
    return logits.gather(-1, target[..., None]).squeeze(-1)


def objective_from_settings(settings: Mapping) -> KKTObjective:
    """The objective a result was computed with (its ``settings["objective"]``), or the default."""
    objective = settings.get("objective")
    if isinstance(objective, Mapping):
        fields = {k: v for k, v in objective.items() if k in KKTObjective.__dataclass_fields__}
        return KKTObjective(**fields)
    return KKTObjective()


def _loss_from_settings(settings: Mapping) -> Callable[[Tensor, Tensor], Tensor]:
    """The per-sample loss the support set's stationarity was solved with."""
    return objective_from_settings(settings).loss_fn()


class SupportExpansion:
    """The engine behind :mod:`kktexplain.attr`: cached support gradients and the expansion.

    Parameters
    ----------
    model : nn.Module
        The classifier the support set was computed for. Only read.
    support : DSVResult
        Synthesised DSVs or a selection result: ``inputs``, ``labels`` and ``lambdas``.
    param_names : sequence of str, "all" or "free", optional
        The scope: the parameters the expansion runs over. Default (``None``): the scope the
        support set's stationarity was solved on (its ``settings["resolved_param_names"]`` or
        ``settings["param_names"]``), else all. ``"all"``: every parameter, whatever the
        result's scope. ``"free"``: every parameter outside the modules whose scale the logits
        ignore, found on the support set's first inputs (as in
        :class:`~kktexplain.DeepSupportVectors`).
    reference : nn.Module or dict of str to Tensor, optional
        ``theta_0``: expand ``<theta* - theta_0, grad f_c(x)>`` (the displacement form).
    additional_forward_args : Any, optional
        Extra arguments passed to the model after the support set's inputs.
    loss_fn : callable, optional
        ``(logits, labels) -> (N,)``. Default: the loss of the support set's objective.
    projection_dim : int, "auto" or None, default="auto"
        Columns of the cached support gradients. ``None`` keeps them exact; an int sketches them
        with a :class:`~kktexplain.kkt.CountSketch` of that size; ``"auto"`` keeps them exact
        while they fit in 1 GiB of float32 and sketches to 8192 columns otherwise. A sketch
        changes the contributions (not the exact quantities), and its error shows in the
        residual.
    chunk_size : int, default=256
        Samples per per-sample-gradient chunk (bounds memory to ``chunk_size * P`` floats).
    seed : int, default=0
        Seed of the sketch.
    progress : bool, default=False
        Show a progress bar while the support gradients are computed.
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
        from .._result import DSVResult

        self.model = model = check_model(model)
        if not isinstance(support, DSVResult):
            raise TypeError(
                "support must be a DSVResult (from DeepSupportVectors.attribute or DSVResult.load), "
                f"got {type(support).__name__}"
            )
        if len(support) == 0:
            raise ValueError("support must hold at least one sample")
        if isinstance(projection_dim, str) and projection_dim != "auto":
            raise ValueError(f"projection_dim must be a positive int, 'auto' or None, got {projection_dim!r}")
        if projection_dim not in (None, "auto"):
            check_positive("projection_dim", projection_dim, integer=True)
            projection_dim = int(projection_dim)
        check_positive("chunk_size", chunk_size, integer=True)
        chunk_size = int(chunk_size)
        check_positive("seed", seed, integer=True, allow_zero=True)
        seed = resolve_seed(seed)  # below 2**63, as torch's generators take
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
        if dtypes & {torch.float16, torch.bfloat16}:
            raise TypeError(
                f"model must have float32 or float64 parameters, got {sorted(map(str, dtypes))}: the "
                "expansion's inner products overflow in half precision; pass a float32 copy "
                "(copy.deepcopy(model).float())"
            )
        self.support = support
        if not bool((support.lambdas > 0).any()):
            warnings.warn(
                "every λ of the support set is 0: every contribution is zero, and rankings of "
                "support vectors are arbitrary; check the selection (its stationarity cosine, "
                "lambda_max, the scope)",
                UserWarning,
                stacklevel=3,
            )
        self.args = as_forward_args(additional_forward_args)
        param_names, named = expansion_param_names(model, support, param_names, self.args)
        if reference is None and support.settings.get("displacement"):
            raise ValueError(
                "the support set was solved for the displacement θ* − θ0 (reference=): pass the "
                "same reference=, or its multipliers expand the wrong parameters"
            )
        with eval_mode(model):
            with torch.no_grad(), _forward_args_hint(bool(self.args)):  # logits (N, C), or a clear error
                first = cast_inputs(support.inputs[:2], model_device(model), model_dtype(model))
                try:
                    out = model(first, *self.args)
                except RuntimeError as e:  # most often a model the support set was not made for
                    raise ValueError(
                        f"the model's forward pass over the support set's inputs (each of shape "
                        f"{tuple(support.inputs.shape[1:])}) failed: {e}; pass the model the support "
                        "set was computed for, with its additional_forward_args"
                    ) from e
                check_logits(out, tuple(first.shape))
            probe = support.inputs if named else None  # the user's own list must reach the logits
            self.fmodel = scoped_model(model, param_names, self.args, reference, probe)
        self.param_names = self.fmodel.names
        self.loss_fn = loss_fn if loss_fn is not None else _loss_from_settings(support.settings)
        # the selection's own gradient norms describe this expansion's gradients only when it
        # measures the same scope with the same loss and no extra forward arguments
        recorded = recorded_param_names(support.settings)
        if recorded is None:
            recorded = [k for k, _ in model.named_parameters()]
        self._same_gradients = loss_fn is None and not self.args and self.param_names == recorded
        self.projection_dim = projection_dim
        self._num_classes: int | None = None
        self.chunk_size = chunk_size
        self.seed = seed
        self.progress = progress
        self._cache: dict[str, Any] | None = None
        # what a caller may need without the (S, P) cache: the direction, the squared norms
        self._direction: dict[str, Tensor] | None = None
        self._sq_norms: Tensor | None = None
        self._fingerprint: ModelFingerprint | None = None

    # ------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        """The device of the model's parameters."""
        return next(iter(self.fmodel.theta.values())).device

    @property
    def stale(self) -> bool:
        """Whether the model's parameters or buffers changed since the support gradients were
        cached (``False`` before anything is cached)."""
        return self._fingerprint is not None and self._fingerprint.changed()

    @property
    def num_classes(self) -> int:
        """The model's number of classes, checked against the support set's (one forward).

        Raises
        ------
        ValueError
            If the support set was made for a model with another number of classes.
        """
        if self._num_classes is None:
            c = int(self.logits(self.support.inputs[:1]).shape[1])
            recorded = int(self.support.settings.get("num_classes", 0) or 0)
            labels = self.support.labels
            if recorded and recorded != c or (labels.ndim == 2 and labels.shape[1] != c):
                raise ValueError(
                    f"the support set was made for a model with {recorded or labels.shape[1]} "
                    f"classes; this model returns {c} logits: pass the model it was made with"
                )
            if labels.ndim == 1 and len(labels) and int(labels.max()) >= c:
                raise ValueError(
                    f"the support set's labels reach class {int(labels.max())}; this model returns "
                    f"{c} logits: pass the model it was made with"
                )
            self._num_classes = c
        return self._num_classes

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the model's parameters."""
        return next(iter(self.fmodel.theta.values())).dtype

    @property
    def rows(self) -> Tensor:
        """Rows of the support set with a non-zero multiplier, shape ``(S,)``; only they contribute."""
        return self.support.support.nonzero().flatten()

    def logits(self, inputs: Tensor, args: tuple = ()) -> Tensor:
        """The model's logits of ``inputs`` (eval mode, no grad), shape ``(N, C)``."""
        with (
            torch.no_grad(),
            eval_mode(self.model),
            _forward_args_hint(bool(args or self.args), "the inputs"),
        ):
            out = [
                self._call(cast_inputs(inputs[i : i + self.chunk_size], self.device, self.dtype), None, args)
                for i in range(0, len(inputs), self.chunk_size)
            ]
        return torch.cat(out)

    def _call(self, x: Tensor, theta: Mapping[str, Tensor] | None, args: tuple) -> Tensor:
        fm = self.fmodel
        params = {**fm.fixed, **(fm.theta if theta is None else theta)}
        return call_functional(fm.model, params, fm.buffers, (x, *(args or self.args)))

    # ------------------------------------------------------------------ the cache
    def _support_pass(self, build: Callable[[], Any] | None) -> Any:
        """``build()`` on the support set, after checking the model is the one this expansion
        measured before (if it measured anything); the model's state is recorded after the
        first pass."""
        if self.stale:
            raise ValueError(
                "the model's parameters or buffers changed in place after this expansion cached "
                "its support gradients (e.g. an optimizer step): the cache no longer describes "
                "the model; build a new SupportVectorInfluence / SupportVectorAttribution"
            )
        if build is None:
            return None
        _ = self.num_classes  # a support set of another model: a clear error, not torch's
        out = build()
        if self._fingerprint is None:
            self._fingerprint = ModelFingerprint(self.model)
        return out

    @property
    def cache(self) -> dict[str, Any]:
        """The λ-weighted support gradients ``-λ_j grad L_j`` (rows of :attr:`rows`), sketched or
        exact, their exact squared norms before weighting, the exact direction
        ``theta_hat = -sum_j λ_j grad L_j`` and the sketch (or ``None``). Built on first use:
        ``S x P`` floats (``S x projection_dim`` sketched)."""
        self._support_pass(None)
        if self._cache is None:
            self._cache = self._support_pass(lambda: build_cache(self))
        return self._cache

    def support_sq_norms(self) -> Tensor:
        """``||grad L_j||^2`` of the rows :attr:`rows`, exact, shape ``(S,)``.

        Read from the support set's ``kkt.grad_sq_norm`` where its selection recorded them for
        this scope and loss (no pass over the data); otherwise from the cache where it is built,
        else from one pass that keeps only the norms (memory ``chunk_size x P``, not ``S x P``).
        """
        recorded = self.support.kkt.grad_sq_norm
        if self._cache is None and self._same_gradients and recorded is not None:
            return recorded[self.rows].to(self.dtype)
        self._support_pass(None)
        if self._cache is not None:
            return self._cache["sq_norms"].cpu()
        if self._sq_norms is None:
            self._sq_norms = self._support_pass(lambda: norms_pass(self))
        return self._sq_norms

    @property
    def direction(self) -> dict[str, Tensor]:
        """``theta_hat = -sum_j λ_j grad_theta L_j``, the parameters the support set represents.

        From the cache where it is built; otherwise one weighted backward per chunk of the
        support set (no per-sample gradients), kept."""
        self._support_pass(None)
        if self._cache is not None:
            return self._cache["direction"]
        if self._direction is None:
            self._direction = self._support_pass(lambda: direction_pass(self))
        return self._direction

    def support_direction(self, index: int | Sequence[int] | Tensor) -> dict[str, Tensor]:
        """``-sum_{j in index} λ_j grad L_j`` exactly, for rows ``index`` of the support set.

        ``index`` is an int, ints, an integer tensor, or a boolean mask of shape ``(N,)``; it
        names a set of rows (a repeated row counts once).
        """
        n = len(self.support)
        raw = torch.as_tensor(np.asarray(index) if not isinstance(index, Tensor) else index)
        if raw.numel() == 0:
            raise ValueError(f"support_index must name at least one row of the support set, got {index!r}")
        if raw.dtype == torch.bool:
            if raw.shape != (n,):
                raise ValueError(f"support_index as a mask must have shape ({n},), got {tuple(raw.shape)}")
            raw = raw.nonzero().flatten()
        elif raw.is_floating_point() or raw.is_complex():
            raise TypeError(f"support_index must hold ints or be a boolean mask, got dtype {raw.dtype}")
        idx = raw.long().reshape(-1)
        if len(idx) == 0 or (idx < -n).any() or (idx >= n).any():
            raise ValueError(f"support_index must name rows of the support set in [0, {n}), got {index!r}")
        return direction_pass(self, torch.unique(idx % n))  # a set of rows: a repeated row counts once

    # ------------------------------------------------------------------ test side
    def _jvp(self, x: Tensor, direction: Mapping[str, Tensor], args: tuple) -> Tensor:
        theta = self.fmodel.theta
        tangent = {k: direction[k].to(theta[k].dtype) for k in theta}
        _, out = parameter_jvp(lambda th: self._call(x, th, args), theta, tangent)
        return out

    def _batched(self, inputs: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        with eval_mode(self.model):
            out = [
                fn(cast_inputs(inputs[i : i + self.chunk_size], self.device, self.dtype)).detach()
                for i in range(0, len(inputs), self.chunk_size)
            ]
        return torch.cat(out)

    def exact(self, inputs: Tensor, args: tuple = ()) -> Tensor:
        """``<theta* (- theta_0), grad_theta f_c(x)>`` for every class, shape ``(N, C)`` (one jvp)."""
        return self._batched(inputs, lambda x: self._jvp(x, self.fmodel.target, args))

    def expanded(self, inputs: Tensor, args: tuple = ()) -> Tensor:
        """``sum_j contribution_j(x, c)`` for every class, exactly (unsketched), shape ``(N, C)``."""
        return self._batched(inputs, lambda x: self._jvp(x, self.direction, args))

    def contributions(self, inputs: Tensor, target: Tensor) -> Tensor:
        """``contribution_j(x_i, target_i) = -λ_j <grad L_j, grad f_c(x_i)>``, shape ``(N, len(support))``.

        Rows of the support set with ``λ = 0`` contribute exactly zero. The inputs' gradients
        ``grad_theta f_c(x)`` (sketched like the cache) are formed ``chunk_size`` inputs at a
        time: memory is bounded by ``chunk_size * P`` plus the result, whatever ``N``.
        """
        rows = self.rows
        out = torch.zeros(len(inputs), len(self.support), dtype=self.dtype)
        if len(rows):
            cache = self.cache
            target = target.to(self.device)
            with eval_mode(self.model):
                chunks = iter_per_sample_grads(
                    self.fmodel, inputs, target, self.chunk_size, logit_of, cache["sketch"]
                )
                for sl, g in chunks:
                    out[sl, rows] = (g @ cache["grads"].T).cpu()
        return out

    def fidelity(self, inputs: Tensor, args: tuple = ()) -> ExpansionFidelity:
        """Argmax agreement, logit correlation and completeness gap of the expansion on ``inputs``.

        Parameters
        ----------
        inputs : Tensor of shape (N, *input_shape)
        args : tuple, default=()
            Arguments the model takes after its inputs, for these inputs; empty: the support
            set's own (``additional_forward_args`` of the expansion).

        Returns
        -------
        ExpansionFidelity
        """
        logits = self.logits(inputs, args).cpu()
        exact = self.exact(inputs, args).cpu()
        expanded = self.expanded(inputs, args).cpu()
        gap = (exact - expanded).norm() / exact.norm().clamp_min(1e-30)
        return ExpansionFidelity(
            argmax_agreement=float((expanded.argmax(1) == logits.argmax(1)).double().mean()),
            logit_pearson=pearson(expanded, logits),
            quantity_pearson=pearson(expanded, exact),
            relative_residual=float(gap),
            quantity_logit_pearson=pearson(exact, logits),
            n=len(inputs),
        )
