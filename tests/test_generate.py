"""kktexplain.generate: shapes, determinism, labels, the model left alone, bad inputs, figures."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from conftest import assert_same_snapshot, model_snapshot  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import nn  # noqa: E402

from kktexplain.generate import GenerationResult, blend, blend_labels, edit, interpolate, sample, ssim  # noqa: E402
from kktexplain.models import ConvNet  # noqa: E402
from kktexplain.viz import plot_blend_matrix, plot_class_samples, plot_edits, plot_interpolation  # noqa: E402

FAST = dict(steps=4, progress=False)


@pytest.fixture(scope="module")
def conv():
    torch.manual_seed(0)
    return ConvNet((1, 8, 8), 3, width=4, depth=1).eval()


def test_sample_shapes_and_determinism(conv):
    r = sample(conv, n_per_class=2, seed=3, **FAST)
    assert isinstance(r, GenerationResult)
    assert r.inputs.shape == (6, 1, 8, 8) and r.probabilities.shape == (6, 3)
    assert r.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.allclose(r.probabilities.sum(1), torch.ones(6))
    again = sample(conv, n_per_class=2, seed=3, **FAST)
    assert torch.equal(r.inputs, again.inputs)
    other = sample(conv, n_per_class=2, seed=4, **FAST)
    assert not torch.equal(r.inputs, other.inputs)
    sub = sample(conv, classes=[2], n_per_class=3, **FAST)
    assert sub.labels.tolist() == [2, 2, 2] and sub.settings["classes"] == [2]


def test_blend_labels_mixture():
    y = blend_labels(0, 2, [0.0, 0.25, 0.6, 1.0], num_classes=4)
    assert y.shape == (4, 4)
    assert torch.allclose(y.sum(1), torch.ones(4))
    assert torch.allclose(y[:, 0], torch.tensor([1.0, 0.75, 0.4, 0.0]))
    assert torch.allclose(y[:, 2], torch.tensor([0.0, 0.25, 0.6, 1.0]))
    assert (y[:, [1, 3]] == 0).all()


def test_blend_and_interpolate_shapes(conv):
    r = blend(conv, 0, 2, delta=0.6, n=3, **FAST)
    assert r.inputs.shape == (3, 1, 8, 8) and r.labels.shape == (3, 3)
    assert torch.allclose(r.labels, torch.tensor([[0.4, 0.0, 0.6]]).expand(3, 3))
    assert r.settings["objective"]["primal_kind"] == "ce"
    s = interpolate(conv, 1, 0, deltas=[0.0, 0.5, 1.0], n=2, seed=1, **FAST)
    assert s.inputs.shape == (2, 3, 1, 8, 8) and s.labels.shape == (2, 3, 3)
    assert s.probabilities.shape == (2, 3, 3) and s.deltas.tolist() == [0.0, 0.5, 1.0]
    assert torch.allclose(s.labels[0, :, 0], torch.tensor([0.0, 0.5, 1.0]))
    again = interpolate(conv, 1, 0, deltas=[0.0, 0.5, 1.0], n=2, seed=1, **FAST)
    assert torch.equal(s.inputs, again.inputs)
    assert interpolate(conv, 0, 1, deltas=4, **FAST).deltas.shape == (4,)


def test_interpolation_strip_shares_its_start(conv):
    s = interpolate(conv, 0, 1, deltas=3, n=2, steps=0, progress=False)
    assert torch.equal(s.inputs[0, 0], s.inputs[0, 2])  # one noise per strip
    assert not torch.equal(s.inputs[0, 0], s.inputs[1, 0])


def test_edit_starts_from_the_image(conv):
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    r = edit(conv, x, 1, **FAST)
    assert r.inputs.shape == x.shape and r.labels.tolist() == [1, 1]
    assert torch.equal(r.source, x)
    assert edit(conv, x, 1, steps=0, progress=False).inputs.equal(x)
    one = edit(conv, x[0], [2], **FAST)
    assert one.inputs.shape == (1, 1, 8, 8)
    per = edit(conv, x, torch.tensor([0, 2]), **FAST)
    assert per.labels.tolist() == [0, 2]
    assert torch.equal(per.inputs, edit(conv, x, torch.tensor([0, 2]), **FAST).inputs)


def test_model_left_untouched():
    torch.manual_seed(0)
    model = ConvNet((1, 8, 8), 3, width=4, depth=1)
    model.train()
    model.features[0].weight.requires_grad_(False)
    model.classifier.weight.grad = torch.ones_like(model.classifier.weight)
    before = model_snapshot(model)
    sample(model, n_per_class=1, **FAST)
    blend(model, 0, 1, n=1, **FAST)
    interpolate(model, 0, 1, deltas=2, **FAST)
    edit(model, torch.randn(1, 1, 8, 8), 2, **FAST)
    sample(model, n_per_class=1, device="cpu", **FAST)
    assert_same_snapshot(before, model_snapshot(model))


@pytest.mark.parametrize(
    "call, exc, word",
    [
        (lambda m: sample(m, n_per_class=0), ValueError, "n_per_class"),
        (lambda m: sample(m, n_per_class=1.5), TypeError, "n_per_class"),
        (lambda m: sample(m, classes=[0, 5]), ValueError, "classes"),
        (lambda m: sample(m, classes="0"), TypeError, "classes"),
        (lambda m: sample(m, stepz=3), TypeError, "stepz"),
        (lambda m: sample(m, init="real"), TypeError, "init"),
        (lambda m: sample(m, device=3), TypeError, "device"),
        (lambda m: sample(m, seed=-1), ValueError, "seed"),
        (lambda m: sample(m, init_scale=-1.0), ValueError, "init_scale"),
        (lambda m: sample("model"), TypeError, "model"),
        (lambda m: blend(m, 0, 0), ValueError, "a and b"),
        (lambda m: blend(m, 0, 3), ValueError, "b"),
        (lambda m: blend(m, 0, 1, delta=1.5), ValueError, "delta"),
        (lambda m: blend(m, 0, 1, delta="half"), TypeError, "delta"),
        (lambda m: blend(m, 0, 1, n=0), ValueError, "n"),
        (lambda m: interpolate(m, 0, 1, deltas=1), ValueError, "deltas"),
        (lambda m: interpolate(m, 0, 1, deltas=[0.5, 2.0]), ValueError, "deltas"),
        (lambda m: interpolate(m, 0, 1, deltas="abc"), TypeError, "deltas"),
        (lambda m: edit(m, torch.randn(2, 1, 7, 7), 0), ValueError, "image"),
        (lambda m: edit(m, [[1.0]], 0), TypeError, "image"),
        (lambda m: edit(m, torch.randn(2, 1, 8, 8), 3), ValueError, "target"),
        (lambda m: edit(m, torch.randn(2, 1, 8, 8), [0]), ValueError, "target"),
        (lambda m: edit(m, torch.full((1, 1, 8, 8), float("nan")), 0), ValueError, "image"),
    ],
)
def test_bad_inputs_name_the_parameter(conv, call, exc, word):
    with pytest.raises(exc, match=word):
        call(conv)


def test_ssim_hand_computed():
    # identical images: 1; constant images c1, c2 (no variance): (2 c1 c2 + C1) / (c1^2 + c2^2 + C1)
    a = torch.full((1, 1, 9, 9), 0.2, dtype=torch.float64)
    b = torch.full((1, 1, 9, 9), 0.6, dtype=torch.float64)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1)
    assert torch.allclose(
        ssim(a, b, data_range=1.0), torch.tensor([expected], dtype=torch.float64), atol=1e-9
    )
    x = torch.rand(2, 1, 9, 9, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(x, x, data_range=1.0), torch.ones(2))
    assert ssim(x[0], x[0]).shape == ()
    noisy = [x + s * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) for s in (0.05, 0.3)]
    assert (ssim(x, noisy[0], data_range=1.0) > ssim(x, noisy[1], data_range=1.0)).all()
    with pytest.raises(ValueError, match="window_size"):
        ssim(x, x, window_size=4)
    with pytest.raises(ValueError, match="same shape"):
        ssim(x, x[:1])


def test_samples_of_a_trained_model_look_like_their_class():
    """Three Gaussian blobs in 6-D; a separately trained linear classifier (the judge) should put
    a trained MLP's samples in their own class far more often than chance (1/3)."""
    gen = torch.Generator().manual_seed(0)
    centers = 3.0 * torch.randn(3, 6, generator=gen)
    y = torch.arange(3).repeat_interleave(100)
    x = centers[y] + torch.randn(300, 6, generator=gen)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    torch.manual_seed(1)
    judge = nn.Linear(6, 3)
    opt = torch.optim.Adam(judge.parameters(), lr=0.05)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(judge(x), y).backward()
        opt.step()
    r = sample(model, n_per_class=8, input_range=(-8.0, 8.0), progress=False)  # the default 1,000 steps
    with torch.no_grad():
        agree = judge(r.inputs).argmax(1) == r.labels
    assert float(agree.float().mean()) >= 0.7


