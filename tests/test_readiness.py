"""kkt_readiness: against a literal float64 per-sample loop, and exact at a weight-decay stationary point."""

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from torch import nn

from kktexplain import kkt_readiness


def _snapshot(model):
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        [p.requires_grad for p in model.parameters()],
        [m.training for m in model.modules()],
    )


def _same(model, snap):
    state, grads, modes = snap
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert [p.requires_grad for p in model.parameters()] == grads
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())


def _literal(model, x, y):
    """cos(theta, -sum_i grad L_i) by a per-sample float64 loop."""
    m = model.double()
    total = [torch.zeros_like(p) for p in m.parameters()]
    for xi, yi in zip(x.double(), y):
        loss = nn.functional.cross_entropy(m(xi[None]), yi[None])
        for t, g in zip(total, torch.autograd.grad(loss, list(m.parameters()))):
            t += g
    theta = torch.cat([p.detach().flatten() for p in m.parameters()])
    s = -torch.cat([t.flatten() for t in total])
    per_layer = {
        name: float(torch.nn.functional.cosine_similarity(p.detach().flatten(), -t.flatten(), dim=0))
        for (name, p), t in zip(m.named_parameters(), total)
    }
    return float(theta @ s / (theta.norm() * s.norm())), float(theta @ s / (s @ s)), per_layer


def test_matches_a_float64_per_sample_loop_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    model.train()
    x, y = torch.randn(40, 5), torch.randint(3, (40,))
    snap = _snapshot(model)
    r = kkt_readiness(model, (x, y), chunk_size=7)
    _same(model, snap)
    cos, scale, per_layer = _literal(_copy(model), x, y)
    assert r.cosine == pytest.approx(cos, abs=1e-6)
    assert r.scale == pytest.approx(max(scale, 0.0), rel=1e-5, abs=1e-12)
    assert r.per_layer_cosine == pytest.approx(per_layer, abs=1e-6)
    assert r.n == 40 and r.param_names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    if r.cosine >= 0:
        assert r.relative_residual == pytest.approx(math.sqrt(1 - r.cosine**2), abs=1e-6)


def _literal_agreement(model, x, y):
    """Share of x whose expansion <-c sum_i grad L_i, grad f_k(x)> picks the model's class, by a
    float64 loop over samples and classes (c the best single multiplier)."""
    m = _copy(model).double()
    params = list(m.parameters())
    total = [torch.zeros_like(p) for p in params]
    for xi, yi in zip(x.double(), y):
        loss = nn.functional.cross_entropy(m(xi[None]), yi[None])
        for t, g in zip(total, torch.autograd.grad(loss, params)):
            t += g
    g = torch.cat([t.flatten() for t in total])
    theta = torch.cat([p.detach().flatten() for p in params])
    c = max(float(-(theta @ g) / (g @ g)), 0.0)
    hits = 0
    for xi in x.double():
        out = m(xi[None])[0]
        expanded = []
        for k in range(out.shape[0]):
            grads = torch.autograd.grad(out[k], params, retain_graph=True)
            expanded.append(float(-c * g @ torch.cat([q.flatten() for q in grads])))
        hits += int(np.argmax(expanded) == int(out.argmax()))
    return hits / len(x)


def test_argmax_agreement_matches_a_float64_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    x, y = torch.randn(40, 5), torch.randint(3, (40,))
    # a few steps of weight-decay training, so the expansion is neither empty nor perfect
    opt = torch.optim.SGD(model.parameters(), lr=0.5, weight_decay=1e-2)
    for _ in range(50):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    snap = _snapshot(model)
    r = kkt_readiness(model, (x, y), chunk_size=9)
    _same(model, snap)
    assert r.argmax_agreement == pytest.approx(_literal_agreement(model, x, y))
    assert r.to_dict()["argmax_agreement"] == r.argmax_agreement


def test_near_needs_the_expansion_to_reproduce_the_decisions():
    """A high cosine alone does not make the verdict "near": the agreement must reach 95 %."""
    from kktexplain._readiness import _verdict

    assert _verdict(0.95, 1.0)[0] == "near" and _verdict(0.95, None)[0] == "near"
    verdict, message = _verdict(0.95, 0.7)
    assert verdict == "partial" and "70.0%" in message
    assert _verdict(0.2, 1.0)[0] == "far"


