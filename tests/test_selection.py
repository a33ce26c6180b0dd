"""Selection (fixed inputs, solved multipliers) against literal references."""

import copy
import itertools
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import lsq_linear, nnls

from kktexplain import DeepSupportVectors
from kktexplain.kkt import CountSketch, cross_entropy, solve_multipliers


def _box_lstsq_by_enumeration(a, b, upper=None):
    """Literal reference: ``min_{0 <= x <= upper} ||a x - b||`` for a full-column-rank ``a``.

    The optimum is the unconstrained minimiser on one face of the box (every coordinate at 0,
    at ``upper``, or free); enumerate the faces and keep the best feasible minimiser.
    """
    n = a.shape[1]
    states = (0, 1) if upper is None else (0, 1, 2)
    best, best_val = None, np.inf
    for face in itertools.product(states, repeat=n):
        x = np.zeros(n)
        x[[j for j in range(n) if face[j] == 2]] = upper
        free = [j for j in range(n) if face[j] == 1]
        if free:
            x[free] = np.linalg.lstsq(a[:, free], b - a @ x, rcond=None)[0]
        hi = np.inf if upper is None else upper
        if (x[free] < 0).any() or (x[free] > hi).any():
            continue
        val = np.linalg.norm(a @ x - b)
        if val < best_val - 1e-12:
            best, best_val = x, val
    return best


@pytest.mark.parametrize("upper", [None, 0.4, 1.0])
def test_solve_multipliers_matches_the_enumerated_optimum(rng, upper):
    g = torch.randn(6, 12, generator=rng, dtype=torch.float64)  # overdetermined: unique optimum
    t = -(torch.tensor([0.9, -0.5, 0.3, 1.6, 0.0, 0.7], dtype=torch.float64) @ g)
    t = t + 0.3 * torch.randn(12, generator=rng, dtype=torch.float64)
    lam, info = solve_multipliers(g, t, upper=upper)
    ref = _box_lstsq_by_enumeration(g.numpy().T, -t.numpy(), upper)
    np.testing.assert_allclose(lam.numpy(), ref, atol=1e-8)
    assert (ref == 0).any()  # the lower bound is active
    if upper is not None:
        assert (np.abs(ref - upper) < 1e-12).any() and lam.max() <= upper  # so is the upper one
    assert info["residual"] == pytest.approx(np.linalg.norm(g.numpy().T @ ref + t.numpy()) / t.norm().item())
    assert info["n_zero_gradient"] == 0


def test_zero_gradients_get_zero_multipliers(rng):
    g = torch.randn(6, 3, generator=rng, dtype=torch.float64)
    g[2] = 0.0
    g[4] = 0.0
    t = -(torch.tensor([0.5, 0.2, 0.0, 0.7, 0.0, 0.1], dtype=torch.float64) @ g)
    for upper in (None, 1.0):
        lam, info = solve_multipliers(g, t, upper=upper)
        assert lam[2] == 0.0 and lam[4] == 0.0 and info["n_zero_gradient"] == 2
        assert info["residual"] < 1e-8 and lam.min() >= 0.0
    lam, info = solve_multipliers(torch.zeros(4, 3, dtype=torch.float64), t)
    assert torch.equal(lam, torch.zeros(4, dtype=torch.float64))
    assert info["residual"] == 1.0 and info["n_zero_gradient"] == 4


@pytest.mark.parametrize("upper, expected", [(None, [2.0, 0.0, 1.0]), (1.5, [1.5, 0.25, 1.0])])
def test_maximize_sum_picks_the_largest_sum_among_exact_solutions(upper, expected):
    # columns 0 and 1 are parallel (g1 = 2 g0): theta = -(2 g0 + g2) is met by any
    # lambda0 + 2 lambda1 = 2; the largest sum puts the weight on the shorter column
    v, w = np.array([1.0, 2.0, -1.0, 0.5]), np.array([0.0, 1.0, 1.0, -2.0])
    g = torch.tensor(np.stack([v, 2 * v, w]))
    t = -torch.tensor(2 * v + w)
    lam, info = solve_multipliers(g, t, upper=upper, maximize_sum=True)
    np.testing.assert_allclose(lam.numpy(), expected, atol=1e-5)  # the LP's slack is 1e-6
    # the slack is relative to ||theta||: the same problem 1000 times smaller, the same answer
    small, _ = solve_multipliers(
        g, t / 1000, upper=None if upper is None else upper / 1000, maximize_sum=True
    )
    np.testing.assert_allclose(1000 * small.numpy(), expected, atol=1e-5)
    assert info["solver"].endswith("+linprog[max sum]") and info["residual"] < 1e-5
    plain, _ = solve_multipliers(g, t, upper=upper)
    assert plain.sum() <= lam.sum() + 1e-9


def test_count_sketch_is_a_signed_bucket_sum(rng):
    sketch = CountSketch(10, 4, seed=3)
    x = torch.randn(2, 10, generator=rng, dtype=torch.float64)
    dense = torch.zeros(10, 4, dtype=torch.float64)
    dense[torch.arange(10), sketch.bucket] = sketch.sign.double()
    torch.testing.assert_close(sketch(x), x @ dense)
    with pytest.raises(ValueError, match="expected 10 features"):
        sketch(torch.zeros(3))
    # the documented default seed is 0: a sketch built without one is reproducible as seed=0
    default, zero = CountSketch(10, 4), CountSketch(10, 4, seed=0)
    assert torch.equal(default.bucket, zero.bucket) and torch.equal(default.sign, zero.sign)


