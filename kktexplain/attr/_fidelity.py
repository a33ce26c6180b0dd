"""ExpansionFidelity: how well a support-vector expansion reproduces the model."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["ExpansionFidelity", "pearson"]


@dataclass(frozen=True)
class ExpansionFidelity:
    """How well the expansion reproduces the model on a set of inputs.

    Attributes
    ----------
    argmax_agreement : float
        Fraction of inputs whose expanded logits ``sum_j contribution_j(x, c)`` (over every
        class ``c``) have the same arg-max as the model's logits.
    logit_pearson : float
        Pearson correlation of expanded and actual logits, over all inputs and classes.
    quantity_pearson : float
        Pearson correlation of the expanded and the exact quantity ``<theta*, grad f_c(x)>``.
    relative_residual : float
        ``||exact - expanded|| / ||exact||`` over all inputs and classes (the completeness gap).
    quantity_logit_pearson : float
        Pearson correlation of the exact quantity with the logits: 1 for a scope in which the
        model is linear (or positively homogeneous), lower elsewhere.
    n : int
        Number of inputs.
    """

    argmax_agreement: float
    logit_pearson: float
    quantity_pearson: float
    relative_residual: float
    quantity_logit_pearson: float
    n: int

    def to_dict(self) -> dict[str, float]:
        """The fields as a plain dict."""
        return dict(self.__dict__)


def pearson(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two tensors' entries (``nan`` where one is constant)."""
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    den = (a.norm() * b.norm()).item()
    return float((a @ b).item() / den) if den > 0 else float("nan")
