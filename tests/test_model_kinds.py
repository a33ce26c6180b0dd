"""Model kinds beyond a plain nn.Module: TorchScript, parametrisations without forward-mode AD."""

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
