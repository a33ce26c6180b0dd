"""Non-negative (and bounded) least squares over a gradient matrix's columns: FISTA and working-set solvers.

The problem is ``min_{0 <= lambda <= C} || theta* + G^T lambda ||^2`` of
:mod:`kktexplain.kkt._selection`; :func:`~kktexplain.kkt._selection.solve_multipliers` picks the solver.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import lsq_linear, nnls
from torch import Tensor
from tqdm.auto import tqdm

from ._columns import DenseColumns, FileColumns, as_columns

__all__ = ["projected_fista", "working_set_bvls", "working_set_nnls"]


def _spectral_norm_sq(a: Tensor | DenseColumns | FileColumns) -> float:
    """``||a||_2^2`` by 30 power iterations (seeded)."""
    a = as_columns(a)
    gen = torch.Generator(device=a.device).manual_seed(0)
    v = torch.randn(a.shape[1], generator=gen, device=a.device, dtype=a.dtype)
    for _ in range(30):
        v = a.rmv(a.mv(v))
        v = v / v.norm().clamp_min(1e-300)
    return a.mv(v).norm().pow(2).item()


def projected_fista(
    a: Tensor | DenseColumns | FileColumns,
    b: Tensor,
    upper: float | None = None,
    max_iter: int = 500,
    tol: float = 1e-7,
    ridge: float = 0.0,
    center: float = 0.0,
    progress: bool = False,
) -> tuple[Tensor, int]:
    """Box-constrained least squares ``min_{0 <= x <= upper} ||a x - b||^2 + ridge ||x||^2`` by
    accelerated projected gradient (FISTA with gradient-based restart, Beck & Teboulle 2009).

    Each iteration costs two products with ``a``; the step is ``1 / ||a||_2^2`` (power
    iteration). Suited to many variables and a dense ``a`` that fits in memory.

    Parameters
    ----------
    a : Tensor of shape (M, N)
        Or its columns operator (:mod:`kktexplain.kkt._columns`, e.g. streamed from a file).
    b : Tensor of shape (M,)
    upper : float, optional
    max_iter : int, default=500
    tol : float, default=1e-7
        Stop when the relative change of ``x`` falls below it.
    ridge : float, default=0.0
        Weight of ``||x - center||^2`` (absolute).
    center : float, default=0.0
        The value the ridge pulls every entry towards.
    progress : bool, default=False
        A progress bar over the iterations (up to ``max_iter``; it stops early at ``tol``).

    Returns
    -------
    x : Tensor of shape (N,)
    iterations : int
    """
    a = as_columns(a)
    lipschitz = _spectral_norm_sq(a) * 1.01 + ridge + 1e-300
    hi = float("inf") if upper is None else float(upper)
    x = torch.full((a.shape[1],), float(center), device=a.device, dtype=a.dtype).clamp(0.0, hi)
    z, t = x.clone(), 1.0
    iterations = 0
    bar = tqdm(total=max_iter, desc="least squares (first-order start)", disable=not progress, leave=False)
    with bar:  # closed also where the iterations stop early
        for _ in range(max_iter):
            iterations += 1
            bar.update(1)
            grad = a.rmv(a.mv(z) - b) + ridge * (z - center)
            x_new = (z - grad / lipschitz).clamp(0.0, hi)
            if torch.dot(grad, x_new - x) > 0:  # restart the momentum when it points uphill
                t = 1.0
            t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
            z = x_new + (t - 1) / t_new * (x_new - x)
            change = (x_new - x).norm() / x_new.norm().clamp_min(1e-300)
            x, t = x_new, t_new
            if change < tol:
                break
    return x, iterations


def _show_round(bar: Any, violations: int, working_set: int, residual: float) -> None:
    """One round of a working-set solver on its progress bar."""
    bar.update(1)
    bar.set_postfix(violations=violations, working_set=int(working_set), residual=f"{residual:.4g}")


def working_set_nnls(
    a: Tensor | DenseColumns | FileColumns,
    b: Tensor,
    start: Tensor | None = None,
    max_rounds: int = 50,
    rtol: float = 1e-5,
    progress: bool = False,
) -> tuple[Tensor, dict]:
    """Exact non-negative least squares ``min_{x >= 0} ||a x - b||`` for many columns.

    A working-set (column generation) method: solve the problem restricted to a set ``S`` of
    columns with Lawson-Hanson (:func:`scipy.optimize.nnls`), then add the columns outside
    ``S`` whose gradient ``a_j^T r`` is negative (they would lower the residual if allowed to
    grow) and repeat. At the end every column meets the KKT conditions of NNLS, so the solution
    is a basic one: at most ``M`` multipliers are non-zero. This is what makes the support set
    sparse; a first-order solver stopped early leaves almost every multiplier slightly above 0.

    Parameters
    ----------
    a : Tensor of shape (M, N)
        Or its columns operator (:mod:`kktexplain.kkt._columns`, e.g. streamed from a file).
    b : Tensor of shape (M,)
    start : Tensor of shape (N,), optional
        A rough solution (e.g. from :func:`projected_fista`); its ``M`` largest entries seed ``S``.
        Without it ``S`` starts from the columns of most negative gradient at ``x = 0``.
    max_rounds : int, default=50
    rtol : float, default=1e-5
        A column violates optimality when ``a_j^T r < -rtol * ||a_j|| * ||r||``.
    progress : bool, default=False
        Show a progress bar over the rounds (violations left, working-set size, residual).

    Returns
    -------
    x : Tensor of shape (N,), float64
    info : dict
        ``rounds``, ``converged`` and ``n_violations`` (columns still violating at the end).
    """
    a = as_columns(a)
    m, n = a.shape
    col_norm = a.norms().double().numpy()
    b64 = b.double().numpy()
    add = max(m // 4, 64)

    def grad(r: np.ndarray) -> np.ndarray:
        return a.rmv(torch.from_numpy(r).to(a.dtype)).double().numpy()

    if start is not None and (start > 0).any():
        order = torch.argsort(start, descending=True)[: min(m, int((start > 0).sum()))].numpy()
        work = np.sort(order)
    else:
        g0 = grad(-b64)
        work = np.sort(np.argsort(g0)[: min(add, n)])
    x = np.zeros(n)
    converged, n_viol = False, 0
    rounds = 0
    b_norm = max(float(np.linalg.norm(b64)), 1e-300)
    with tqdm(desc="least squares", unit="round", disable=not progress, leave=False) as bar:
        while rounds < max_rounds:
            rounds += 1
            a_s = a.take(work).double().numpy()
            xs, _ = nnls(a_s, b64, maxiter=max(50 * len(work), 1000))
            x[:] = 0.0
            x[work] = xs
            r = a_s @ xs - b64
            r_norm = float(np.linalg.norm(r))
            if r_norm <= 1e-10 * b_norm:  # exact fit: optimal
                converged, n_viol = True, 0
                break
            g = grad(r)
            viol = np.flatnonzero((g < -rtol * col_norm * r_norm) & (x == 0))
            n_viol = int(viol.size)
            _show_round(bar, n_viol, work.size, r_norm / b_norm)
            if n_viol == 0:
                converged = True
                break
            pick = viol[np.argsort(g[viol])[:add]]
            work = np.union1d(work[xs > 0], pick)
    return torch.from_numpy(x), {"rounds": rounds, "converged": converged, "n_violations": n_viol}


def working_set_bvls(
    a: Tensor | DenseColumns | FileColumns,
    b: Tensor,
    upper: float,
    add: int = 64,
    max_rounds: int = 1000,
    rtol: float = 1e-5,
    tol: float = 1e-10,
    progress: bool = False,
) -> tuple[Tensor, dict]:
    """Exact box-constrained least squares ``min_{0 <= x <= upper} ||a x - b||`` for many columns.

    The bounded counterpart of :func:`working_set_nnls`. Every column is in one of three
    states: fixed at 0, fixed at ``upper``, or in the working set ``S``. Each round solves the
    problem restricted to ``S`` (the fixed columns moved to the right-hand side) with scipy's
    bounded-variable least squares (:func:`scipy.optimize.lsq_linear`, ``method="bvls"``), on the
    ``|S| x |S|`` triangular factor of ``a[:, S]`` when ``a`` has more rows (the same minimiser,
    a smaller problem). Columns of ``S`` that end on a bound are fixed there; then every column
    is checked against the optimality conditions of the whole problem, on both sides of the
    box: a column at 0 whose gradient ``a_j^T r`` is negative (it would lower the residual by
    growing) and a column at ``upper`` whose gradient is positive (it would lower it by
    shrinking) violate them, and the ``add`` worst violators (largest ``|a_j^T r| / ||a_j||``)
    join ``S``. The residual falls strictly every round, so no set repeats, and the loop ends
    when no column violates: the solution is then optimal for all columns.

    It starts from ``x = 0`` and the ``add`` columns of most negative gradient. Selection's
    solutions are sparse (most λ are 0, some sit at the bound), so ``S`` stays far smaller than
    the number of columns, which is what makes this fast: BVLS on all columns at once starts
    from the unconstrained least-squares solution and frees or fixes one column per iteration.

    Parameters
    ----------
    a : Tensor of shape (M, N)
        Or its columns operator (:mod:`kktexplain.kkt._columns`, e.g. streamed from a file).
    b : Tensor of shape (M,)
    upper : float
        The upper bound (``> 0``).
    add : int, default=64
        Violating columns added per round.
    max_rounds : int, default=1000
    rtol : float, default=1e-5
        A column violates optimality when ``|a_j^T r| > rtol * ||a_j|| * ||r||`` with the wrong
        sign for its bound.
    tol : float, default=1e-10
        BVLS's tolerance.
    progress : bool, default=False
        Show a progress bar over the rounds (violations left, working-set size, residual).

    Returns
    -------
    x : Tensor of shape (N,), float64
    info : dict
        ``rounds``, ``converged``, ``n_violations`` (columns still violating at the end),
        ``bvls_iterations`` (summed over rounds) and ``working_set`` (the last round's size).
    """
    hi = float(upper)
    if not hi > 0:
        raise ValueError(f"upper must be positive, got {upper!r}")
    a = as_columns(a)
    m, n = a.shape
    col_norm = a.norms().double().numpy()
    b64 = b.double().numpy()
    b_norm = max(float(np.linalg.norm(b64)), 1e-300)

    def residual(x: np.ndarray) -> np.ndarray:
        return a.mv(torch.from_numpy(x).to(a.dtype)).double().numpy() - b64

    def grad(r: np.ndarray) -> np.ndarray:
        return a.rmv(torch.from_numpy(r).to(a.dtype)).double().numpy()

    x = np.zeros(n)
    work = np.sort(np.argsort(grad(-b64))[: min(add, n)])
    rounds, converged, n_viol, bvls_iterations = 0, False, 0, 0
    bar = tqdm(desc="bounded least squares", unit="round", disable=not progress, leave=False)
    try:
        while rounds < max_rounds:
            rounds += 1
            x[work] = 0.0
            at_upper = np.flatnonzero(x >= hi)
            rhs = b64.copy()
            if at_upper.size:  # the columns fixed at the bound move to the right-hand side
                rhs -= hi * a.take(at_upper).double().sum(1).numpy()
            a_s = a.take(work).double().numpy()
            if m > a_s.shape[1] and work.size < n:  # the triangular factor: same minimiser, k x k
                q, a_s = np.linalg.qr(a_s)
                rhs = q.T @ rhs
            res = lsq_linear(a_s, rhs, bounds=(0.0, hi), method="bvls", tol=tol)
            bvls_iterations += int(res.nit)
            xs = np.clip(res.x, 0.0, hi)
            x[work] = xs
            r = residual(x)
            r_norm = float(np.linalg.norm(r))
            if r_norm <= 1e-10 * b_norm:  # exact fit: optimal
                converged, n_viol = True, 0
                break
            g = grad(r)
            limit = rtol * col_norm * r_norm
            viol = np.flatnonzero(((x <= 0.0) & (g < -limit)) | ((x >= hi) & (g > limit)))
            n_viol = int(viol.size)
            _show_round(bar, n_viol, work.size, r_norm / b_norm)
            if n_viol == 0:
                converged = True
                break
            # the worst violators relative to their column's norm (scale-free, as the test above)
            pick = viol[np.argsort(-np.abs(g[viol]) / np.maximum(col_norm[viol], 1e-300))[:add]]
            if np.isin(pick, work).all():  # BVLS left its own columns unsolved: no progress possible
                break
            work = np.union1d(work[(xs > 0.0) & (xs < hi)], pick)
    finally:
        bar.close()
    info = {
        "rounds": rounds,
        "converged": converged,
        "n_violations": n_viol,
        "bvls_iterations": bvls_iterations,
        "working_set": int(work.size),
    }
    return torch.from_numpy(x), info
