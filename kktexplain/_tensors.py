"""Tensors as autograd can read them."""

from __future__ import annotations

from torch import Tensor

__all__ = ["readable"]


def readable(t: Tensor) -> Tensor:
    """``t``, or a copy of it where it was made under :func:`torch.inference_mode`.

    Autograd refuses to save inference tensors for backward, and they keep no version counter;
    a copy is an ordinary tensor with the same values.

    Parameters
    ----------
    t : Tensor

    Returns
    -------
    Tensor
        ``t`` itself (not detached) or its copy.
    """
    return t.clone() if t.is_inference() else t
