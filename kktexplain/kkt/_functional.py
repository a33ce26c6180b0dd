"""A functional view of the user's model: its parameters swapped for detached copies by name
(:func:`torch.func.functional_call`), so the ``nn.Module`` never accumulates ``.grad`` and its
``requires_grad`` flags, hooks and tensors are left as they were; attention in its math form
and second-order errors with advice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from .._model_state import backward_hooks_suspended
from .._tensors import readable

__all__ = ["FunctionalModel", "call_functional", "math_attention", "second_order_hint"]


@contextmanager
def math_attention() -> Iterator[None]:
    """Attention in its math form inside the block: ``scaled_dot_product_attention``'s math
    kernel, and ``nn.MultiheadAttention``'s fused eval-mode fast path off (its op has no
    derivative at all). The fused kernels have no forward-mode derivative and no double
    backward, which the expansion and synthesis take through the model; the math form
    computes the same attention. The fast path's global switch is put back on exit."""
    mha = torch.backends.mha
    fast = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        mha.set_fastpath_enabled(fast)


@contextmanager
def second_order_hint(what: str, advice: str) -> Iterator[None]:
    """Re-raise torch's "derivative for <op> is not implemented" (an operation of the model
    without a second derivative, e.g. ``nn.Hardsigmoid``) as a ``ValueError`` that says
    ``what`` needed it and gives ``advice``; other errors pass unchanged."""
    try:
        yield
    except RuntimeError as e:
        found = re.search(r"derivative for (\S+) is not implemented", str(e))
        if found is None:
            raise
        raise ValueError(
            f"{what} differentiates the model twice, and torch has no second derivative for "
            f"{found.group(1)}, an operation of the model (nn.Hardsigmoid, for one): {advice}"
        ) from e


# The prefixes our wrappers give a model's parameter names (ScriptedModel, TwoClassLogits).
_WRAPPER_PREFIXES = ("scripted.", "model.")


def _wrapped_names(names: list[str], named: Mapping[str, Tensor]) -> list[str]:
    """``names`` of the model, or of the same model inside or outside one of our wrappers.

    A result selected on ``module:factory`` and explained on its TorchScript export (whose
    names start with ``scripted.``), or the other way round, names the same parameters.
    """
    if all(k in named for k in names):
        return names
    for prefix in _WRAPPER_PREFIXES:
        for mapped in ([prefix + k for k in names], [k.removeprefix(prefix) for k in names]):
            if all(k in named for k in mapped):
                return mapped
    return names


