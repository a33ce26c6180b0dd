"""DeepSupportVectors end to end on tiny models: contract, determinism, errors."""

import pytest
import torch
from conftest import TinyMLP, assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain import DeepSupportVectors, DSVResult
from kktexplain.datasets import make_2d
from kktexplain.kkt import Augmentation, KKTObjective
from kktexplain.models import MLP, ConvNet, ResNet, train_classifier

FAST = {"steps": 4, "progress": False}


def _models():
    torch.manual_seed(0)
    return {
        "mlp": MLP((6,), 3, hidden=(8,)),
        "convnet": ConvNet((1, 8, 8), 3, width=4, depth=2),
        "resnet_bn": ResNet((1, 8, 8), 3, widths=(4, 8)),
        "convnet_bn": ConvNet((1, 8, 8), 3, width=4, depth=2, norm="batchnorm"),
    }


@pytest.mark.parametrize("name", ["mlp", "convnet", "resnet_bn", "convnet_bn"])
@pytest.mark.parametrize("preset", ["default", "paper_eq9", "paper_alg1"])
def test_model_left_exactly_as_found(name, preset):
    model = _models()[name]
    model.train()  # a training-mode model, with a custom hook and an existing .grad
    hook = model.register_forward_hook(lambda m, i, o: None)
    first = next(model.parameters())
    first.grad = torch.full_like(first, 0.5)
    last = list(model.parameters())[-1]
    last.requires_grad_(False)
    before = model_snapshot(model)
    dsv = DeepSupportVectors(n_per_class=2, objective=preset, **FAST).attribute(model)
    assert_same_snapshot(before, model_snapshot(model))
    hook.remove()
    n = 6
    assert dsv.inputs.shape == (n, *model.input_shape)
    assert dsv.labels.shape == (n,) and dsv.lambdas.shape == (n,)
    assert (dsv.lambdas >= 0).all()
    assert dsv.kkt.margin.shape == (n,)
    assert len(dsv.history["entropy"]) == 4
    assert set(dsv.history) >= {
        "total",
        "stationarity_aug",
        "primal_aug",
        "entropy",
        "cosine",
        "feasibility",
        "feasibility_aug",
        "lambda_mean",
        "n_active",
    }
    if preset != "paper_eq9":  # Eq 9 has no un-augmented term
        assert {"stationarity", "primal"} <= set(dsv.history)


def test_batchnorm_running_stats_are_used_not_updated():
    model = _models()["resnet_bn"]
    # give BN non-trivial running statistics, then check the DSVs are judged in eval mode
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 1, 8, 8) * 3 + 1)
    model.eval()
    before = model_snapshot(model)
    dsv = DeepSupportVectors(n_per_class=2, **FAST).attribute(model)
    assert_same_snapshot(before, model_snapshot(model))
    with torch.no_grad():
        logits = model(dsv.inputs)
    assert torch.equal(logits.argmax(-1) == dsv.labels, dsv.kkt.feasible)


def test_same_seed_same_dsvs_and_different_seed_differs():
    model = _models()["convnet"]
    a = DeepSupportVectors(n_per_class=2, seed=3, **FAST).attribute(model)
    b = DeepSupportVectors(n_per_class=2, seed=3, **FAST).attribute(model)
    c = DeepSupportVectors(n_per_class=2, seed=4, **FAST).attribute(model)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.lambdas, b.lambdas)
    assert a.history == b.history
    assert not torch.equal(a.inputs, c.inputs)


def test_soft_labels():
    model = _models()["mlp"]
    soft = torch.tensor([[0.4, 0.6, 0.0], [0.0, 0.3, 0.7], [1.0, 0.0, 0.0]])
    dsv = DeepSupportVectors(**FAST).attribute(model, labels=soft)
    assert dsv.labels.shape == (3, 3) and torch.equal(dsv.labels, soft)
    assert dsv.hard_labels.tolist() == [1, 2, 0]
    assert dsv.inputs.shape == (3, 6)


