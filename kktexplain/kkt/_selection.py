"""Selection's solve: the multipliers of fixed (real) samples.

With the inputs fixed, stationarity ``theta* = -sum_i lambda_i g_i`` is linear in ``lambda``:
``min_{0 <= lambda <= C} || theta* + G^T lambda ||^2``, a bounded non-negative least-squares
problem over the per-sample gradients ``G`` (N, P), or their sketch (N, K) from
:mod:`kktexplain.kkt._collect`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.optimize import linprog, nnls
from torch import Tensor

from ._columns import DenseColumns, FileColumns, GradientFile
from ._nnls import _spectral_norm_sq, projected_fista, working_set_bvls, working_set_nnls
from ._rows import rows_norm

__all__ = ["solve_multipliers"]

# Below this many columns Lawson-Hanson on the full (P, n) problem is as fast as on its QR factor
# (N = 100, P = 7,850: 0.03 s either way; N = 300: 0.34 s against 0.22 s).
_QR_MIN_COLUMNS = 200
# Problems with at most this many entries (P x N) may be read whole: small ones go to Lawson-Hanson
# directly, and a problem on disk is read into memory for the QR path only below it.
_DIRECT_NNLS_MAX = 2e7
# The QR path (P >= n) takes at most this many samples: its factor R takes 8 n^2 bytes (128 MiB
# here) and each block of rows at least 2n rows (256 MiB here, 384 MiB joined with R). With fewer
# coordinates than samples (P < n) the working set is faster: Lawson-Hanson's active-set steps
# grow with n (K = 2,048, n = 9,700: 152 s against 12.6 s at the sketch's tolerance; at 1e-5,
# 84 s), and the QR gives no smaller problem.
_BLOCKED_QR_MAX_COLUMNS = 4096
# Rows per block of that QR, times the number of columns (32 MiB of float64 per block, or 2n rows
# where that is more).
_BLOCKED_QR_ENTRIES = 4e6


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


def _blocked_qr(a: Tensor, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``R`` (n, n) and ``Q^T b`` (n,) of ``a (P, n) = Q R``, over blocks of rows.

    ``||a x - b||^2 = ||R x - Q^T b||^2 + const``, so the NNLS over ``(R, Q^T b)`` has the same
    minimiser as over ``(a, b)``. Each block is factored together with the factor of the blocks
    before it (a streamed TSQR), in float64, so memory stays at one block.
    """
    n = a.shape[1]
    block = max(2 * n, int(_BLOCKED_QR_ENTRIES // n))
    bt = torch.from_numpy(b)
    r = c = None
    for start in range(0, a.shape[0], block):
        rows, rhs = a[start : start + block].double(), bt[start : start + block]
        if r is not None:
            rows, rhs = torch.cat([r, rows]), torch.cat([c, rhs])
        # Householder reflectors, applied to the right-hand side without forming Q: half the
        # time of torch.linalg.qr, the same R
        h, tau = torch.geqrf(rows)
        k = min(n, rows.shape[0])
        r = h[:k].triu()
        c = torch.ormqr(h, tau, rhs.unsqueeze(1), left=True, transpose=True)[:k, 0]
    return r.numpy(), c.numpy()


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
        Show a progress bar over the rounds of the working-set solvers.
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

    * ``upper=None`` with at least as many coordinates as samples (``P >= n``, ``n <= 4096``):
      Lawson-Hanson NNLS (:func:`scipy.optimize.nnls`), exact; from 200 samples (or ``P * n >
      2e7``) on the ``n x n`` triangular factor of a QR over blocks of rows.
    * ``upper=None`` otherwise (fewer coordinates than samples, e.g. 60,000 samples sketched to
      2,048 dimensions): 200 FISTA iterations seed :func:`working_set_nnls`, which solves
      exactly over a growing set of columns, to ``rtol``. The result is a basic solution with
      at most ``P`` non-zero multipliers. When the fit is exact, many multipliers reach the same
      residual; the one returned is a sparse vertex of that set, and the support size is then
      bounded by ``P``, not by the model. The choice depends on the shape only, so neither the
      time nor the answer jumps with the number of samples (docs/selection.md, "Solver").
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
    # a row below the dtype's resolution (norm under tiny / eps: its entries are denormal) is
    # zero too: a multiplier for it would overflow the dtype (λ ~ 1e39 for a norm of 1e-38)
    floor = torch.finfo(grads.dtype).tiny / torch.finfo(grads.dtype).eps
    row_norms = grads.per_row(rows_norm) if on_disk else rows_norm(grads.detach())  # one pass, in blocks
    nonzero = row_norms > floor
    used_t = torch.nonzero(nonzero).flatten().cpu()
    used = used_t.numpy()
    n = len(used)
    hi = np.inf if upper is None else float(upper)
    if n == 0:
        return torch.zeros(n_total, dtype=grads.dtype), {
            "solver": "none",
            "residual": 1.0,
            "largest_term": 0.0,
            "n_zero_gradient": n_total,
        }
    at = FileColumns(grads, used) if on_disk else DenseColumns(_solver_matrix(grads, used_t))  # (P, n)
    bt = torch.from_numpy(b).to(at.dtype)
    if ridge:
        scale = _spectral_norm_sq(at)
        ones = at.column_sum()  # G^T 1: the best single multiplier for every sample
        center = max(float(ones @ bt) / max(float(ones @ ones), 1e-300), 0.0)
        x, iters = projected_fista(
            at,
            bt,
            upper,
            max_iter=max_iter or 5000,
            tol=1e-9,
            ridge=float(ridge) * scale,
            center=center,
            progress=progress,
        )
        lam = np.clip(x.double().numpy(), 0.0, hi)
        info = {
            "solver": "projected_fista[ridge]",
            "iterations": iters,
            "status": 0,
            "ridge": float(ridge),
            "ridge_center": center,
        }
    elif (
        upper is None
        and at.shape[0] >= n
        and n <= _BLOCKED_QR_MAX_COLUMNS
        and (not on_disk or n * at.shape[0] <= _DIRECT_NNLS_MAX)
    ):
        # at least as many coordinates as samples: exact Lawson-Hanson, on the n x n triangular
        # factor of a QR streamed over blocks of rows where the problem is not small
        # (||A x - b||^2 = ||R x - Q^T b||^2 + const: the same minimiser, and Lawson-Hanson's cost
        # grows with the rows). Faster than the working set wherever measured (P = 7,850,
        # n = 4,000: 114 s against 224 s; P = 20,000, n = 2,000: 17 s against 80 s)
        if n < _QR_MIN_COLUMNS and n * at.shape[0] <= _DIRECT_NNLS_MAX:
            a_np, b_np, solver = _dense(at).double().numpy(), b, "nnls"
        else:
            a_np, b_np = _blocked_qr(_dense(at), b)
            solver = "blocked_qr+nnls"
        lam, _ = nnls(a_np, b_np, maxiter=max_iter or max(50 * n, 1000))
        info = {"solver": solver, "status": 0}
    elif upper is None:
        x0, iters = projected_fista(at, bt, None, max_iter=200, progress=progress)
        x, ws = working_set_nnls(at, bt, start=x0, rtol=rtol, progress=progress)
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
            warnings.warn(
                f"maximize_sum: the tie-break's linear program failed (status {lp.status}: "
                f"{lp.message}); the least-squares λ are kept. Multipliers of very different "
                f"sizes (here up to {float(np.max(lam)):.3g}) make it ill-conditioned",
                UserWarning,
                stacklevel=2,
            )
    res = _file_residual_norm(at, lam, b) if on_disk else _residual_norm(grads, used_t, lam, b)
    info["residual"] = float(res / max(np.linalg.norm(b), 1e-300))
    # the largest term lam_j ||g_j|| relative to ||target||: far above 1, terms cancel each
    # other and the multipliers are set by near-dependent gradients, not by the target
    terms = lam * row_norms.cpu()[used_t].numpy()
    info["largest_term"] = float(terms.max() / max(np.linalg.norm(b), 1e-300)) if n else 0.0
    info["n_zero_gradient"] = int(n_total - n)
    full = np.zeros(n_total)
    full[used] = lam
    return torch.from_numpy(full).to(grads.dtype), info
