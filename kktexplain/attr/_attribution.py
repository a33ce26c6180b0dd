"""SupportVectorAttribution: which input features carry the support-vector expansion."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from captum.attr import GradientAttribution, IntegratedGradients, Saliency
from torch import Tensor, nn

from .._model_state import eval_mode
from .._tensors import readable
from .._validation import check_finite, check_positive
from ..kkt._functional import call_functional, second_order_hint
from ..kkt._grads import parameter_jvp
from ._expansion import SupportExpansion, _forward_args_hint
from ._queries import check_query_inputs, resolve_target

__all__ = ["SupportVectorAttribution"]

_METHODS = ("integrated_gradients", "saliency")
_SECOND_ORDER_ADVICE = (
    "restrict the scope to parameters after that operation (param_names=, e.g. the last "
    "layer), or leave the feature maps out (explain(..., maps='none'))"
)


def _to_model(exp: SupportExpansion, values: tuple) -> tuple:
    """Floating tensors among ``values`` in the model's device and dtype (float32 data for a
    float64 model); everything else as it is."""
    return tuple(
        v.to(exp.device, exp.dtype) if isinstance(v, Tensor) and v.is_floating_point() else v for v in values
    )


def _check_tuple_inputs(inputs: tuple, support: Any) -> tuple[Tensor, ...]:
    """A tuple of inputs: the first has the support set's input shape, all are finite batches of
    the same length; detached."""
    out = [check_query_inputs(inputs[0], support, name="inputs[0]")]
    for i, x in enumerate(inputs[1:], start=1):
        if not isinstance(x, Tensor):
            raise TypeError(f"inputs[{i}] must be a Tensor, got {type(x).__name__}")
        if x.ndim == 0 or len(x) != len(out[0]):
            raise ValueError(
                f"inputs[{i}] must be a batch of {len(out[0])} rows, as inputs[0], got shape {tuple(x.shape)}"
            )
        check_finite(f"inputs[{i}]", x.detach())
        out.append(readable(x).detach())
    return tuple(out)


class SupportVectorAttribution(GradientAttribution):
    """Feature attributions of the support-vector expansion of a decision.

    The expansion of the decision on ``x`` for class ``c`` is, summed over a set ``J`` of
    support vectors (all of them, or one),

        F_J(x) = sum_{j in J} -λ_j <grad_theta L_j, grad_theta f_c(x)> = <d_J, grad_theta f_c(x)>

    a directional derivative of the logit along ``d_J = -sum_J λ_j grad L_j`` in parameter
    space, computed exactly with one forward-mode product (:func:`torch.func.jvp`). Its
    attributions to the features of ``x`` come from captum's own Integrated Gradients (default)
    or Saliency, applied to ``F_J``: they say which features of ``x`` carry the push of the
    support vectors ``J``.

    Parameters
    ----------
    model : nn.Module
        The trained classifier. Only read.
    support : DSVResult
        The support set (synthesised or selected).
    method : {"integrated_gradients", "saliency"}, default="integrated_gradients"
        The captum method applied to ``F_J``.
    param_names, reference, loss_fn, chunk_size
        The scope and loss, as for :class:`SupportVectorInfluence`.
    support_forward_args : Any, optional
        Extra arguments passed to the model with the support set's inputs.

    Examples
    --------
    >>> import torch
    >>> from kktexplain import DeepSupportVectors
    >>> from kktexplain.attr import SupportVectorAttribution
    >>> from kktexplain.models import MLP
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = MLP((4,), num_classes=3, hidden=(8,))
    >>> x, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    >>> sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    >>> attr = SupportVectorAttribution(model, sel).attribute(x[:2], target=0)
    >>> attr.shape
    torch.Size([2, 4])
    """

    def __init__(
        self,
        model: nn.Module,
        support: Any,
        method: str = "integrated_gradients",
        param_names: Sequence[str] | None = None,
        reference: nn.Module | Mapping[str, Tensor] | None = None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        support_forward_args: Any = None,
        chunk_size: int = 256,
    ) -> None:
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
        expansion = SupportExpansion(
            model,
            support,
            param_names=param_names,
            reference=reference,
            additional_forward_args=support_forward_args,
            loss_fn=loss_fn,
            projection_dim=None,
            chunk_size=chunk_size,
        )
        self._setup(expansion, method)

    def _setup(self, expansion: SupportExpansion, method: str) -> None:
        self.expansion = expansion
        self.model = expansion.model
        self.method = method
        self._direction: Mapping[str, Tensor] | None = None
        GradientAttribution.__init__(self, self._forward)

    @classmethod
    def _from_expansion(cls, expansion: SupportExpansion, method: str = "integrated_gradients"):
        """An attribution that shares a prepared expansion (its scope and cached direction)."""
        self = cls.__new__(cls)
        self._setup(expansion, method)
        return self

    def _forward(self, *inputs_and_args: Any) -> Tensor:
        """``F(x)`` for every class, shape ``(N, C)``: one jvp along the current direction."""
        exp = self.expansion
        theta = exp.fmodel.theta
        direction = self._direction if self._direction is not None else exp.direction
        tangent = {k: direction[k].to(theta[k].dtype) for k in theta}

        # a differentiable cast: the attributions keep the inputs' own dtype
        args = _to_model(exp, inputs_and_args)

        def call(th: Mapping[str, Tensor]) -> Tensor:
            params = {**exp.fmodel.fixed, **th}
            return call_functional(exp.fmodel.model, params, exp.fmodel.buffers, args)

        with eval_mode(self.model):  # also when captum's API calls it directly (forward_func)
            _, out = parameter_jvp(call, theta, tangent)
        return out

    def has_convergence_delta(self) -> bool:
        """Integrated Gradients has a completeness delta; Saliency has none."""
        return self.method == "integrated_gradients"

    @property
    def multiplies_by_inputs(self) -> bool:
        """Integrated Gradients multiplies by ``inputs - baselines`` (as captum's reports);
        Saliency does not."""
        return self.method == "integrated_gradients"

    @torch.inference_mode(False)  # autograd is needed, even inside inference_mode
    def compute_convergence_delta(
        self,
        attributions: Tensor | tuple[Tensor, ...],
        start_point: Any,
        end_point: Tensor | tuple[Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
        support_index: int | Sequence[int] | Tensor | None = None,
    ) -> Tensor:
        """captum's completeness delta ``sum(attributions) - (F(end) - F(start))``, per input.

        Parameters
        ----------
        attributions, start_point, end_point, target, additional_forward_args
            As in captum's ``Attribution.compute_convergence_delta``.
        support_index : optional
            The rows whose terms the attributions describe, as given to :meth:`attribute`;
            ``F`` is then their part of the expansion (``None``: the whole expansion).

        Returns
        -------
        Tensor of shape (N,)
        """
        self._direction = None if support_index is None else self.expansion.support_direction(support_index)
        try:
            return super().compute_convergence_delta(
                attributions,
                start_point,
                end_point,
                target=target,
                additional_forward_args=additional_forward_args,
            )
        finally:
            self._direction = None

    @torch.inference_mode(False)  # autograd is needed, even inside inference_mode
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: Any = None,
        additional_forward_args: Any = None,
        support_index: int | Sequence[int] | Tensor | None = None,
        baselines: Any = None,
        n_steps: int = 32,
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
        abs: bool | None = None,
    ) -> Tensor | tuple[Tensor, ...] | tuple[Tensor | tuple[Tensor, ...], Tensor]:
        """Attribute the expansion of each decision to the features of ``inputs``.

        Parameters
        ----------
        inputs : Tensor or tuple of Tensor
            ``(N, *input_shape)``, or a tuple of such tensors for a model with several inputs.
        target : None, int, tuple (c,), list of int or of (c,), or Tensor of shape (N,)
            The class whose logit is expanded, in captum's forms (a tuple is the output's index
            after the batch axis: one class for every input). ``None`` takes the model's
            prediction.
        additional_forward_args : Any, optional
            Extra arguments passed to the model after the inputs, the same for every input
            (as in selection; a tensor is not split or repeated along its first axis).
        support_index : int, sequence of int, Tensor or boolean mask of shape (N,), optional
            Rows of the support set whose terms are attributed, as a set (a repeated row counts
            once). ``None`` attributes the whole expansion (every support vector).
        baselines : scalar, Tensor or tuple, optional
            Integrated Gradients' baselines (zero by default). Ignored by Saliency.
        n_steps : int, default=32
            Integrated Gradients' steps.
        internal_batch_size : int, optional
            Integrated Gradients' batch size over inputs x steps, to bound memory (captum needs
            at least ``N``). Default: the larger of the expansion's ``chunk_size`` and ``N``
            (captum's default, every row at once, held ``n_steps x N`` rows of forward-mode
            passes in memory).
        abs : bool, optional
            Saliency only, as captum's ``Saliency(abs=True)`` by default: the gradients'
            absolute values; ``abs=False`` keeps their sign (which features push the
            expansion up or down). Refused for Integrated Gradients, as captum's.
        return_convergence_delta : bool, default=False
            Also return Integrated Gradients' completeness delta
            ``sum(attributions) - (F(x) - F(baseline))``, shape ``(N,)``.

        Returns
        -------
        attributions : Tensor or tuple of Tensor
            The inputs' structure: a tensor in gives a tensor out, a tuple in a tuple out.
        delta : Tensor of shape (N,)
            Only with ``return_convergence_delta=True``.
        """
        if return_convergence_delta and self.method != "integrated_gradients":
            raise ValueError(
                "return_convergence_delta needs method='integrated_gradients'; Saliency has no delta"
            )
        check_positive("n_steps", n_steps, integer=True)
        n_steps = int(n_steps)
        if abs is not None:
            if self.method != "saliency":
                raise ValueError(f"abs applies to method='saliency' only, got method={self.method!r}")
            if not isinstance(abs, bool | np.bool_):
                raise TypeError(f"abs must be a bool, got {type(abs).__name__}")
        if internal_batch_size is not None:
            check_positive("internal_batch_size", internal_batch_size, integer=True)
            internal_batch_size = int(internal_batch_size)
        is_tuple = isinstance(inputs, tuple)
        if is_tuple and not inputs:
            raise ValueError("inputs must be a Tensor or a non-empty tuple of Tensors, got ()")
        first = inputs[0] if is_tuple else inputs
        if not isinstance(first, Tensor):
            raise TypeError(f"inputs must be a Tensor or a tuple of Tensors, got {type(first).__name__}")
        if is_tuple:
            inputs = _check_tuple_inputs(inputs, self.expansion.support)
            first = inputs[0]
        else:  # a model of one input: the support set's input shape
            inputs = check_query_inputs(inputs, self.expansion.support)
            first = inputs
            if isinstance(baselines, Tensor) and tuple(baselines.shape) not in (
                tuple(inputs.shape),
                tuple(inputs.shape[1:]),
                (1, *inputs.shape[1:]),
            ):
                raise ValueError(
                    f"baselines must have the inputs' shape {tuple(inputs.shape)}, one input's "
                    f"{tuple(inputs.shape[1:])} or (1, ...) of it, got {tuple(baselines.shape)}"
                )
            if isinstance(baselines, Tensor) and baselines.ndim == inputs.ndim - 1:
                baselines = baselines.unsqueeze(0)  # one input's: captum broadcasts (1, ...)
        for i, x in enumerate(inputs if is_tuple else (inputs,)):
            if not isinstance(x, Tensor) or not x.is_floating_point():
                kind = f"dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
                where = f"inputs[{i}]" if is_tuple else "inputs"
                raise TypeError(
                    f"{where} must be a floating-point tensor, got {kind}: integer inputs (token "
                    "ids) carry no gradient to attribute to; SupportVectorInfluence still says "
                    "which support vectors drive each decision"
                )
        for i, b in enumerate(baselines if isinstance(baselines, tuple) else (baselines,)):
            finite = (
                bool(torch.isfinite(b).all())
                if isinstance(b, Tensor)
                else (not isinstance(b, float) or math.isfinite(b))
            )
            if not finite:
                where = f"baselines[{i}]" if isinstance(baselines, tuple) else "baselines"
                raise ValueError(f"{where} holds NaN or inf values")
        args = () if additional_forward_args is None else additional_forward_args
        args = args if isinstance(args, tuple) else (args,)
        all_inputs = inputs if is_tuple else (inputs,)

        def logits() -> Tensor:
            with torch.no_grad(), eval_mode(self.model), _forward_args_hint(bool(args), "the inputs"):
                return self.model(*_to_model(self.expansion, all_inputs), *args)

        probe = logits() if target is None else None
        num_classes = int(self.expansion.support.settings.get("num_classes", 0)) or (
            probe.shape[1] if probe is not None else logits().shape[1]
        )
        t = resolve_target(target, first.shape[0], lambda: probe, num_classes).to(first.device)
        self._direction = None if support_index is None else self.expansion.support_direction(support_index)

        def forward(*xs: Tensor) -> Tensor:
            # the arguments are shared by every input (as in selection), so they are bound here:
            # captum would repeat a tensor argument along its first axis with the IG steps
            return self._forward(*xs, *args)

        try:
            with eval_mode(self.model), second_order_hint("a feature map", _SECOND_ORDER_ADVICE):
                if self.method == "saliency":  # leaves that require grad: captum warns otherwise
                    leaves = _grad_leaves(inputs)
                    return Saliency(forward).attribute(leaves, target=t, abs=True if abs is None else abs)
                return IntegratedGradients(forward).attribute(
                    inputs,
                    baselines=baselines,
                    target=t,
                    n_steps=n_steps,
                    # captum needs at least the inputs' number of rows per batch of steps
                    internal_batch_size=internal_batch_size or max(self.expansion.chunk_size, len(first)),
                    return_convergence_delta=return_convergence_delta,
                )
        except RuntimeError as e:
            per_input = any(isinstance(a, Tensor) and a.ndim and len(a) == len(first) for a in args)
            sizes = "size" in str(e) or "shape" in str(e)
            if self.method != "integrated_gradients" or not per_input or not sizes:
                raise
            if isinstance(e, torch.OutOfMemoryError):
                raise
            # a tensor argument with one row per input: captum's convention repeats it along
            # the IG steps, ours shares every argument with every step and input
            raise ValueError(
                f"the model's forward pass failed ({e}): additional_forward_args are shared by "
                "every input and every step, not split by input; pass an argument of one row "
                "per input as part of a tuple of inputs, inputs=(x, z)"
            ) from e
        finally:
            self._direction = None


def _grad_leaves(inputs: Tensor | tuple) -> Tensor | tuple:
    """Detached floating inputs that require gradients (the caller's tensors untouched), of
    the inputs' structure."""

    def leaf(t: Tensor) -> Tensor:
        return t.detach().requires_grad_(True) if t.is_floating_point() else t

    return leaf(inputs) if isinstance(inputs, Tensor) else tuple(leaf(t) for t in inputs)