def test_optimisation_improves_stationarity_and_satisfies_primal_with_margin():
    torch.manual_seed(1)
    model = MLP((2,), 2, hidden=(16,))
    train_classifier(
        model, make_2d("moons", 200), epochs=200, lr=0.01, batch_size=200, weight_decay=1e-3, progress=False
    )
    objective = KKTObjective.from_preset("default", epsilon=0.5)
    dsv = DeepSupportVectors(
        n_per_class=4, steps=150, augmentation=None, progress=False, lr=0.05, objective=objective
    ).attribute(model)
    assert dsv.kkt.feasibility_rate == 1.0
    assert (dsv.kkt.margin > 0).all()
    # cos(theta*, -sum lambda grad L) improves over the run
    assert dsv.kkt.stationarity["cosine"] > dsv.history["cosine"][0] + 0.5
    assert torch.isfinite(dsv.inputs).all()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_pruned_candidates_are_removed_and_their_inputs_frozen(optimizer):
    model = _models()["mlp"]
    kw = dict(n_per_class=3, dual="prune", objective="paper_eq9", lr_lambda=5.0, progress=False)
    kw.update(optimizer=optimizer, lr=0.05 if optimizer == "adam" else 2.0)
    if optimizer == "sgd":
        kw.update(lr_lambda=50.0)
    early = DeepSupportVectors(steps=15, **kw).attribute(model)
    late = DeepSupportVectors(steps=30, **kw).attribute(model)  # the same run, 15 steps further
    pruned = ~early.active
    assert pruned.any() and early.active.any()
    assert (late.active <= early.active).all()  # once removed, never back
    # a pruned input stays where it was when pruned, though its primal loss still has a gradient
    torch.testing.assert_close(late.inputs[pruned], early.inputs[pruned], rtol=0, atol=0)
    assert not torch.equal(late.inputs[late.active], early.inputs[late.active])
    assert (early.lambdas[pruned] == 0).all() and (early.lambdas[early.active] > 0).all()
    assert late.history["n_active"][-1] == late.active.sum().item()
    assert late.history["n_active"][14] == early.active.sum().item()


def test_lambda_scale_auto_matches_the_gradient_norm_to_the_target():
    # "auto": ||sum_i s grad L_i(x0)|| = ||theta* - theta_0|| at the start (lambda = s exp(0))
    model = _models()["mlp"]
    torch.manual_seed(9)
    init = MLP((6,), 3, hidden=(8,))
    for loss, dual in (("ce", "exp"), ("hinge", "clamp"), ("ce", "prune")):
        objective = KKTObjective.from_preset("paper_alg1", loss=loss, hinge_margin=50.0)
        dsv = DeepSupportVectors(n_per_class=2, steps=0, objective=objective, dual=dual, progress=False)
        out = dsv.attribute(model, reference=init)
        x, y = out.inputs, out.labels
        logits = model(x)
        if loss == "ce":
            total = nn.functional.cross_entropy(logits, y, reduction="sum")
        else:
            own = logits.gather(1, y[:, None])[:, 0]
            other = logits.scatter(1, y[:, None], -float("inf")).max(1).values
            total = (50.0 - own + other).clamp(min=0).sum()
        grads = torch.autograd.grad(total, list(model.parameters()))
        g_norm = torch.sqrt(sum(g.pow(2).sum() for g in grads)).item()
        t_norm = torch.sqrt(
            sum((p - q).pow(2).sum() for p, q in zip(model.parameters(), init.parameters()))
        ).item()
        scale = out.settings["lambda_scale_value"]
        assert scale == pytest.approx(t_norm / g_norm, rel=1e-5)
        torch.testing.assert_close(out.lambdas, torch.full((6,), scale), rtol=1e-6, atol=0)
        assert out.kkt.stationarity["g_norm_ratio"] == pytest.approx(1.0, rel=1e-4)
    # a scale-free distance needs no scale; a number is taken as given
    free = DeepSupportVectors(n_per_class=2, steps=0, progress=False).attribute(model)
    assert free.settings["lambda_scale_value"] == 1.0 and torch.equal(free.lambdas, torch.ones(6))
    fixed = DeepSupportVectors(
        n_per_class=2, steps=0, objective="paper_alg1", lambda_scale=0.3, progress=False
    )
    torch.testing.assert_close(fixed.attribute(model).lambdas, torch.full((6,), 0.3))


def test_lambda_max_bounds_the_multipliers():
    model = _models()["mlp"]
    dsv = DeepSupportVectors(
        n_per_class=3, steps=20, lambda_max=0.5, lr_lambda=1.0, progress=False
    ).attribute(model)
    assert dsv.lambdas.max() <= 0.5


