"""The per-layer algebra of projected per-sample gradients, behind :class:`KroneckerSketch`.

For each parameter tensor (a :class:`_Block`) of a supported layer: whether the layer can be
factored at all (:func:`_unsupported`), what its forward must save of the layer's input
(:func:`_saved_inputs`: the input, its projected patches, or the normalised input), and how one
call's projected per-sample gradient is formed from that and the gradient in the layer's output
(:func:`_block_grad`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_CONV = (nn.Conv1d, nn.Conv2d)
_NORM = (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class _Block:
    """The projection of one parameter tensor: ``kind`` says how its per-sample gradient is formed."""

    name: str
    module: str
    attr: str  # "weight" or "bias"
    kind: str  # "matrix" (linear/conv weight), "vector" (bias, norm parameters)
    shape: tuple[int, ...]
    p_out: Tensor | None  # (k_o, d_out), or None for the identity
    p_in: Tensor | None  # (k_i, d_in) for matrices, or None for the identity

    @property
    def width(self) -> int:
        numel = math.prod(self.shape)
        if self.kind == "vector":
            return numel if self.p_out is None else self.p_out.shape[0]
        d_out = self.shape[0]
        d_in = numel // d_out
        k_o = d_out if self.p_out is None else self.p_out.shape[0]
        k_i = d_in if self.p_in is None else self.p_in.shape[0]
        return k_o * k_i


_STOCK = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.GroupNorm, nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d)


def _unsupported(module: nn.Module) -> str | None:
    """Why a module's per-sample gradients cannot be factored, or ``None`` if they can."""
    stock = next((cls for cls in _STOCK if isinstance(module, cls)), None)
    if stock is not None and type(module).forward is not stock.forward:
        return f"{type(module).__name__} overrides {stock.__name__}.forward"
    if isinstance(module, nn.Linear):
        return None
    if isinstance(module, _CONV):
        if module.groups != 1:
            return "grouped convolution"
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            return f"padding {module.padding!r} with mode {module.padding_mode!r}"
        return None
    if isinstance(module, nn.GroupNorm | nn.LayerNorm):
        return None
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        if module.training or module.running_mean is None:
            return "BatchNorm that uses batch statistics (train mode or no running stats)"
        return None
    supported = "Linear, Conv1d, Conv2d, GroupNorm, LayerNorm, BatchNorm (eval)"
    return f"{type(module).__name__} is not one of {supported}"


def _positions_last(t: Tensor) -> Tensor:
    """``(n, c, *spatial)`` as ``(n, c, L)``."""
    return t.reshape(t.shape[0], t.shape[1], -1)


def _saved_inputs(module: nn.Module, x: Tensor, blocks: list[_Block]) -> dict[str, Tensor]:
    """What the per-sample gradients of ``blocks`` need from a layer's input, projected early."""
    saved: dict[str, Tensor] = {}
    with torch.no_grad():
        for b in blocks:
            if b.kind == "matrix" and isinstance(module, nn.Linear):
                a = x.reshape(x.shape[0], -1, x.shape[-1])  # (n, L, d_in)
                saved["a"] = a if b.p_in is None else a @ b.p_in.to(a.dtype).T
            elif b.kind == "matrix":
                saved["a"] = _projected_patches(module, x, b.p_in)  # (n, k_i, L)
            elif b.attr == "weight":
                saved["x_hat"] = _normalised(module, x)
    return saved


def _projected_patches(conv: nn.Conv1d | nn.Conv2d, x: Tensor, p_in: Tensor | None) -> Tensor:
    """The receptive fields of ``conv`` on ``x``, projected: ``(n, k_i, L)``.

    Projecting every patch with ``P_in`` is a convolution with ``P_in`` as its kernel (same
    stride, padding and dilation): ``k_i`` output channels, no unfolded copy of the input.
    """
    weight_shape = conv.weight.shape  # (d_out, c_in, *kernel)
    if p_in is None:  # exact: the patches themselves, through an identity kernel
        d_in = math.prod(weight_shape[1:])
        p_in = torch.eye(d_in, dtype=x.dtype, device=x.device)
    kernel = p_in.to(x.dtype).reshape(p_in.shape[0], *weight_shape[1:])
    conv_fn = F.conv1d if isinstance(conv, nn.Conv1d) else F.conv2d
    out = conv_fn(x, kernel, None, conv.stride, conv.padding, conv.dilation)
    return _positions_last(out)


def _normalised(module: nn.Module, x: Tensor) -> Tensor:
    """A normalisation layer's input after normalisation, before its affine map."""
    if isinstance(module, nn.GroupNorm):
        return F.group_norm(x, module.num_groups, eps=module.eps)
    if isinstance(module, nn.LayerNorm):
        return F.layer_norm(x, module.normalized_shape, eps=module.eps)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = module.running_mean.reshape(shape)
    var = module.running_var.reshape(shape)
    return (x - mean) / torch.sqrt(var + module.eps)


def _block_grad(module: nn.Module, b: _Block, g: Tensor, saved: dict[str, Tensor]) -> Tensor:
    """The projected per-sample gradient of one block from one call of its layer: ``(n, width)``."""
    n = g.shape[0]
    if b.kind == "matrix" and isinstance(module, nn.Linear):
        go = g.reshape(n, -1, g.shape[-1])  # (n, L, d_out)
        if b.p_out is not None:
            go = go @ b.p_out.to(go.dtype).T
        return torch.einsum("nlo,nli->noi", go, saved["a"]).flatten(1)
    if b.kind == "matrix":
        go = _positions_last(g)  # (n, d_out, L)
        if b.p_out is not None:
            go = torch.matmul(b.p_out.to(go.dtype), go)  # (n, k_o, L)
        return torch.bmm(go, saved["a"].transpose(1, 2)).flatten(1)
    if isinstance(module, nn.LayerNorm):
        lead = g.ndim - len(module.normalized_shape)
        t = g if b.attr == "bias" else g * saved["x_hat"]
        v = t.sum(dim=tuple(range(1, lead))) if lead > 1 else t
        v = v.reshape(n, -1)
    elif isinstance(module, (nn.Linear, *_CONV)):
        v = (
            g.reshape(n, -1, g.shape[-1]).sum(1)
            if isinstance(module, nn.Linear)
            else _positions_last(g).sum(-1)
        )
    else:
        t = g if b.attr == "bias" else g * saved["x_hat"]
        v = _positions_last(t).sum(-1)
    return v if b.p_out is None else v @ b.p_out.to(v.dtype).T
