import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from kktexplain import DeepSupportVectors  # noqa: E402
from kktexplain.cli import main  # noqa: E402
from kktexplain.models import MLP, ConvNet  # noqa: E402
from kktexplain.viz import plot_dsv_grid, plot_history  # noqa: E402


def test_grid_and_history_figures(tmp_path):
    torch.manual_seed(0)
    dsv = DeepSupportVectors(n_per_class=2, steps=3, progress=False).attribute(
        ConvNet((1, 8, 8), 3, width=4, depth=2)
    )
    fig = plot_dsv_grid(dsv, classes=["a", "b", "c"], denormalize=lambda x: x * 0.5)
    assert len(fig.axes) == 6
    fig.savefig(tmp_path / "grid.png")
    axes = plot_history(dsv)
    assert len(axes) == 3 and len(axes[0].figure.axes) == 3
    assert len(axes[0].lines[0].get_xdata()) == 3
    plt.close("all")
    tab = DeepSupportVectors(n_per_class=1, steps=1, progress=False).attribute(MLP((4,), 2))
    with pytest.raises(ValueError, match="image inputs"):
        plot_dsv_grid(tab)


def test_plot_history_draws_on_the_axes_given_and_returns_them():
    history = {"entropy": [0.5, 0.4], "feasibility": [0.0, 1.0], "stationarity": [1.0, 0.1]}
    fig = plt.figure()
    given = fig.subplots(1, 3)
    axes = plot_history(history, ax=given)
    assert all(a is b for a, b in zip(axes, given)) and len(fig.axes) == 3
    assert list(axes[0].lines[0].get_ydata()) == [0.5, 0.4]
    assert list(axes[2].lines[0].get_ydata()) == [1.0, 0.1] and axes[2].get_yscale() == "log"
    with pytest.raises(ValueError, match="3 Axes"):
        plot_history(history, ax=given[:2])
    # fig= is kept for old callers: it warns and returns the figure, as before
    old = plt.figure()
    with pytest.warns(DeprecationWarning, match="ax="):
        assert plot_history(history, fig=old) is old
    assert len(old.axes) == 3
    with pytest.raises(ValueError, match="not both"):
        plot_history(history, ax=given, fig=old)
    plt.close("all")


def test_cli_reports_missing_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KKTEXPLAIN_FASHION_MNIST", str(tmp_path / "none"))
    monkeypatch.setattr("kktexplain.datasets._fashion_mnist.DEBIAN_ROOT", str(tmp_path / "deb"))
    monkeypatch.setattr("pathlib.Path.home", lambda: tmp_path)
    assert main(["demo", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["nope"])
