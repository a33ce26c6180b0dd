"""Does ``SVC(kernel="linear")``'s own solution satisfy its KKT conditions, and is its dual unique?

For ``min 1/2 ||w||^2 + C sum_i xi_i`` subject to ``y_i f(x_i) >= 1 - xi_i``, ``xi_i >= 0`` with
``f(x) = w.x + b``, a pair ``(w, b)`` and duals ``alpha`` are optimal if and only if

- ``w = sum_i alpha_i y_i x_i`` and ``sum_i alpha_i y_i = 0`` (stationarity; libsvm's
  ``coef_`` is computed from ``dual_coef_``, so the first holds by construction),
- ``0 <= alpha_i <= C`` (dual feasibility),
- ``y_i f(x_i) >= 1`` where ``alpha_i = 0``, ``y_i f(x_i) = 1`` where ``0 < alpha_i < C`` and
  ``y_i f(x_i) <= 1`` where ``alpha_i = C`` (primal feasibility with complementary slackness).

``w`` is always unique; the duals are not when some direction ``v`` moves ``alpha`` without
breaking a condition: ``v`` may only touch points on the margin (``y f = 1``), must keep
``sum_i v_i y_i (x_i, 1) = 0``, and may not push an ``alpha`` at 0 below it or one at ``C``
above it. This happens when the *free* support vectors (``0 < alpha_i < C``) are linearly
dependent in the augmented space ``y_i (x_i, 1)``, and also when a margin point with
``alpha = 0`` (a duplicate of a support vector, say) can take over part of another's weight.
Two exact solvers may then return different support sets with the same ``w``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from sklearn.svm import SVC

__all__ = ["SVCDiagnostics", "svc_kkt_diagnostics"]


@dataclass
class SVCDiagnostics:
    """The KKT violations of a fitted binary linear SVC and whether its dual is unique.

    Attributes
    ----------
    margin_violation : float
        Largest violation of the margin conditions over the training set:
        ``max(0, 1 - y f)`` for ``alpha = 0``, ``|1 - y f|`` for ``0 < alpha < C``,
        ``max(0, y f - 1)`` for ``alpha = C``.
    equality_violation : float
        ``|sum_i alpha_i y_i| / C``.
    box_violation : float
        ``max(0, max_i alpha_i - C) / C``.
    max_violation : float
        The largest of the three.
    n_free : int
        Support vectors with ``0 < alpha < C``.
    free_rank : int
        Numerical rank of their augmented vectors ``y_i (x_i, 1)`` (columns scaled to unit
        largest entry first, so that badly scaled features do not decide the rank).
    n_margin : int
        Training points with ``|y f - 1| <= margin_atol`` (any ``alpha``).
    dual_unique : bool
        No direction moves the duals while keeping every condition: ``free_rank == n_free`` and
        the linear program over the margin points (module docstring) finds none.
    n_duplicates : int
        Training points that repeat an earlier point exactly (any label).
    feature_scale_ratio : float
        Largest over smallest non-zero feature standard deviation.
    feature_offset_ratio : float
        Largest ``|mean| / std`` of a non-constant feature: how far a feature sits from 0 in
        units of its own spread (an offset that libsvm's fixed tolerance does not see).
    """

    margin_violation: float
    equality_violation: float
    box_violation: float
    max_violation: float
    n_free: int
    free_rank: int
    n_margin: int
    dual_unique: bool
    n_duplicates: int
    feature_scale_ratio: float
    feature_offset_ratio: float = 0.0


def _alpha(svc: SVC, n: int) -> np.ndarray:
    alpha = np.zeros(n)
    alpha[svc.support_] = np.abs(svc.dual_coef_[0])
    return alpha


def _scaled_rows(a: np.ndarray) -> np.ndarray:
    """``a`` with every row divided by its largest entry (feature scales do not decide rank)."""
    if a.size == 0:  # no columns (no multiplier free or on the margin): nothing to scale
        return a
    scale = np.abs(a).max(axis=1, keepdims=True)
    return a / np.where(scale > 0, scale, 1.0)


def _other_duals_exist(a: np.ndarray, at_zero: np.ndarray, at_c: np.ndarray, tol: float = 1e-9) -> bool:
    """Is there ``v != 0`` with ``a v = 0``, ``v >= 0`` where at 0, ``v <= 0`` where at ``C``?

    Free coordinates are unconstrained; a direction on them alone is the rank test's job, so the
    program maximises what ``v`` moves off the bounds, ``sum_{at 0} v - sum_{at C} v``, in the
    box ``[-1, 1]``.
    """
    if not (at_zero.any() or at_c.any()):
        return False
    cost = np.where(at_zero, -1.0, np.where(at_c, 1.0, 0.0))
    bounds = [(0.0, 1.0) if z else (-1.0, 0.0) if c else (-1.0, 1.0) for z, c in zip(at_zero, at_c)]
    res = linprog(cost, A_eq=a, b_eq=np.zeros(len(a)), bounds=bounds, method="highs")
    return bool(res.status == 0 and -res.fun > tol)


def dual_term_norms(X: np.ndarray) -> np.ndarray:
    """``||[x_i, 1]||`` per row: the size of a unit multiplier's term in ``[w, b]``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)

    Returns
    -------
    ndarray of shape (n_samples,)
    """
    X = np.asarray(X, dtype=np.float64)
    return np.sqrt((X * X).sum(axis=1) + 1.0)


def svc_kkt_diagnostics(
    svc: SVC,
    X: np.ndarray,
    y01: np.ndarray,
    C: float,
    bound_rtol: float = 1e-8,
    margin_atol: float = 1e-6,
) -> SVCDiagnostics:
    """Measure how far a fitted binary ``SVC(kernel="linear")`` is from its own KKT conditions.

    Parameters
    ----------
    svc : SVC
        Fitted on ``(X, y01)`` with ``kernel="linear"``.
    X : ndarray of shape (n_samples, n_features)
    y01 : ndarray of shape (n_samples,)
        Labels in ``{0, 1}`` (1 is the SVC's positive side).
    C : float
        The SVC's box constraint.
    bound_rtol : float, default=1e-8
        ``alpha`` within ``bound_rtol * C`` of ``C`` counts as at ``C``; ``alpha_i`` counts as
        zero when its term ``alpha_i ||[x_i, 1]||`` is at most ``bound_rtol`` times the largest
        (scale-free: with features in small units every multiplier is tiny).
    margin_atol : float, default=1e-6
        Points with ``|y f - 1| <= margin_atol`` count as on the margin (for uniqueness).

    Returns
    -------
    SVCDiagnostics
    """
    X = np.asarray(X, dtype=np.float64)
    ysign = 2.0 * np.asarray(y01, dtype=np.float64) - 1.0
    alpha = _alpha(svc, len(X))
    margin = ysign * (X @ svc.coef_[0] + svc.intercept_[0])
    # a multiplier counts as zero when its term alpha_i y_i [x_i, 1] of w = sum_i alpha_i y_i x_i
    # is negligible beside the largest: scale-free in X (alpha scales as 1 / |x|^2) and in C
    terms = alpha * dual_term_norms(X)
    at_zero = terms <= bound_rtol * max(float(terms.max()) if len(terms) else 0.0, 1e-300)
    at_c = alpha >= C * (1 - bound_rtol)
    free = ~at_zero & ~at_c
    viol = np.zeros(len(X))
    viol[at_zero] = np.maximum(0.0, 1.0 - margin[at_zero])
    viol[free] = np.abs(1.0 - margin[free])
    viol[at_c] = np.maximum(0.0, margin[at_c] - 1.0)
    margin_v = float(viol.max()) if len(viol) else 0.0
    eq_v = float(abs(np.dot(alpha, ysign)) / C)
    box_v = float(max(0.0, alpha.max() - C) / C)
    aug = (ysign[:, None] * np.hstack([X, np.ones((len(X), 1))])).T  # (D + 1, N)
    rank = int(np.linalg.matrix_rank(_scaled_rows(aug[:, free]))) if free.any() else 0
    on_margin = np.abs(margin - 1.0) <= margin_atol
    n_margin = int((on_margin | free).sum())
    unique = rank == int(free.sum())
    if unique:
        cols = on_margin | free
        unique = not _other_duals_exist(_scaled_rows(aug[:, cols]), (at_zero & on_margin)[cols], at_c[cols])
    n_dup = len(X) - len(np.unique(X, axis=0))
    std = X.std(axis=0)
    spread = std > 0
    offset = float((np.abs(X.mean(axis=0)[spread]) / std[spread]).max()) if spread.any() else 0.0
    std = std[spread]
    ratio = float(std.max() / std.min()) if len(std) else 1.0
    return SVCDiagnostics(
        margin_violation=margin_v,
        equality_violation=eq_v,
        box_violation=box_v,
        max_violation=max(margin_v, eq_v, box_v),
        n_free=int(free.sum()),
        free_rank=rank,
        n_margin=n_margin,
        dual_unique=unique,
        n_duplicates=int(n_dup),
        feature_scale_ratio=ratio,
        feature_offset_ratio=offset,
    )


def svc_advice(
    diag: SVCDiagnostics,
    kkt_tol: float,
    converged: bool,
    f1: float,
    residual: float,
    n_differ: int = 0,
    n_borderline: int = 0,
    weights_gap: float = 0.0,
) -> str:
    """What the diagnostics mean for the comparison, and what to do; ``""`` when nothing is off.

    Parameters
    ----------
    diag : SVCDiagnostics
    kkt_tol : float
        Violations above this count as SVC not having solved its problem.
    converged : bool
        False when libsvm stopped at ``max_iter``.
    f1 : float
        Of our support set against SVC's.
    residual : float
        Our selection's stationarity residual ``||w - sum lambda y x|| / ||w||``.
    n_differ : int, default=0
        Training points in one support set and not the other.
    n_borderline : int, default=0
        Of those, points whose multiplier is tiny on both sides or that lie within
        ``margin_tol`` of the margin (where the support threshold, not the solution, decides).
    weights_gap : float, default=0.0
        ``||[w, b] - [w, b]_SVC|| / ||[w, b]_SVC||`` of the model the selection ran on (0 with
        SVC's own weights; the torch fit of ``weights="torch"`` only approximates them).

    Notes
    -----
    Uniqueness is only judged when SVC's solution satisfies its conditions: the free duals of
    an unfinished solution say nothing about the optimum's.

    Returns
    -------
    str
    """
    notes = []
    svc_off = diag.max_violation > kkt_tol or not converged
    if svc_off:
        stop = "" if converged else " (libsvm stopped at max_iter)"
        fix = "raise max_iter or lower tol"
        if diag.feature_scale_ratio > 100:
            fix = (
                "standardise the features (their standard deviations span a factor "
                f"{diag.feature_scale_ratio:.0e}), or {fix}"
            )
        elif diag.feature_offset_ratio > 100:
            fix = (
                f"standardise the features (one sits {diag.feature_offset_ratio:.0e} of its "
                f"standard deviations away from 0), or {fix}"
            )
        notes.append(
            f"SVC's own solution violates its KKT conditions by {diag.max_violation:.1e} "
            f"(> {kkt_tol:.0e}){stop}: its w, b and support set are not the optimum's. "
            f"{fix[0].upper()}{fix[1:]}."
        )
    elif not diag.dual_unique:
        dup = f", {diag.n_duplicates} duplicate points" if diag.n_duplicates else ""
        notes.append(
            f"The dual is not unique ({diag.n_margin} points on the margin, {diag.n_free} free "
            f"support vectors of rank {diag.free_rank} in (x, 1){dup}): exact solvers may return "
            "different support sets with the same w; compare w (the stationarity residual), not "
            "the support sets."
        )
    if f1 < 1.0 and weights_gap > 1e-3:
        advice = (
            "SVC's own solution is off (above), so neither is known to be the optimum"
            if svc_off
            else "weights='svc' compares the selection with SVC exactly"
        )
        notes.append(
            f"The torch fit's [w, b] differs from SVC's by {weights_gap:.1e} (relative): the "
            f"support sets are those of two different machines; {advice}."
        )
    if f1 < 1.0 and residual > 1e-3:
        either = (
            " either: with SVC's w not optimal, multipliers in [0, C] on its active set may not exist"
            if svc_off
            else ": the selection is off"
        )
        notes.append(f"Our multipliers do not reproduce w (residual {residual:.1e}){either}.")
    elif f1 < 1.0 and not notes:
        if n_differ and n_borderline == n_differ:
            notes.append(
                f"The support sets differ on {n_differ} point(s), each with a multiplier below "
                "1e-4 C on both sides or within margin_tol of the margin: the support threshold "
                "decides them, not the solution."
            )
        else:
            notes.append(
                f"The support sets differ on {n_differ} point(s) although both sides satisfy their "
                "conditions: check margin_tol against points on the margin up to round-off."
            )
    return " ".join(notes)
