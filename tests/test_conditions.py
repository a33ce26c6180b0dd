"""Each DeepKKT condition against a literal, slow reference on float64 tensors."""

import math

import pytest
import torch

from kktexplain.kkt import (
    cross_entropy,
    dual_feasibility,
    hard_labels,
    input_norm,
    multiclass_hinge,
    primal_feasibility,
    primal_margin,
    stationarity,
    stationarity_per_layer,
    total_variation,
)


def _logits(rng, n=7, c=4):
    return torch.randn(n, c, generator=rng, dtype=torch.float64)


def test_cross_entropy_hard_and_soft(rng):
    z = _logits(rng)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    ref = [-(z[i, y[i]] - math.log(sum(math.exp(v) for v in z[i].tolist()))) for i in range(len(z))]
    torch.testing.assert_close(cross_entropy(z, y), torch.tensor(ref, dtype=torch.float64))
    soft = torch.nn.functional.one_hot(y, 4).double()
    torch.testing.assert_close(cross_entropy(z, soft), cross_entropy(z, y))
    mix = 0.4 * soft + 0.6 * torch.nn.functional.one_hot((y + 1) % 4, 4).double()
    expected = 0.4 * cross_entropy(z, y) + 0.6 * cross_entropy(z, (y + 1) % 4)
    torch.testing.assert_close(cross_entropy(z, mix), expected)


def test_primal_masked_ce_is_eq7(rng):
    z = _logits(rng, n=20)
    y = torch.randint(4, (20,), generator=rng)
    out = primal_feasibility(z, y, "masked_ce")
    ce = cross_entropy(z, y)
    for i in range(20):
        expected = 0.0 if int(z[i].argmax()) == int(y[i]) else float(ce[i])
        assert float(out[i]) == pytest.approx(expected)
    torch.testing.assert_close(primal_feasibility(z, y, "ce"), ce)
    with pytest.raises(ValueError, match="kind"):
        primal_feasibility(z, y, "hinge?")


def test_primal_margin_literal(rng):
    z = _logits(rng)
    y = torch.tensor([3, 2, 1, 0, 3, 2, 1])
    for i, m in enumerate(primal_margin(z, y).tolist()):
        others = [z[i, c].item() for c in range(4) if c != y[i]]
        assert m == pytest.approx(z[i, y[i]].item() - max(others))


def test_dual_feasibility():
    lam = torch.tensor([-2.0, 0.0, 3.0])
    assert dual_feasibility(lam).tolist() == [2.0, 0.0, 0.0]


def _params(rng):
    theta = {
        "a": torch.randn(3, 4, generator=rng, dtype=torch.float64),
        "b": torch.randn(5, generator=rng, dtype=torch.float64),
    }
    g = {k: torch.randn(v.shape, generator=rng, dtype=torch.float64) for k, v in theta.items()}
    return theta, g


def test_stationarity_distances_literal(rng):
    theta, g = _params(rng)
    t = [v for k in theta for v in theta[k].flatten().tolist()]
    s = [v for k in g for v in g[k].flatten().tolist()]
    r = [a + b for a, b in zip(t, s)]
    p = len(t)
    assert stationarity(theta, g, "l1").item() == pytest.approx(sum(abs(v) for v in r) / p)
    assert stationarity(theta, g, "l2sq").item() == pytest.approx(sum(v * v for v in r))
    assert stationarity(theta, g, "rel_l1").item() == pytest.approx(
        sum(abs(v) for v in r) / sum(abs(v) for v in t)
    )
    assert stationarity(theta, g, "rel_l2").item() == pytest.approx(
        math.sqrt(sum(v * v for v in r)) / math.sqrt(sum(v * v for v in t))
    )
    cos = sum(a * -b for a, b in zip(t, s)) / math.sqrt(sum(a * a for a in t) * sum(b * b for b in s))
    assert stationarity(theta, g, "cosine").item() == pytest.approx(1 - cos)
    ratio = math.sqrt(sum(b * b for b in s)) / math.sqrt(sum(a * a for a in t))
    assert stationarity(theta, g, "cosine_norm").item() == pytest.approx(1 - cos + math.log(ratio) ** 2)
    # exact stationarity gives zero for every distance
    for d in ("l1", "l2sq", "rel_l1", "rel_l2", "cosine", "cosine_norm"):
        neg = {k: -v for k, v in theta.items()}
        assert stationarity(theta, neg, d).item() == pytest.approx(0.0, abs=1e-12)