class FunctionalModel:
    """A frozen, functional view of a module: ``theta*`` split into differentiable and fixed parts.

    Parameters
    ----------
    model : nn.Module
        The classifier. It is only read.
    param_names : sequence of str, optional
        The parameters that stationarity is measured on (paper: "a subset of the parameter
        space"). ``None`` takes every parameter of the model.
    additional_forward_args : tuple, optional
        Extra positional arguments passed after the inputs at every forward.
    dtype : torch.dtype, optional
        Cast the copied parameters and buffers (for float64 references).
    reference : nn.Module or mapping of str to Tensor, optional
        Parameters ``theta_0`` (same names) to subtract from ``theta*`` in the stationarity
        target: ``target = theta* - theta_0``. Passing the initialisation the model was trained
        from removes the random component of ``theta*`` that no sum of gradients can explain.
    """

    def __init__(
        self,
        model: nn.Module,
        param_names: list[str] | None = None,
        additional_forward_args: tuple = (),
        dtype: torch.dtype | None = None,
        reference: nn.Module | Mapping[str, Tensor] | None = None,
    ) -> None:
        self.model = model
        named = dict(model.named_parameters())
        if param_names is not None and (
            isinstance(param_names, str)
            or not isinstance(param_names, Iterable)
            or not all(isinstance(k, str) for k in param_names)
        ):
            raise TypeError(
                f"param_names must be a list of parameter names (str) or None, got {param_names!r}"
            )
        names = list(named) if param_names is None else _wrapped_names(list(param_names), named)
        missing = [k for k in names if k not in named]
        if missing or not names:
            raise ValueError(
                f"param_names must name parameters of the model; not found: {missing or '(empty)'}. "
                f"Available: {list(named)[:8]}{' ...' if len(named) > 8 else ''}"
            )
        self.names = names

        def copy(t: Tensor) -> Tensor:
            # a tensor made under inference_mode cannot join autograd: a normal copy can
            t = readable(t).detach()
            return t.to(dtype) if dtype is not None and t.is_floating_point() else t

        self.theta = {k: copy(named[k]) for k in names}
        self.fixed = {k: copy(v) for k, v in named.items() if k not in self.theta}
        self.buffers = {k: copy(v) for k, v in model.named_buffers()}
        self.args = tuple(additional_forward_args)
        self.target = self.theta
        if reference is not None:
            if not isinstance(reference, nn.Module | Mapping):
                raise TypeError(
                    "reference must be an nn.Module or a dict of parameter tensors, got "
                    f"{type(reference).__name__}"
                )
            ref = dict(reference.named_parameters()) if isinstance(reference, nn.Module) else reference
            kinds = [k for k in names if k in ref and not isinstance(ref[k], Tensor)]
            if kinds:
                raise TypeError(
                    f"reference must hold tensors; {kinds[0]!r} is a {type(ref[kinds[0]]).__name__}"
                )
            bad = [k for k in names if k not in ref or ref[k].shape != named[k].shape]
            if bad:
                raise ValueError(
                    f"reference must hold parameters with the model's names and shapes; mismatched: {bad[:5]}"
                )
            nonfinite = [k for k in names if not bool(torch.isfinite(ref[k]).all())]
            if nonfinite:
                raise ValueError(f"reference holds NaN or inf values in {nonfinite[:5]}")
            self.target = {k: self.theta[k] - copy(ref[k]).to(self.theta[k].device) for k in names}

    @property
    def num_params(self) -> int:
        """Number of scalar parameters in ``theta``."""
        return sum(t.numel() for t in self.theta.values())

    def __call__(self, inputs: Tensor, theta: Mapping[str, Tensor] | None = None) -> Tensor:
        """Logits of ``inputs`` under ``theta`` (``theta*`` when omitted)."""
        params = {**self.fixed, **(self.theta if theta is None else theta)}
        return call_functional(self.model, params, self.buffers, (inputs, *self.args))


def call_functional(
    model: nn.Module, params: Mapping[str, Tensor], buffers: Mapping[str, Tensor], args: tuple
) -> Tensor:
    """``model(*args)`` with ``params`` and ``buffers`` in place of its own
    (:func:`torch.func.functional_call`), without its backward hooks.

    Parameters
    ----------
    model : nn.Module
    params, buffers : mapping of str to Tensor
        By the model's own names; names left out keep the model's tensors.
    args : tuple
        The positional arguments of the forward pass.

    Returns
    -------
    Tensor
        The model's output, e.g. logits of shape ``(n, C)``.
    """
    # attention in its math form (math_attention)
    # torch's functional_call puts the model's own tensors back by name; a module registered
    # under two names (self.b = self.a) gets the swapped-in tensor back under one of them, so
    # every module's parameter and buffer entries are put back here, by identity
    saved = [
        (m, dict(m._parameters), dict(m._buffers))
        for m in model.modules()
        if not isinstance(m, torch.jit.ScriptModule)  # its tensors are the script's own
    ]
    with backward_hooks_suspended(model), math_attention():
        try:
            return functional_call(model, (params, buffers), args)
        except RuntimeError as e:
            if "mutate a captured Tensor" not in str(e):
                raise
            raise ValueError(
                "model's forward writes in place to a tensor that is not its input (a buffer "
                "updated in eval mode, such as a call counter: self.count += 1); torch.func, "
                "which computes the per-sample gradients, cannot differentiate through it. Skip "
                "the update outside training (if self.training: ...) or rebind the buffer "
                f"(self.count = self.count + 1), which kktexplain undoes afterwards ({e})"
            ) from e
        finally:
            for m, own_params, own_buffers in saved:
                m._parameters.update(own_params)
                m._buffers.update(own_buffers)
