"""Model kinds beyond a plain nn.Module: TorchScript, parametrisations without forward-mode AD,
attention, recurrent layers vmap cannot batch, wrappers (DataParallel, torch.compile), frozen and
unused parameters.

The later ones were found failing by stress tests on models the suite had not tried; the
references are literal autograd computations in float64.
"""

import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn
from torch.func import functional_call

from kktexplain import DeepSupportVectors
from kktexplain.attr import SupportVectorAttribution, SupportVectorInfluence
from kktexplain.kkt._grads import parameter_jvp


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(12, 6, generator=g, dtype=torch.float64), torch.arange(12) % 3


def test_parameter_jvp_by_reverse_mode_equals_forward_mode(monkeypatch, data):
    net, (x, _) = _mlp(), data
    theta = {k: v.detach() for k, v in net.named_parameters()}
    tangent = {k: torch.randn_like(v) for k, v in theta.items()}

    def f(th):
        return functional_call(net, th, (x,))

    out, exact = parameter_jvp(f, theta, tangent)

    def no_forward_ad(*args, **kwargs):
        raise NotImplementedError("no forward-mode rule")

    monkeypatch.setattr(torch.func, "jvp", no_forward_ad)
    out2, reverse = parameter_jvp(f, theta, tangent)
    torch.testing.assert_close(out2, out, rtol=0, atol=0)
    torch.testing.assert_close(reverse, exact, rtol=1e-12, atol=1e-12)


def test_a_torchscript_model_is_computed_through_a_wrapper(data):
    x, y = data
    net = _mlp()
    scripted = torch.jit.script(_mlp())
    before = model_snapshot(scripted)
    sel = DeepSupportVectors(progress=False).attribute(scripted, candidates=x, labels=y)
    assert_same_snapshot(before, model_snapshot(scripted))
    assert sel.settings["resolved_param_names"] == [
        "scripted.0.weight",
        "scripted.0.bias",
        "scripted.2.weight",
        "scripted.2.bias",
    ]
    plain = DeepSupportVectors(progress=False).attribute(net, candidates=x, labels=y)
    torch.testing.assert_close(sel.lambdas, plain.lambdas, rtol=1e-6, atol=1e-9)
    attr = SupportVectorAttribution(scripted, sel).attribute(x[:2], target=0)
    assert attr.shape == (2, 6)
    assert SupportVectorInfluence(scripted, sel).influence((x[:2], y[:2])).shape == (2, 12)
    # a result of the plain model explains its TorchScript export, and the other way round
    torch.testing.assert_close(
        SupportVectorInfluence(scripted, plain).influence((x[:2], y[:2])),
        SupportVectorInfluence(net, plain).influence((x[:2], y[:2])),
    )
    torch.testing.assert_close(
        SupportVectorInfluence(net, sel).influence((x[:2], y[:2])),
        SupportVectorInfluence(scripted, sel).influence((x[:2], y[:2])),
    )
    with pytest.raises(ValueError, match="not found"):
        SupportVectorInfluence(net, sel, param_names=["scripted.9.weight"])


def test_weight_norm_has_no_forward_ad_and_still_explains(data):
    x, y = data
    net = _mlp()
    net[0] = nn.utils.parametrizations.weight_norm(net[0])
    sel = DeepSupportVectors(progress=False).attribute(net, candidates=x, labels=y)
    before = model_snapshot(net)
    attr, delta = SupportVectorAttribution(net, sel).attribute(x[:2], target=1, return_convergence_delta=True)
    assert_same_snapshot(before, model_snapshot(net))
    assert attr.shape == (2, 6) and torch.isfinite(attr).all() and torch.isfinite(delta).all()


def _binary_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1)).double().eval()


def test_a_single_logit_model_is_refused_with_the_wrapper_named(data):
    x, _ = data
    with pytest.raises(ValueError, match="TwoClassLogits"):
        DeepSupportVectors(progress=False).attribute(_binary_net(), candidates=x, labels=torch.arange(12) % 2)
    flat = nn.Sequential(_binary_net(), nn.Flatten(0))
    with pytest.raises(ValueError, match="TwoClassLogits"):
        DeepSupportVectors(progress=False).attribute(flat, candidates=x, labels=torch.arange(12) % 2)