def test_stationarity_per_layer(rng):
    theta, g = _params(rng)
    per = stationarity_per_layer(theta, g, "l1")
    assert per.shape == (2,)
    for i, k in enumerate(theta):
        assert per[i].item() == pytest.approx((theta[k] + g[k]).abs().mean().item())
    assert stationarity(theta, g, "l1", per_layer=True).item() == pytest.approx(per.mean().item())


def test_total_variation_literal(rng):
    x = torch.randn(2, 1, 3, 4, generator=rng, dtype=torch.float64)
    for p in (1, 2):
        out = total_variation(x, p)
        for n in range(2):
            dh = [abs(x[n, 0, i + 1, j] - x[n, 0, i, j]).item() ** p for i in range(2) for j in range(4)]
            dw = [abs(x[n, 0, i, j + 1] - x[n, 0, i, j]).item() ** p for i in range(3) for j in range(3)]
            assert out[n].item() == pytest.approx(sum(dh) / len(dh) + sum(dw) / len(dw))
    assert total_variation(torch.ones(3, 5)).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("p", [1, 2, 3])
def test_input_norm_literal(rng, p):
    x = torch.randn(3, 2, 2, generator=rng, dtype=torch.float64)
    for n in range(3):
        values = [abs(v) ** p for v in x[n].flatten().tolist()]
        assert input_norm(x, p)[n].item() == pytest.approx(sum(values) / len(values))
    assert input_norm(x).tolist() == pytest.approx(input_norm(x, 2).tolist())


@pytest.mark.parametrize("epsilon", [0.0, 0.25, 1.0])
def test_primal_epsilon_masks_only_margins_above_it(rng, epsilon):
    z = 2 * _logits(rng, n=40)
    y = torch.randint(4, (40,), generator=rng)
    out = primal_feasibility(z, y, "masked_ce", epsilon=epsilon)
    ce = cross_entropy(z, y)
    seen_band = False
    for i in range(40):
        others = max(z[i, c].item() for c in range(4) if c != int(y[i]))
        margin = z[i, int(y[i])].item() - others
        seen_band |= 0 < margin <= epsilon
        assert out[i].item() == pytest.approx(0.0 if margin > epsilon else ce[i].item())
    assert seen_band or epsilon == 0.0  # the band (0, eps] is where eps matters
    # soft labels take their arg-max
    soft = torch.nn.functional.one_hot(y, 4).double() * 0.7 + 0.075
    masked = out != 0
    torch.testing.assert_close(primal_feasibility(z, soft, "masked_ce", epsilon) != 0, masked)


@pytest.mark.parametrize("margin", [0.5, 1.0, 2.5])
def test_multiclass_hinge_literal(rng, margin):
    z = 2 * _logits(rng, n=30)
    y = torch.randint(4, (30,), generator=rng)
    out = multiclass_hinge(z, y, margin)
    zero = 0
    for i in range(30):
        others = max(z[i, c].item() for c in range(4) if c != int(y[i]))
        expected = max(0.0, margin - (z[i, int(y[i])].item() - others))
        zero += expected == 0.0
        assert out[i].item() == pytest.approx(expected)
    assert 0 < zero < 30  # both sides of the hinge point are exercised
    assert multiclass_hinge(z, y).tolist() == pytest.approx(multiclass_hinge(z, y, 1.0).tolist())
    # two classes, logits (-f/2, f/2): the SVM's max(0, 1 - y f)
    f = torch.linspace(-3, 3, 13, dtype=torch.float64)
    logits = torch.stack([-f / 2, f / 2], 1)
    for label, sign in ((1, 1.0), (0, -1.0)):
        hinge = multiclass_hinge(logits, torch.full((13,), label))
        torch.testing.assert_close(hinge, torch.clamp(1 - sign * f, min=0))


def test_hard_labels():
    y = torch.tensor([2, 0, 1])
    assert hard_labels(y) is y
    soft = torch.tensor([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]])
    assert hard_labels(soft).tolist() == [2, 0]
