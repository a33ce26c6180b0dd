"""The exact λ step of synthesis (``lambda_solve_every``) against literal float64 references."""

import numpy as np
import pytest
import torch
from conftest import TinyMLP, assert_same_snapshot, model_snapshot
from scipy.optimize import lsq_linear, nnls

from kktexplain import DeepSupportVectors
from kktexplain._lambda_solve import exact_multipliers, set_multipliers_
from kktexplain._multipliers import Multipliers
from kktexplain._state import SynthesisConfig, init_state
from kktexplain.kkt import FunctionalModel, KKTObjective


def _literal_gradients(model, x, y, names=None):
    """Per-sample gradients of the cross-entropy, one autograd call per sample, float64."""
    params = dict(model.named_parameters())
    keep = list(params) if names is None else names
    rows = []
    for i in range(len(x)):
        loss = torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        g = torch.autograd.grad(loss, [params[k] for k in keep])
        rows.append(torch.cat([t.flatten() for t in g]))
    theta = torch.cat([params[k].detach().flatten() for k in keep])
    return torch.stack(rows).detach().numpy(), theta.numpy()


@pytest.mark.parametrize("names", [None, ["fc2.weight", "fc2.bias"]])
@pytest.mark.parametrize("upper", [None, 0.3])
def test_exact_multipliers_equal_a_literal_bounded_nnls(tiny64, names, upper):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (7,), generator=g)
    active = torch.ones(7, dtype=torch.bool)
    active[2] = False
    fmodel = FunctionalModel(tiny64, names)
    lam = exact_multipliers(fmodel, x, y, KKTObjective(), active, upper, chunk_size=3, seed=0, step=0)
    G, theta = _literal_gradients(tiny64, x, y, names)
    A = G[active.numpy()].T
    if upper is None:
        want, _ = nnls(A, -theta)
    else:
        want = lsq_linear(A, -theta, bounds=(0, upper), method="bvls", tol=1e-14).x
    assert lam[2] == 0
    np.testing.assert_allclose(lam[active].numpy(), want, atol=1e-8)

    # the solve is the best cosine the cone allows: no other non-negative λ does better
    def cos(lv):
        s = A @ lv
        return float(-(theta @ s) / (np.linalg.norm(theta) * np.linalg.norm(s) + 1e-300))

    if upper is None:
        best = cos(lam[active].numpy())
        rand = np.random.default_rng(0).random((200, A.shape[1]))
        assert best >= max(cos(r) for r in rand) - 1e-12


@pytest.mark.parametrize("dual", ["exp", "clamp", "prune"])
def test_set_multipliers_gives_the_solved_values(dual):
    x0 = torch.zeros(4, 2, dtype=torch.float64)
    mult = Multipliers(dual, scale=2.0, lambda_max=None)
    config = SynthesisConfig(dual, 2.0, None, 5, 0.1, 0.1, "adam", None, 0, False)
    state = init_state(x0, mult, config, 2.0)
    state.rho.grad = torch.ones(4, dtype=torch.float64)
    state.optimizer.step()  # the optimiser now holds moments for rho
    assert state.rho in state.optimizer.state
    lam = torch.tensor([0.5, 0.0, 3.0, 1.0], dtype=torch.float64)
    set_multipliers_(state, mult, lam)
    got = mult(state.rho, state.active)
    assert state.rho not in state.optimizer.state  # moments of the old multipliers reset
    nonzero = lam > 0
    torch.testing.assert_close(got[nonzero], lam[nonzero])
    if dual == "exp":  # exp cannot reach zero: a negligible floor
        assert 0 < got[1] <= 1e-6 * 3.0 * (1 + 1e-12)
        assert bool(state.active.all())
    elif dual == "clamp":
        assert got[1] == 0 and bool(state.active.all())
    else:  # prune: a zero multiplier is pruned, as any that reaches zero
        assert got[1] == 0 and state.active.tolist() == [True, False, True, True]


def test_all_zero_multipliers_leave_rho_alone():
    x0 = torch.zeros(3, 2)
    mult = Multipliers("exp", scale=1.0)
    config = SynthesisConfig("exp", 1.0, None, 5, 0.1, 0.1, "adam", None, 0, False)
    state = init_state(x0, mult, config, 1.0)
    before = state.rho.detach().clone()
    set_multipliers_(state, mult, torch.zeros(3))
    assert torch.equal(state.rho.detach(), before)


@pytest.mark.parametrize("dual", ["exp", "clamp"])
def test_synthesis_ends_on_the_exact_multipliers_of_its_inputs(dual):
    torch.manual_seed(0)
    model = TinyMLP(d=4, h=6, c=3)
    before = model_snapshot(model)
    settings = dict(n_per_class=3, steps=7, progress=False, seed=0, dual=dual, augmentation=None)
    res = DeepSupportVectors(lambda_solve_every=3, **settings).attribute(model)
    assert_same_snapshot(before, model_snapshot(model))
    fmodel = FunctionalModel(model.double(), None)
    want = exact_multipliers(
        fmodel,
        res.inputs.double(),
        res.labels,
        KKTObjective(),
        torch.ones(len(res.inputs), dtype=torch.bool),
        None,
        chunk_size=256,
        seed=0,
        step=7,
    )
    # the result reports the solved λ themselves (zeros included), not their round trip through rho
    torch.testing.assert_close(res.lambdas.double(), want, rtol=1e-4, atol=1e-8)
    plain = DeepSupportVectors(**settings).attribute(TinyMLP(d=4, h=6, c=3))
    assert plain.settings["lambda_solve_every"] is None
    assert res.settings["lambda_solve_every"] == 3


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("3", TypeError)])
def test_lambda_solve_every_is_checked_by_name(bad, exc):
    torch.manual_seed(0)
    model = TinyMLP()
    before = model_snapshot(model)
    with pytest.raises(exc, match="lambda_solve_every"):
        DeepSupportVectors(lambda_solve_every=bad, steps=2, progress=False).attribute(model)
    assert_same_snapshot(before, model_snapshot(model))
