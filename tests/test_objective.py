"""The DeepKKT objective against a hand-written float64 formula, for every preset and option.

The reference below uses none of the package's loss code: per-sample gradients come from one
``autograd.grad`` per sample, and every loss, distance and prior is written out from the paper.
The only package code it shares is the model and a flip augmentation, which is exact.
"""

import math

import pytest
import torch
from torch import nn

from kktexplain.kkt import Augmentation, FunctionalModel, KKTObjective


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.Tanh(), nn.Linear(5, 3)).double()


def _data(n=8):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(n, 1, 4, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(3, (n,), generator=gen)
    lam = torch.rand(n, generator=gen, dtype=torch.float64) + 0.2
    return x, y, lam


def _ce(z, y):
    return -(z[y] - torch.logsumexp(z, 0))


def _margin(z, y):
    others = torch.cat([z[:y], z[y + 1 :]])
    return z[y] - others.max()


def _per_sample_loss(z, y, obj):
    if obj.loss == "hinge":
        return torch.clamp(obj.hinge_margin - _margin(z, y), min=0.0)
    return _ce(z, y)


def _primal(z, y, obj):
    if obj.primal_kind == "ce":
        return _ce(z, y)
    feasible = _margin(z, y) > obj.epsilon if obj.epsilon > 0 else _margin(z, y) > 0
    return torch.zeros((), dtype=z.dtype) if feasible else _ce(z, y)


def _distance(t, g, d):
    r = t + g
    if d == "l1":
        return r.abs().sum() / r.numel()
    if d == "rel_l1":
        return r.abs().sum() / t.abs().sum()
    if d == "l2sq":
        return (r * r).sum()
    if d == "rel_l2":
        return (r * r).sum().sqrt() / (t * t).sum().sqrt()
    cos = (t * g).sum() / ((t * t).sum().sqrt() * (g * g).sum().sqrt())
    if d == "cosine":
        return 1 + cos
    ratio = (g * g).sum().sqrt() / (t * t).sum().sqrt()
    return 1 + cos + torch.log(ratio) ** 2


def _view_reference(model, x, y, lam, obj):
    """(stationarity, primal) of one view, written out sample by sample."""
    params = list(model.parameters())
    gsum = [torch.zeros_like(p) for p in params]
    primal = []
    for i in range(len(x)):
        z = model(x[i : i + 1])[0]
        gi = torch.autograd.grad(_per_sample_loss(z, int(y[i]), obj), params, create_graph=True)
        gsum = [a + lam[i] * b for a, b in zip(gsum, gi)]
        primal.append(_primal(z, int(y[i]), obj))
    theta = [p.detach() for p in params]
    if obj.per_layer:
        stat = sum(_distance(t, g, obj.distance) for t, g in zip(theta, gsum)) / len(theta)
    else:
        flat_t = torch.cat([t.flatten() for t in theta])
        flat_g = torch.cat([g.flatten() for g in gsum])
        stat = _distance(flat_t, flat_g, obj.distance)
    primal = torch.stack(primal)
    primal = primal.mean() if obj.primal_reduction == "mean" else primal.sum()
    return stat, primal


def _tv(x, p):
    dh = x[:, :, 1:, :] - x[:, :, :-1, :]
    dw = x[:, :, :, 1:] - x[:, :, :, :-1]
    per = dh.abs().pow(p).sum((1, 2, 3)) / dh[0].numel() + dw.abs().pow(p).sum((1, 2, 3)) / dw[0].numel()
    return per.mean()


def _reference_total(model, x, y, lam, obj):
    total = torch.zeros((), dtype=torch.float64)
    terms = {}
    if obj.clean > 0:
        stat, primal = _view_reference(model, x, y, lam, obj)
        total = total + obj.clean * (obj.stationarity * stat + obj.primal * primal)
        terms.update(stationarity=stat, primal=primal)
    if obj.augmented > 0:
        stat, primal = _view_reference(model, x.flip(-1), y, lam, obj)  # the flip augmentation
        total = total + obj.augmented * (obj.stationarity * stat + obj.primal * primal)
        terms.update(stationarity_aug=stat, primal_aug=primal)
    if obj.tv > 0:
        terms["tv"] = _tv(x, obj.tv_p)
        total = total + obj.tv * terms["tv"]
    if obj.norm > 0:
        terms["norm"] = x.abs().pow(obj.norm_p).sum((1, 2, 3)).div(16).mean()
        total = total + obj.norm * terms["norm"]
    return total, terms


FLIP = Augmentation(translate=0.0, crop=0.0, flip=1.0, cutout=0.0, noise=0.0)

CASES = {
    "default": KKTObjective.from_preset("default"),
    "paper_eq9": KKTObjective.from_preset("paper_eq9"),
    "paper_alg1": KKTObjective.from_preset("paper_alg1"),
    "masked_sum_eps": KKTObjective(primal_kind="masked_ce", primal_reduction="sum", epsilon=0.3),
    "ce_mean_rel_l1": KKTObjective(primal_kind="ce", distance="rel_l1", per_layer=False, augmented=2.0),
    "rel_l2_layers": KKTObjective(distance="rel_l2", per_layer=True, clean=0.5, augmented=0.0),
    "cosine_norm": KKTObjective(distance="cosine_norm", per_layer=False, primal=0.3, stationarity=2.0),
    "hinge": KKTObjective(loss="hinge", hinge_margin=0.5, distance="l2sq", per_layer=True),
    "priors_p1": KKTObjective(tv=0.4, tv_p=1, norm=0.3, norm_p=1, augmented=0.0),
    "priors_p3": KKTObjective(tv=0.2, tv_p=2, norm=0.5, norm_p=3, augmented=1.5),
    "l1_layers": KKTObjective(distance="l1", per_layer=True, primal=0.0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_objective_value_and_gradients_match_the_hand_written_formula(case):
    obj = CASES[case]
    model = _model()
    x, y, lam = _data()
    with torch.no_grad():
        z = model(x)
    margin = z.gather(1, y[:, None])[:, 0] - z.scatter(1, y[:, None], -math.inf).max(1).values
    # the data must exercise the masked loss on both sides (and the eps band)
    assert (margin > 0.5).any() and (margin < 0).any() and ((margin > 0) & (margin < 0.3)).any()

    xa = x.clone().requires_grad_(True)
    la = lam.clone().requires_grad_(True)
    value = obj(FunctionalModel(model), xa, y, la, FLIP, torch.Generator().manual_seed(0))
    xb = x.clone().requires_grad_(True)
    lb = lam.clone().requires_grad_(True)
    ref, ref_terms = _reference_total(model, xb, y, lb, obj)

    assert value.total.item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    for k, v in ref_terms.items():
        assert value.terms[k] == pytest.approx(v.item(), rel=1e-9, abs=1e-12), k
    assert value.terms["total"] == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    skipped = {"stationarity", "primal"} if obj.clean == 0 else set()
    if obj.augmented == 0:
        skipped |= {"stationarity_aug", "primal_aug"}
    assert not skipped & set(value.terms)
    torch.testing.assert_close(value.logits, z)
    if obj.augmented > 0:
        torch.testing.assert_close(value.augmented_logits, model(x.flip(-1)).detach())
    else:
        assert value.augmented_logits is None

    # the gradient that drives the inputs and the multipliers (one double backward)
    got = torch.autograd.grad(value.total, [xa, la], allow_unused=True)
    want = torch.autograd.grad(ref, [xb, lb], allow_unused=True)
    for g, w, like in zip(got, want, (x, lam)):
        g = torch.zeros_like(like) if g is None else g
        w = torch.zeros_like(like) if w is None else w
        torch.testing.assert_close(g, w, rtol=1e-7, atol=1e-10)


def test_presets_are_the_papers_settings():
    eq9 = KKTObjective.from_preset("paper_eq9")
    assert (eq9.clean, eq9.augmented, eq9.primal, eq9.tv, eq9.norm) == (0.0, 1.0, 2e-3, 0.0, 0.0)
    assert (eq9.distance, eq9.per_layer, eq9.primal_kind, eq9.primal_reduction) == (
        "l1",
        False,
        "masked_ce",
        "mean",
    )
    alg1 = KKTObjective.from_preset("paper_alg1")
    assert (alg1.clean, alg1.augmented, alg1.primal, alg1.stationarity) == (1.0, 5.0, 1.0, 1.0)
    assert (alg1.distance, alg1.per_layer, alg1.primal_kind, alg1.primal_reduction) == (
        "l2sq",
        False,
        "ce",
        "sum",
    )
    default = KKTObjective.from_preset("default")
    assert default == KKTObjective() and default.scale_free
    assert not alg1.scale_free and not eq9.scale_free
    assert KKTObjective.from_preset("paper_alg1", primal=0.5).primal == 0.5
    with pytest.raises(ValueError, match="objective must be one of"):
        KKTObjective.from_preset("eq10")


def test_identity_augmentation_skips_the_augmented_view():
    model = _model()
    x, y, lam = _data()
    obj = KKTObjective(augmented=5.0)
    for aug in (None, Augmentation.none()):
        value = obj(FunctionalModel(model), x, y, lam, aug)
        stat, primal = _view_reference(model, x.clone().requires_grad_(True), y, lam, obj)
        assert value.total.item() == pytest.approx((stat + primal).item(), rel=1e-9)
        assert value.augmented_logits is None and "stationarity_aug" not in value.terms


@pytest.mark.parametrize(
    "field, value",
    [
        ("stationarity", -1.0),
        ("tv", -0.1),
        ("norm", "x"),
        ("augmented", -2),
        ("primal_kind", "hinge"),
        ("primal_reduction", "max"),
        ("loss", "mse"),
    ],
)
def test_objective_rejects_bad_fields(field, value):
    with pytest.raises(ValueError):
        KKTObjective(**{field: value})
    with pytest.raises(ValueError, match="at least one of"):
        KKTObjective(clean=0.0, augmented=0.0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_chunked_backward_matches_the_hand_written_formula(case):
    # the batched path (batch_size < N) computes the same value, terms and input and multiplier
    # gradients as the formula, chunk by chunk (synthesis with batch_size=)
    from kktexplain._synthesis import chunked_objective_backward

    obj = CASES[case]
    model = _model()
    x, y, lam = _data()
    xa = x.clone().requires_grad_(True)
    la = lam.clone().requires_grad_(True)
    gen = torch.Generator().manual_seed(0)
    value = chunked_objective_backward(obj, FunctionalModel(model), xa, y, la, FLIP, gen, batch_size=3)
    xb = x.clone().requires_grad_(True)
    lb = lam.clone().requires_grad_(True)
    ref, ref_terms = _reference_total(model, xb, y, lb, obj)
    whole = obj(FunctionalModel(model), x, y, lam, FLIP, torch.Generator().manual_seed(0))

    assert value.total.item() == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    assert set(value.terms) == set(whole.terms)
    for k, v in ref_terms.items():
        assert value.terms[k] == pytest.approx(v.item(), rel=1e-9, abs=1e-12), k
    assert value.terms["total"] == pytest.approx(ref.item(), rel=1e-9, abs=1e-12)
    assert value.terms["cosine"] == pytest.approx(whole.terms["cosine"], rel=1e-9, abs=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(value.logits, model(x))
        if obj.augmented > 0:
            torch.testing.assert_close(value.augmented_logits, model(x.flip(-1)))
        else:
            assert value.augmented_logits is None
    want = torch.autograd.grad(ref, [xb, lb], allow_unused=True)
    for g, w, like in zip((xa.grad, la.grad), want, (x, lam)):
        g = torch.zeros_like(like) if g is None else g
        w = torch.zeros_like(like) if w is None else w
        torch.testing.assert_close(g, w, rtol=1e-7, atol=1e-10)


def test_stress_9g_objective_and_augmentation_refuse_nan_inf_and_take_numpy():
    """Stress round 9G: NaN/inf weights passed the `value < 0` checks (NaN noise switched the
    augmentation off silently; NaN epsilon and hinge_margin ran); numpy scalars were refused."""
    import numpy as np

    from kktexplain.kkt import Augmentation, KKTObjective

    for kwargs in (
        {"primal": float("nan")},
        {"stationarity": float("inf")},
        {"epsilon": float("nan")},
        {"epsilon": -1},
    ):
        with pytest.raises(ValueError, match=f"'{next(iter(kwargs))}' must be a finite float >= 0"):
            KKTObjective(**kwargs)
    for bad in (float("nan"), 0.0, -1.0):
        with pytest.raises(ValueError, match="hinge_margin must be a finite float > 0"):
            KKTObjective(hinge_margin=bad)
    with pytest.raises(ValueError, match="noise must be a non-negative float"):
        Augmentation(noise=float("nan"))
    with pytest.raises(ValueError, match="translate must be a non-negative float"):
        Augmentation(translate=float("inf"))
    obj = KKTObjective(primal=np.float32(0.5))
    assert obj.primal == 0.5 and type(obj.primal) is float
    assert type(Augmentation(noise=np.float64(0.02)).noise) is float


def test_stress_9g_a_step_that_overflows_stops_with_the_last_good_state():
    """exp of a large rho overflowed after the optimiser step: inf multipliers were returned
    as a complete result (steps=1), or kept in the error's result (steps > 1)."""
    from kktexplain import DeepSupportVectors, NonFiniteError

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    for steps in (1, 3):
        with pytest.raises(NonFiniteError, match="multipliers after the step") as info:
            DeepSupportVectors(
                n_per_class=1,
                steps=steps,
                lr_lambda=1e4,
                dual="exp",
                objective="paper_alg1",
                progress=False,
                seed=0,
            ).attribute(model)
        assert torch.isfinite(info.value.result.lambdas).all()


def test_stress_9g_a_scope_without_gradient_is_named():
    """The loss gave the scope no gradient: lambda_scale divided by 1e-12 (λ ≈ 1e12, silently)."""
    from kktexplain import DeepSupportVectors

    class Const(torch.nn.Module):  # the logits read l, times zero
        def __init__(self):
            super().__init__()
            self.l, self.b = torch.nn.Linear(8, 3), torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))

        def forward(self, x):
            return self.l(x) * 0 + self.b

    with pytest.raises(ValueError, match="no gradient"):
        DeepSupportVectors(
            n_per_class=1, steps=2, param_names=["l.weight"], objective="paper_alg1", progress=False, seed=0
        ).attribute(Const())
