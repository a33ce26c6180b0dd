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
    fig2 = plot_history(dsv)
    assert len(fig2.axes) == 3 and len(fig2.axes[0].lines[0].get_xdata()) == 3
    plt.close("all")
    tab = DeepSupportVectors(n_per_class=1, steps=1, progress=False).attribute(MLP((4,), 2))
    with pytest.raises(ValueError, match="image inputs"):
        plot_dsv_grid(tab)


def test_cli_reports_missing_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KKTEXPLAIN_FASHION_MNIST", str(tmp_path / "none"))
    monkeypatch.setattr("kktexplain.datasets._fashion_mnist.DEBIAN_ROOT", str(tmp_path / "deb"))
    monkeypatch.setattr("pathlib.Path.home", lambda: tmp_path)
    assert main(["demo", "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["nope"])