def _copy(model):
    import copy

    return copy.deepcopy(model)


def test_exact_at_a_weight_decay_stationary_point():
    """Logistic regression with L2 fitted to convergence: cosine 1, implied weight decay = the one used."""
    rng = np.random.default_rng(0)
    n, d, wd = 300, 4, 1e-2
    x = rng.normal(size=(n, d))
    y = (x @ rng.normal(size=d) + 0.5 * rng.normal(size=n) > 0).astype(int) + (x[:, 0] > 1)
    # sklearn minimises 1/2 ||W||^2 + C sum_i L_i, i.e. the mean loss with weight decay 1/(n C)
    clf = LogisticRegression(C=1.0 / (n * wd), fit_intercept=False, tol=1e-12, max_iter=10_000).fit(x, y)
    model = nn.Linear(d, 3, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(clf.coef_))
    r = kkt_readiness(model, (torch.from_numpy(x), torch.from_numpy(y)))
    assert r.cosine == pytest.approx(1.0, abs=1e-6)
    assert r.implied_weight_decay == pytest.approx(wd, rel=1e-4)
    assert r.verdict == "near"
    assert r.argmax_agreement == 1.0  # at the stationary point the expansion is the model
    # moved off the stationary point, the cosine falls and the verdict says so
    with torch.no_grad():
        model.weight.add_(torch.randn_like(model.weight) * 5)
    far = kkt_readiness(model, (torch.from_numpy(x), torch.from_numpy(y)))
    assert far.cosine < 0.9 and far.verdict in {"partial", "far"}


def test_displacement_and_subset():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    init = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    x, y = torch.randn(30, 4), torch.randint(3, (30,))
    last = kkt_readiness(model, (x, y), param_names=["2.weight", "2.bias"])
    assert set(last.per_layer_cosine) == {"2.weight", "2.bias"}
    disp = kkt_readiness(model, (x, y), reference=init)
    # against theta* - theta_0 by hand
    diff = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        for p, a, b in zip(diff.parameters(), model.parameters(), init.parameters()):
            p.copy_(a - b)
    m = _copy(model).double()
    total = [torch.zeros_like(p) for p in m.parameters()]
    for xi, yi in zip(x.double(), y):
        loss = nn.functional.cross_entropy(m(xi[None]), yi[None])
        for t, g in zip(total, torch.autograd.grad(loss, list(m.parameters()))):
            t += g
    target = torch.cat([p.detach().double().flatten() for p in diff.parameters()])
    s = -torch.cat([t.flatten() for t in total])
    assert disp.cosine == pytest.approx(float(target @ s / (target.norm() * s.norm())), abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({"model": "net"}, TypeError, "model"),
        ({"data": torch.randn(5, 4)}, ValueError, "labels"),
        ({"data": (torch.randn(0, 4), torch.zeros(0, dtype=torch.long))}, ValueError, "data"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"param_names": ["nope"]}, ValueError, "param_names"),
        ({"data": (torch.randn(5, 4), torch.full((5,), 7))}, ValueError, "labels"),
    ],
)
def test_bad_input(kwargs, exc, word):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    args = {"model": model, "data": (torch.randn(5, 4), torch.randint(3, (5,)))} | kwargs
    snap = _snapshot(model)
    with pytest.raises(exc, match=word):
        kkt_readiness(**args)
    _same(model, snap)


def test_report_shows_readiness_computed_on_the_selection(tmp_path):
    from kktexplain import DeepSupportVectors
    from kktexplain.report import write_html

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x, y = torch.randn(60, 4), torch.randint(3, (60,))
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    expected = kkt_readiness(model, (sel.inputs, sel.labels))
    page = write_html(tmp_path / "r.html", selection=sel, model=model).read_text(encoding="utf-8")
    assert 'id="readiness-table"' in page and f"{expected.cosine:.3f}" in page
    assert f"{expected.argmax_agreement:.1%}" in page
    assert expected.verdict in page
    off = write_html(tmp_path / "n.html", selection=sel, model=model, readiness=False).read_text(
        encoding="utf-8"
    )
    assert "readiness-table" not in off
    with pytest.raises(TypeError, match="readiness"):
        write_html(tmp_path / "b.html", selection=sel, readiness=0.5)


