"""Scale-invariant modules: found by a jvp, and their gradients are orthogonal to them."""

import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain.kkt import scale_invariant_modules


class NormNet(nn.Module):
    """conv -> instance norm -> ReLU -> conv -> instance norm (last) -> linear, in float64."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.norm1 = nn.GroupNorm(3, 3, eps=0.0)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
        self.norm2 = nn.GroupNorm(4, 4, eps=0.0)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        h = torch.relu(self.norm1(self.conv1(x)))
        return self.fc(torch.relu(self.norm2(self.conv2(h))).flatten(1))


@pytest.fixture
def net():
    torch.manual_seed(0)
    return NormNet().double()


def test_finds_the_modules_before_a_normalisation(net):
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    before = model_snapshot(net)
    r = scale_invariant_modules(net, x)
    assert_same_snapshot(before, model_snapshot(net))
    # conv1, norm1 (feeds conv2 + norm2) and conv2 are invariant; norm2 and fc set the logits' scale
    assert r.modules == ["conv1", "norm1", "conv2"]
    assert set(r.free_param_names) == {"norm2.weight", "norm2.bias", "fc.weight", "fc.bias"}
    theta = {k: v.detach() for k, v in net.named_parameters()}
    total = sum(v.pow(2).sum() for v in theta.values())
    lost = sum(theta[p].pow(2).sum() for p in r.param_names)
    assert r.max_cosine == pytest.approx(float((1 - lost / total).sqrt()), rel=1e-12)
    # Euler: every loss gradient is orthogonal to an invariant module's parameters
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    loss = nn.functional.cross_entropy(net(x), y)
    grads = dict(zip(theta, torch.autograd.grad(loss, list(net.parameters()))))
    for mod in r.modules:
        names = [p for p in r.param_names if p.startswith(mod + ".")]
        radial = sum((theta[p] * grads[p]).sum() for p in names)
        scale = sum(theta[p].norm() * grads[p].norm() for p in names)
        assert abs(float(radial)) < 1e-10 * float(scale)
    assert float(sum((theta[p] * grads[p]).sum() for p in ("fc.weight", "fc.bias"))) != pytest.approx(0.0)


def test_a_network_without_normalisation_has_none(tiny64):
    r = scale_invariant_modules(tiny64, torch.randn(5, 3, dtype=torch.float64))
    assert r.modules == [] and r.param_names == [] and r.max_cosine == 1.0


def test_bad_inputs_are_named(net):
    with pytest.raises(TypeError, match="model"):
        scale_invariant_modules("net", torch.zeros(1, 1, 6, 6))
    with pytest.raises(TypeError, match="inputs"):
        scale_invariant_modules(net, [1, 2])
    with pytest.raises(ValueError, match="inputs"):
        scale_invariant_modules(net, torch.zeros(0, 1, 6, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match="rtol"):
        scale_invariant_modules(net, torch.zeros(1, 1, 6, 6, dtype=torch.float64), rtol=2)


def test_readiness_reports_the_invariant_tensors_and_the_bound(net, tiny64):
    from kktexplain import kkt_readiness

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(12, 1, 6, 6, dtype=torch.float64, generator=gen)
    y = torch.randint(0, 3, (12,), generator=gen)
    r = kkt_readiness(net, (x, y))
    inv = scale_invariant_modules(net, x)
    assert r.invariant_param_names == inv.param_names
    assert r.max_cosine == pytest.approx(inv.max_cosine, rel=1e-12)
    assert abs(r.cosine) <= r.max_cosine + 1e-12
    assert "scale-invariant" in r.message and r.to_dict()["max_cosine"] == r.max_cosine
    assert "param_names='free'" in r.message
    last = kkt_readiness(net, (x, y), param_names=["fc.weight", "fc.bias"])
    assert last.invariant_param_names == [] and last.max_cosine == pytest.approx(1.0)
    plain = kkt_readiness(tiny64, (torch.randn(6, 3, dtype=torch.float64), torch.arange(6) % 3))
    assert plain.invariant_param_names == [] and "scale-invariant" not in plain.message


def _free_scope_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.GroupNorm(3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 3)
    ).double()


@pytest.mark.parametrize("kind", ["synthesis", "selection"])
def test_param_names_free_is_the_free_scope(kind):
    from kktexplain import DeepSupportVectors

    net = _free_scope_model()
    x = torch.randn(9, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = torch.arange(9) % 3
    kwargs = {"candidates": x, "labels": y} if kind == "selection" else {"input_shape": (1, 6, 6)}
    before = model_snapshot(net)
    free = DeepSupportVectors(param_names="free", steps=3, progress=False, seed=0).attribute(net, **kwargs)
    assert_same_snapshot(before, model_snapshot(net))
    # the conv before the group norm is invariant; the norm (it sets the scale) and the linear are free
    expected = ["1.weight", "1.bias", "4.weight", "4.bias"]
    assert free.settings["resolved_param_names"] == expected
    assert free.settings["invariant_param_names"] == ["0.weight", "0.bias"]
    explicit = DeepSupportVectors(param_names=expected, steps=3, progress=False, seed=0).attribute(
        net, **kwargs
    )
    torch.testing.assert_close(free.lambdas, explicit.lambdas, rtol=0, atol=0)
    torch.testing.assert_close(free.inputs, explicit.inputs, rtol=0, atol=0)


def test_param_names_free_without_normalisation_is_every_parameter():
    from kktexplain import DeepSupportVectors

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(36, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    free = DeepSupportVectors(param_names="free", steps=2, progress=False).attribute(
        net, input_shape=(1, 6, 6)
    )
    every = DeepSupportVectors(param_names=None, steps=2, progress=False).attribute(
        net, input_shape=(1, 6, 6)
    )
    assert free.settings["resolved_param_names"] == [k for k, _ in net.named_parameters()]
    torch.testing.assert_close(free.inputs, every.inputs, rtol=0, atol=0)


def test_free_is_the_default_scope():
    from kktexplain import DeepSupportVectors

    assert DeepSupportVectors().param_names == "free"
    net = _free_scope_model()
    x = torch.randn(9, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = torch.arange(9) % 3
    default = DeepSupportVectors(progress=False).attribute(net, candidates=x, labels=y)
    free = DeepSupportVectors(param_names="free", progress=False).attribute(net, candidates=x, labels=y)
    every = DeepSupportVectors(param_names=None, progress=False).attribute(net, candidates=x, labels=y)
    assert default.settings["resolved_param_names"] == ["1.weight", "1.bias", "4.weight", "4.bias"]
    torch.testing.assert_close(default.lambdas, free.lambdas, rtol=0, atol=0)
    assert "resolved_param_names" not in every.settings
    assert every.settings["param_names"] == [k for k, _ in net.named_parameters()]
    # over every parameter the invariant conv caps the cosine; the free scope is not capped
    assert every.kkt.stationarity["cosine"] <= kkt_bound(net) + 1e-9


def kkt_bound(net):
    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    return scale_invariant_modules(net, x).max_cosine


class _Constant(nn.Module):
    """Logits that ignore every parameter's scale (exactly: they are zero)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x) * 0.0


