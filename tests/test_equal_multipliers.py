"""Selection with one shared multiplier (``multipliers="equal"``) and the two-stage refit
(``refit_dim``), against float64 loops."""

import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain import DeepSupportVectors
from kktexplain.attr import SupportVectorInfluence
from kktexplain.kkt import FunctionalModel, cross_entropy, kkt_residuals


@pytest.fixture
def problem(tiny64):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64)
    y = (x @ torch.randn(3, 3, generator=gen, dtype=torch.float64)).argmax(1)
    # trained with weight decay towards a stationary point, where a shared multiplier fits
    opt = torch.optim.Adam(tiny64.parameters(), lr=0.05, weight_decay=1e-2)
    for _ in range(100):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(tiny64(x), y).backward()
        opt.step()
    for p in tiny64.parameters():
        p.grad = None
    return tiny64, x, y


def _loop_multiplier(model, x, y):
    """argmin_c ||theta + c sum_i grad L_i|| from one autograd call per sample, in float64."""
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for i in range(len(x)):
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        for t, g in zip(total, torch.autograd.grad(loss, params)):
            t += g
    g = torch.cat([t.flatten() for t in total])
    theta = torch.cat([p.detach().flatten() for p in params])
    return max(float(-(theta @ g) / (g @ g)), 0.0), theta, g


def test_equal_multiplier_matches_a_per_sample_loop(problem):
    model, x, y = problem
    c, theta, g = _loop_multiplier(model, x, y)
    before = model_snapshot(model)
    sel = DeepSupportVectors(multipliers="equal", chunk_size=7, progress=False).attribute(
        model, candidates=x, labels=y
    )
    assert_same_snapshot(before, model_snapshot(model))
    assert c > 0
    torch.testing.assert_close(sel.lambdas, torch.full((40,), c, dtype=torch.float64), rtol=1e-10, atol=0)
    assert sel.settings["solver"]["solver"] == "equal"
    assert sel.settings["multipliers"] == "equal"
    # the residuals are those of kkt_residuals at the same multipliers (one pass, same values)
    ref = kkt_residuals(FunctionalModel(model), x, y, sel.lambdas, cross_entropy, chunk_size=5)
    for key in ("cosine", "rel_l1", "rel_l2", "l1", "g_norm_ratio"):
        assert sel.kkt.stationarity[key] == pytest.approx(ref.stationarity[key], rel=1e-9, abs=1e-12)
    cos = float(-(theta @ g) / (theta.norm() * g.norm()))
    assert sel.kkt.stationarity["cosine"] == pytest.approx(cos, rel=1e-9)
    torch.testing.assert_close(sel.kkt.margin, ref.margin)
    for k in sel.kkt.per_layer_cosine:
        assert sel.kkt.per_layer_cosine[k] == pytest.approx(ref.per_layer_cosine[k], rel=1e-9, abs=1e-12)


def test_equal_multiplier_respects_lambda_max_and_the_scope(problem):
    model, x, y = problem
    c, _, _ = _loop_multiplier(model, x, y)
    sel = DeepSupportVectors(multipliers="equal", lambda_max=c / 2, progress=False).attribute(
        model, candidates=x, labels=y
    )
    torch.testing.assert_close(sel.lambdas, torch.full((40,), c / 2, dtype=torch.float64))
    ref = kkt_residuals(FunctionalModel(model), x, y, sel.lambdas, cross_entropy)
    assert sel.kkt.stationarity["rel_l2"] == pytest.approx(ref.stationarity["rel_l2"], rel=1e-9)
    last = DeepSupportVectors(param_names=["fc2.weight", "fc2.bias"], multipliers="equal", progress=False)
    sel = last.attribute(model, candidates=x, labels=y)
    assert set(sel.kkt.per_layer_cosine) == {"fc2.weight", "fc2.bias"}


def test_equal_multipliers_give_a_gradient_norm_self_influence(problem):
    """With one shared c the self-influence is c ||grad L_j||² for every sample (TracIn's order)."""
    model, x, y = problem
    sel = DeepSupportVectors(multipliers="equal", progress=False).attribute(model, candidates=x, labels=y)
    si = SupportVectorInfluence(model, sel).self_influence()
    params = list(model.parameters())
    ref = []
    for i in range(len(x)):
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        ref.append(sum(g.pow(2).sum() for g in torch.autograd.grad(loss, params)))
    torch.testing.assert_close(si, sel.lambdas * torch.stack(ref), rtol=1e-9, atol=1e-14)


def test_bad_multipliers_setting_is_named(problem):
    model, x, y = problem
    with pytest.raises(ValueError, match="multipliers"):
        DeepSupportVectors(multipliers="nnls", progress=False).attribute(model, candidates=x, labels=y)