def test_init_real_and_other():
    model = _models()["convnet"]
    x = torch.randn(30, 1, 8, 8)
    y = torch.arange(3).repeat(10)
    real = DeepSupportVectors(n_per_class=2, init="real", steps=0, progress=False).attribute(
        model, init_data=(x, y)
    )
    assert torch.equal(real.inputs, x[real.indices])
    assert torch.equal(real.labels, y[real.indices])
    assert real.labels.tolist() == [0, 0, 1, 1, 2, 2]
    # one-hot rows pick the same samples (a sample's class is its arg-max) and stay its labels
    onehot = DeepSupportVectors(n_per_class=2, init="real", steps=0, progress=False).attribute(
        model, init_data=(x, torch.nn.functional.one_hot(y, 3).float())
    )
    assert torch.equal(onehot.indices, real.indices)
    assert torch.equal(onehot.labels.argmax(1), real.labels)
    other = DeepSupportVectors(n_per_class=2, init="other", steps=0, progress=False).attribute(
        model, init_data=x
    )
    assert other.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(other.inputs, x[other.indices])


def test_input_range_clamps():
    model = _models()["mlp"]
    dsv = DeepSupportVectors(n_per_class=2, input_range=(-0.1, 0.2), init_scale=3.0, **FAST).attribute(model)
    assert dsv.inputs.min() >= -0.1 and dsv.inputs.max() <= 0.2


def test_param_subset_and_additional_forward_args():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = TinyMLP()

        def forward(self, x, temperature):
            return self.body(x) / temperature

    model = Scaled()
    dsv = DeepSupportVectors(n_per_class=1, param_names=["body.fc2.weight"], **FAST).attribute(
        model, additional_forward_args=2.0
    )
    assert list(dsv.kkt.per_layer_cosine) == ["body.fc2.weight"]
    with pytest.raises(ValueError, match="param_names"):
        DeepSupportVectors(param_names=["nope"], **FAST).attribute(model, additional_forward_args=2.0)


def test_save_load_roundtrip(tmp_path):
    model = _models()["convnet"]
    dsv = DeepSupportVectors(n_per_class=2, **FAST).attribute(model)
    dsv.save(tmp_path / "dsv.npz")
    back = DSVResult.load(tmp_path / "dsv.npz")
    assert torch.equal(back.inputs, dsv.inputs) and torch.equal(back.lambdas, dsv.lambdas)
    assert back.history == dsv.history
    assert back.kkt.stationarity == dsv.kkt.stationarity
    assert torch.equal(back.kkt.margin, dsv.kkt.margin)


def test_top_k_per_class():
    model = _models()["mlp"]
    dsv = DeepSupportVectors(n_per_class=3, **FAST).attribute(model)
    dsv.lambdas = torch.tensor([1.0, 3.0, 2.0, 0.5, 0.1, 0.2, 9.0, 8.0, 7.0])
    core = dsv.top_k_per_class(2)
    assert core.indices.tolist() == [[1, 2], [3, 5], [6, 7]]
    torch.testing.assert_close(core.lambdas, torch.tensor([[3.0, 2.0], [0.5, 0.2], [9.0, 8.0]]))
    padded = dsv.top_k_per_class(4)
    assert padded.indices[0, 3] == -1 and torch.isnan(padded.lambdas[0, 3])


# ---------------------------------------------------------------- errors
def test_error_wrong_input_shape():
    model = _models()["convnet"]
    with pytest.raises(ValueError, match="input_shape"):
        DeepSupportVectors(**FAST).attribute(model, input_shape=(3, 8, 8))
    with pytest.raises(ValueError, match=r"init_data must have shape \(N, 1, 8, 8\)"):
        DeepSupportVectors(init="other", **FAST).attribute(model, init_data=torch.randn(5, 1, 9, 9))
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 3))
    with pytest.raises(ValueError, match="input_shape could not be inferred"):
        DeepSupportVectors(**FAST).attribute(conv)


def test_error_target_out_of_range():
    model = _models()["mlp"]
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        DeepSupportVectors(**FAST).attribute(model, labels=torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="integer class indices"):
        DeepSupportVectors(**FAST).attribute(model, labels=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="soft labels"):
        DeepSupportVectors(**FAST).attribute(model, labels=torch.ones(2, 3))