def test_figures_return_figures(conv):
    s = sample(conv, n_per_class=2, **FAST)
    bl = [blend(conv, 0, 1, n=1, **FAST), blend(conv, 1, 2, n=1, **FAST)]
    it = interpolate(conv, 0, 2, deltas=3, n=2, **FAST)
    ed = edit(conv, torch.randn(3, 1, 8, 8), 1, **FAST)
    for fig in (
        plot_class_samples(s, ["a", "b", "c"]),
        plot_blend_matrix(bl, samples=s),
        plot_interpolation(it),
        plot_edits(ed, max_pairs=2),
    ):
        assert isinstance(fig, Figure)
    fig = plt.figure()
    assert plot_edits(ed, fig=fig) is fig
    with pytest.raises(ValueError, match="result"):
        plot_class_samples(ed)
    plt.close("all")


def test_initial_noise_centre_and_defaults(conv):
    box = dict(input_range=(-1.0, 2.0), steps=0, progress=False)
    low = sample(conv, n_per_class=20, init_scale=0.1, **box)  # default init_mean="low"
    assert low.settings["init_mean"] == "low" and low.settings["init_centre"] == -1.0
    assert abs(float(low.inputs.mean()) + 1.0) < 0.02
    assert sample(conv, n_per_class=1, steps=0, progress=False).settings["init_centre"] == 0.0
    flat = sample(nn.Linear(6, 3), n_per_class=1, input_range=(-8.0, 8.0), steps=0, progress=False)
    assert flat.settings["init_centre"] == 0.0  # "low" is an image prior only
    mid = sample(conv, n_per_class=20, init_mean=0.5, **box)
    assert abs(float(mid.inputs.mean()) - 0.5) < 0.02
    strip = interpolate(conv, 0, 1, deltas=2, **box)
    assert strip.settings["init_centre"] == -1.0
    # the defaults of the screen in docs/generate.md, and the settings before it
    assert low.settings["objective"]["tv"] == 0.1
    b = blend(conv, 0, 1, n=1, **box)
    assert b.settings["objective"]["tv"] == 0.0 and b.settings["objective"]["primal_kind"] == "ce"
    assert edit(conv, torch.zeros(1, 1, 8, 8), 1, **FAST).settings["objective"]["tv"] == 0.1
    old = sample(conv, n_per_class=1, init_mean=0.0, objective="default", **box)
    assert old.settings["init_centre"] == 0.0 and old.settings["objective"]["tv"] == 0.0
    with pytest.raises(ValueError, match="init_mean"):
        sample(conv, init_mean="high")
    with pytest.raises(TypeError, match="init_mean"):
        sample(conv, init_mean=True)