def test_equal_multipliers_of_a_fitted_result_keep_its_scope_and_rows(problem):
    from kktexplain.attr import equal_multipliers

    model, x, y = problem
    fit = DeepSupportVectors(param_names=["fc2.weight", "fc2.bias"], progress=False).attribute(
        model, candidates=x, labels=y
    )
    fit.indices = torch.arange(100, 140)
    before = model_snapshot(model)
    eq = equal_multipliers(model, fit)
    assert_same_snapshot(before, model_snapshot(model))
    assert eq.settings["param_names"] == ["fc2.weight", "fc2.bias"]
    assert eq.settings["multipliers"] == "equal"
    assert torch.equal(eq.inputs, fit.inputs) and torch.equal(eq.indices, fit.indices)
    assert len(set(eq.lambdas.tolist())) == 1 and float(eq.lambdas[0]) > 0
    # the fitted vertex leaves samples at zero; the equal multipliers rank every sample
    assert (fit.lambdas == 0).any()
    assert (SupportVectorInfluence(model, eq).self_influence() > 0).all()
    with pytest.raises(TypeError, match="support"):
        equal_multipliers(model, "not a result")


def test_refit_resolves_the_sketched_support_exactly(problem):
    """refit_dim >= P: the support's λ are the exact NNLS restricted to it (float64 loop)."""
    from scipy.optimize import nnls

    model, x, y = problem
    two = DeepSupportVectors(projection_dim=8, refit_dim=1000, progress=False).attribute(
        model, candidates=x, labels=y
    )
    one = DeepSupportVectors(projection_dim=8, progress=False).attribute(model, candidates=x, labels=y)
    support = torch.nonzero(one.lambdas > 0).flatten()
    assert two.settings["solver"]["refit"]["n_rows"] == len(support)
    assert two.settings["solver"]["refit"]["dim"] is None  # 1000 >= 38 parameters: exact
    # the largest term (read by the cancelling-terms warning) is that of the λ returned
    solver = two.settings["solver"]
    assert solver["largest_term"] == solver["refit"]["largest_term"]
    assert solver["screen_largest_term"] == one.settings["solver"]["largest_term"]
    params = list(model.parameters())
    rows = []
    for i in support.tolist():
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        rows.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
    theta = torch.cat([p.detach().flatten() for p in params])
    ref, _ = nnls(torch.stack(rows).T.numpy(), -theta.numpy())
    want = torch.zeros(len(x), dtype=torch.float64)
    want[support] = torch.from_numpy(ref)
    torch.testing.assert_close(two.lambdas, want, rtol=1e-6, atol=1e-9)
    # the refit fits theta* at least as well as the narrow sketch's multipliers on the same rows
    assert two.kkt.stationarity["rel_l2"] <= one.kkt.stationarity["rel_l2"] + 1e-12


def test_refit_dim_is_validated(problem):
    model, x, y = problem
    with pytest.raises(ValueError, match="projection_dim"):
        DeepSupportVectors(refit_dim=64, progress=False).attribute(model, candidates=x, labels=y)
    for refit, match in ((8, "refit_dim must exceed"), (-1, "refit_dim")):
        explainer = DeepSupportVectors(projection_dim=16, refit_dim=refit, progress=False)
        with pytest.raises(ValueError, match=match):
            explainer.attribute(model, candidates=x, labels=y)


def test_equal_selection_records_the_gradient_norms_and_self_influence_reads_them(problem, tmp_path):
    """Linear scope: one pass gives every ||grad L_j||² (float64 loop); no second pass after."""
    from kktexplain import DSVResult

    model, x, y = problem
    sel = DeepSupportVectors(multipliers="equal", chunk_size=7, progress=False).attribute(
        model, candidates=x, labels=y
    )
    params = list(model.parameters())
    ref = []
    for i in range(len(x)):
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        ref.append(sum(g.pow(2).sum() for g in torch.autograd.grad(loss, params)))
    torch.testing.assert_close(sel.kkt.grad_sq_norm, torch.stack(ref), rtol=1e-10, atol=1e-14)
    svi = SupportVectorInfluence(model, sel)
    si = svi.self_influence()
    assert svi.expansion._cache is None  # read from the selection, no pass
    torch.testing.assert_close(si, sel.lambdas * torch.stack(ref), rtol=1e-10, atol=1e-14)
    # another scope or loss than the selection's: computed, not read
    other = SupportVectorInfluence(model, sel, param_names=["fc2.weight"])
    other.self_influence()
    # computed by a pass that keeps only the norms: no (S, P) cache of gradients
    assert other.expansion._sq_norms is not None and other.expansion._cache is None
    # the norms survive a save and load
    sel.save(tmp_path / "sel.npz")
    back = DSVResult.load(tmp_path / "sel.npz")
    torch.testing.assert_close(back.kkt.grad_sq_norm, sel.kkt.grad_sq_norm, rtol=0, atol=0)