def test_a_model_no_multiplier_fits_reports_strict_json():
    import json

    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    for p in model.parameters():
        nn.init.zeros_(p)  # theta* = 0: no positive multiplier, c = 0
    x, y = torch.randn(20, 4, generator=torch.Generator().manual_seed(0)), torch.arange(20) % 3
    r = kkt_readiness(model, (x, y))
    assert r.scale == 0.0 and r.implied_weight_decay == float("inf")
    d = r.to_dict()
    assert d["implied_weight_decay"] is None
    json.dumps(d, allow_nan=False)


def test_free_scope_leaves_out_the_scale_invariant_modules():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 6), nn.LayerNorm(6, elementwise_affine=False), nn.Tanh(), nn.Linear(6, 3)
    )
    x, y = torch.randn(30, 4), torch.arange(30) % 3
    free = kkt_readiness(model, (x, y), param_names="free")
    assert free.param_names == ["3.weight", "3.bias"]  # the Linear before the LayerNorm is invariant
    explicit = kkt_readiness(model, (x, y), param_names=["3.weight", "3.bias"])
    assert free.cosine == pytest.approx(explicit.cosine, abs=1e-12)
    with pytest.raises(ValueError, match="param_names must be a list of names, 'free' or None"):
        kkt_readiness(model, (x, y), param_names="last")


def test_a_progress_bar_can_be_shown_and_is_off_by_default(capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).eval()
    x, y = torch.randn(40, 4), torch.arange(40) % 3
    quiet = kkt_readiness(model, (x, y), chunk_size=8)
    assert capsys.readouterr().err == ""
    shown = kkt_readiness(model, (x, y), chunk_size=8, progress=True)
    assert "readiness" in capsys.readouterr().err
    assert shown.cosine == quiet.cosine and shown.argmax_agreement == quiet.argmax_agreement
    with pytest.raises(TypeError, match="progress must be a bool"):
        kkt_readiness(model, (x, y), progress="yes")


def test_a_data_shape_that_does_not_fit_is_named_as_the_datas():
    # stress test 8C: the message named an input_shape=(5,) the user never passed
    from torch import nn

    from kktexplain import kkt_readiness

    model = nn.Sequential(nn.Linear(13, 4), nn.Tanh(), nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"^data of shape \(5,\) does not fit the model"):
        kkt_readiness(model, (torch.randn(20, 5), torch.arange(20) % 3))


def test_stress_9f_readiness_checks_token_ids_and_names_a_pair_of_lists():
    """Token ids outside the vocabulary (torch's IndexError) or float ids (a RuntimeError) of an
    embedding model; a pair of lists was refused as 'got tuple', what the message asks for."""
    from torch import nn

    from kktexplain import kkt_readiness

    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 4), nn.Flatten(), nn.Linear(12, 3))
    y = torch.arange(6) % 3
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 50\)"):
        kkt_readiness(model, (torch.randint(100, 150, (6, 3)), y))
    with pytest.raises(TypeError, match="must hold integer token ids"):
        kkt_readiness(model, (torch.rand(6, 3), y))
    with pytest.raises(TypeError, match=r"got tuple of \(list, list\)"):
        kkt_readiness(nn.Linear(3, 3), ([[0.0, 1.0, 2.0]] * 6, y.tolist()))


def test_stress_9f_unused_and_zero_tensors_are_not_called_scale_invariant():
    """A Linear the forward never uses, and an all-zero Linear, were reported as lying in
    'scale-invariant modules (a layer before a normalisation)'."""
    from torch import nn

    from kktexplain import kkt_readiness

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.l, self.unused = nn.Linear(8, 3), nn.Linear(5, 5)

        def forward(self, x):
            return self.l(x)

    torch.manual_seed(0)
    net, x = Net(), torch.randn(64, 8)
    y = net(x).argmax(1)
    r = kkt_readiness(net, (x, y))
    assert "2 get no gradient from these samples (unused by the forward)" in r.message
    assert "scale-invariant modules" not in r.message
    zero = nn.Linear(8, 3)
    nn.init.zeros_(zero.weight)
    nn.init.zeros_(zero.bias)
    r = kkt_readiness(zero, (x, y))
    assert "2 are zero (scaling them changes nothing)" in r.message
    assert "scale-invariant modules" not in r.message
