"""Kinds of model beyond MLPs and ConvNets: attention, recurrent layers, wrappers.

Each was found failing by a stress test on models the suite had not tried; the references are
literal autograd computations in float64.
"""

import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain import DeepSupportVectors
from kktexplain.attr import SupportVectorAttribution


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


class _Recurrent(nn.Module):
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
    model = _Recurrent(kind).double().eval()
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
