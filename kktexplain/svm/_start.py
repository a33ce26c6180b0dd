"""Where the linear-SVM check's synthesis starts, and its step sizes, derived from the problem.

The derivation is in docs/svm.md; :func:`~kktexplain.svm.sanity_check` uses both by default.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["synthesis_init", "synthesis_step_sizes"]


def synthesis_init(
    w: np.ndarray, b: float, X: np.ndarray, n_per_class: int, seed: int = 0, scale: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Starting DSVs: noise around the point of the decision boundary nearest the data mean.

    ``x0 = m - f(m) w / ||w||^2`` (``f(x0) = 0``) with ``m`` the mean of ``X``; every DSV is
    ``x0 + e`` with ``e ~ N(0, (scale / ||w||)^2 I)``, so ``f`` varies by about ``scale`` over
    the DSVs whatever the feature scales. On the standardised suite sets ``m = 0``.

    Parameters
    ----------
    w : ndarray of shape (D,)
    b : float
    X : ndarray of shape (N, D)
    n_per_class : int
    seed : int, default=0
    scale : float, default=0.01

    Returns
    -------
    x : ndarray of shape (2 * n_per_class, D)
    labels : ndarray of shape (2 * n_per_class,)
        ``n_per_class`` zeros then ``n_per_class`` ones.
    """
    w2 = float(w @ w)
    m = X.mean(axis=0)
    x0 = m - (float(m @ w) + b) / w2 * w
    rng = np.random.default_rng(seed)
    x = x0 + rng.standard_normal((2 * n_per_class, len(w))) * (scale / math.sqrt(w2))
    return x, np.repeat(np.arange(2), n_per_class)


def synthesis_step_sizes(w: np.ndarray, C: float, x_init: np.ndarray) -> tuple[float, float]:
    """Gradient-descent steps for the inputs and ``rho`` from the problem's smoothness.

    Synthesis minimises ``S = ||w - sum_i lambda_i y_i x_i||^2 + (sum_i lambda_i y_i)^2 +
    C sum_i CE_i`` over the ``N`` DSVs ``x_i`` and ``rho_i`` (``lambda_i = C exp(rho_i)``,
    every ``lambda_i`` starting at ``C``; active DSVs only, and the masked cross-entropy ``CE``
    only where misclassified). Its curvature, bounded from the problem:

    - in the inputs, ``2 (lambda y)(lambda y)^T (x) I`` plus the primal term's
      ``C w w^T / 4`` per DSV: ``L_x = 2 ||lambda||^2 + C ||w||^2 / 4 = 2 N C^2 + C ||w||^2 / 4``;
    - in ``rho`` (near a solution, where the residual's own term vanishes),
      ``2 diag(lambda) G diag(lambda)`` with ``G_ij = y_i y_j (x_i.x_j + 1)``:
      ``L_rho = 2 N C^2 (R^2 + 1)`` with ``R`` a bound on ``||x_i||`` along the way: the largest
      starting norm plus the distance ``||w|| / (N C)`` each DSV travels to close the residual.

    Each block gets half its ``1 / L``: the preconditioned Hessian's eigenvalues are then at most
    ``1/2 + 1/2 = 1``, below gradient descent's limit of 2.

    Parameters
    ----------
    w : ndarray of shape (D,)
    C : float
    x_init : ndarray of shape (N, D)
        The starting DSVs.

    Returns
    -------
    lr : float
        Step on the inputs, ``1 / (2 L_x)``.
    lr_lambda : float
        Step on ``rho``, ``1 / (2 L_rho)``.
    """
    n = len(x_init)
    w2 = float(w @ w)
    lip_x = 2 * n * C**2 + C * w2 / 4
    radius = float(np.linalg.norm(x_init, axis=1).max()) + math.sqrt(w2) / (n * C)
    lip_rho = 2 * n * C**2 * (radius**2 + 1)
    return 1 / (2 * lip_x), 1 / (2 * lip_rho)
