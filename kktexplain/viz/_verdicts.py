"""Plain-words verdicts on the KKT residuals, shared by the figures and the HTML report."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["FEASIBILITY_THRESHOLDS", "STATIONARITY_THRESHOLDS", "feasibility_verdict", "stationarity_verdict"]

#: Lower bounds of the stationarity cosine ``cos(theta*, -sum_i lambda_i grad L_i)`` and their
#: verdicts, best first. 1 is exact stationarity (a linear SVM gets there); on the reference
#: Fashion-MNIST ConvNet 2,000 real training images with λ = 1 reach 0.010 and DSVs synthesized
#: with the defaults 0.31 to 0.32 (0.03 to 0.15 with the per-tensor objective of earlier
#: versions; docs/defaults.md), because an Adam-trained network is not a KKT point.
STATIONARITY_THRESHOLDS: tuple[tuple[float, str], ...] = (
    (0.9, "good: stationarity holds closely (SVM-like); the expansion explains θ*"),
    (0.3, "fair: the support set explains a real share of θ*"),
    (0.03, "weak, but typical of a trained deep network (earlier versions' DSVs: 0.03 to 0.15)"),
    (0.0, "poor: no better than real images with λ = 1 (0.010 on the reference ConvNet)"),
    (-np.inf, "fails: −Σλ∇L points away from θ*"),
)

#: Lower bounds of the primal feasibility rate (share of samples classified as their label).
FEASIBILITY_THRESHOLDS: tuple[tuple[float, str], ...] = (
    (0.95, "good: nearly every sample is classified as its label"),
    (0.8, "fair: some samples are not classified as their label"),
    (-np.inf, "poor: many samples are not classified as their label; do not read them as support vectors"),
)


def _verdict(value: float, thresholds: Sequence[tuple[float, str]]) -> str:
    if not np.isfinite(value):
        return "not measured"
    for bound, text in thresholds:
        if value >= bound:
            return text
    return thresholds[-1][1]


def stationarity_verdict(cosine: float) -> str:
    """Plain words for a stationarity cosine (global or per layer); see ``STATIONARITY_THRESHOLDS``.

    Parameters
    ----------
    cosine : float
        ``cos(theta*, -sum_i lambda_i grad L_i)``, in ``[-1, 1]``.

    Returns
    -------
    str
    """
    return _verdict(float(cosine), STATIONARITY_THRESHOLDS)


def feasibility_verdict(rate: float) -> str:
    """Plain words for a primal feasibility rate; see ``FEASIBILITY_THRESHOLDS``.

    Parameters
    ----------
    rate : float
        In ``[0, 1]``.

    Returns
    -------
    str
    """
    return _verdict(float(rate), FEASIBILITY_THRESHOLDS)
