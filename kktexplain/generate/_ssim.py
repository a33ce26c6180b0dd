"""Structural similarity (SSIM, Wang et al. 2004) in torch, for judging how much an edit kept."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ssim"]


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(
    a: Tensor,
    b: Tensor,
    data_range: float | None = None,
    window_size: int = 7,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Tensor:
    """Mean structural similarity of each pair of images.

    ``SSIM = (2 mu_a mu_b + c1)(2 cov_ab + c2) / ((mu_a^2 + mu_b^2 + c1)(var_a + var_b + c2))``
    with ``c1 = (k1 L)^2``, ``c2 = (k2 L)^2``, the local statistics weighted by a Gaussian window
    and averaged over the window positions that fit inside the image ("valid") and over
    channels. 1 for identical images.

    Parameters
    ----------
    a, b : Tensor of shape (N, C, H, W) or (C, H, W)
        Images in the same units (e.g. pixels in ``[0, 1]``).
    data_range : float, optional
        ``L``, the range of the pixel values. Default: ``max - min`` over both ``a`` and ``b``.
    window_size : int, default=7
        Side of the Gaussian window (odd, at most the image's height and width).
    sigma : float, default=1.5
        Standard deviation of the window, in pixels.
    k1, k2 : float, default=0.01, 0.03
        The constants of Wang et al.

    Returns
    -------
    Tensor of shape (N,) (or () for a single image)
    """
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"a and b must be tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    single = a.ndim == 3
    if single:
        a, b = a[None], b[None]
    if a.ndim != 4:
        raise ValueError(f"a must have shape (N, C, H, W) or (C, H, W), got {tuple(a.shape)}")
    if (
        isinstance(window_size, bool)
        or not isinstance(window_size, int)
        or window_size < 1
        or window_size % 2 == 0
    ):
        raise ValueError(f"window_size must be an odd positive int, got {window_size!r}")
    if window_size > min(a.shape[-2:]):
        raise ValueError(f"window_size={window_size} exceeds the image size {tuple(a.shape[-2:])}")
    dtype = a.dtype if a.is_floating_point() and a.dtype != torch.float16 else torch.float32
    a, b = a.to(dtype), b.to(dtype)
    if data_range is None:
        data_range = float(torch.maximum(a.max(), b.max()) - torch.minimum(a.min(), b.min()))
        data_range = data_range if data_range > 0 else 1.0
    elif data_range <= 0:
        raise ValueError(f"data_range must be > 0, got {data_range!r}")
    n, c = a.shape[:2]
    w = _gaussian_window(window_size, sigma, dtype, a.device).expand(c, 1, window_size, window_size)

    def blur(x: Tensor) -> Tensor:
        return F.conv2d(x, w, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    out = s.flatten(1).mean(1)
    return out[0] if single else out
