"""KroneckerSketch: the factored projection of per-sample gradients against literal references."""

import copy

import pytest
import torch
from torch import nn

from kktexplain import DeepSupportVectors
from kktexplain.kkt import (
    FunctionalModel,
    KroneckerSketch,
    collect_gradients,
    cross_entropy,
    per_sample_grads,
)


class _Zoo(nn.Module):
    """Every supported layer, a shared Linear (two calls), a 3-D Linear input and an in-place ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 4, 3, padding=1)
        self.n1 = nn.GroupNorm(2, 4)
        self.c2 = nn.Conv2d(4, 3, 3, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.tok = nn.Linear(3, 3)
        self.c1d = nn.Conv1d(3, 5, 2, dilation=2, padding=1)
        self.ln = nn.LayerNorm(5)
        self.fc = nn.Linear(5, 5)
        self.head = nn.Linear(5, 4)

    def forward(self, x):
        x = torch.relu(self.n1(self.c1(x)))
        x = torch.relu_(self.bn(self.c2(x)))  # in place on a captured output
        x = self.tok(x.flatten(2).transpose(1, 2)).transpose(1, 2)  # Linear on (n, L, 3)
        x = self.ln(self.c1d(x).mean(-1))
        x = self.fc(torch.tanh(self.fc(x)))  # the same weights twice
        return self.head(x)


def _zoo():
    torch.manual_seed(0)
    m = _Zoo().double().eval()
    m.bn.running_mean.uniform_(-0.5, 0.5)
    m.bn.running_var.uniform_(0.5, 2.0)
    return m


def _materialised(fmodel, x, y, loss_fn=cross_entropy):
    g = per_sample_grads(fmodel, x, y, loss_fn)
    return torch.cat([g[k].flatten(1) for k in fmodel.theta], dim=1)


@pytest.mark.parametrize("width", [40, 300])
def test_factored_projection_equals_the_projection_of_materialised_gradients(width):
    model = _zoo()
    fmodel = FunctionalModel(model)
    x = torch.randn(6, 2, 7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    sketch = KroneckerSketch(fmodel, width, seed=3)
    got = sketch.per_sample_grads(fmodel, x, y, cross_entropy)
    ref = sketch(_materialised(fmodel, x, y))
    assert got.shape == (6, sketch.out_features)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    assert sketch._clone  # the in-place ReLU was seen and the chunk redone with copies


def test_a_wide_enough_sketch_is_the_identity():
    model = _zoo()
    fmodel = FunctionalModel(model)
    x = torch.randn(4, 2, 7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([3, 2, 1, 0])
    sketch = KroneckerSketch(fmodel, 10 * fmodel.num_params)
    assert sketch.out_features == fmodel.num_params
    torch.testing.assert_close(
        sketch.per_sample_grads(fmodel, x, y, cross_entropy),
        _materialised(fmodel, x, y),
        rtol=1e-10,
        atol=1e-12,
    )


def test_a_parameter_subset_and_soft_labels():
    model = _zoo()
    fmodel = FunctionalModel(model, param_names=["c2.weight", "ln.weight", "fc.weight"])
    x = torch.randn(5, 2, 7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = torch.softmax(torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4)), -1)
    sketch = KroneckerSketch(fmodel, 30, seed=0)
    torch.testing.assert_close(
        sketch.per_sample_grads(fmodel, x, y, cross_entropy),
        sketch(_materialised(fmodel, x, y)),
        rtol=1e-10,
        atol=1e-12,
    )


def test_inner_products_are_preserved_in_expectation():
    model = _zoo()
    fmodel = FunctionalModel(model)
    gen = torch.Generator().manual_seed(5)
    u = torch.randn(fmodel.num_params, dtype=torch.float64, generator=gen)
    v = u + torch.randn(fmodel.num_params, dtype=torch.float64, generator=gen)
    ratios = []
    for seed in range(300):
        s = KroneckerSketch(fmodel, 60, seed=seed)
        ratios.append((s(u) @ s(v)).item() / (u @ v).item())
    mean = torch.tensor(ratios).mean().item()
    assert abs(mean - 1.0) < 0.1
    # and the seed is the whole randomness
    s1, s2 = KroneckerSketch(fmodel, 60, seed=7), KroneckerSketch(fmodel, 60, seed=7)
    torch.testing.assert_close(s1(u), s2(u), rtol=0, atol=0)


def test_collect_gradients_uses_the_factored_path_chunk_by_chunk():
    model = _zoo()
    fmodel = FunctionalModel(model)
    x = torch.randn(7, 2, 7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    sketch = KroneckerSketch(fmodel, 50, seed=1)
    got = collect_gradients(fmodel, x, y, cross_entropy, chunk_size=3, sketch=sketch, rows=(1, 6))
    torch.testing.assert_close(got, sketch(_materialised(fmodel, x[1:6], y[1:6])), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "layer, match",
    [
        (nn.Conv2d(2, 4, 3, groups=2), "grouped convolution"),
        (nn.Conv2d(2, 4, 3, padding="same"), "padding"),
        (nn.Embedding(5, 3), "not one of"),
        (nn.BatchNorm2d(2), "batch statistics"),  # left in train mode
    ],
)
def test_unsupported_layers_are_refused_by_name(layer, match):
    fmodel = FunctionalModel(nn.Sequential(layer))
    with pytest.raises(ValueError, match=match) as err:
        KroneckerSketch(fmodel, 10)
    assert "0.weight" in str(err.value) and "sketch='count'" in str(err.value)
    with pytest.raises(ValueError, match="out_features"):
        KroneckerSketch(FunctionalModel(nn.Linear(2, 2)), 0)


def test_selection_with_the_kronecker_sketch_leaves_the_model_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
    )
    x = torch.randn(60, 1, 8, 8)
    y = torch.arange(60) % 3
    before = copy.deepcopy(model.state_dict())
    grads_before = [p.grad for p in model.parameters()]
    explainer = DeepSupportVectors(projection_dim=64, sketch="kronecker", progress=False)
    res = explainer.attribute(model, candidates=x, labels=y)
    again = explainer.attribute(model, candidates=x, labels=y)
    assert res.settings["sketch_kind"] == "kronecker"
    # the default scope leaves out the convolution before the group norm
    assert res.settings["resolved_param_names"] == ["1.weight", "1.bias", "4.weight", "4.bias"]
    scope = FunctionalModel(model, res.settings["resolved_param_names"])
    assert res.settings["sketch_dim"] == KroneckerSketch(scope, 64).out_features
    assert (res.lambdas >= 0).all() and (res.lambdas > 0).any()
    torch.testing.assert_close(res.lambdas, again.lambdas, rtol=0, atol=0)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert [p.grad for p in model.parameters()] == grads_before and model.training
    assert not model._forward_hooks and not model[0]._forward_hooks


def test_the_sketch_setting_is_validated():
    model = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="sketch"):
        DeepSupportVectors(projection_dim=4, sketch="gaussian", progress=False).attribute(
            model, candidates=torch.randn(4, 3), labels=torch.tensor([0, 1, 0, 1])
        )


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.h = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 3)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.h(torch.tanh(self.b(torch.tanh(self.a(x)))))


class _StdLinear(nn.Linear):
    def forward(self, x):  # weight standardisation: the gradient is not sum g a^T
        w = (self.weight - self.weight.mean(1, keepdim=True)) / (self.weight.std(1, keepdim=True) + 1e-5)
        return nn.functional.linear(x, w, self.bias)


class _Bypass(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.h = nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):  # a.weight used without calling a
        return self.h(torch.tanh(nn.functional.linear(x, self.a.weight, self.a.bias)))


class _SeqFirst(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.h = nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):  # (n, L, d) -> (L, n, d): the layer sees the sequence first
        return self.h(torch.tanh(self.a(x.transpose(0, 1))).mean(0))


@pytest.mark.parametrize(
    "model, match",
    [
        (_Tied(), "tied"),
        (nn.Sequential(_StdLinear(4, 4), nn.Tanh(), nn.Linear(4, 3)), "overrides Linear.forward"),
        (_Bypass(), r"\['a.weight', 'a.bias'\]"),
    ],
)
def test_parameters_used_outside_their_layer_are_refused_not_mis_projected(model, match):
    fmodel = FunctionalModel(model.double().eval())
    x = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match=match):
        KroneckerSketch(fmodel, 20).per_sample_grads(fmodel, x, y, cross_entropy)
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("length", [3, 5])  # 5 = n: the square case only the vmap check catches
def test_layers_must_take_the_samples_first(length):
    model = _SeqFirst().double().eval()
    fmodel = FunctionalModel(model)
    x = torch.randn(5, length, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match="first dimension"):
        KroneckerSketch(fmodel, 20).per_sample_grads(fmodel, x, torch.tensor([0, 1, 2, 0, 1]), cross_entropy)


def test_batchnorm_put_in_train_mode_after_construction_is_refused():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double().eval()
    fmodel = FunctionalModel(model)
    sketch = KroneckerSketch(fmodel, 10)
    model.train()
    with pytest.raises(ValueError, match="batch statistics"):
        sketch.per_sample_grads(
            fmodel, torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 1, 0, 1]), cross_entropy
        )