def test_generation_keeps_every_parameter_on_a_normalised_teacher():
    """Unlike DeepSupportVectors' free default: the invariant modules' gradient is an image prior
    (docs/generate.md, the scope on a normalised teacher)."""

    from kktexplain.generate import sample

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.GroupNorm(3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 3)
    )
    r = sample(net, n_per_class=1, steps=2, progress=False, input_shape=(1, 6, 6))
    assert r.settings["param_names"] == [k for k, _ in net.named_parameters()]
    assert "invariant_param_names" not in r.settings


def test_edit_takes_one_colour_image_without_a_batch_dimension():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 4)
    ).eval()
    image = torch.rand(3, 20, 24)
    one = edit(model, image, target=1, **FAST)
    assert one.inputs.shape == (1, 3, 20, 24)
    assert torch.equal(one.inputs, edit(model, image[None], target=1, **FAST).inputs)
    with pytest.raises(ValueError, match="device='meta' holds no values"):
        sample(model, n_per_class=1, device="meta", **FAST)


def test_generation_arguments_of_other_forms_are_read_or_refused_by_name():
    # stress test 8C: 2-D deltas were flattened, a 0-d tensor delta refused, and edit ignored
    # init_scale / init_mean without a word
    from torch import nn

    from kktexplain.generate import blend, edit, interpolate

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match=r"deltas must be a sequence of floats \(one dimension\)"):
        interpolate(model, 0, 1, deltas=[[0.2, 0.4]], steps=1, progress=False)
    a = blend(model, 0, 1, delta=torch.tensor(0.3), steps=1, progress=False)
    b = blend(model, 0, 1, delta=0.3, steps=1, progress=False)
    torch.testing.assert_close(a.inputs, b.inputs, rtol=0, atol=0)
    c = blend(model, 0, 1, delta=torch.tensor(1), steps=1, progress=False)  # as the int 1 is
    torch.testing.assert_close(c.inputs, blend(model, 0, 1, delta=1, steps=1, progress=False).inputs)
    with pytest.raises(TypeError, match="edit starts from the images themselves: init_mean, init_scale"):
        edit(model, torch.randn(2, 4), target=1, steps=1, progress=False, init_scale=5.0, init_mean=3.0)


def test_a_dict_objective_changes_the_default_objectives_fields_and_odd_channels_show():
    # stress test 8C: objective={"tv": 0.5} replaced sample's objective (per_layer lost), a
    # 2-channel image failed in matplotlib, and a Softmax model was warned about twice
    import warnings

    from kktexplain.viz import show_image

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    s = sample(model, n_per_class=1, steps=1, progress=False, objective={"tv": 0.5})
    assert s.settings["objective"]["tv"] == 0.5 and s.settings["objective"]["per_layer"] is True
    assert len(show_image(torch.rand(2, 8, 8)).images) == 1
    plt.close("all")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sample(nn.Sequential(nn.Linear(4, 3), nn.Softmax(-1)), n_per_class=1, steps=1, progress=False)
    assert len([w for w in caught if "look like probabilities" in str(w.message)]) == 1
