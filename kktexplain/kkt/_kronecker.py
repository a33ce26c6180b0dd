"""Projected per-sample gradients without materialising them: a Kronecker-structured sketch.

For a linear or convolutional layer the per-sample gradient of the weight is a sum of outer
products, ``G_i = sum_l g_il a_il^T`` (``a`` the layer's input, or its unfolded patches, and
``g`` the gradient of the loss in the layer's output, at position ``l``). Projected with
``P_out (k_o, d_out)`` and ``P_in (k_i, d_in)``,

    P_out G_i P_in^T = sum_l (P_out g_il) (P_in a_il)^T,

so the projection costs one forward (with ``P_in a`` computed as the inputs go by) and one
backward to the layer outputs only (no weight gradients at all), and the ``d_out * d_in``
gradient is never formed. Bias and normalisation parameters have per-sample gradients of
their own size (``sum_l g`` and ``sum_l g * x_hat``) and get a plain Gaussian projection,
or none when they are small enough.

The same linear map applied to a flat parameter vector (:meth:`KroneckerSketch.__call__`)
projects ``theta*``, so the sketched stationarity problem is ``min ||S theta* + S G^T lambda||``
as with :class:`~kktexplain.kkt.CountSketch`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ._functional import FunctionalModel
from ._grads import per_sample_grads
from ._layer_grads import (
    _CONV,
    _Block,
    _block_grad,
    _saved_inputs,
    _unsupported,
)

__all__ = ["KroneckerSketch"]


def _gaussian(rows: int, cols: int, gen: torch.Generator, dtype, device) -> Tensor:
    """A ``(rows, cols)`` Gaussian matrix scaled so that ``E ||P x||^2 = ||x||^2``."""
    return (torch.randn(rows, cols, generator=gen, dtype=torch.float64) / math.sqrt(rows)).to(device, dtype)


class KroneckerSketch:
    """Random projection of per-sample gradients, factored layer by layer, never materialised.

    Parameters
    ----------
    fmodel : FunctionalModel
        The parameters to project are ``fmodel.theta``; each must be the ``weight`` or ``bias``
        of a :class:`~torch.nn.Linear`, :class:`~torch.nn.Conv1d`, :class:`~torch.nn.Conv2d`
        (zero padding, one group), :class:`~torch.nn.GroupNorm`, :class:`~torch.nn.LayerNorm`
        or an eval-mode :class:`~torch.nn.BatchNorm1d`/``2d``.
    out_features : int
        The target width ``K``. It is split over the parameter tensors in proportion to their
        sizes (as a :class:`CountSketch` spreads them in expectation), at least one column
        each, so a model with many small tensors gets more columns than asked; a tensor whose
        share covers it whole is kept exact. The realised width is :attr:`out_features`.
    seed : int, default=0
        Every process of a sharded selection must use the same seed.

    Raises
    ------
    ValueError
        If a parameter of ``fmodel.theta`` belongs to an unsupported layer, is tied to another
        module's, or (checked on the first chunk against ``vmap`` per-sample gradients of two
        samples) is used outside its layer's own forward; the message names it and the
        reason. Use the :class:`CountSketch` for such models. Layers must take the samples on
        their first dimension.

    Notes
    -----
    For a weight of shape ``(d_out, d_in)`` (a convolution's flattened to ``d_in = c_in * k``)
    with share ``k``, the factors are sized to minimise the per-position cost
    ``k_i d_in + k_o d_out`` at ``k_o k_i = k``: ``k_i = sqrt(k d_out / d_in)``. Products
    of Gaussian factors preserve inner products in expectation, ``E <Sx, Sy> = <x, y>``, with a
    larger variance than a dense Gaussian of the same width.
    """

    def __init__(self, fmodel: FunctionalModel, out_features: int, seed: int = 0) -> None:
        if isinstance(out_features, bool) or not isinstance(out_features, int) or out_features < 1:
            raise ValueError(f"out_features must be a positive int, got {out_features!r}")
        modules = dict(fmodel.model.named_modules())
        owner: dict[str, tuple[str, str]] = {}
        for name in fmodel.theta:
            mod_name, _, attr = name.rpartition(".")
            module = modules.get(mod_name)
            reason = None if module is None else _unsupported(module)
            if module is None or attr not in ("weight", "bias") or reason is not None:
                raise ValueError(
                    f"sketch='kronecker' cannot factor the per-sample gradient of parameter {name!r}: "
                    f"{reason or 'it is not the weight or bias of a layer'}; use sketch='count'"
                )
            owner[name] = (mod_name, attr)
        first_name = {id(v): k for k, v in fmodel.model.named_parameters()}
        for alias, param in fmodel.model.named_parameters(remove_duplicate=False):
            name = first_name[id(param)]
            if alias != name and name in owner:
                raise ValueError(
                    f"sketch='kronecker' cannot factor the per-sample gradient of parameter {name!r}: "
                    f"it is shared with {alias!r} (tied weights); use sketch='count'"
                )
        total = fmodel.num_params
        gen = torch.Generator().manual_seed(seed)
        ref = next(iter(fmodel.theta.values()))
        self.blocks: list[_Block] = []
        for name, t in fmodel.theta.items():
            mod_name, attr = owner[name]
            module = modules[mod_name]
            share = max(1, round(out_features * t.numel() / total))
            matrix = attr == "weight" and isinstance(module, (nn.Linear, *_CONV))
            p_out = p_in = None
            if not matrix:
                if share < t.numel():
                    p_out = _gaussian(share, t.numel(), gen, ref.dtype, ref.device)
                kind = "vector"
            else:
                d_out = t.shape[0]
                d_in = t.numel() // d_out
                k_i = min(d_in, max(1, round(math.sqrt(share * d_out / d_in))))
                k_o = min(d_out, max(1, round(share / k_i)))
                k_i = min(d_in, max(1, round(share / k_o)))
                if k_o < d_out:
                    p_out = _gaussian(k_o, d_out, gen, ref.dtype, ref.device)
                if k_i < d_in:
                    p_in = _gaussian(k_i, d_in, gen, ref.dtype, ref.device)
                kind = "matrix"
            self.blocks.append(_Block(name, mod_name, attr, kind, tuple(t.shape), p_out, p_in))
        self.in_features = total
        self.out_features = sum(b.width for b in self.blocks)
        self._by_module: dict[str, list[_Block]] = {}  # the blocks of each layer, in order
        for b in self.blocks:
            self._by_module.setdefault(b.module, []).append(b)
        self._clone = False  # set once an in-place op downstream of a layer is seen
        self._verified = False  # set once the first chunk agrees with vmap's per-sample gradients

    @property
    def is_exact(self) -> bool:
        """Whether no block is projected (the width covers every parameter): the identity map."""
        return all(b.p_out is None and b.p_in is None for b in self.blocks)

    def __call__(self, x: Tensor) -> Tensor:
        """Project flat parameter vectors ``x (..., P)``, in ``fmodel.theta``'s order, to ``(..., K)``.

        This is the map that :meth:`per_sample_grads` applies to each per-sample gradient
        without forming it; use it for ``theta*`` and to check the factored path.
        """
        if x.shape[-1] != self.in_features:
            raise ValueError(f"expected {self.in_features} features, got {x.shape[-1]}")
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.in_features)
        out, start = [], 0
        for b in self.blocks:
            numel = math.prod(b.shape)
            part = flat[:, start : start + numel]
            start += numel
            if b.kind == "vector":
                out.append(part if b.p_out is None else part @ b.p_out.to(part.dtype).T)
                continue
            w = part.reshape(len(part), b.shape[0], -1)  # (n, d_out, d_in)
            if b.p_out is not None:
                w = torch.einsum("od,ndi->noi", b.p_out.to(w.dtype), w)
            if b.p_in is not None:
                w = w @ b.p_in.to(w.dtype).T
            out.append(w.flatten(1))
        return torch.cat(out, dim=1).reshape(*lead, self.out_features)

    def per_sample_grads(
        self,
        fmodel: FunctionalModel,
        inputs: Tensor,
        labels: Tensor,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        return_logits: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``S grad_theta L(x_i, y_i)`` for every row, from one forward and one backward.

        Parameters
        ----------
        fmodel : FunctionalModel
            The view the sketch was built on (evaluated as it is; it must not mix samples).
        inputs : Tensor of shape (n, *input_shape)
        labels : Tensor of shape (n,) or (n, C)
        loss_fn : callable
            Per-sample loss ``(logits, labels) -> (n,)``.
        return_logits : bool, default=False
            Also return the logits of the forward pass (detached).

        Returns
        -------
        Tensor of shape (n, K)
            With ``return_logits``, the pair ``(grads, logits (n, C))``.
        """
        modules = dict(fmodel.model.named_modules())
        by_module = self._by_module
        calls, grads, logits = self._layer_outputs(fmodel, modules, inputs, labels, loss_fn)
        n = len(inputs)
        acc = {b.name: None for b in self.blocks}
        for (mod_name, out, _, saved), g in zip(calls, grads):
            if g is None:
                g = torch.zeros_like(out)
            module = modules[mod_name]
            for b in by_module[mod_name]:
                part = _block_grad(module, b, g.detach(), saved)
                acc[b.name] = part if acc[b.name] is None else acc[b.name] + part
        ref = next(iter(fmodel.theta.values()))
        out = torch.cat(
            [
                (
                    torch.zeros(n, b.width, dtype=ref.dtype, device=ref.device)
                    if acc[b.name] is None
                    else acc[b.name]
                )
                for b in self.blocks
            ],
            dim=1,
        )
        if not self._verified:
            self._check_against_vmap(fmodel, inputs, labels, loss_fn, out)
        return (out, logits) if return_logits else out

    def sq_norms_and_sum(
        self,
        fmodel: FunctionalModel,
        inputs: Tensor,
        labels: Tensor,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
    ) -> tuple[Tensor, Tensor, Tensor] | None:
        """``(||grad L_i||^2 (n,), sum_i grad L_i (P,), logits (n, C))`` of an exact sketch of
        ``nn.Linear`` layers, from one forward and one backward, without forming the rows.

        For a layer of input ``a_i`` (``(L, d_in)`` positions) and output gradient ``g_i``, the
        weight's per-sample gradient is ``sum_l g_il a_il^T``, of squared norm
        ``sum_{l,m} (g_il . g_im)(a_il . a_im)`` (``||g_i||^2 ||a_i||^2`` for one position).
        ``None`` where that needs the rows: a projected block, a layer called more than once
        (its calls' gradients add before the norm), or more positions than the weight has
        entries. The caller verifies the factored path first (:meth:`per_sample_grads`).
        """
        modules = dict(fmodel.model.named_modules())
        by_module = self._by_module
        calls, grads, logits = self._layer_outputs(fmodel, modules, inputs, labels, loss_fn)
        names = [c[0] for c in calls]
        if len(set(names)) != len(names) or any(
            b.p_out is not None or b.p_in is not None for b in self.blocks
        ):
            return None
        ref = next(iter(fmodel.theta.values()))
        n = len(inputs)
        sq = torch.zeros(n, dtype=ref.dtype, device=ref.device)
        total = {b.name: torch.zeros(b.width, dtype=ref.dtype, device=ref.device) for b in self.blocks}
        for (mod_name, _, _, saved), g in zip(calls, grads):
            module = modules[mod_name]
            if type(module) is not nn.Linear:
                return None
            if g is None:  # the layer's output does not reach the loss: zero gradients
                continue
            go = g.detach().reshape(n, -1, g.shape[-1])  # (n, L, d_out)
            for b in by_module[mod_name]:
                if b.kind == "matrix":
                    a = saved["a"]  # (n, L, d_in)
                    if go.shape[1] == 1:
                        sq += go.pow(2).sum((1, 2)) * a.pow(2).sum((1, 2))
                    elif go.shape[1] ** 2 <= b.width:
                        sq += ((go @ go.transpose(1, 2)) * (a @ a.transpose(1, 2))).sum((1, 2))
                    else:
                        return None
                    total[b.name] += torch.einsum("nlo,nli->oi", go, a).flatten()
                else:
                    v = go.sum(1)  # (n, d_out)
                    sq += v.pow(2).sum(1)
                    total[b.name] += v.sum(0)
        return sq, torch.cat([total[b.name] for b in self.blocks]), logits

    def _check_against_vmap(self, fmodel, inputs, labels, loss_fn, out: Tensor) -> None:
        """Compare the first two rows with the projection of ``vmap``'s per-sample gradients.

        The factored path sees a parameter only through its own layer's forward; a parameter
        also used elsewhere (``F.linear(x, layer.weight)``, a layer whose forward is bypassed)
        would be projected wrongly without any error. This catches it once, on two samples.
        """
        k = min(2, len(inputs))
        if k == 0:
            return
        g = per_sample_grads(fmodel, inputs[:k], labels[:k], loss_fn)
        ref = self(torch.cat([g[name].flatten(1) for name in fmodel.theta], dim=1))
        err = (out[:k] - ref).norm().item()
        if not math.isfinite(err):  # a NaN or inf: the caller's finiteness check names it
            return
        if not err <= 1e-3 * ref.norm().item() + 1e-12:
            bad = [
                b.name
                for b, (lo, hi) in zip(self.blocks, self._column_ranges())
                if (out[:k, lo:hi] - ref[:, lo:hi]).norm() > 1e-3 * ref[:, lo:hi].norm() + 1e-12
            ]
            raise ValueError(
                f"sketch='kronecker' does not reproduce the per-sample gradients of {bad}: these "
                "parameters are used outside their layer's own forward (or the layer does not take "
                "the samples on its first dimension); use sketch='count'"
            )
        self._verified = True

    def _column_ranges(self) -> list[tuple[int, int]]:
        """Each block's ``[start, stop)`` columns in the projected vector."""
        out, start = [], 0
        for b in self.blocks:
            out.append((start, start + b.width))
            start += b.width
        return out

    def _layer_outputs(self, fmodel, modules, inputs, labels, loss_fn):
        """:meth:`_backward_to_outputs`, done again with copies of the layer outputs (and from
        then on) where an in-place op downstream (``ReLU(inplace=True)``) rewrote one, whose
        gradient would then be the wrong one."""
        calls, grads, logits = self._backward_to_outputs(
            fmodel, modules, self._by_module, inputs, labels, loss_fn
        )
        if any(out._version != version for _, out, version, _ in calls):
            self._clone = True
            calls, grads, logits = self._backward_to_outputs(
                fmodel, modules, self._by_module, inputs, labels, loss_fn
            )
        return calls, grads, logits

    def _backward_to_outputs(self, fmodel, modules, by_module, inputs, labels, loss_fn):
        """One forward with hooks that save what each layer needs, one backward to the layer outputs."""
        calls: list[tuple[str, Tensor, int, dict[str, Tensor]]] = []  # (module, output, version, saved)
        clone = self._clone

        n = len(inputs)

        def hook_for(mod_name: str):
            def hook(module: nn.Module, args: tuple, kwargs: dict, output: Tensor) -> Tensor | None:
                x = args[0] if args else kwargs["input"]
                reason = _unsupported(module)
                if reason is None and (x.shape[0] != n or output.shape[0] != n):
                    reason = (
                        f"its input {tuple(x.shape)} does not hold the {n} samples on its first dimension"
                    )
                if reason is not None:
                    raise ValueError(
                        f"sketch='kronecker' cannot factor layer {mod_name!r}: {reason}; use sketch='count'"
                    )
                saved = _saved_inputs(module, x.detach(), by_module[mod_name])
                calls.append((mod_name, output, output._version, saved))
                return output.clone() if clone else None

            return hook

        handles = [modules[m].register_forward_hook(hook_for(m), with_kwargs=True) for m in by_module]
        try:
            theta = {k: v.detach().requires_grad_(True) for k, v in fmodel.theta.items()}
            with torch.enable_grad():
                logits = fmodel(inputs, theta)
                loss = loss_fn(logits, labels).sum()
                outputs = [out for _, out, _, _ in calls]
                if any(out._version != version for _, out, version, _ in calls):
                    return calls, [None] * len(calls), logits.detach()
                # an output computed without grad (a layer run under no_grad) gets no gradient
                live = [i for i, out in enumerate(outputs) if out.requires_grad]
                found = torch.autograd.grad(loss, [outputs[i] for i in live], allow_unused=True)
                grads = [None] * len(outputs)
                for i, g in zip(live, found):
                    grads[i] = g
        finally:
            for h in handles:
                h.remove()
        return calls, grads, logits.detach()