@pytest.mark.parametrize("flat", [False, True])
def test_two_class_logits_have_the_binary_cross_entropy_and_its_gradients(data, flat):
    from kktexplain.models import TwoClassLogits

    x, _ = data
    y = torch.arange(12) % 2
    net = _binary_net()
    wrapped = TwoClassLogits(nn.Sequential(net, nn.Flatten(0)) if flat else net)
    logits = wrapped(x)
    assert logits.shape == (12, 2)
    f = net(x)[:, 0]
    torch.testing.assert_close(logits[:, 1] - logits[:, 0], f, rtol=0, atol=1e-15)
    torch.testing.assert_close(logits.argmax(1), (f > 0).long(), rtol=0, atol=0)
    ce = nn.functional.cross_entropy(logits, y)
    g_ce = torch.autograd.grad(ce, list(net.parameters()))
    bce = nn.functional.binary_cross_entropy_with_logits(f, y.double())
    g_bce = torch.autograd.grad(bce, list(net.parameters()))
    torch.testing.assert_close(ce, bce, rtol=1e-12, atol=1e-14)
    for a, b in zip(g_ce, g_bce, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_two_class_logits_select_and_explain_a_binary_classifier(data):
    from kktexplain.models import TwoClassLogits

    x, _ = data
    y = (x[:, 0] > 0).long()
    net = _binary_net()
    before = model_snapshot(net)
    wrapped = TwoClassLogits(net)
    sel = DeepSupportVectors(progress=False).attribute(wrapped, candidates=x, labels=y)
    assert sel.settings["resolved_param_names"][0] == "model.0.weight"
    svi = SupportVectorInfluence(wrapped, sel)
    c1 = svi.influence((x[:4], torch.ones(4, dtype=torch.long)))
    c0 = svi.influence((x[:4], torch.zeros(4, dtype=torch.long)))
    # class 0's logit is -f/2: its expansion is class 1's with the opposite sign, and not zero
    torch.testing.assert_close(c0, -c1, rtol=1e-10, atol=1e-12)
    assert bool(c1.abs().sum() > 0)
    assert_same_snapshot(before, model_snapshot(net))


def test_two_class_logits_refuse_a_model_with_several_outputs(data):
    from kktexplain.models import TwoClassLogits

    x, _ = data
    with pytest.raises(ValueError, match="one logit per input"):
        TwoClassLogits(_mlp())(x)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        TwoClassLogits(lambda t: t)


class _Recurrent(nn.Module):
    """An LSTM classifier: its first Linear (the head, 8 wide) says nothing of the input."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def test_the_input_shape_of_a_recurrent_model_comes_from_the_data():
    torch.manual_seed(0)
    model, x, y = _Recurrent(), torch.randn(10, 6, 4), torch.arange(10) % 3
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    assert sel.settings["input_shape"] == [6, 4]
    with pytest.raises(ValueError, match="input_shape could not be inferred"):
        DeepSupportVectors(n_per_class=1, steps=1, progress=False).attribute(model)
    dsv = DeepSupportVectors(n_per_class=1, steps=1, progress=False).attribute(model, input_shape=(6, 4))
    assert dsv.inputs.shape == (3, 6, 4)


def test_a_normalisation_before_the_first_linear_keeps_the_inferred_width():
    torch.manual_seed(0)
    for norm in (nn.BatchNorm1d(5), nn.LayerNorm(5)):
        model = nn.Sequential(norm, nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
        dsv = DeepSupportVectors(n_per_class=1, steps=1, progress=False).attribute(model)
        assert dsv.inputs.shape == (3, 5)
    embed = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(ValueError, match="reads token ids"):  # and a Linear's width is no input's
        DeepSupportVectors(n_per_class=1, steps=1, progress=False).attribute(embed)


def test_two_class_logits_keep_the_input_shape_and_explanations_raise_no_torch_warning():
    import subprocess
    import sys

    from kktexplain.models import MLP, TwoClassLogits

    assert TwoClassLogits(MLP((4,), 1)).input_shape == (4,)
    # torch's own FutureWarning on torch.jit.script, raised when torch.func.jvp first loads, is
    # silenced at import: a fresh interpreter explaining a decision under -W error stays quiet
    code = (
        "import torch, warnings; from torch import nn\n"
        "from kktexplain import DeepSupportVectors\n"
        "m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))\n"
        "x, y = torch.randn(6, 3), torch.arange(6) % 2\n"
        "warnings.simplefilter('error', FutureWarning)\n"
        "DeepSupportVectors(progress=False).attribute(m, candidates=x, labels=y).explain(m, x[:1], k=1)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


def _exact_reference(model, x, target):
    """``<theta, grad_theta f_c(x)>`` over every parameter, one autograd call per input."""
    params = list(model.parameters())
    out = model(x)
    vals = []
    for i in range(len(x)):
        g = torch.autograd.grad(out[i, target[i]], params, retain_graph=True, allow_unused=True)
        vals.append(sum((p * gi).sum() for p, gi in zip(params, g) if gi is not None))
    return torch.stack(vals).detach()


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.att = nn.MultiheadAttention(4, 2, batch_first=True)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.att(x, x, x, need_weights=False)[0].mean(1))


def test_attention_model_is_explained_and_synthesized():
    """The fused attention kernels have no jvp and no double backward: ours take the math form."""
    torch.manual_seed(0)
    model = _Attention().double().eval()
    x, y = torch.randn(20, 5, 4, dtype=torch.float64), torch.arange(20) % 3
    before = model_snapshot(model)
    sel = DeepSupportVectors(param_names=None, progress=False).attribute(model, candidates=x, labels=y)
    e = sel.explain(model, x[:2], k=2, maps="total", n_steps=8)
    torch.testing.assert_close(e.exact, _exact_reference(model, x[:2], e.target))
    torch.testing.assert_close(e.residual, e.exact - e.expansion)
    a, delta = SupportVectorAttribution(model, sel).attribute(
        x[:2], target=e.target, n_steps=64, return_convergence_delta=True
    )
    assert a.shape == x[:2].shape and bool(torch.isfinite(delta).all())
    dsv = DeepSupportVectors(n_per_class=1, steps=3, augmentation=None, progress=False).attribute(
        model, input_shape=(5, 4)
    )
    assert dsv.inputs.shape == (3, 5, 4) and bool(torch.isfinite(dsv.inputs).all())
    assert_same_snapshot(before, model_snapshot(model))


class _RecurrentKind(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.r = kind(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(self.r(x)[0][:, -1])


def _loop_grads(model, names, x, y):
    """Per-sample gradients of the cross-entropy, one autograd call per sample, flattened."""
    params = dict(model.named_parameters())
    rows = []
    for i in range(len(x)):
        loss = nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        g = torch.autograd.grad(loss, [params[n] for n in names])
        rows.append(torch.cat([t.flatten() for t in g]))
    return torch.stack(rows)


@pytest.mark.parametrize("kind", [nn.GRU, nn.RNN])
def test_recurrent_layers_vmap_cannot_batch_fall_back_to_a_loop(kind):
    """vmap cannot batch nn.GRU / nn.RNN here: per-sample gradients come one sample at a time,
    with a warning, and every entry point works (selection, explain, synthesis's λ solve)."""
    from kktexplain.kkt import FunctionalModel
    from kktexplain.kkt._grads import per_sample_grads

    torch.manual_seed(0)
    model = _RecurrentKind(kind).double().eval()
    x, y = torch.randn(12, 5, 4, dtype=torch.float64), torch.arange(12) % 3
    before = model_snapshot(model)
    names = [n for n, _ in model.named_parameters()]
    fmodel = FunctionalModel(model, names)
    with pytest.warns(UserWarning, match="one sample at a time"):
        g = per_sample_grads(fmodel, x, y)
    torch.testing.assert_close(
        torch.cat([g[n].flatten(1) for n in names], 1), _loop_grads(model, names, x, y)
    )
    for scope in (["fc.weight", "fc.bias"], "free"):
        with pytest.warns(UserWarning, match="one sample at a time"):
            sel = DeepSupportVectors(param_names=scope, progress=False).attribute(
                model, candidates=x, labels=y
            )
        e = sel.explain(model, x[:2], k=2, maps="none")
        torch.testing.assert_close(e.residual, e.exact - e.expansion)
    with pytest.warns(UserWarning, match="one sample at a time"):
        dsv = DeepSupportVectors(
            n_per_class=1, steps=2, augmentation=None, lambda_solve_every=1, progress=False
        ).attribute(model, input_shape=(5, 4))
    assert bool(torch.isfinite(dsv.lambdas).all())
    assert_same_snapshot(before, model_snapshot(model))


def test_data_parallel_wrapper_is_the_module_inside():
    """nn.DataParallel (refused by torch.func's functional calls) is read as its module."""
    from kktexplain.attr import SupportVectorInfluence

    torch.manual_seed(0)
    inner = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    wrapped = nn.DataParallel(inner)
    x, y = torch.randn(20, 4, dtype=torch.float64), torch.arange(20) % 3
    before = model_snapshot(wrapped)
    got = DeepSupportVectors(progress=False).attribute(wrapped, candidates=x, labels=y)
    want = DeepSupportVectors(progress=False).attribute(inner, candidates=x, labels=y)
    torch.testing.assert_close(got.lambdas, want.lambdas)
    assert got.settings["param_names"] == want.settings["param_names"]  # no "module." prefix
    e = got.explain(wrapped, x[:2], k=2, n_steps=4, influence=SupportVectorInfluence(wrapped, got))
    e_ref = want.explain(inner, x[:2], k=2, n_steps=4)
    torch.testing.assert_close(e.exact, e_ref.exact)
    torch.testing.assert_close(e.feature_map, e_ref.feature_map)
    dsv = DeepSupportVectors(n_per_class=1, steps=2, augmentation=None, progress=False).attribute(wrapped)
    assert dsv.inputs.shape == (3, 4)
    assert_same_snapshot(before, model_snapshot(wrapped))


def _frozen_backbone():
    """A head trained with SGD and weight decay on a frozen random backbone, near stationarity."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    for p in [*model[0].parameters(), *model[2].parameters()]:
        p.requires_grad_(False)
    x = torch.randn(60, 5, dtype=torch.float64)
    y = (x[:, :3]).argmax(1)
    opt = torch.optim.SGD(model[4].parameters(), lr=0.5, weight_decay=1e-2)
    for _ in range(1500):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    for p in model.parameters():
        p.grad = None
    return model, x, y


def test_frozen_parameters_leave_the_default_scope():
    """Frozen layers were not trained: 'free' (and readiness's default) measure the trainable
    head, where weight-decay training is at a KKT point (stress test 6: cosine 0.16, 'far')."""
    from kktexplain import kkt_readiness

    model, x, y = _frozen_backbone()
    before = model_snapshot(model)
    sel = DeepSupportVectors(multipliers="equal", progress=False).attribute(model, candidates=x, labels=y)
    assert sel.settings["resolved_param_names"] == ["4.weight", "4.bias"]
    assert sel.settings["frozen_param_names"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert sel.kkt.stationarity["cosine"] > 0.999
    ready = kkt_readiness(model, (x, y))
    assert ready.param_names == ["4.weight", "4.bias"] and ready.verdict == "near"
    assert ready.frozen_param_names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert "frozen" in ready.message
    every = kkt_readiness(
        model, (x, y), param_names=["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    )
    assert every.cosine < 0.5 and every.frozen_param_names == []
    assert_same_snapshot(before, model_snapshot(model))
    # a model frozen as a whole (for inference) keeps every parameter
    model.requires_grad_(False)
    sel = DeepSupportVectors(multipliers="equal", progress=False).attribute(model, candidates=x, labels=y)
    assert len(sel.settings["resolved_param_names"]) == 6 and sel.settings["frozen_param_names"] == []


class _WithUnused(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = nn.Linear(4, 3)
        self.aux = nn.Linear(4, 4)  # e.g. an auxiliary head the forward skips

    def forward(self, x):
        return self.used(x)


def test_a_scope_the_forward_never_uses_is_refused_by_name():
    """Stress test 6: torch's 'inputs argument to grad() cannot be empty' (or 'does not require
    grad') came out of selection, synthesis and the expansion."""
    from kktexplain import kkt_readiness
    from kktexplain.attr import SupportVectorInfluence

    torch.manual_seed(0)
    model = _WithUnused()
    x, y = torch.randn(20, 4), torch.arange(20) % 3
    for kw in ({}, {"multipliers": "equal"}):
        with pytest.raises(ValueError, match=r"\['aux.weight'\] do not affect the logits"):
            DeepSupportVectors(param_names=["aux.weight"], progress=False, **kw).attribute(
                model, candidates=x, labels=y
            )
    with pytest.raises(ValueError, match="aux.bias"):  # one unused name among used ones
        DeepSupportVectors(param_names=["used.weight", "aux.bias"], n_per_class=1, steps=1).attribute(model)
    with pytest.raises(ValueError, match="do not affect the logits"):
        kkt_readiness(model, (x, y), param_names=["aux.weight"])
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)  # 'free'
    assert "aux.weight" not in sel.settings["resolved_param_names"]
    with pytest.raises(ValueError, match="do not affect the logits"):
        SupportVectorInfluence(model, sel, param_names=["aux.weight"])
    # every parameter (the paper's scope) still runs: the unused ones' gradients are zero
    every = DeepSupportVectors(param_names=None, progress=False).attribute(model, candidates=x, labels=y)
    assert bool(torch.isfinite(every.lambdas).all())


def test_compiled_model_is_the_module_inside():
    """torch.compile's wrapper names every parameter '_orig_mod.*': results of the plain model
    were refused by the compiled one (stress test 6). It is read as the original module."""
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    compiled = torch.compile(plain)
    x, y = torch.randn(20, 4), torch.arange(20) % 3
    got = DeepSupportVectors(progress=False).attribute(compiled, candidates=x, labels=y)
    want = DeepSupportVectors(progress=False).attribute(plain, candidates=x, labels=y)
    assert got.settings["resolved_param_names"] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    torch.testing.assert_close(got.lambdas, want.lambdas)
    e, e_ref = want.explain(compiled, x[:2], k=2, maps="none"), want.explain(plain, x[:2], k=2, maps="none")
    torch.testing.assert_close(e.exact, e_ref.exact)


def test_unused_parameters_of_a_recorded_every_parameter_scope_and_inference_mode():
    """Review: a result over every parameter (unused ones included) was refused by
    equal_multipliers and write_html; a named scope was refused under torch.inference_mode."""
    from kktexplain.attr import SupportVectorInfluence, equal_multipliers

    torch.manual_seed(0)
    model = _WithUnused()
    x, y = torch.randn(20, 4), torch.arange(20) % 3
    every = DeepSupportVectors(param_names=None, progress=False).attribute(model, candidates=x, labels=y)
    equal = equal_multipliers(model, every)
    assert equal.settings["param_names"] == every.settings["param_names"]
    with torch.inference_mode():
        svi = SupportVectorInfluence(model, every, param_names=["used.weight", "used.bias"])
        assert svi.influence(x[:2]).shape == (2, 20)


def test_out_of_memory_in_vmap_is_not_taken_for_an_unbatchable_model(monkeypatch):
    """Review: torch.OutOfMemoryError (a RuntimeError) sent per_sample_grads to its slow loop."""
    from kktexplain.kkt import FunctionalModel, _grads

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("out of memory (simulated)")

    monkeypatch.setattr(_grads, "vmap", oom)
    fm = FunctionalModel(nn.Linear(3, 2))
    with pytest.raises(torch.OutOfMemoryError):
        _grads.per_sample_grads(fm, torch.randn(4, 3), torch.arange(4) % 2)
    assert not getattr(fm, "_unbatchable", False)


class _Counting(nn.Module):
    """A forward that updates a buffer, rebinding it or in place (a call counter)."""

    def __init__(self, inplace: bool):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 3).double()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.inplace = inplace

    def forward(self, x):
        if self.inplace:
            self.count += 1
        else:
            self.count = self.count + 1
        return self.fc(x)


def test_a_forward_that_rebinds_a_buffer_leaves_it_as_found(data):
    x, y = data
    model = _Counting(inplace=False)
    count = model.count
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    DeepSupportVectors(n_per_class=1, steps=2, progress=False).attribute(model)
    sel.explain(model, x[:2], k=2)
    SupportVectorInfluence(model, sel).influence(x[:2], k=2)
    SupportVectorAttribution(model, sel).attribute(x[:2])
    assert model.count is count and float(count) == 0.0


def test_a_forward_that_writes_a_buffer_in_place_is_refused_by_name_and_restored(data):
    x, y = data
    model = _Counting(inplace=True)
    with pytest.raises(ValueError, match="writes in place to a tensor that is not its input"):
        DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    assert float(model.count) == 0.0


class _SharedLayer(nn.Module):
    """One layer registered under two names (a weight-shared block: self.b = self.a)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(6, 6)
        self.b = self.a
        self.out = nn.Linear(6, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.b(torch.tanh(self.a(x)))))


def test_a_layer_registered_twice_keeps_its_parameters_and_scope(data):
    from kktexplain import kkt_readiness

    x, y = data
    model = _SharedLayer().double().eval()
    own = {name: p for name, p in model.named_parameters()}
    sel = DeepSupportVectors(progress=False, param_names=None).attribute(model, candidates=x, labels=y)
    first = SupportVectorInfluence(model, sel).influence(x[:3])
    kkt_readiness(model, x, y)
    sel.explain(model, x[:1], k=2)
    again = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    # torch's functional_call left a plain tensor without requires_grad under a.weight: the
    # default scope then read the shared layer as frozen, and the user's training skipped it
    assert {name: p for name, p in model.named_parameters()} == own
    assert all(type(p) is nn.Parameter and p.requires_grad for p in own.values())
    assert model.b is model.a and again.settings["resolved_param_names"] == list(own)
    torch.testing.assert_close(SupportVectorInfluence(model, sel).influence(x[:3]), first, rtol=0, atol=0)


def test_models_that_cannot_be_read_as_found_are_refused_before_any_forward(data):
    x, y = data
    renorm = nn.Sequential(nn.Embedding(20, 4, max_norm=1.0), nn.Flatten(), nn.Linear(8, 3))
    weight = renorm[0].weight.detach().clone()
    with pytest.raises(ValueError, match=r"max_norm=1.0 \('0'\).*in place"):
        DeepSupportVectors(progress=False).attribute(
            renorm, candidates=torch.randint(0, 20, (12, 2)), labels=y
        )
    assert torch.equal(renorm[0].weight, weight)  # the probe forward had renormalised it
    lazy = nn.Sequential(nn.Flatten(), nn.LazyLinear(3))
    with pytest.raises(ValueError, match=r"lazy parameters not initialised yet \('1.weight'"):
        DeepSupportVectors(progress=False).attribute(lazy, candidates=x.float(), labels=y)


def test_parameter_jvp_without_forward_mode_or_double_backward_equals_forward_mode():
    # nn.EmbeddingBag has neither: the explanation's delta and explain() raised NotImplementedError
    torch.manual_seed(0)
    bag = nn.EmbeddingBag(20, 4, mode="mean").double()
    ids = torch.randint(0, 20, (3, 5))
    theta = {"weight": bag.weight.detach()}
    tangent = {"weight": torch.randn_like(bag.weight)}

    def through_bag(th):
        return torch.tanh(functional_call(bag, th, (ids,)))

    def through_embedding(th):
        return torch.tanh(nn.functional.embedding(ids, th["weight"]).mean(1))

    out, got = parameter_jvp(through_bag, theta, tangent)
    want_out, want = torch.func.jvp(through_embedding, (theta,), (tangent,))
    torch.testing.assert_close(out, want_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_buffers_are_copied_once_per_outer_block_and_large_ones_are_watched(monkeypatch):
    from kktexplain import _model_state

    model = _Counting(inplace=False)
    model.register_buffer("table", torch.zeros(50, dtype=torch.float64))
    copies = []
    real_clone = torch.Tensor.clone
    monkeypatch.setattr(
        torch.Tensor, "clone", lambda t, *a, **k: copies.append(t.shape) or real_clone(t, *a, **k)
    )
    with _model_state.eval_mode(model):
        with _model_state.eval_mode(model):  # nested (captum's forward inside an attribution)
            model.count.add_(1)
        assert float(model.count) == 1.0  # the outer block restores
    assert float(model.count) == 0.0 and len(copies) == 2  # one copy per buffer, not per block
    monkeypatch.setattr(torch.Tensor, "clone", real_clone)
    monkeypatch.setattr(_model_state, "BUFFER_COPY_LIMIT", 10)
    with pytest.warns(UserWarning, match=r"buffer 'table' \(50 entries, above the 10"):
        with _model_state.eval_mode(model):
            model.table.add_(1)
            model.count.add_(1)
    assert float(model.count) == 0.0 and float(model.table[0]) == 1.0  # said, not undone


def test_parameter_jvp_reads_each_reverse_pass_before_resetting_its_basis():
    # a parameter added to the output has the cotangent itself as its gradient (review finding)
    torch.manual_seed(0)
    bag = nn.EmbeddingBag(20, 4, mode="mean").double()
    ids = torch.randint(0, 20, (1, 5))
    theta = {"weight": bag.weight.detach(), "b": torch.zeros(1, 4, dtype=torch.float64)}
    tangent = {"weight": torch.zeros_like(bag.weight), "b": torch.randn(1, 4, dtype=torch.float64)}
    _, got = parameter_jvp(
        lambda th: functional_call(bag, {"weight": th["weight"]}, (ids,)) + th["b"], theta, tangent
    )
    torch.testing.assert_close(got, tangent["b"], rtol=0, atol=1e-12)


def test_stress_9d_an_operation_without_second_derivative_is_named():
    """nn.Hardsigmoid (mobilenet_v3) has no double backward: synthesis and the feature maps
    raised torch's raw RuntimeError; selection and explain without maps need none."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Hardsigmoid(), nn.Linear(8, 3)).eval()
    x, y = torch.randn(12, 4), torch.arange(12) % 3
    before = model_snapshot(model)
    with pytest.raises(ValueError, match=r"no second derivative for aten::hardsigmoid_backward.*selection"):
        DeepSupportVectors(n_per_class=1, steps=2, progress=False, seed=0).attribute(model)
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    with pytest.raises(ValueError, match=r"a feature map differentiates the model twice.*maps='none'"):
        sel.explain(model, x[:2], k=2)
    e = sel.explain(model, x[:2], k=2, maps="none")
    assert torch.isfinite(e.residual).all()
    assert_same_snapshot(before, model_snapshot(model))


def test_stress_9d_multihead_attention_fast_path_is_turned_off_and_back_on():
    """torchvision's VisionTransformer in eval mode takes nn.MultiheadAttention's fused fast
    path, which has no derivative: explain's feature maps raised a raw RuntimeError."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=8, patch_size=4, num_layers=1, num_heads=2, hidden_dim=8, mlp_dim=16, num_classes=3
    ).eval()
    nn.init.normal_(model.heads.head.weight, std=0.1)
    x, y = torch.randn(6, 3, 8, 8), torch.arange(6) % 3
    sel = DeepSupportVectors(progress=False, param_names=["heads.head.weight", "heads.head.bias"]).attribute(
        model, candidates=x, labels=y
    )
    fast = torch.backends.mha.get_fastpath_enabled()
    e = sel.explain(model, x[:1], k=2, n_steps=2)
    assert torch.isfinite(e.feature_map).all() and e.feature_map.abs().sum() > 0
    assert torch.backends.mha.get_fastpath_enabled() == fast


def test_stress_9d_kronecker_sketch_names_a_nan_parameter():
    """A NaN weight made the Kronecker sketch's self-check blame layer usage (naming [])."""
    from kktexplain import NonFiniteError

    model = _mlp()
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    x, y = torch.randn(12, 6, dtype=torch.float64), torch.arange(12) % 3
    with pytest.raises(NonFiniteError, match="non-finite value"):
        DeepSupportVectors(sketch="kronecker", projection_dim=16, progress=False).attribute(
            model, candidates=x, labels=y
        )