def test_error_model_not_returning_logits():
    class TupleOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
            self.input_shape = (4,)

        def forward(self, x):
            return self.fc(x), x

    class OneOutput(TupleOut):
        def forward(self, x):
            return self.fc(x)[:, 0]

    with pytest.raises(TypeError, match="model must return a floating-point tensor of logits"):
        DeepSupportVectors(**FAST).attribute(TupleOut())
    with pytest.raises(ValueError, match=r"logits of shape \(N, C\)"):
        DeepSupportVectors(**FAST).attribute(OneOutput())
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        DeepSupportVectors(**FAST).attribute(lambda x: x)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"n_per_class": 0}, ValueError, "n_per_class must be > 0"),
        ({"n_per_class": 2.5}, TypeError, "n_per_class must be an int"),
        ({"init": "zeros"}, ValueError, "init must be one of"),
        ({"dual": "relu"}, ValueError, "dual must be one of"),
        ({"optimizer": "lbfgs"}, ValueError, "optimizer must be one of"),
        ({"objective": "eq10"}, ValueError, "objective must be one of"),
        ({"objective": 3}, TypeError, "objective must be a preset name"),
        ({"augmentation": "strong"}, ValueError, "augmentation must be one of"),
        ({"lr": -1.0}, ValueError, "lr must be > 0"),
        ({"input_range": (1.0, 0.0)}, ValueError, "input_range"),
        ({"steps": 1.5}, TypeError, "steps must be an int"),
        ({"steps": -1}, ValueError, "steps must be >= 0"),
        ({"lr_lambda": -1.0}, ValueError, "lr_lambda must be >= 0"),
        ({"init_scale": -0.1}, ValueError, "init_scale must be >= 0"),
        ({"init_scale": "big"}, TypeError, "init_scale must be a float"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be > 0"),
        ({"chunk_size": 2.0}, TypeError, "chunk_size must be an int"),
        ({"projection_dim": 0}, ValueError, "projection_dim must be > 0"),
        ({"projection_dim": 8.0}, TypeError, "projection_dim must be an int"),
        ({"lambda_scale": 0.0}, ValueError, "lambda_scale must be > 0"),
        ({"lambda_max": -1.0}, ValueError, "lambda_max must be > 0"),
        ({"ridge": -1.0}, ValueError, "ridge must be > 0"),
        ({"batch_size": 0}, ValueError, "batch_size must be > 0"),
        ({"batch_size": 1.5}, TypeError, "batch_size must be an int"),
        ({"classes": "01"}, TypeError, "classes must be a sequence of ints, got str"),
        ({"classes": 3}, TypeError, "classes must be a sequence of ints, got int"),
        ({"classes": []}, ValueError, "classes must name at least one class"),
        ({"classes": [0, 0]}, ValueError, "classes must not repeat"),
        ({"classes": [0.5]}, TypeError, "classes must be a sequence of ints, got 0.5"),
    ],
)
def test_bad_settings_raise_at_attribute_not_init(kwargs, exc, match):
    explainer = DeepSupportVectors(**{**FAST, **kwargs})  # constructor only stores
    for k, v in kwargs.items():
        assert getattr(explainer, k) == v
    with pytest.raises(exc, match=match):
        explainer.attribute(_models()["mlp"])


def test_zero_steps_lr_lambda_and_init_scale_are_allowed():
    settings = {"steps": 0, "lr_lambda": 0.0, "init_scale": 0.0, "classes": (0, 2), "progress": False}
    dsv = DeepSupportVectors(n_per_class=1, **settings).attribute(_models()["mlp"])
    assert dsv.labels.tolist() == [0, 2]
    assert not dsv.inputs.abs().any()  # init_scale 0 and no steps: the inputs stay where they start


def test_init_real_needs_data():
    with pytest.raises(ValueError, match="needs init_data"):
        DeepSupportVectors(init="real", **FAST).attribute(_models()["mlp"])


def test_objective_validation():
    with pytest.raises(ValueError, match="distance"):
        KKTObjective(distance="l3")
    with pytest.raises(ValueError, match="'primal' must be a finite float >= 0"):
        KKTObjective(primal=-1)
    with pytest.raises(ValueError, match="translate"):
        Augmentation(translate=-0.1)


def test_reference_parameters_shift_the_stationarity_target():
    model = _models()["mlp"]
    torch.manual_seed(5)
    init = MLP((6,), 3, hidden=(8,))
    for ref in (init, {k: v.detach() for k, v in init.named_parameters()}):
        out = DeepSupportVectors(n_per_class=2, steps=0, progress=False).attribute(model, reference=ref)
        # literal: target = theta* - theta_0, g = sum_i lambda_i grad CE_i with lambda = 1
        loss = nn.functional.cross_entropy(model(out.inputs), out.labels, reduction="sum")
        g = torch.cat([v.flatten() for v in torch.autograd.grad(loss, list(model.parameters()))])
        theta = torch.cat([p.detach().flatten() for p in model.parameters()])
        target = theta - torch.cat([p.detach().flatten() for p in init.parameters()])
        cos = torch.nn.functional.cosine_similarity(target, -g, dim=0).item()
        assert out.kkt.stationarity["cosine"] == pytest.approx(cos, abs=1e-6)
        rel = ((target + g).norm() / target.norm()).item()
        assert out.kkt.stationarity["rel_l2"] == pytest.approx(rel, rel=1e-5)
        plain = DeepSupportVectors(n_per_class=2, steps=0, progress=False).attribute(model)
        plain_cos = torch.nn.functional.cosine_similarity(theta, -g, dim=0).item()
        assert plain.kkt.stationarity["cosine"] == pytest.approx(plain_cos, abs=1e-6)
    with pytest.raises(ValueError, match="reference must hold parameters"):
        DeepSupportVectors(steps=0, progress=False).attribute(model, reference=MLP((6,), 2, hidden=(8,)))