def test_equal_selection_outside_linear_scopes_records_no_norms():
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 3)).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(9, 1, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(3, (9,), generator=gen)
    sel = DeepSupportVectors(multipliers="equal", progress=False).attribute(model, candidates=x, labels=y)
    assert sel.kkt.grad_sq_norm is None
    svi = SupportVectorInfluence(model, sel)
    assert svi.self_influence().shape == (9,)
    assert svi.expansion._sq_norms is not None  # computed by the expansion's own pass
    assert svi.expansion._cache is None  # which keeps only the norms


def test_equal_selection_keeps_memory_bounded_by_falling_back_to_the_summed_pass(problem, monkeypatch):
    """Too many parameters for 16 formed rows per chunk: the summed backward, same multiplier."""
    import kktexplain._equal as equal_module

    model, x, y = problem
    fast = DeepSupportVectors(multipliers="equal", progress=False).attribute(model, candidates=x, labels=y)
    monkeypatch.setattr(equal_module, "CHUNK_ENTRIES", 15 * 38)  # 38 parameters: 15 rows
    slow = DeepSupportVectors(multipliers="equal", progress=False).attribute(model, candidates=x, labels=y)
    assert fast.kkt.grad_sq_norm is not None and slow.kkt.grad_sq_norm is None
    torch.testing.assert_close(slow.lambdas, fast.lambdas, rtol=1e-12, atol=0)


def test_equal_selection_with_forward_args_records_no_norms(problem):
    """A reader cannot tell which extra arguments a result was selected with: nothing recorded."""

    class Scaled(torch.nn.Module):
        def __init__(self, body):
            super().__init__()
            self.body = body

        def forward(self, x, temperature):
            return self.body(x) / temperature

    model, x, y = problem
    scaled = Scaled(model)
    sel = DeepSupportVectors(multipliers="equal", progress=False).attribute(
        scaled, candidates=x, labels=y, additional_forward_args=2.0
    )
    assert sel.kkt.grad_sq_norm is None
    plain = DeepSupportVectors(multipliers="equal", progress=False).attribute(model, candidates=x, labels=y)
    assert plain.kkt.grad_sq_norm is not None


@pytest.mark.parametrize("multipliers", ["equal", "fit"])
def test_selection_passes_honour_chunk_size(problem, multipliers):
    """Every forward of a selection sees at most ``chunk_size`` samples (the summed and the
    residual passes included: they were widened to 256, slower on the CPU where activations
    leave the cache, and above the memory bound the user asked for)."""
    model, x, y = problem
    seen = []
    handle = model.register_forward_hook(lambda module, args, out: seen.append(len(args[0])))
    try:
        DeepSupportVectors(multipliers=multipliers, chunk_size=7, progress=False).attribute(
            model, candidates=x, labels=y
        )
    finally:
        handle.remove()
    # 8: the scope's probe on candidates[:8] (a fixed, tiny forward), 2 the model checks' probe
    assert seen and max(seen) <= 8
    assert seen.count(7) >= len(x) // 7  # the data went through in chunks of 7


@pytest.mark.parametrize("positions", [1, 3])
def test_equal_selection_forms_the_rows_of_its_first_chunk_only(positions, monkeypatch):
    """Stress round 9C: every chunk formed its (rows, P) gradients to read their squared norms
    and sum (an MLP of 269k parameters: 7.7 s and +880 MB where a forward and backward take
    0.04 s). After the first chunk (which checks the factored path) the norms come from the
    layers' factors, for inputs of one position and of several (a Linear over a sequence);
    against a float64 per-sample loop."""
    from kktexplain.kkt._kronecker import KroneckerSketch

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 5), nn.Linear(5, 3)

        def forward(self, x):  # (N, positions, 4) -> (N, 3)
            return self.b(torch.tanh(self.a(x))).mean(1)

    torch.manual_seed(0)
    model = Seq().double()
    x = torch.randn(30, positions, 4, dtype=torch.float64)
    y = torch.arange(30) % 3
    formed = []
    real = KroneckerSketch.per_sample_grads

    def counting(self, fmodel, inputs, *args, **kwargs):
        formed.append(len(inputs))
        return real(self, fmodel, inputs, *args, **kwargs)

    monkeypatch.setattr(KroneckerSketch, "per_sample_grads", counting)
    sel = DeepSupportVectors(multipliers="equal", chunk_size=8, progress=False).attribute(
        model, candidates=x, labels=y
    )
    assert formed == [8]  # the first chunk only
    params = list(model.parameters())
    ref, total = [], [torch.zeros_like(p) for p in params]
    for i in range(len(x)):
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        g = torch.autograd.grad(loss, params)
        ref.append(sum(t.pow(2).sum() for t in g))
        for t, gi in zip(total, g):
            t += gi
    torch.testing.assert_close(sel.kkt.grad_sq_norm, torch.stack(ref), rtol=1e-10, atol=1e-14)
    g = torch.cat([t.flatten() for t in total])
    theta = torch.cat([p.detach().flatten() for p in params])
    c = max(float(-(theta @ g) / (g @ g)), 0.0)
    torch.testing.assert_close(sel.lambdas, torch.full((30,), c, dtype=torch.float64), rtol=1e-10, atol=0)


def test_a_refit_of_an_all_zero_screen_does_not_crash():
    """theta* = 0: the screen's λ are all 0 and the refit solves nothing; its largest term was
    None and the cancelling-terms check crashed on it."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    x, y = torch.randn(10, 3), torch.arange(10) % 2
    r = DeepSupportVectors(progress=False, projection_dim=4, refit_dim=12).attribute(
        model, candidates=x, labels=y
    )
    assert float(r.lambdas.abs().max()) == 0.0