def test_free_on_a_model_with_no_free_module_warns_and_uses_every_parameter():
    from kktexplain import DeepSupportVectors

    torch.manual_seed(0)
    net = _Constant().double()
    x = torch.randn(6, 4, dtype=torch.float64)
    y = torch.arange(6) % 3
    with pytest.warns(UserWarning, match="leaves no parameter"):
        res = DeepSupportVectors(progress=False).attribute(net, candidates=x, labels=y)
    assert res.settings["resolved_param_names"] is None
    assert res.settings["invariant_param_names"] == ["fc.weight", "fc.bias"]


def test_influence_and_expansion_read_the_resolved_free_scope():
    from kktexplain import DeepSupportVectors
    from kktexplain.attr import SupportVectorInfluence

    net = _free_scope_model()
    x = torch.randn(12, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = torch.arange(12) % 3
    sel = DeepSupportVectors(progress=False).attribute(net, candidates=x, labels=y)
    svi = SupportVectorInfluence(net, sel)
    assert svi.expansion.param_names == ["1.weight", "1.bias", "4.weight", "4.bias"]
    assert svi.influence((x[:2], y[:2])).shape == (2, 12)
    assert svi.self_influence().shape == (12,)


def test_cli_param_names_free_word():
    from kktexplain._cli_options import _param_names

    assert _param_names(["free"]) == "free"
    assert _param_names(["fc.weight"]) == ["fc.weight"]
    assert _param_names(None) is None
    assert _param_names(["all"]) is None  # every parameter, the paper's scope


def test_cli_defaults_to_the_free_scope():
    """synthesize and select share these options: without --param-names the scope is 'free'."""
    import argparse

    from kktexplain._cli_options import _common_options, _param_names

    p = argparse.ArgumentParser()
    _common_options(p)
    assert _param_names(p.parse_args(["--out", "r.npz"]).param_names) == "free"
    assert _param_names(p.parse_args(["--out", "r.npz", "--param-names", "all"]).param_names) is None


def test_nan_logits_are_no_evidence_of_invariance():
    class Poisoned(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.out = nn.Linear(3, 3)

        def forward(self, x):
            return self.out(self.fc(x)) * float("nan")

    r = scale_invariant_modules(Poisoned().double(), torch.randn(5, 4, dtype=torch.float64))
    assert r.modules == [] and r.free_param_names == ["fc.weight", "fc.bias", "out.weight", "out.bias"]
    assert all(v == float("inf") for v in r.radial.values())


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 6)
        self.b.weight = self.a.weight
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        return self.out(torch.relu(self.b(torch.relu(self.a(x)))))


def test_tied_weights_are_named_once_and_the_default_runs():
    from kktexplain import DeepSupportVectors

    torch.manual_seed(0)
    net = _Tied().double()
    r = scale_invariant_modules(net, torch.randn(5, 6, dtype=torch.float64))
    assert r.modules == [] and r.free_param_names == [k for k, _ in net.named_parameters()]
    x, y = torch.randn(9, 6, dtype=torch.float64), torch.arange(9) % 3
    before = model_snapshot(net)
    sel = DeepSupportVectors(progress=False).attribute(net, candidates=x, labels=y)
    assert_same_snapshot(before, model_snapshot(net))
    assert sel.settings["resolved_param_names"] == ["a.weight", "a.bias", "b.bias", "out.weight", "out.bias"]


def test_reverse_mode_estimate_finds_the_same_invariant_modules(net):
    from kktexplain.kkt import _invariance

    x = torch.randn(6, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    exact = scale_invariant_modules(net, x)
    params = {k: v.detach() for k, v in net.named_parameters()}
    owners = {m: [f"{m}.weight", f"{m}.bias"] for m in ("conv1", "norm1", "conv2", "norm2", "fc")}
    est = _invariance._radial_by_projections(net, params, {}, owners, x, ())
    top = max(est.values())
    assert sorted(m for m, v in est.items() if v / top < 1e-3) == sorted(exact.modules)
    for m in ("norm2", "fc"):  # the free ones: the estimate is within a small factor of the exact norm
        ratio = (est[m] / top) / exact.radial[m]
        assert 0.2 < ratio < 5


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(4, 8)
        self.enc = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.enc(self.emb(x.view(len(x), 3, 4))).mean(1))


def test_a_transformer_layer_without_forward_ad_still_resolves_and_synthesises():
    """The encoder's fused eval path has no forward-mode derivative, and its attention kernel no
    double backward: the scope comes from reverse mode, and synthesis runs on the math kernel."""
    from kktexplain import DeepSupportVectors

    torch.manual_seed(0)
    net = _Attention().eval()
    r = scale_invariant_modules(net, torch.randn(6, 12))
    assert "out" not in r.modules and r.free_param_names
    before = model_snapshot(net)
    dsv = DeepSupportVectors(n_per_class=1, steps=2, progress=False).attribute(net, input_shape=(12,))
    assert_same_snapshot(before, model_snapshot(net))
    assert torch.isfinite(dsv.inputs).all() and dsv.settings["resolved_param_names"]


def test_batch_norm_in_eval_mode_makes_nothing_invariant():
    """Eval-mode BatchNorm normalises with fixed running statistics: an affine map, so scaling
    the convolution before it changes the logits, and the free scope is every parameter."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 3)
    ).double()
    net.train()
    with torch.no_grad():  # non-trivial running statistics
        net(torch.randn(16, 1, 6, 6, dtype=torch.float64) * 3 + 1)
    net.eval()
    r = scale_invariant_modules(net, torch.randn(8, 1, 6, 6, dtype=torch.float64))
    assert r.modules == [] and r.free_param_names == [k for k, _ in net.named_parameters()]
    assert not net.training


def test_recorded_param_names_reads_the_resolved_scope():
    from kktexplain._scope import recorded_param_names

    assert recorded_param_names({"param_names": "free", "resolved_param_names": ["a", "b"]}) == ["a", "b"]
    assert recorded_param_names({"param_names": "free", "resolved_param_names": None}) is None
    assert recorded_param_names({"param_names": ("a",)}) == ["a"]
    assert recorded_param_names({}) is None
    with pytest.raises(ValueError, match="resolved_param_names"):
        recorded_param_names({"param_names": "free"})
