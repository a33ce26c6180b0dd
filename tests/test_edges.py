"""Edges of settings, plots and the CLI found by a stress test of synthesis, distill and reports."""

import warnings

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from kktexplain import DeepSupportVectors, viz
from kktexplain.cli import main

matplotlib.use("Agg")


def _mlp(classes=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, classes)).eval()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"input_range": (float("nan"), 1.0)}, ValueError, "input_range must be finite"),
        ({"input_range": "01"}, TypeError, "input_range must be a pair of numbers"),
        ({"seed": 2**64 - 1}, ValueError, r"seed must be in \[0, 2\*\*63\)"),
    ],
)
def test_settings_that_used_to_fail_late_name_the_parameter(kwargs, error, match):
    with pytest.raises(error, match=match):
        DeepSupportVectors(n_per_class=1, steps=1, progress=False, **kwargs).attribute(_mlp())


def test_numpy_and_torch_integers_are_taken_where_ints_are(tmp_path):
    dsv = DeepSupportVectors(n_per_class=1, steps=1, progress=False, classes=torch.tensor([0, 2])).attribute(
        _mlp()
    )
    assert dsv.hard_labels.tolist() == [0, 2]
    assert dsv.top_k_per_class(np.int64(1)).indices.shape == (3, 1)
    with pytest.raises(ValueError, match="the folder .* does not exist"):
        dsv.save(tmp_path / "missing" / "x")


def test_plots_of_partial_and_selection_results():
    model = _mlp(25)
    few = DeepSupportVectors(n_per_class=2, steps=1, progress=False, classes=[17, 20]).attribute(model)
    ax = viz.plot_dsv_gallery(few)  # default: the classes present, not classes 0..9
    assert [t.get_text() for t in ax.get_yticklabels()] == ["17", "20"]
    sel = DeepSupportVectors(progress=False).attribute(
        model, candidates=torch.randn(50, 6), labels=torch.arange(50) % 25
    )
    with pytest.raises(ValueError, match="no synthesis history"):
        viz.plot_history(sel)
    with pytest.raises(ValueError, match=r"image must be a tensor \(C, H, W\) or \(H, W\), got \(6,\)"):
        viz.show_image(torch.randn(6))
    viz.show_image(torch.rand(4, 4))  # (H, W) is drawn as one channel


def test_sanity_check_cli_refuses_bad_options_before_running(tmp_path, capsys):
    assert main(["sanity-check", "--json", str(tmp_path / "s.json"), "--C", "0"]) == 2
    assert "--C must be finite and > 0" in capsys.readouterr().err
    assert main(["sanity-check", "--json", str(tmp_path / "no" / "s.json"), "--C", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_numpy_integers_in_distill_evaluate_and_the_svm_check():
    from sklearn.datasets import make_blobs

    from kktexplain.distill import StudentProtocol, evaluate, random_real
    from kktexplain.svm import sanity_check

    x, y = torch.randn(30, 6), torch.arange(30) % 3
    fast = StudentProtocol(architecture="mlp", width=8, depth=2, epochs=2, batch_size=16)
    r = evaluate(
        random_real((x, y), 2, seed=0), (x, y), protocol=fast, seeds=np.array([0, 1]), progress=False
    )
    assert r.seeds == (0, 1)
    X, yb = make_blobs(30, 2, centers=2, random_state=0)
    assert sanity_check(X, yb, n_synthetic=np.int64(2), synth_steps=5).f1 >= 0


@pytest.mark.parametrize(("scale", "says"), [(1.0, None), (255.0, "barely leave"), (1e-3, "swamp")])
def test_synthesis_warns_when_its_steps_do_not_fit_the_datas_scale(scale, says):
    torch.manual_seed(0)
    x, y = torch.rand(30, 6) * scale, torch.arange(30) % 3
    settings = dict(n_per_class=2, init="real", steps=3, progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DeepSupportVectors(**settings).attribute(_mlp(), init_data=(x, y))
    spread = [str(w.message) for w in caught if "spread (standard deviation)" in str(w.message)]
    if says is None:
        assert spread == []
    else:
        assert len(spread) == 1 and says in spread[0] and "in input units" in spread[0]


def test_plots_name_missing_classes_and_short_class_name_lists():
    # stress test 8C: a bare StopIteration, IndexError on a short list of names, and a row for
    # every class of the model when the result holds one
    import matplotlib.pyplot as plt

    from kktexplain.generate import sample

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 4)
    )
    dsv = DeepSupportVectors(n_per_class=1, steps=2, progress=False).attribute(model, input_shape=(3, 8, 8))
    one = DeepSupportVectors(n_per_class=2, steps=2, classes=[3], progress=False).attribute(
        model, input_shape=(3, 8, 8)
    )
    with pytest.raises(ValueError, match=r"classes \[2\] have no samples"):
        viz.plot_likely_mislabels(one, classes=[2])
    fig = viz.plot_dsv_grid(dsv, ["cat", "dog"])  # classes 2 and 3 show their index
    assert fig.axes[0].get_ylabel() == "cat" and fig.axes[3].get_ylabel() == "3"
    assert len(viz.plot_dsv_grid(one).axes) == 2  # one row, class 3's two DSVs (was 4 rows)
    viz.plot_class_samples(
        sample(model, n_per_class=1, steps=2, progress=False, input_shape=(3, 8, 8)), ["cat"]
    )
    with pytest.raises(ValueError, match="per_class must be > 0"):
        viz.plot_dsv_grid(dsv, per_class=0)
    plt.close("all")


def test_plot_and_coreset_arguments_are_checked_scikit_learn_style():
    dsv = DeepSupportVectors(n_per_class=2, steps=2, progress=False).attribute(_mlp())
    with pytest.raises(TypeError, match="result must be a SanityResult"):
        viz.plot_svm_2d(dsv)
    with pytest.raises(TypeError, match="k must be an int, got float 2.0"):
        dsv.top_k_per_class(2.0)
    with pytest.raises(ValueError, match="k must be > 0, got 0"):
        dsv.top_k_per_class(0)
    for bad, error in ((2.5, TypeError), (-1, ValueError), (0, ValueError)):
        with pytest.raises(error, match="per_class must be"):
            viz.plot_dsv_gallery(dsv, per_class=bad)
