"""Selection (fixed inputs, solved multipliers) against literal references."""

import numpy as np
import pytest
import torch
from scipy.optimize import nnls

from kktexplain import DeepSupportVectors
from kktexplain.kkt import CountSketch, cross_entropy, solve_multipliers


def test_solve_multipliers_matches_scipy_nnls(rng):
    g = torch.randn(5, 12, generator=rng, dtype=torch.float64)  # overdetermined: unique optimum
    t = torch.randn(12, generator=rng, dtype=torch.float64)
    lam, info = solve_multipliers(g, t)
    ref, _ = nnls(g.numpy().T, -t.numpy())
    np.testing.assert_allclose(lam.numpy(), ref, atol=1e-8)
    assert info["residual"] == pytest.approx(np.linalg.norm(g.numpy().T @ ref + t.numpy()) / t.norm().item())


def test_solve_multipliers_box_and_zero_gradients(rng):
    g = torch.randn(6, 3, generator=rng, dtype=torch.float64)
    g[2] = 0.0
    t = -10 * g[:2].sum(0)
    lam, info = solve_multipliers(g, t, upper=1.0)
    assert lam.max() <= 1.0 and lam.min() >= 0.0 and lam[2] == 0.0
    assert info["n_zero_gradient"] == 1


def test_count_sketch_is_a_signed_bucket_sum(rng):
    sketch = CountSketch(10, 4, seed=3)
    x = torch.randn(2, 10, generator=rng, dtype=torch.float64)
    dense = torch.zeros(10, 4, dtype=torch.float64)
    dense[torch.arange(10), sketch.bucket] = sketch.sign.double()
    torch.testing.assert_close(sketch(x), x @ dense)
    with pytest.raises(ValueError, match="expected 10 features"):
        sketch(torch.zeros(3))


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


def test_selection_with_sketch_runs_and_needs_labels(tiny64, rng):
    x = torch.randn(30, 3, generator=rng, dtype=torch.float64)
    y = torch.randint(3, (30,), generator=rng)
    sel = DeepSupportVectors(progress=False, projection_dim=8).attribute(tiny64, candidates=x, labels=y)
    assert sel.settings["sketch_dim"] == 8 and (sel.lambdas >= 0).all()
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


def test_projected_fista_matches_nnls_and_box(rng):
    from kktexplain.kkt._selection import projected_fista

    a = torch.randn(40, 15, generator=rng, dtype=torch.float64)
    b = torch.randn(40, generator=rng, dtype=torch.float64)
    x, _ = projected_fista(a, b, max_iter=20000, tol=1e-14)
    ref, _ = nnls(a.numpy(), b.numpy())
    np.testing.assert_allclose(x.numpy(), ref, atol=1e-6)
    boxed, _ = projected_fista(a, b, upper=0.05, max_iter=5000, tol=1e-14)
    assert boxed.max() <= 0.05 and boxed.min() >= 0


def test_large_unbounded_problems_use_the_working_set(rng, monkeypatch):
    import kktexplain.kkt._selection as sel

    monkeypatch.setattr(sel, "_DIRECT_NNLS_MAX", 100)
    g = torch.randn(300, 40, generator=rng, dtype=torch.float64)  # 300 samples, 40 coordinates
    t = torch.randn(40, generator=rng, dtype=torch.float64)  # generic target: residual > 0
    lam, info = solve_multipliers(g, t)
    assert info["solver"] == "projected_fista+working_set_nnls" and info["converged"]
    ref, rnorm = nnls(g.numpy().T, -t.numpy())
    # the optimal residual is unique even where the multipliers are not
    assert info["residual"] == pytest.approx(rnorm / t.norm().item(), rel=1e-6)
    assert (lam > 0).sum() <= 40  # a basic solution: at most one multiplier per coordinate
    r = g.numpy().T @ lam.numpy() + t.numpy()
    assert (g.numpy() @ r).min() > -1e-8  # KKT of NNLS: no sample would lower the residual


def test_working_set_matches_nnls_when_unique(rng):
    from kktexplain.kkt import working_set_nnls

    a = torch.randn(60, 25, generator=rng, dtype=torch.float64)  # full column rank: unique
    b = torch.randn(60, generator=rng, dtype=torch.float64)
    x, info = working_set_nnls(a, b)
    ref, _ = nnls(a.numpy(), b.numpy())
    np.testing.assert_allclose(x.numpy(), ref, atol=1e-10)
    assert info["converged"]


def test_large_bounded_problems_use_fista(rng, monkeypatch):
    import kktexplain.kkt._selection as sel

    monkeypatch.setattr(sel, "_DIRECT_NNLS_MAX", 100)
    g = torch.randn(2500, 40, generator=rng, dtype=torch.float64)
    t = -(0.5 * torch.rand(2500, generator=rng, dtype=torch.float64) @ g)
    lam, info = solve_multipliers(g, t, upper=1.0)
    assert info["solver"] == "projected_fista" and info["residual"] < 1e-3 and lam.max() <= 1.0


def test_support_and_ranking(tiny64, rng):
    x = torch.randn(15, 3, generator=rng, dtype=torch.float64)
    y = torch.randint(3, (15,), generator=rng)
    sel = DeepSupportVectors(progress=False).attribute(tiny64, candidates=x, labels=y)
    assert torch.equal(sel.support, sel.lambdas > 0)
    lam = sel.lambdas[sel.ranking]
    assert (lam[:-1] >= lam[1:]).all()