def _stationarity_only_setup(**settings):
    """A float64 linear model and settings whose only loss is ||theta + sum_i lambda_i g_i||^2."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    objective = KKTObjective(
        distance="l2sq", per_layer=False, primal=0.0, tv=0.0, norm=0.0, clean=1.0, augmented=0.0
    )
    base = dict(n_per_class=2, objective=objective, augmentation=None, lambda_scale=1.0, progress=False)
    return model, {**base, **settings}


def test_sgd_step_is_a_literal_gradient_step():
    model, common = _stationarity_only_setup(
        lr_lambda=0.0,
        optimizer="sgd",
        lr=0.1,
    )
    x0 = DeepSupportVectors(steps=0, **common).attribute(model).inputs
    out = DeepSupportVectors(steps=1, **common).attribute(model)
    # literal: r = theta + sum_i grad_theta CE(model(x_i), y_i) with lambda = 1, one GD step on x
    x = x0.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), out.labels, reduction="sum")
    g = torch.autograd.grad(loss, list(model.parameters()), create_graph=True)
    r2 = sum((p.detach() + gi).pow(2).sum() for p, gi in zip(model.parameters(), g))
    (gx,) = torch.autograd.grad(r2, x)
    torch.testing.assert_close(out.inputs, x0 - 0.1 * gx)
    assert out.settings["optimizer"] == "sgd"


@pytest.mark.parametrize("lambda_max", [1.0, 1.5, 2.0, 3.0])
def test_bounded_multipliers_reach_the_bounded_least_squares_solution(lambda_max):
    # inputs frozen (lr ~ 0): the multipliers alone minimise ||theta + sum_i lambda_i g_i||^2
    # over 0 <= lambda <= C. The multipliers start at 1, one of them wants 1.39: with C = 1.5 or
    # 2 Adam overshoots onto the bound, and a clamp there (zero gradient) used to freeze it.
    from scipy.optimize import lsq_linear

    model, settings = _stationarity_only_setup(
        dual="clamp",
        lambda_max=lambda_max,
        lr=1e-12,
        lr_lambda=0.3,
        steps=500,
    )
    out = DeepSupportVectors(**settings).attribute(model)
    cols = []
    for xi, yi in zip(out.inputs, out.labels):
        loss = nn.functional.cross_entropy(model(xi[None]), yi[None])
        cols.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))]))
    theta = torch.cat([p.detach().flatten() for p in model.parameters()])
    ref = lsq_linear(torch.stack(cols, 1).numpy(), -theta.numpy(), bounds=(0.0, lambda_max)).x
    torch.testing.assert_close(out.lambdas, torch.from_numpy(ref), atol=1e-3, rtol=0)
    assert out.lambdas.max() <= lambda_max


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_settings_are_refused_by_name(value):
    model = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="lr must be finite"):
        DeepSupportVectors(lr=value, steps=1, progress=False).attribute(model, input_shape=(3,))


def test_stress_9f_results_load_what_they_saved_and_refuse_inconsistent_files(tmp_path):
    """save('x') wrote x.npz but load('x') read a file named x where one existed; a file of
    inconsistent arrays loaded and broke later (IndexError, NotImplementedError)."""
    import numpy as np

    from kktexplain import DeepSupportVectors, DSVResult

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    x, y = torch.randn(10, 4), torch.arange(10) % 3
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    (tmp_path / "run").write_text("not a result")
    sel.save(tmp_path / "run")
    back = DSVResult.load(tmp_path / "run")
    assert torch.equal(back.lambdas, sel.lambdas)
    with np.load(tmp_path / "run.npz") as f:
        arrays = {k: f[k] for k in f.files}
    arrays["lambdas"] = arrays["lambdas"][:5]
    np.savez(tmp_path / "short.npz", **arrays)
    with pytest.raises(ValueError, match="lambdas has shape"):
        DSVResult.load(tmp_path / "short.npz")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        sel.explain(lambda t: t, x[:1])
