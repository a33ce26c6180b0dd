"""Differentiable, batched augmentations for the manifold condition (paper Sec 4.2, App D).

The augmented DSVs ``A(x)`` must also satisfy the primal and stationarity conditions, so every
augmentation here is differentiable in ``x``: geometric ones resample through
:func:`torch.nn.functional.grid_sample`, cutout multiplies by a mask and noise is additive.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Augmentation"]

_KINDS = ("translate", "crop", "flip", "cutout", "noise")


def finite_weight(name: str, value: object, what: str, positive: bool = False) -> float:
    """``value`` as a float, if it is a finite real number ``>= 0`` (``> 0`` with ``positive``);
    otherwise a ``ValueError`` saying ``name`` ``what``. Numpy scalars are real numbers too."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} {what}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Augmentation:
    """Random differentiable augmentation ``A``; the defaults are the paper's strengths.

    Parameters
    ----------
    translate : float, default=0.125
        Largest shift, as a fraction of the image side, drawn uniformly per sample and axis.
    crop : float, default=0.2
        Largest zoom-in: a square crop whose side is drawn uniformly in ``[1 - crop, 1]`` of the
        image side is resized back to full size.
    flip : float, default=0.5
        Probability of a horizontal flip.
    cutout : float, default=0.15
        Side, as a fraction of the image side, of a square set to zero at a random place.
    noise : float, default=0.01
        Standard deviation of additive Gaussian noise (in input units).
    mode : {"all", "one"}, default="all"
        ``"all"`` applies every enabled augmentation to every sample. ``"one"`` draws one of
        them per sample, as Algorithm 1's "sample f_A from A".

    Notes
    -----
    Inputs that are not ``(N, C, H, W)`` images only receive the noise.
    """

    translate: float = 0.125
    crop: float = 0.2
    flip: float = 0.5
    cutout: float = 0.15
    noise: float = 0.01
    mode: str = "all"

    def __post_init__(self) -> None:
        for name in _KINDS:
            value = getattr(self, name)
            object.__setattr__(self, name, finite_weight(name, value, "must be a non-negative float"))
        if self.flip > 1 or self.crop >= 1 or self.cutout > 1:
            raise ValueError("flip and cutout must be at most 1 and crop below 1")
        if self.mode not in ("all", "one"):
            raise ValueError(f"mode must be 'all' or 'one', got {self.mode!r}")

    @classmethod
    def none(cls) -> Augmentation:
        """The identity augmentation (every strength zero)."""
        return cls(translate=0.0, crop=0.0, flip=0.0, cutout=0.0, noise=0.0)

    @property
    def enabled(self) -> tuple[str, ...]:
        """Names of the augmentations with a non-zero strength."""
        return tuple(k for k in _KINDS if getattr(self, k) > 0)

    def __call__(self, inputs: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augment a batch.

        Parameters
        ----------
        inputs : Tensor of shape (N, *input_shape)
        generator : torch.Generator, optional
            Source of randomness, on the device of ``inputs``.

        Returns
        -------
        Tensor of shape (N, *input_shape)
            Differentiable with respect to ``inputs``.
        """
        kinds = self.enabled
        if not kinds:
            return inputs
        n, dev, dt = inputs.shape[0], inputs.device, inputs.dtype

        def rand(*shape: int) -> Tensor:
            return torch.rand(*shape, generator=generator, device=dev, dtype=dt)

        if self.mode == "one":
            pick = torch.randint(len(kinds), (n,), generator=generator, device=dev)
            on = {k: (pick == i).to(dt) for i, k in enumerate(kinds)}
        else:
            on = {k: torch.ones(n, device=dev, dtype=dt) for k in kinds}
        zero = torch.zeros(n, device=dev, dtype=dt)
        x = inputs
        if x.ndim == 4:
            scale = 1 - self.crop * rand(n) * on.get("crop", zero)
            flip = torch.where(rand(n) < self.flip * on.get("flip", zero), -1.0, 1.0).to(dt)
            shift = (2 * rand(n, 2) - 1) * 2 * self.translate * on.get("translate", zero)[:, None]
            if any(k in on for k in ("crop", "flip", "translate")):
                # the crop's centre moves within the image so the crop stays inside it
                centre = (2 * rand(n, 2) - 1) * (1 - scale)[:, None]
                theta = torch.zeros(n, 2, 3, device=dev, dtype=dt)
                theta[:, 0, 0] = scale * flip
                theta[:, 1, 1] = scale
                theta[:, :, 2] = centre + shift
                grid = F.affine_grid(theta, list(x.shape), align_corners=False)
                x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            if "cutout" in on:
                h, w = x.shape[-2:]
                size = torch.tensor([h, w], device=dev, dtype=dt) * self.cutout / 2
                centre = rand(n, 2) * torch.tensor([h, w], device=dev, dtype=dt)
                rows = torch.arange(h, device=dev, dtype=dt)[None, :, None]
                cols = torch.arange(w, device=dev, dtype=dt)[None, None, :]
                inside = ((rows - centre[:, 0, None, None]).abs() < size[0]) & (
                    (cols - centre[:, 1, None, None]).abs() < size[1]
                )
                inside = inside & (on["cutout"] > 0)[:, None, None]
                x = x * (~inside)[:, None].to(dt)
        if "noise" in on:
            noise = torch.randn(x.shape, generator=generator, device=dev, dtype=dt)
            x = x + self.noise * noise * on["noise"].view(-1, *([1] * (x.ndim - 1)))
        return x
