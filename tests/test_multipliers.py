"""The multipliers helper: one mechanism for the bound ``lambda_max`` (a projection of ``rho``)."""

import math

import pytest
import torch

from kktexplain._synthesis import Multipliers


def _cases(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        yield float(torch.rand(1, generator=g) * 5 + 1e-3), float(torch.rand(1, generator=g) * 3 + 1e-3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("dual", ["exp", "clamp", "prune"])
def test_rho_max_keeps_lambda_at_or_below_the_bound_in_the_dtype(dual, dtype):
    for c, s in _cases():
        m = Multipliers(dual, s, c)
        r = m.rho_max(dtype)
        exact = math.log(c / s) if dual == "exp" else c / s
        rho = torch.full((33,), r, dtype=dtype)  # vectorised and scalar-tail paths
        lam = m(rho, torch.ones(33, dtype=torch.bool))
        assert bool((lam <= torch.tensor(c, dtype=dtype)).all()), (dual, c, s)
        # and it is the bound, up to a few ulps of rho (never a looser or much tighter one)
        assert r <= torch.tensor(exact, dtype=dtype).item()
        assert r >= exact - 8 * torch.finfo(dtype).eps * max(abs(exact), 1.0)


def test_without_a_bound_lambda_is_s_f_rho():
    rho = torch.tensor([-1.0, 0.0, 2.0])
    on = torch.ones(3, dtype=torch.bool)
    assert Multipliers("exp", 0.5).rho_max(torch.float32) is None
    assert torch.equal(Multipliers("exp", 0.5)(rho, on), 0.5 * rho.exp())
    assert torch.equal(Multipliers("clamp", 0.5)(rho, on), 0.5 * rho)


@pytest.mark.parametrize("dual", ["exp", "clamp"])
def test_a_starting_rho_above_the_bound_counts_as_the_bound_with_its_own_gradient(dual):
    s, c = 2.0, 0.7  # lambda_max < s: rho_init lies above rho_max
    m = Multipliers(dual, s, c)
    rho = torch.full((3,), m.rho_init, requires_grad=True)
    lam = m(rho, torch.ones(3, dtype=torch.bool))
    r = torch.tensor(m.rho_max(torch.float32))
    torch.testing.assert_close(lam.detach(), torch.full((3,), c), rtol=1e-6, atol=0)
    assert torch.equal(lam.detach(), m._value(r.expand(3)))
    lam.sum().backward()
    straight = s * math.exp(m.rho_init) if dual == "exp" else s
    torch.testing.assert_close(rho.grad, torch.full((3,), straight))


@pytest.mark.parametrize("dual", ["exp", "clamp", "prune"])
def test_after_projection_the_value_is_plain_s_f_rho_bit_for_bit(dual):
    m = Multipliers(dual, 1.3, 0.9)
    rho = torch.linspace(-2.0, 3.0, 41)
    active = torch.ones(41, dtype=torch.bool)
    m.project_(rho, active)
    assert float(rho.max()) == m.rho_max(torch.float32)
    plain = 1.3 * (rho.exp() if dual == "exp" else rho) * active
    assert torch.equal(m(rho, active), plain)
    if dual != "exp":
        assert bool((rho[active] > 0).all()) if dual == "prune" else bool((rho >= 0).all())