def test_selection_solves_stationarity_literally(tiny64, rng):
    x = torch.randn(20, 3, generator=rng, dtype=torch.float64)
    y = torch.randint(3, (20,), generator=rng)
    sel = DeepSupportVectors(progress=False, chunk_size=7).attribute(tiny64, candidates=x, labels=y)
    # literal: one backward per sample, then scipy's NNLS
    cols = []
    for i in range(20):
        tiny64.zero_grad()
        cross_entropy(tiny64(x[i : i + 1]), y[i : i + 1]).sum().backward()
        cols.append(torch.cat([p.grad.flatten() for p in tiny64.parameters()]))
    tiny64.zero_grad(set_to_none=True)
    theta = torch.cat([p.detach().flatten() for p in tiny64.parameters()])
    ref, _ = nnls(torch.stack(cols).T.numpy(), -theta.numpy())
    np.testing.assert_allclose(sel.lambdas.numpy(), ref, atol=1e-6)
    assert sel.settings["mode"] == "selection" and torch.equal(sel.indices, torch.arange(20))
    assert sel.kkt.stationarity["rel_l2"] == pytest.approx(sel.settings["solver"]["residual"], rel=1e-6)
    core = sel.top_k_per_class(2)
    assert core.indices.shape == (3, 2)


def _literal_grads(model, x, y):
    cols = []
    for i in range(len(x)):
        model.zero_grad()
        cross_entropy(model(x[i : i + 1]), y[i : i + 1]).sum().backward()
        cols.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    model.zero_grad(set_to_none=True)
    return torch.stack(cols)  # (N, P)


def _dense_sketch(p, k, seed):
    s = CountSketch(p, k, seed=seed)
    dense = torch.zeros(p, k, dtype=torch.float64)
    dense[torch.arange(p), s.bucket] = s.sign.double()
    return dense


@pytest.mark.parametrize("seed", [0, 5])
def test_sketched_selection_is_nnls_on_one_shared_sketch(tiny64, rng, seed):
    """One sketch for theta* and every gradient, solved by the working set to the sketch's
    resolution 1/sqrt(K): no sample at 0 has a gradient of cosine above it with the residual."""
    from kktexplain.kkt._nnls import projected_fista, working_set_nnls

    x = torch.randn(30, 3, generator=rng, dtype=torch.float64)
    y = torch.randint(3, (30,), generator=rng)
    sel = DeepSupportVectors(progress=False, projection_dim=8, seed=seed, chunk_size=11).attribute(
        tiny64, candidates=x, labels=y
    )
    assert sel.settings["sketch_dim"] == 8
    g = _literal_grads(tiny64, x, y)
    theta = torch.cat([p.detach().flatten() for p in tiny64.parameters()])
    s = _dense_sketch(theta.numel(), 8, seed)  # the same sketch for theta* and every gradient
    a, b, rtol = (g @ s).T, -(theta @ s), 1 / np.sqrt(8)
    ref = working_set_nnls(a, b, start=projected_fista(a, b, None, max_iter=200)[0], rtol=rtol)[0].numpy()
    np.testing.assert_allclose(sel.lambdas.numpy(), ref, atol=1e-7)
    lam = sel.lambdas.numpy()
    r = a.numpy() @ lam - b.numpy()
    cos = (a.numpy().T @ r) / (np.linalg.norm(a.numpy(), axis=0) * np.linalg.norm(r))
    assert lam.min() >= 0 and cos[lam == 0].min() >= -rtol
    np.testing.assert_allclose(cos[lam > 0], 0.0, atol=1e-8)  # exact on its own support
    assert sel.settings["solver"]["residual"] == pytest.approx(np.linalg.norm(r) / b.norm().item(), rel=1e-6)
    assert sel.settings["solver"]["residual"] >= nnls(a.numpy(), b.numpy())[1] / b.norm().item() - 1e-12
    # the residuals reported are the exact (unsketched) ones
    exact = np.linalg.norm(g.T.numpy() @ lam + theta.numpy()) / theta.norm().item()
    assert sel.kkt.stationarity["rel_l2"] == pytest.approx(exact, rel=1e-6)


