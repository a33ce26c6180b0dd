"""Selection's solve: the multipliers of fixed (real) samples.

With the inputs fixed, stationarity ``theta* = -sum_i lambda_i g_i`` is linear in ``lambda``:
``min_{0 <= lambda <= C} || theta* + G^T lambda ||^2``, a bounded non-negative least-squares
problem over the per-sample gradients ``G`` (N, P), or their sketch (N, K) from
:mod:`kktexplain.kkt._collect`.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linprog, lsq_linear, nnls
from torch import Tensor
from tqdm.auto import tqdm

from ._columns import DenseColumns, FileColumns, GradientFile, as_columns
from ._rows import rows_any_nonzero

__all__ = [
    "solve_multipliers",
    "projected_fista",
    "working_set_bvls",
    "working_set_nnls",
]

# Problems with at most this many entries (P x N) go to scipy's Lawson-Hanson NNLS directly.
_DIRECT_NNLS_MAX = 2e7


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
    for _ in range(max_iter):
        iterations += 1
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


def working_set_nnls(
    a: Tensor | DenseColumns | FileColumns,
    b: Tensor,
    start: Tensor | None = None,
    max_rounds: int = 50,
    rtol: float = 1e-5,
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
    while rounds < max_rounds:
        rounds += 1
        a_s = a.take(work).double().numpy()
        xs, _ = nnls(a_s, b64, maxiter=max(50 * len(work), 1000))
        x[:] = 0.0
        x[work] = xs
        r = a_s @ xs - b64
        if np.linalg.norm(r) <= 1e-10 * max(np.linalg.norm(b64), 1e-300):  # exact fit: optimal
            converged, n_viol = True, 0
            break
        g = grad(r)
        viol = np.flatnonzero((g < -rtol * col_norm * np.linalg.norm(r)) & (x == 0))
        n_viol = int(viol.size)
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
            bar.update(1)
            bar.set_postfix(violations=n_viol, working_set=int(work.size), residual=f"{r_norm / b_norm:.4g}")
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


_FLOAT32_MIN = 5e7  # entries above which the iterative solvers work in float32


def _solver_matrix(grads: Tensor, used: Tensor) -> Tensor:
    """The used samples' gradients as the solver's ``(P, n)`` matrix, without a copy when possible.

    Large problems (more than ``_FLOAT32_MIN`` entries) stay in float32, as a transposed view of
    ``grads`` when every sample is used: half the memory and time of float64, and no second
    matrix. Small ones are float64.
    """
    g = grads.detach().cpu()
    if len(used) != g.shape[0]:
        g = g[used]
    if g.numel() > _FLOAT32_MIN:
        return (g if g.dtype == torch.float32 else g.float()).T
    return g.double().T


def _residual_norm(grads: Tensor, used: Tensor, lam: np.ndarray, b: np.ndarray) -> float:
    """``||G_used^T lam - b||`` in float64 from the caller's ``grads``, block of rows by block
    (exact for float64 input, no float64 copy of the whole matrix)."""
    acc = np.zeros(grads.shape[1])
    step = max(1, int(_FLOAT32_MIN // max(grads.shape[1], 1)) // 8)
    g = grads.detach().cpu()
    for start in range(0, len(used), step):
        rows = used[start : start + step]
        acc += g[rows].double().numpy().T @ lam[start : start + step]
    return float(np.linalg.norm(acc - b))


def _dense(at: DenseColumns | FileColumns) -> Tensor:
    """The whole ``(P, n)`` matrix (for the small problems' direct solvers)."""
    return at.a if isinstance(at, DenseColumns) else at.take(np.arange(at.shape[1]))


def _file_residual_norm(at: FileColumns, lam: np.ndarray, b: np.ndarray) -> float:
    """``||G_used^T lam - b||`` in float64, streamed over the file's blocks."""
    acc = np.zeros(at.shape[0])
    lam_t = torch.from_numpy(np.ascontiguousarray(lam, dtype=np.float64))
    for cols, rows in at._blocks():
        acc += (rows.double().T @ lam_t[cols]).numpy()
    return float(np.linalg.norm(acc - b))


def solve_multipliers(
    grads: Tensor | GradientFile,
    target: Tensor,
    upper: float | None = None,
    maximize_sum: bool = False,
    tol: float = 1e-10,
    max_iter: int | None = None,
    ridge: float | None = None,
    progress: bool = False,
    rtol: float = 1e-5,
) -> tuple[Tensor, dict]:
    """Solve ``min_{0 <= lambda <= upper} || target + grads^T lambda ||^2``.

    Parameters
    ----------
    grads : Tensor of shape (N, P) or GradientFile
        Per-sample loss gradients (or their sketch), one row per sample; a
        :class:`~kktexplain.kkt._columns.GradientFile` is read back in blocks (``offload_dir``).
    target : Tensor of shape (P,)
        ``theta*`` (or its sketch).
    upper : float, optional
        Box bound ``C`` (the soft-margin SVM's). ``None`` means ``lambda >= 0`` only.
    maximize_sum : bool, default=False
        Among the multipliers that reach the least residual (up to a relative ``1e-6``), take
        the ones of largest ``sum lambda`` (a linear program). For the max-margin problem the
        Lagrangian dual is ``sum lambda - ||theta||^2 / 2`` and its second term is fixed by
        stationarity, so this picks the dual optimum; for a linear SVM it recovers libsvm's
        ``dual_coef_``. Dense LP: use on small problems only.
    tol : float, default=1e-10
        Tolerance of the least-squares solver.
    ridge : float, optional
        Tie-break towards equal multipliers: add ``ridge * ||G||_2^2 * ||lambda - c||^2``, with
        ``c >= 0`` the least-squares fit of one multiplier shared by every sample (relative to
        the squared spectral norm of ``G``, so it is scale-free), and solve with projected FISTA.
        When many multiplier vectors fit stationarity equally well (more samples than
        dimensions), the exact solvers return a sparse vertex of that set, whose zeros on
        interchangeable samples are arbitrary; the ridge spreads λ over them instead (at a
        weight-decay stationary point, towards the equal λ that training reached).
    max_iter : int, optional
        Iteration cap of the chosen solver: Lawson-Hanson's iterations, FISTA's (with
        ``ridge``) or, with ``upper``, the rounds of :func:`working_set_bvls` (default 1000);
        their own defaults when omitted. The unbounded working-set path ignores it: its 200
        seeding FISTA iterations are fixed and it runs until no column violates optimality (at
        most 50 rounds).
    progress : bool, default=False
        Show a progress bar over the rounds of the bounded solver.
    rtol : float, default=1e-5
        Optimality tolerance of the unbounded working-set path (:func:`working_set_nnls`): a
        sample still violates optimality while its gradient's cosine with the residual exceeds
        it. For a sketch of ``K`` dimensions, inner products are only kept to about
        ``1 / sqrt(K)``; selection passes that value (a tighter fit fits the sketch's error).

    Returns
    -------
    lambdas : Tensor of shape (N,)
    info : dict
        ``residual`` (``||target + G^T lambda|| / ||target||``), ``solver`` and the solver's
        own counters.

    Notes
    -----
    The solver depends on the problem:

    * ``upper=None`` and ``P * N <= 2e7``: Lawson-Hanson NNLS (:func:`scipy.optimize.nnls`), exact.
    * ``upper=None``, larger: 200 FISTA iterations seed :func:`working_set_nnls`, which solves
      exactly over a growing set of columns. The result is a basic solution with at most ``P``
      non-zero multipliers. When ``N > P`` (e.g. 60,000 samples sketched to 2,048 dimensions)
      and the fit is exact, many multipliers reach the same residual; the one returned is a
      sparse vertex of that set, and the support size is then bounded by ``P``, not by the model.
    * ``upper`` given: :func:`working_set_bvls`, exact: scipy's bounded-variable least squares
      (:func:`scipy.optimize.lsq_linear`, BVLS) on a working set of samples, grown by the
      samples that violate optimality at either bound until none is left (BVLS on all samples
      at once is exact too, but far slower: docs/selection.md).
    * ``ridge`` given: :func:`projected_fista` (with the box when ``upper`` is given).
    """
    n_total = grads.shape[0]
    b = -target.detach().double().cpu().numpy()
    # a sample whose gradient is exactly zero (e.g. beyond the hinge) cannot contribute to
    # stationarity: its multiplier is set to zero rather than left free
    # without full-size temporaries: a boolean per sample, and no column copy when every sample is used
    on_disk = isinstance(grads, GradientFile)
    nonzero = grads.per_row(rows_any_nonzero) if on_disk else rows_any_nonzero(grads.detach())
    used_t = torch.nonzero(nonzero).flatten().cpu()
    used = used_t.numpy()
    n = len(used)
    hi = np.inf if upper is None else float(upper)
    if n == 0:
        return torch.zeros(n_total, dtype=grads.dtype), {
            "solver": "none",
            "residual": 1.0,
            "n_zero_gradient": n_total,
        }
    at = FileColumns(grads, used) if on_disk else DenseColumns(_solver_matrix(grads, used_t))  # (P, n)
    bt = torch.from_numpy(b).to(at.dtype)
    if ridge:
        scale = _spectral_norm_sq(at)
        ones = at.column_sum()  # G^T 1: the best single multiplier for every sample
        center = max(float(ones @ bt) / max(float(ones @ ones), 1e-300), 0.0)
        x, iters = projected_fista(
            at, bt, upper, max_iter=max_iter or 5000, tol=1e-9, ridge=float(ridge) * scale, center=center
        )
        lam = np.clip(x.double().numpy(), 0.0, hi)
        info = {
            "solver": "projected_fista[ridge]",
            "iterations": iters,
            "status": 0,
            "ridge": float(ridge),
            "ridge_center": center,
        }
    elif upper is None and n * at.shape[0] <= _DIRECT_NNLS_MAX:
        lam, _ = nnls(_dense(at).double().numpy(), b, maxiter=max_iter or max(50 * n, 1000))
        info = {"solver": "nnls", "status": 0}
    elif upper is None:
        x0, iters = projected_fista(at, bt, None, max_iter=200)
        x, ws = working_set_nnls(at, bt, start=x0, rtol=rtol)
        lam = x.numpy()
        info = {
            "solver": "projected_fista+working_set_nnls",
            "fista_iterations": iters,
            "status": 0,
            "rtol": rtol,
            **ws,
        }
    else:
        x, ws = working_set_bvls(at, bt, hi, max_rounds=max_iter or 1000, tol=tol, progress=progress)
        lam = x.numpy()
        info = {"solver": "working_set_bvls", "status": 0, **ws}
    if maximize_sum:  # a dense linear program: small problems only
        a = _dense(at).double().numpy() if on_disk else grads.detach().cpu()[used_t].double().numpy().T
        r = a @ lam - b
        slack = np.abs(r) + 1e-6 * max(np.linalg.norm(b), 1e-12) + 1e-9
        lp = linprog(
            -np.ones(n),
            A_ub=np.vstack([a, -a]),
            b_ub=np.concatenate([b + slack, -b + slack]),
            bounds=[(0.0, None if upper is None else hi)] * n,
            method="highs",
        )
        if lp.status == 0:
            lam = np.clip(lp.x, 0.0, hi)
            info["solver"] += "+linprog[max sum]"
        else:
            info["lp_status"] = int(lp.status)
    res = _file_residual_norm(at, lam, b) if on_disk else _residual_norm(grads, used_t, lam, b)
    info["residual"] = float(res / max(np.linalg.norm(b), 1e-300))
    info["n_zero_gradient"] = int(n_total - n)
    full = np.zeros(n_total)
    full[used] = lam
    return torch.from_numpy(full).to(grads.dtype), info
