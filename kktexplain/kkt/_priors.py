"""Data-manifold priors: total variation and the input norm (paper Sec 4.2)."""

from __future__ import annotations

from torch import Tensor

__all__ = ["total_variation", "input_norm"]


def total_variation(inputs: Tensor, p: int = 2) -> Tensor:
    """Per-sample total variation of image-like inputs.

    Parameters
    ----------
    inputs : Tensor of shape (N, C, H, W)
        Inputs of any other rank have no spatial neighbours and get zero.
    p : {1, 2}, default=2
        ``1`` sums absolute differences of neighbouring pixels (anisotropic TV); ``2`` sums their
        squares. The paper does not say which; both are means over pixels here, so the value
        does not grow with the image size.

    Returns
    -------
    Tensor of shape (N,)
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    if inputs.ndim != 4:
        return inputs.new_zeros(inputs.shape[0])
    dh = inputs[:, :, 1:, :] - inputs[:, :, :-1, :]
    dw = inputs[:, :, :, 1:] - inputs[:, :, :, :-1]
    if p == 1:
        return dh.abs().flatten(1).mean(1) + dw.abs().flatten(1).mean(1)
    return dh.pow(2).flatten(1).mean(1) + dw.pow(2).flatten(1).mean(1)


def input_norm(inputs: Tensor, p: int = 2) -> Tensor:
    """Per-sample norm prior: the mean of ``|x|^p`` over features.

    Parameters
    ----------
    inputs : Tensor of shape (N, *input_shape)
    p : int, default=2

    Returns
    -------
    Tensor of shape (N,)
    """
    return inputs.abs().pow(p).flatten(1).mean(1)
