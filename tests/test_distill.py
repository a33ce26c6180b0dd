"""kktexplain.distill: distilled sets, their baselines, and the student evaluator, at smoke size."""

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain import DeepSupportVectors
from kktexplain.distill import (
    DistilledSet,
    StudentProtocol,
    add_soft_labels,
    coreset,
    distill,
    evaluate,
    random_real,
)
from kktexplain.models import MLP, train_classifier

FAST = StudentProtocol(architecture="mlp", width=16, depth=2, epochs=40, lr=0.05, batch_size=64)


def blobs(n_per_class=30, d=6, classes=3, sep=4.0, seed=0):
    """Well-separated Gaussian blobs: (x (N, d), y (N,))."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g) * sep
    y = torch.arange(classes).repeat_interleave(n_per_class)
    return centres[y] + torch.randn(len(y), d, generator=g), y


@pytest.fixture(scope="module")
def teacher():
    x, y = blobs()
    torch.manual_seed(0)
    model = MLP((6,), 3, hidden=(16,))
    train_classifier(model, (x, y), epochs=30, lr=1e-2, batch_size=32, progress=False)
    return model


def test_random_real_picks_k_of_every_class_reproducibly():
    x, y = blobs()
    a = random_real((x, y), 4, seed=3)
    assert a.inputs.shape == (12, 6) and a.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert torch.equal(a.inputs, x[torch.tensor(a.info["indices"])])
    assert torch.equal(a.inputs, random_real((x, y), 4, seed=3).inputs)
    assert not torch.equal(a.inputs, random_real((x, y), 4, seed=4).inputs)
    assert a.source == "random" and a.soft_labels is None


def test_distill_real_starts_from_the_given_images_and_keeps_them_feasible(teacher):
    x, y = blobs()
    base = random_real((x, y), 3, seed=0)
    before = model_snapshot(teacher)
    small = distill(teacher, 3, init="real", real=(base.inputs, base.labels), steps=20, progress=False)
    assert_same_snapshot(before, model_snapshot(teacher))
    assert small.inputs.shape == (9, 6) and small.labels.tolist() == base.labels.tolist()
    # every DSV started from one of the baseline's images of its own class
    rows = torch.tensor(small.info["indices"])
    assert torch.equal(base.labels[rows], small.labels) and sorted(rows.tolist()) == list(range(9))
    moved = (small.inputs - base.inputs[rows]).norm(dim=1)
    assert (moved > 0).all()  # synthesis moved them
    with torch.no_grad():
        assert (teacher(small.inputs).argmax(1) == small.labels).float().mean() >= 0.9  # primal feasibility
    assert small.info["kkt"]["feasibility_rate"] >= 0.9 and small.source == "dsv-real"
    again = distill(teacher, 3, init="real", real=(base.inputs, base.labels), steps=20, progress=False)
    assert torch.equal(small.inputs, again.inputs)  # a seed fixes the result


def test_distill_noise_and_other_and_soft_labels(teacher):
    noise = distill(teacher, 2, init="noise", steps=10, soft_labels=True, temperature=2.0, progress=False)
    assert noise.inputs.shape == (6, 6) and noise.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert noise.soft_labels.shape == (6, 3)
    assert torch.allclose(noise.soft_labels.sum(1), torch.ones(6), atol=1e-6)
    with torch.no_grad():
        expect = torch.softmax(teacher(noise.inputs) / 2.0, dim=1)
    assert torch.allclose(noise.soft_labels, expect, atol=1e-6)
    sharp = add_soft_labels(noise, teacher, temperature=0.5).soft_labels
    entropy = lambda p: -(p * p.clamp_min(1e-12).log()).sum(1)  # noqa: E731
    assert (entropy(sharp) <= entropy(noise.soft_labels) + 1e-6).all()  # lower temperature, sharper labels
    other = torch.randn(20, 6, generator=torch.Generator().manual_seed(5))
    from_other = distill(teacher, 2, init="other", other=other, steps=5, progress=False)
    assert from_other.source == "dsv-other" and from_other.inputs.shape == (6, 6)


def test_coreset_takes_the_top_lambda_per_class(teacher):
    x, y = blobs()
    sel = DeepSupportVectors(progress=False).attribute(teacher, candidates=x, labels=y)
    core = coreset(sel, 2)
    assert core.labels.tolist() == [0, 0, 1, 1, 2, 2]
    for c in range(3):
        members = (y == c).nonzero().flatten()
        best = members[sel.lambdas[members].argsort(descending=True, stable=True)[:2]]
        assert core.info["indices"][2 * c : 2 * c + 2] == best.tolist()
    with pytest.raises(ValueError, match="images_per_class"):
        coreset(sel, 31)


def test_evaluate_is_above_chance_deterministic_and_leaves_the_rng(teacher):
    x, y = blobs()
    test = blobs(n_per_class=40)  # the same centres, more samples
    small = random_real((x, y), 5, seed=0)
    state = torch.get_rng_state()
    ev = evaluate(small, test, seeds=(0, 1), protocol=FAST, progress=False)
    assert torch.equal(state, torch.get_rng_state())
    assert ev.mean > 0.95 and len(ev.accuracies) == 2 and ev.labels == "hard"
    assert ev.std == pytest.approx(float(np.std(ev.accuracies, ddof=1)))
    assert evaluate(small, test, seeds=(0, 1), protocol=FAST, progress=False).accuracies == ev.accuracies
    # labels that carry nothing teach nothing: the evaluator is not blind to the labels
    shuffled = DistilledSet(
        small.inputs, small.labels[torch.randperm(15, generator=torch.Generator().manual_seed(1))]
    )
    assert evaluate(shuffled, test, seeds=(0,), protocol=FAST, progress=False).mean < ev.mean - 0.2
    soft = add_soft_labels(small, teacher)
    assert evaluate(soft, test, seeds=(0,), protocol=FAST, progress=False).labels == "soft"
    assert evaluate(soft, test, seeds=(0,), protocol=FAST, labels="hard", progress=False).labels == "hard"


def test_protocol_presets_and_students():
    dc = StudentProtocol.from_preset("dc")
    assert (dc.optimizer, dc.lr, dc.epochs, dc.lr_decay_at, dc.translate) == ("sgd", 0.01, 300, 0.5, 0.125)
    paper = StudentProtocol.from_preset("paper", epochs=5)
    assert (paper.optimizer, paper.lr, paper.epochs) == ("adam", 1e-4, 5)
    assert type(dc.student((1, 28, 28), 10)).__name__ == "ConvNet"
    assert type(dc.student((64,), 10)).__name__ == "MLP"
    assert type(dc.student((1, 4, 4), 10)).__name__ == "MLP"  # too small for three poolings
    custom = StudentProtocol(architecture=lambda shape, c: nn.Sequential(nn.Flatten(), nn.Linear(6, c)))
    assert isinstance(custom.student((6,), 3)[1], nn.Linear)


def test_save_load_round_trip(tmp_path, teacher):
    small = distill(teacher, 2, init="noise", steps=3, soft_labels=True, progress=False)
    path = small.save(tmp_path / "small")
    back = DistilledSet.load(path)
    assert torch.equal(back.inputs, small.inputs) and torch.equal(back.labels, small.labels)
    assert torch.equal(back.soft_labels, small.soft_labels) and back.source == small.source
    assert back.info["images_per_class"] == 2
    x, y = blobs()
    DeepSupportVectors(progress=False).attribute(teacher, candidates=x, labels=y).save(tmp_path / "res")
    with pytest.raises(ValueError, match="not a 'distilled'"):
        DistilledSet.load(tmp_path / "res.npz")


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: distill(m, 0, init="noise"), ValueError, "images_per_class"),
        (lambda m: distill(m, 2.5, init="noise"), TypeError, "images_per_class"),
        (lambda m: distill(m, 2, init="paint"), ValueError, "init"),
        (lambda m: distill(m, 2, init="real"), ValueError, "real="),
        (lambda m: distill(m, 2, init="other"), ValueError, "other="),
        (lambda m: distill(m, 2, init="noise", real=blobs()), ValueError, "noise"),
        (lambda m: distill(m, 2, init="noise", n_per_class=3), TypeError, "n_per_class"),
        (lambda m: distill(m, 2, init="noise", temperature=0), ValueError, "temperature"),
        (lambda m: distill(m, 2, init="real", real=blobs()[0]), ValueError, "real must carry labels"),
        (lambda m: distill(m, 50, init="real", real=blobs()), ValueError, "images_per_class=50"),
        (lambda m: distill("model", 2), TypeError, "model"),
        (lambda m: random_real(blobs(), 0), ValueError, "images_per_class"),
        (lambda m: evaluate(blobs(), blobs(), seeds=()), TypeError, "seeds"),
        (lambda m: evaluate(blobs(), blobs(), protocol="fast"), ValueError, "name"),
        (lambda m: evaluate(blobs(), blobs(), protocol=StudentProtocol(epochs=0)), ValueError, "epochs"),
        (lambda m: evaluate(blobs(), blobs(), labels="soft"), ValueError, "soft"),
        (lambda m: evaluate(blobs(), blobs(d=5)), ValueError, "test_set"),
        (lambda m: evaluate(blobs()[0], blobs()), ValueError, "dataset must carry labels"),
        (lambda m: coreset(blobs(), 2), TypeError, "selection"),
        (
            lambda m: evaluate(
                blobs(), blobs(), protocol=StudentProtocol(architecture=lambda s, c: nn.Linear(s[0], 7))
            ),
            ValueError,
            r"student must return logits of shape \(n, 3\).*returned \(2, 7\)",
        ),
        (
            lambda m: evaluate(
                blobs(), blobs(), protocol=StudentProtocol(architecture=lambda s, c: nn.Linear(9, c))
            ),
            ValueError,
            r"student cannot take inputs of shape \(6,\)",
        ),
    ],
)
def test_bad_inputs_name_the_parameter(teacher, call, error, match):
    before = model_snapshot(teacher)
    with pytest.raises(error, match=match):
        call(teacher)
    assert_same_snapshot(before, model_snapshot(teacher))


def test_a_float64_teacher_and_float64_numpy_data_are_scored(teacher):
    import copy

    x, y = blobs()
    t64 = copy.deepcopy(teacher).double()
    soft = distill(
        t64, 2, init="real", real=(x.double(), y), steps=2, soft_labels=True, seed=0, progress=False
    )
    assert soft.soft_labels.shape == (6, 3)
    torch.testing.assert_close(soft.soft_labels.sum(1), torch.ones(6))
    r = evaluate(soft, (x.double().numpy(), y.numpy()), protocol=FAST, seeds=[0], progress=False)
    assert 0.0 <= r.mean <= 1.0


def test_evaluate_refuses_non_finite_data_and_labels_that_do_not_fit(teacher):
    x, y = blobs()
    data = random_real((x, y), 2, seed=0)
    bad = x.clone()
    bad[3, 0] = float("inf")
    with pytest.raises(ValueError, match="test_set holds NaN or inf"):
        evaluate(data, (bad, y), protocol=FAST, seeds=[0], progress=False)
    with pytest.raises(ValueError, match="num_classes=2 does not fit the labels"):
        evaluate(data, (x, y), protocol=FAST, seeds=[0], num_classes=2, progress=False)
    with pytest.raises(ValueError, match="device='foo'"):
        evaluate(data, (x, y), protocol=FAST, seeds=[0], device="foo", progress=False)
    with pytest.raises(TypeError, match="progress must be a bool"):
        evaluate(data, (x, y), protocol=FAST, seeds=[0], progress="no")


def test_a_collapsed_or_diverged_student_is_reported():
    """Stress test 7: inputs of scale 1e4 trained a student to one constant class (or to NaN
    weights), and its accuracy, that class's share, came back as a score without a word."""
    from kktexplain import NonFiniteError
    from kktexplain.distill import StudentProtocol, evaluate
    from kktexplain.models import MLP, train_classifier

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 13, generator=gen) * 1e4, torch.arange(200) % 3
    with pytest.warns(UserWarning, match="predicts one class for every test input"):
        evaluate((x, y), (x, y), seeds=(0,), protocol=StudentProtocol(epochs=30), progress=False)
    # a student that learned, on a test set sorted by class (as an ImageFolder is): no warning
    xs, ys = torch.randn(1200, 2, generator=gen), torch.arange(1200) // 600  # 600 of class 0 first
    xs[:, 0] += 8 * ys
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ev = evaluate((xs, ys), (xs, ys), seeds=(0,), protocol=StudentProtocol(epochs=20), progress=False)
    assert ev.mean > 0.95
    torch.manual_seed(0)
    with pytest.raises(NonFiniteError, match="training loss.*standardise the inputs"):
        train_classifier(MLP((13,), 3), (x * 1e30, y), epochs=2, lr=1e30, optimizer="sgd", progress=False)