def test_sketched_selection_recovers_exact_multipliers_when_the_sketch_loses_nothing(tiny64, rng):
    # target = theta* - theta_0 = -sum_i lambda*_i g_i exactly (theta_0 chosen so), and 6 <= 16
    # sketched dimensions keep the 6 gradients independent: every sketch returns lambda*
    x = torch.randn(6, 3, generator=rng, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    star = torch.tensor([0.8, 0.0, 1.7, 0.3, 0.0, 2.2], dtype=torch.float64)
    g = _literal_grads(tiny64, x, y)
    shift = star @ g
    ref, offset = {}, 0
    for name, p in tiny64.named_parameters():
        ref[name] = p.detach() + shift[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    exact = DeepSupportVectors(progress=False).attribute(tiny64, candidates=x, labels=y, reference=ref)
    torch.testing.assert_close(exact.lambdas, star, atol=1e-9, rtol=0)
    for seed in (0, 1, 2):
        sk = DeepSupportVectors(progress=False, projection_dim=16, seed=seed).attribute(
            tiny64, candidates=x, labels=y, reference=ref
        )
        assert sk.settings["sketch_dim"] == 16
        torch.testing.assert_close(sk.lambdas, star, atol=1e-8, rtol=0)
        assert sk.kkt.stationarity["rel_l2"] < 1e-8
    # a sketch at least as wide as the model is no sketch
    wide = DeepSupportVectors(progress=False, projection_dim=38).attribute(
        tiny64, candidates=x, labels=y, reference=ref
    )
    assert wide.settings["sketch_dim"] is None


def test_selection_needs_labels_and_the_right_shape(tiny64, rng):
    x = torch.randn(30, 3, generator=rng, dtype=torch.float64)
    with pytest.raises(ValueError, match="selection needs labels"):
        DeepSupportVectors(progress=False).attribute(tiny64, candidates=x)
    with pytest.raises(ValueError, match="candidates must have shape"):
        DeepSupportVectors(progress=False).attribute(
            tiny64, candidates=torch.randn(4, 5).double(), labels=torch.zeros(4, dtype=torch.long)
        )


def test_selection_leaves_model_unchanged(tiny64, rng):
    from conftest import assert_same_snapshot, model_snapshot

    before = model_snapshot(tiny64)
    x = torch.randn(10, 3, generator=rng, dtype=torch.float64)
    DeepSupportVectors(progress=False).attribute(
        tiny64, candidates=x, labels=torch.zeros(10, dtype=torch.long)
    )
    assert_same_snapshot(before, model_snapshot(tiny64))


@pytest.mark.parametrize("upper", [None, 0.05, 0.2])
def test_projected_fista_matches_bounded_least_squares(rng, upper):
    from kktexplain.kkt._nnls import projected_fista

    a = torch.randn(40, 15, generator=rng, dtype=torch.float64)
    b = torch.randn(40, generator=rng, dtype=torch.float64) + a @ torch.full((15,), 0.1, dtype=torch.float64)
    x, iters = projected_fista(a, b, upper=upper, max_iter=20000, tol=1e-14)
    bounds = (0.0, np.inf if upper is None else upper)
    ref = lsq_linear(a.numpy(), b.numpy(), bounds=bounds, method="bvls", tol=1e-14).x
    np.testing.assert_allclose(x.numpy(), ref, atol=1e-6)
    assert (ref < 1e-9).any() and 1 < iters < 20000
    if upper is not None:
        assert (ref > upper - 1e-9).any()  # the box is active
        assert x.max() <= upper and x.min() >= 0
        # clipping the unbounded solution is not the bounded solution
        free = np.clip(nnls(a.numpy(), b.numpy())[0], 0, upper)
        assert np.abs(free - ref).max() > 1e-3


def test_problems_with_fewer_coordinates_than_samples_use_the_working_set(rng):
    g = torch.randn(300, 40, generator=rng, dtype=torch.float64)  # 300 samples, 40 coordinates
    t = torch.randn(40, generator=rng, dtype=torch.float64)  # generic target: residual > 0
    lam, info = solve_multipliers(g, t)
    assert info["solver"] == "projected_fista+working_set_nnls" and info["converged"]
    assert info["status"] == 0  # as nnls and FISTA report it; convergence is in converged, n_violations
    ref, rnorm = nnls(g.numpy().T, -t.numpy())
    # the optimal residual is unique even where the multipliers are not
    assert info["residual"] == pytest.approx(rnorm / t.norm().item(), rel=1e-6)
    assert (lam > 0).sum() <= 40  # a basic solution: at most one multiplier per coordinate
    r = g.numpy().T @ lam.numpy() + t.numpy()
    assert (g.numpy() @ r).min() > -1e-8  # KKT of NNLS: no sample would lower the residual


@pytest.mark.parametrize("duplicate", [False, True])
def test_few_samples_of_many_coordinates_solve_on_a_blocked_qr(rng, monkeypatch, duplicate):
    import kktexplain.kkt._selection as sel

    monkeypatch.setattr(sel, "_DIRECT_NNLS_MAX", 100)
    monkeypatch.setattr(sel, "_BLOCKED_QR_ENTRIES", 20 * 70)  # blocks of 70 rows: 43 of them
    g = torch.randn(20, 3000, generator=rng, dtype=torch.float64)  # 20 samples, 3,000 coordinates
    if duplicate:  # a rank-deficient matrix: two samples with the same gradient
        g[7] = g[3]
    lam_true = torch.rand(20, generator=rng, dtype=torch.float64) * (torch.arange(20) % 3 != 0)
    t = -(g.T @ lam_true) + 0.3 * torch.randn(3000, generator=rng, dtype=torch.float64)
    lam, info = solve_multipliers(g, t)
    assert info["solver"] == "blocked_qr+nnls"
    ref, rnorm = nnls(g.numpy().T, -t.numpy())  # the literal problem, on all 3,000 rows
    assert info["residual"] == pytest.approx(rnorm / t.norm().item(), rel=1e-9)
    if duplicate:  # only the sum over the two copies is determined
        lam_sum, ref_sum = lam.numpy().copy(), ref.copy()
        lam_sum[3] += lam_sum[7]
        ref_sum[3] += ref_sum[7]
        lam_sum[7] = ref_sum[7] = 0.0
        np.testing.assert_allclose(lam_sum, ref_sum, rtol=1e-8, atol=1e-10)
    else:
        np.testing.assert_allclose(lam.numpy(), ref, rtol=1e-8, atol=1e-10)
    monkeypatch.setattr(sel, "_BLOCKED_QR_MAX_COLUMNS", 19)  # one sample too many: iterative path
    assert solve_multipliers(g, t)[1]["solver"] == "projected_fista+working_set_nnls"


@pytest.mark.parametrize("seeded", [False, True])
def test_working_set_reaches_the_nnls_optimum_over_many_columns(rng, seeded):
    from kktexplain.kkt import working_set_nnls
    from kktexplain.kkt._nnls import projected_fista

    a = torch.randn(30, 400, generator=rng, dtype=torch.float64)  # 400 columns, 64 per round
    b = torch.randn(30, generator=rng, dtype=torch.float64)
    start = projected_fista(a, b, max_iter=5)[0] if seeded else None
    x, info = working_set_nnls(a, b, start=start)
    assert info["converged"] and info["n_violations"] == 0 and info["rounds"] > 1
    # KKT of NNLS, written out: x >= 0, a^T r >= 0, and a^T r = 0 where x > 0
    r = a.numpy() @ x.numpy() - b.numpy()
    grad = a.numpy().T @ r
    assert x.min() >= 0 and grad.min() > -1e-8
    np.testing.assert_allclose(grad[x.numpy() > 0], 0.0, atol=1e-8)
    assert (x > 0).sum() <= 30  # a basic solution
    assert np.linalg.norm(r) == pytest.approx(nnls(a.numpy(), b.numpy())[1], rel=1e-9)


def test_working_set_starts_from_the_columns_of_most_negative_gradient(rng):
    from kktexplain.kkt import working_set_nnls

    # b is a positive combination of the 5 columns most aligned with it: those have the most
    # negative gradient at x = 0, so the first working set (64 of 400 columns) already holds
    # the optimum and one round suffices
    a = torch.randn(30, 400, generator=rng, dtype=torch.float64)
    b = a[:, :5] @ torch.tensor([1.0, 2.0, 0.5, 1.5, 1.0], dtype=torch.float64)
    a[:, 5:] -= torch.outer(b, (b @ a[:, 5:]) / (b @ b) + 0.1)  # the other columns point away from b
    g0 = -(a.T @ b)
    assert (g0[:5] < 0).all() and (g0[5:] > 0).all()
    x, info = working_set_nnls(a, b)
    assert info == {"rounds": 1, "converged": True, "n_violations": 0}
    assert x.min() >= 0 and (a @ x - b).norm() <= 1e-9 * b.norm()


def test_bounded_problems_use_the_working_set_and_reach_bvls_optimum(rng):
    # 2500 samples, 40 coordinates, a target beyond the box: many λ end at C, some at 0
    g = torch.randn(2500, 40, generator=rng, dtype=torch.float64)
    t = -(20.0 * torch.rand(2500, generator=rng, dtype=torch.float64) @ g)
    lam, info = solve_multipliers(g, t, upper=1.0)
    assert info["solver"] == "working_set_bvls" and info["converged"] and info["rounds"] > 1
    assert lam.max() <= 1.0 and lam.min() >= 0.0
    a, b = g.numpy().T, -t.numpy()
    ref = lsq_linear(a, b, bounds=(0.0, 1.0), method="bvls", tol=1e-12)
    best = np.linalg.norm(a @ ref.x - b) / t.norm().item()
    assert best > 1e-3  # the bound binds: no multipliers in the box fit exactly
    assert info["residual"] == pytest.approx(best, rel=1e-9)
    assert (lam == 1.0).sum() > 100 and (lam == 0.0).sum() > 100  # both bounds are active
    # the optimality conditions of the box, written out: no sample would lower the residual
    r = a @ lam.numpy() - b
    grad = a.T @ r
    scale = 1e-7 * np.linalg.norm(a, axis=0) * np.linalg.norm(r)
    lo, hi = lam.numpy() == 0.0, lam.numpy() == 1.0
    free = ~lo & ~hi
    assert (grad[lo] >= -scale[lo]).all() and (grad[hi] <= scale[hi]).all()
    np.testing.assert_allclose(grad[free], 0.0, atol=1e-7 * np.linalg.norm(r) * np.abs(a).max())


@pytest.mark.parametrize("upper", [0.05, 0.3, 3.0])
def test_working_set_bvls_matches_lsq_linear_with_many_columns(rng, upper):
    from kktexplain.kkt import working_set_bvls

    # more columns than rows (the sketched case) and a sparse optimum; add=8 forces many rounds
    a = torch.randn(30, 300, generator=rng, dtype=torch.float64)
    b = a[:, :20] @ torch.rand(20, generator=rng, dtype=torch.float64) * 2 + 0.5 * torch.randn(
        30, generator=rng, dtype=torch.float64
    )
    x, info = working_set_bvls(a, b, upper, add=8)
    assert info["converged"] and info["n_violations"] == 0 and info["rounds"] > 2
    ref = lsq_linear(a.numpy(), b.numpy(), bounds=(0.0, upper), method="bvls", tol=1e-12)
    r_ours = np.linalg.norm(a.numpy() @ x.numpy() - b.numpy())
    assert r_ours == pytest.approx(np.linalg.norm(ref.fun), rel=1e-9)
    assert x.min() >= 0.0 and x.max() <= upper
    assert (x.numpy() == upper).any() or upper == 3.0  # small boxes are active
    # fewer columns than rows (the unsketched case): the optimum is unique, so x itself matches
    tall = torch.randn(120, 60, generator=rng, dtype=torch.float64)
    tb = tall @ (2 * torch.rand(60, generator=rng, dtype=torch.float64) - 0.5)
    x2, info2 = working_set_bvls(tall, tb, upper, add=8)
    ref2 = lsq_linear(tall.numpy(), tb.numpy(), bounds=(0.0, upper), method="bvls", tol=1e-12)
    assert info2["converged"]
    np.testing.assert_allclose(x2.numpy(), ref2.x, atol=1e-8)
    with pytest.raises(ValueError, match="upper must be positive"):
        working_set_bvls(a, b, 0.0)


def test_bounded_solve_shows_a_progress_bar_only_when_asked(rng, capsys):
    g = torch.randn(200, 10, generator=rng, dtype=torch.float64)
    t = -(3.0 * torch.rand(200, generator=rng, dtype=torch.float64) @ g)
    quiet, _ = solve_multipliers(g, t, upper=0.5)
    assert "bounded least squares" not in capsys.readouterr().err
    shown, _ = solve_multipliers(g, t, upper=0.5, progress=True)
    assert "bounded least squares" in capsys.readouterr().err
    assert torch.equal(quiet, shown)


def test_support_and_ranking(tiny64, rng):
    x = torch.randn(15, 3, generator=rng, dtype=torch.float64)
    y = torch.randint(3, (15,), generator=rng)
    sel = DeepSupportVectors(progress=False).attribute(tiny64, candidates=x, labels=y)
    sel.lambdas = torch.tensor([0.0, 2.0, 0.5, 0.0, 3.0] + [0.0] * 10, dtype=torch.float64)
    assert sel.support.nonzero().flatten().tolist() == [1, 2, 4]
    assert sel.ranking[:3].tolist() == [4, 1, 2]


def test_ridge_picks_the_uniform_solution_among_exact_ones(rng):
    """More samples than dimensions: many λ fit exactly. With theta* = -c G^T 1 the ridge towards
    the best single multiplier c returns c * 1, where the exact solver returns a sparse vertex."""
    g = torch.randn(40, 6, generator=rng, dtype=torch.float64)
    target = -2.5 * g.sum(0)
    lam, info = solve_multipliers(g, target, ridge=1e-3)
    assert info["ridge_center"] == pytest.approx(2.5)
    torch.testing.assert_close(lam, torch.full((40,), 2.5, dtype=torch.float64), atol=1e-6, rtol=0)
    sparse, _ = solve_multipliers(g, target)
    assert int((sparse > 0).sum()) <= 6
    # off the exact case, the ridge trades residual for closeness to the centre
    target2 = target + torch.randn(6, generator=rng, dtype=torch.float64)
    lam2, info2 = solve_multipliers(g, target2, ridge=1e-2)
    exact2, info_exact = solve_multipliers(g, target2)
    c = info2["ridge_center"]
    assert (lam2 >= 0).all()
    assert (lam2 - c).norm() < (exact2 - c).norm()
    assert info2["residual"] >= info_exact["residual"] - 1e-9
    # with a box: the bounded ridge problem, written out as box-constrained least squares
    from kktexplain.kkt._nnls import _spectral_norm_sq

    upper = float(lam2.median())
    lam3, info3 = solve_multipliers(g, target2, ridge=1e-2, upper=upper)
    a, b = g.numpy().T, -target2.numpy()
    w = np.sqrt(1e-2 * _spectral_norm_sq(torch.from_numpy(a)))
    aug = np.vstack([a, w * np.eye(40)])
    ref = lsq_linear(aug, np.concatenate([b, w * np.full(40, info3["ridge_center"])]), bounds=(0, upper))
    assert (ref.x > upper - 1e-9).sum() >= 5 and (ref.x < upper - 1e-3).sum() >= 5  # the box is active
    np.testing.assert_allclose(lam3.numpy(), ref.x, atol=1e-5)


@pytest.mark.parametrize("kind", ["count", "kronecker"])
@pytest.mark.parametrize("world", [2, 3, 8])  # 7 rows: uneven shards; 8 processes leave one empty
def test_sharded_gradients_are_every_process_rows_gathered_in_order(tiny64, rng, monkeypatch, world, kind):
    # one process of a `world`-process group, faked: the others' shards (padded with NaN) come
    # from the unsharded reference, this process's shard from gather_gradients itself
    import torch.distributed as dist

    from kktexplain._gather import gather_gradients
    from kktexplain._select import _world_size
    from kktexplain.kkt import FunctionalModel, KKTObjective, KroneckerSketch, collect_gradients

    fmodel = FunctionalModel(tiny64)
    x = torch.randn(7, 3, generator=rng, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    loss_fn = KKTObjective().loss_fn()
    sketch = (
        CountSketch(fmodel.num_params, 8, seed=1) if kind == "count" else KroneckerSketch(fmodel, 8, seed=1)
    )
    width = sketch.out_features
    ref, ref_logits = collect_gradients(fmodel, x, y, loss_fn, 2, sketch, return_logits=True)
    assert (ref_logits is None) == (kind == "count")
    if ref_logits is not None:
        torch.testing.assert_close(ref_logits, tiny64(x), rtol=0, atol=1e-12)
    per = -(-7 // world)
    assert _world_size() == 1
    for rank in range(world):
        gathered = []

        def all_gather(parts, padded, rank=rank, gathered=gathered):
            # the gradients (width columns), then, with the Kronecker sketch, the logits (3)
            full = ref if len(gathered) == 0 else ref_logits
            assert (
                len(parts) == world and padded.shape == (per, full.shape[1]) and padded.device.type == "cpu"
            )
            for r, part in enumerate(parts):
                part.fill_(float("nan"))
                if r == rank:
                    part.copy_(padded)
                else:
                    rows = full[r * per : (r + 1) * per]
                    part[: len(rows)] = rows
            gathered.append(padded.clone())

        for name, value in {
            "is_initialized": lambda: True,
            "get_world_size": lambda: world,
            "get_rank": lambda rank=rank: rank,
            "get_backend": lambda: "gloo",
            "all_gather": all_gather,
        }.items():
            monkeypatch.setattr(dist, name, value, raising=False)
        assert _world_size() == world
        out, logits = gather_gradients(fmodel, x, y, loss_fn, 2, sketch, False)
        assert out.shape == (7, width) and len(gathered) == (1 if kind == "count" else 2)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        if kind == "count":
            assert logits is None
        else:
            torch.testing.assert_close(logits, ref_logits, rtol=0, atol=1e-12)
        mine = ref[rank * per : (rank + 1) * per]
        torch.testing.assert_close(gathered[0][: len(mine)], mine, rtol=0, atol=1e-12)
        assert not gathered[0][len(mine) :].any()  # the padding of a short shard is zeros


def test_selection_with_maximize_sum_takes_the_largest_sum_of_the_exact_solutions(tiny64, rng, capsys):
    # 60 candidates, 38 parameters: the exact solutions in the box form a polytope;
    # maximize_sum=True takes the one of largest sum (at least the planted one's)
    x = torch.randn(60, 3, generator=rng, dtype=torch.float64)
    y = torch.arange(60) % 3
    star = torch.rand(60, generator=rng, dtype=torch.float64) + 0.5
    shift = star @ _literal_grads(tiny64, x, y)
    ref, offset = {}, 0
    for name, p in tiny64.named_parameters():
        ref[name] = p.detach() + shift[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    settings = {"lambda_max": 2.0}  # the box keeps the largest sum finite
    plain = DeepSupportVectors(progress=False, **settings).attribute(
        tiny64, candidates=x, labels=y, reference=ref
    )
    wide = DeepSupportVectors(progress=True, maximize_sum=True, **settings).attribute(
        tiny64, candidates=x, labels=y, reference=ref
    )
    err = capsys.readouterr().err
    assert "per-sample grads" in err  # progress=True shows the bars
    assert "bounded least squares" in err  # the explainer's progress reaches the bounded solver
    assert wide.settings["solver"]["solver"].endswith("+linprog[max sum]")
    assert "linprog" not in plain.settings["solver"]["solver"]
    assert wide.kkt.stationarity["rel_l2"] < 1e-5 and plain.kkt.stationarity["rel_l2"] < 1e-5
    assert wide.lambdas.max() <= 2.0 and wide.lambdas.sum() >= star.sum() - 1e-4
    assert wide.lambdas.sum() > plain.lambdas.sum() + 1.0
    names = [n for n, _ in tiny64.named_parameters()]
    assert wide.settings["param_names"] == plain.settings["param_names"] == names


def _literal_fista(a, b, upper, iterations):
    """FISTA with gradient restart (Beck & Teboulle 2009), written out in float64 numpy."""
    a, b = a.numpy(), b.numpy()
    v = np.random.default_rng(0).standard_normal(a.shape[1])
    lip = np.linalg.norm(a, 2) ** 2 * 1.01  # the step the solver uses (it estimates ||a||_2)
    hi = np.inf if upper is None else upper
    x = np.zeros(a.shape[1])
    z, t = x.copy(), 1.0
    for _ in range(iterations):
        grad = a.T @ (a @ z - b)
        x_new = np.clip(z - grad / lip, 0.0, hi)
        if grad @ (x_new - x) > 0:
            t = 1.0
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        z = x_new + (t - 1) / t_new * (x_new - x)
        x, t = x_new, t_new
    del v
    return x


@pytest.mark.parametrize("upper", [None, 0.3])
def test_projected_fista_takes_the_literal_accelerated_steps(rng, upper):
    from kktexplain.kkt._nnls import projected_fista

    a = torch.randn(15, 40, generator=rng, dtype=torch.float64)
    b = torch.randn(15, generator=rng, dtype=torch.float64)
    for iterations in (1, 3, 12):
        x, its = projected_fista(a, b, upper, max_iter=iterations, tol=0.0)
        assert its == iterations
        # the power-iteration estimate of ||a||_2 is converged to ~1e-12 on this size
        np.testing.assert_allclose(x.numpy(), _literal_fista(a, b, upper, iterations), rtol=1e-7, atol=1e-9)


def _sparse_cone_problem(rng):
    """b = a x* with x* > 0 on 8 of 300 columns, entries in (0.1, 0.9): x* is the NNLS optimum."""
    a = torch.randn(40, 300, generator=rng, dtype=torch.float64)
    x_star = torch.zeros(300, dtype=torch.float64)
    support = torch.randperm(300, generator=rng)[:8]
    x_star[support] = 0.1 + 0.8 * torch.rand(8, generator=rng, dtype=torch.float64)
    return a, a @ x_star, x_star


def test_working_set_warm_start_at_the_solution_takes_one_round(rng):
    from kktexplain.kkt import working_set_nnls

    a, b, x_star = _sparse_cone_problem(rng)
    cold, cold_info = working_set_nnls(a, b)
    warm, warm_info = working_set_nnls(a, b, start=x_star)  # entries below 1 seed the working set
    assert warm_info == {"rounds": 1, "converged": True, "n_violations": 0}
    np.testing.assert_allclose(warm.numpy(), x_star.numpy(), atol=1e-9)
    assert (a @ cold - b).norm() <= 1e-8 * b.norm()  # also exact (b has many exact representations)
    assert cold_info["rounds"] > 1  # the cold start needs more: the warm start is what saved them


def test_working_set_stops_after_max_rounds(rng):
    from kktexplain.kkt import working_set_nnls

    a, b, _ = _sparse_cone_problem(rng)
    full = working_set_nnls(a, b)[1]["rounds"]
    assert full >= 2
    for cap in range(1, full):
        x, info = working_set_nnls(a, b, max_rounds=cap)
        assert info["rounds"] == cap and not info["converged"] and info["n_violations"] > 0
        assert x.min() >= 0


def test_bounded_solver_progress_bar_counts_rounds_and_reports_violations(rng, monkeypatch):
    import kktexplain.kkt._nnls as selection

    bars = []

    class Bar:
        def __init__(self, *args, **kwargs):
            self.n, self.postfix = 0, []
            bars.append(self)

        def update(self, k=1):
            self.n += k

        def set_postfix(self, **kwargs):
            self.postfix.append(kwargs)

        def close(self):
            pass

    monkeypatch.setattr(selection, "tqdm", Bar)
    a = torch.randn(30, 400, generator=rng, dtype=torch.float64)
    b = torch.randn(30, generator=rng, dtype=torch.float64) * 2
    x, info = selection.working_set_bvls(a, b, 0.2, add=16, progress=True)
    assert info["converged"] and info["rounds"] > 1
    (bar,) = bars
    # one tick per round, except a last round that fits b exactly (it stops before the tick)
    exact = float((a @ x - b).norm()) <= 1e-10 * float(b.norm())
    assert bar.n == len(bar.postfix) == info["rounds"] - exact
    assert all(isinstance(p["violations"], int) and p["violations"] >= 0 for p in bar.postfix)
    assert all(p["violations"] > 0 for p in bar.postfix[: info["rounds"] - 1])
    assert [p["working_set"] for p in bar.postfix][0] <= 16 + 30


def test_selection_measures_stationarity_with_the_objective_loss(tiny64, rng):
    from kktexplain.kkt import FunctionalModel, KKTObjective, kkt_residuals, multiclass_hinge

    x = torch.randn(24, 3, generator=rng, dtype=torch.float64)
    y = torch.randint(3, (24,), generator=rng)
    objective = KKTObjective(loss="hinge", hinge_margin=2.0)
    sel = DeepSupportVectors(objective=objective, progress=False).attribute(tiny64, candidates=x, labels=y)
    # literal: the multipliers weight the per-sample gradients of the hinge loss
    cols = []
    for i in range(24):
        tiny64.zero_grad()
        multiclass_hinge(tiny64(x[i : i + 1]), y[i : i + 1], margin=2.0).sum().backward()
        cols.append(torch.cat([p.grad.flatten() for p in tiny64.parameters()]))
    tiny64.zero_grad(set_to_none=True)
    theta = torch.cat([p.detach().flatten() for p in tiny64.parameters()])
    g = -(sel.lambdas @ torch.stack(cols))
    assert sel.kkt.stationarity["cosine"] == pytest.approx(
        float(torch.cosine_similarity(theta, g, 0)), abs=1e-6
    )
    ce = kkt_residuals(FunctionalModel(tiny64), x, y, sel.lambdas)
    assert abs(ce.stationarity["cosine"] - sel.kkt.stationarity["cosine"]) > 1e-3  # not cross-entropy's


def test_the_bounded_solver_reports_its_work(rng):
    from kktexplain.kkt import working_set_bvls

    a = torch.randn(30, 400, generator=rng, dtype=torch.float64)
    b = torch.randn(30, generator=rng, dtype=torch.float64) * 2
    _, info = working_set_bvls(a, b, 0.2, add=16)
    assert set(info) == {"rounds", "converged", "n_violations", "bvls_iterations", "working_set"}
    assert info["bvls_iterations"] >= info["rounds"] >= 1 and 0 < info["working_set"] <= 400


def test_residuals_of_a_sparse_solution_skip_the_zero_rows_and_agree():
    """Over many chunks and a sparse λ, the backward runs on the support only: same numbers."""
    from kktexplain.kkt import FunctionalModel, kkt_residuals

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()
    fmodel = FunctionalModel(model)
    x = torch.randn(90, 5, dtype=torch.float64)
    y = torch.arange(90) % 3
    lam = torch.zeros(90, dtype=torch.float64)
    lam[[3, 17, 40, 41, 88]] = torch.tensor([0.5, 1.0, 2.0, 0.1, 0.7], dtype=torch.float64)
    sparse = kkt_residuals(fmodel, x, y, lam, chunk_size=8)  # 12 chunks: the support-only path
    dense = kkt_residuals(fmodel, x, y, lam, chunk_size=128)  # one chunk: every row backpropagated
    g = sum(lam[i] * torch.cat([t.flatten() for t in _grad_of(fmodel, x[i], y[i])]) for i in range(90))
    theta = torch.cat([t.flatten() for t in fmodel.target.values()])
    literal = (-(g @ theta) / (g.norm() * theta.norm())).item()
    given = kkt_residuals(fmodel, x, y, lam, chunk_size=8, logits=model(x))  # no forward of its own
    for r in (sparse, dense, given):
        assert r.stationarity["cosine"] == pytest.approx(literal, abs=1e-12)
    torch.testing.assert_close(given.margin, dense.margin, rtol=1e-12, atol=1e-12)
    for field in ("margin", "entropy", "primal_loss"):
        torch.testing.assert_close(getattr(sparse, field), getattr(dense, field), rtol=1e-12, atol=1e-12)


def _grad_of(fmodel, x, y):
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in fmodel.theta.items()}
    loss = torch.nn.functional.cross_entropy(fmodel(x[None], theta), y[None])
    return torch.autograd.grad(loss, list(theta.values()))


def test_many_columns_are_solved_on_the_qr_factor_with_the_same_minimiser():
    """N >= 200 columns and P >= N rows: Lawson-Hanson on R (A = QR) gives scipy's full solution."""
    from kktexplain.kkt._selection import _QR_MIN_COLUMNS

    gen = torch.Generator().manual_seed(0)
    n, p = _QR_MIN_COLUMNS + 40, 3 * _QR_MIN_COLUMNS + 200
    grads = torch.randn(n, p, generator=gen, dtype=torch.float64)
    target = -(grads[:30].T @ torch.rand(30, generator=gen, dtype=torch.float64)) + 0.5 * torch.randn(
        p, generator=gen, dtype=torch.float64
    )
    lam, info = solve_multipliers(grads, target)
    ref, rnorm = nnls(grads.T.numpy(), -target.numpy(), maxiter=50 * n)
    assert info["solver"] == "blocked_qr+nnls"
    torch.testing.assert_close(lam, torch.from_numpy(ref), rtol=1e-8, atol=1e-10)
    assert info["residual"] == pytest.approx(rnorm / float(target.norm()), rel=1e-9)
    assert 0 < int((lam > 0).sum()) < n  # a genuinely constrained problem


def test_a_gradient_matrix_that_cannot_fit_is_refused_before_any_work(tiny64, rng, monkeypatch):
    import kktexplain._gather as gather_module
    from kktexplain._gather import check_gradient_memory

    check_gradient_memory(1000, 1000, torch.float32, available=10**7)  # 4 MB of 10: fine
    with pytest.raises(ValueError, match=r"3\.7 GiB.*projection_dim=.*offload_dir="):
        check_gradient_memory(1_000_000, 1000, torch.float32, available=2**30)
    # through selection: the check reads the system's available memory
    monkeypatch.setattr(gather_module, "_available_bytes", lambda: 100)
    x = torch.randn(30, 3, generator=rng, dtype=torch.float64)
    y = torch.arange(30) % 3
    with pytest.raises(ValueError, match="per-sample gradients of 30 candidates"):
        DeepSupportVectors(progress=False).attribute(tiny64, candidates=x, labels=y)
    monkeypatch.setattr(gather_module, "_available_bytes", lambda: None)  # unknown: no check
    assert len(DeepSupportVectors(progress=False).attribute(tiny64, candidates=x, labels=y)) == 30


def test_cancelling_terms_are_reported_and_gradients_below_resolution_are_zero():
    """One input under two labels makes gradients exactly dependent (sum_c p_c grad L(x, c) = 0):
    the fit cannot tell λ along its copies apart, and in float32 exact NNLS set λ ~ 2e6 from
    rounding (43 in float64), silently. Such a fit, whose largest term λ_j ||g_j|| is so large
    that float32 rounds it by more than 1e-3 ||theta*||, is now reported; the float64 model's
    fit is not."""
    torch.manual_seed(0)
    x = torch.randn(60, 4)
    y = (x[:, 0] + 0.3 * torch.randn(60) > 0).long()
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    opt = torch.optim.Adam(model.parameters(), 1e-2, weight_decay=1e-3)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        p = torch.softmax(model(x), 1)[:, 1]
    dup = (p - 0.5).abs().argsort()[:10]  # the 10 least certain points, again with the other label
    xd, yd = torch.cat([x, x[dup]]), torch.cat([y, 1 - y[dup]])
    with pytest.warns(UserWarning, match=r"terms cancel each other beyond the gradients' precision"):
        sel = DeepSupportVectors(progress=False).attribute(model, candidates=xd, labels=yd)
    assert sel.settings["solver"]["largest_term"] > 1e-3 / torch.finfo(torch.float32).eps
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float64 resolves it: no report
        sel64 = DeepSupportVectors(progress=False).attribute(
            copy.deepcopy(model).double(), candidates=xd, labels=yd
        )
    assert sel64.settings["solver"]["largest_term"] < 10 and float(sel64.lambdas.max()) < 100
    # a gradient below float32's resolution (norm ~1e-38) counts as zero: no λ that overflows
    g = torch.zeros(3, 2)
    g[0, 0], g[1, 1], g[2, 0] = 1.0, 1.0, 1e-38
    lam, info = solve_multipliers(g, torch.tensor([-1.0, -2.0]))
    assert torch.isfinite(lam).all() and lam[2] == 0 and info["n_zero_gradient"] == 1