def test_small_input_mistakes_are_named():
    """Stress test 7: a teacher of other inputs failed deep in torch; sketch='kronecker' without
    projection_dim was silently exact; a missing result file named its path twice."""
    from kktexplain import DeepSupportVectors, DSVResult
    from kktexplain.distill import add_soft_labels, random_real
    from kktexplain.models import MLP

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 13, generator=gen), torch.arange(30) % 3
    small = random_real((x, y), 2)
    with pytest.raises(ValueError, match=r"does not take the set's inputs of shape \(13,\)"):
        add_soft_labels(small, MLP((5,), 3))
    with pytest.raises(ValueError, match="set projection_dim as well"):
        DeepSupportVectors(sketch="kronecker").attribute(MLP((13,), 3), candidates=x, labels=y)
    with pytest.raises(FileNotFoundError) as info:
        DSVResult.load("missing.npz")
    assert str(info.value).count("missing.npz") == 1


def test_a_collapse_on_inputs_of_a_usual_scale_points_at_the_training_not_the_scale(monkeypatch):
    # stress test 8: 2 epochs on 20 images in [0, 1] collapsed, and the warning blamed the scale
    from kktexplain.distill import StudentProtocol, _evaluate, evaluate

    def one_class(model, x):
        return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 3).float()

    monkeypatch.setattr(_evaluate, "predict", one_class)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(30, 13, generator=gen), torch.arange(30) % 3
    with pytest.warns(UserWarning, match=r"with 2 epochs on 30 inputs of a usual scale.*train longer"):
        evaluate((x, y), (x, y), seeds=(0,), protocol=StudentProtocol(epochs=2), progress=False)


def test_distill_names_its_own_arguments_and_the_real_cause():
    # stress test 8C: 1-based labels were reported as "0 samples of class 0", and the messages
    # named the explainer's init_data / n_per_class
    from kktexplain.distill import distill

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x = torch.randn(30, 4)
    with pytest.raises(ValueError, match=r"real labels must lie in \[0, 3\).*got values in \[1, 3\]"):
        distill(model, 2, init="real", real=(x, torch.arange(30) % 3 + 1), progress=False)
    with pytest.raises(ValueError, match=r"real has 0 samples of class 2, fewer than images_per_class=2"):
        distill(model, 2, init="real", real=(x, torch.arange(30) % 2), progress=False)
    with pytest.raises(ValueError, match=r"other must have shape \(N, 4\)"):
        distill(model, 2, init="other", other=torch.randn(30, 7), progress=False)
