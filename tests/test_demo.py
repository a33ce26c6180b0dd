"""The demo end to end at a smoke size, and the weights shipped in the package."""

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import skip_or_fail_in_ci

from kktexplain.cli import main
from kktexplain.models import REFERENCE_MODELS, accuracy, load_reference_model, load_shipped_model
from kktexplain.models._shipped import SHIPPED_DIR, shipped_card
from kktexplain.models.train_shipped import SHIPPED

ROOT = Path(__file__).resolve().parents[1]


def _fashion_mnist(train: bool):
    from kktexplain.datasets import load_fashion_mnist

    try:
        return load_fashion_mnist(train=train)
    except FileNotFoundError as e:
        skip_or_fail_in_ci(f"Fashion-MNIST is not installed: {e}")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_are_small_and_described(name):
    weights, card_path = SHIPPED_DIR / f"{name}.safetensors", SHIPPED_DIR / f"{name}.json"
    card = json.loads(card_path.read_text())
    assert weights.stat().st_size == card["weights_bytes"] < 1_000_000  # "well under a megabyte"
    assert card["seed"] == REFERENCE_MODELS[name].seed
    assert card["command"].startswith("python -m kktexplain.models.train_shipped")
    assert card["test_accuracy"] >= 0.88
    assert shipped_card(name) is not None  # the recorded recipe is the current spec


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_are_package_data(name):
    """``pip install .`` copies what [tool.setuptools.package-data] names: the globs must match."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = conf["tool"]["setuptools"]["package-data"]["kktexplain"]
    pkg = ROOT / "kktexplain"
    matched = {p for g in globs for p in pkg.glob(g)}
    assert SHIPPED_DIR / f"{name}.safetensors" in matched
    assert SHIPPED_DIR / f"{name}.json" in matched


@pytest.mark.fmnist
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_reproduce_recorded_accuracy(name):
    model, card = load_reference_model(name)  # no training: from the package
    assert card["source"] == "package"
    test = _fashion_mnist(train=False)
    lo, hi = card["test_slice"]
    acc = accuracy(model, (test.inputs[lo:hi], test.labels[lo:hi]))
    assert acc == pytest.approx(card["test_accuracy_slice"], abs=0.5 / (hi - lo))  # same count right


def test_shipped_weights_refused_when_changed_or_stale(tmp_path, monkeypatch):
    name = SHIPPED[0]
    for f in SHIPPED_DIR.glob(f"{name}.*"):
        shutil.copy(f, tmp_path / f.name)
    model, card = load_shipped_model(name, tmp_path)
    assert card["source"] == "package" and not model.training
    w = tmp_path / f"{name}.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    w.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256"):
        load_shipped_model(name, tmp_path)
    # a changed recipe: the shipped weights no longer describe it, so they are not used
    spec = REFERENCE_MODELS[name]
    monkeypatch.setitem(REFERENCE_MODELS, name, replace(spec, seed=spec.seed + 1))
    assert shipped_card(name) is None and load_shipped_model(name) is None


@pytest.mark.fmnist
def test_demo_end_to_end_smoke(tmp_path, capsys):
    _fashion_mnist(train=False)
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--n-per-class", "1", "--steps", "3"]
    assert main([*argv, "--n-select", "60", "--n-explain", "2"]) == 0
    printed = capsys.readouterr()
    for f in ("report.html", "dsv_grid.png", "history.png", "summary.json", "dsv.npz", "selection.npz"):
        assert (out / f).stat().st_size > 0, f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher"] == "fashion_mnist_small" and summary["teacher_source"] == "package"
    assert summary["teacher_test_accuracy"] >= 0.88 and summary["teacher_test_images"] == 10_000
    assert summary["n_dsv"] == 10 and summary["steps"] == 3
    assert 0 <= summary["primal_feasibility_rate"] <= 1
    assert -1 <= summary["stationarity_cosine"] <= 1 and summary["stationarity_rel_l1"] >= 0
    assert summary["selection"]["candidates"] == 60
    # the DSVs are a stationarity audit of the last layer, as the selection: λ solved every step
    from kktexplain import DSVResult

    dsv = DSVResult.load(out / "dsv.npz")
    assert dsv.settings["param_names"] == summary["selection"]["param_names"]
    assert dsv.settings["lambda_solve_every"] == 1
    assert dsv.settings["lr_schedule"] == "cosine"
    assert [e["test_index"] for e in summary["explanations"]] == [0, 1]
    assert all(len(e["supporting"]) == 5 for e in summary["explanations"])
    assert len(summary["likely_mislabels"]) == 10
    html = (out / "report.html").read_text()
    for section in ("gallery", "kkt", "history", "mislabels", "explanations"):
        assert f'id="{section}"' in html, section
    assert "test accuracy" in printed.out and "report.html" in printed.out
    # one progress bar over the whole job: the stages' own bars are off
    assert "DeepKKT" not in printed.err


@pytest.mark.fmnist
def test_demo_shows_one_progress_bar(tmp_path, monkeypatch):
    """With progress on, only the demo's own bar is drawn (checked on tqdm's descriptions)."""
    import tqdm.auto

    from kktexplain import _demo

    _fashion_mnist(train=False)
    made = []
    real = tqdm.auto.tqdm

    def spy(*args, **kwargs):
        if not kwargs.get("disable", False):
            made.append(kwargs.get("desc"))
        return real(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", spy)
    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("kktexplain") and getattr(mod, "tqdm", None) is real:
            monkeypatch.setattr(mod, "tqdm", spy)
    s = _demo.run_demo(tmp_path, n_per_class=1, steps=2, n_select=30, n_explain=1, n_test=200)
    assert made == ["kktexplain demo"]
    assert s["teacher_test_images"] == 200


def test_demo_rejects_a_model_that_is_not_fashion_mnist(tmp_path):
    from kktexplain._demo import run_demo

    with pytest.raises(ValueError, match="fashion_mnist_small"):
        run_demo(tmp_path, model="digits_mlp")


def test_shipped_model_is_deterministic_in_eval():
    model, _ = load_shipped_model(SHIPPED[0])
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model(x), model(x))


def test_load_shipped_model_refuses_an_unknown_name():
    """An unknown name returned None, and unpacking it failed with a bare TypeError."""
    with pytest.raises(ValueError, match=r"name must be a reference model, one of \[.*'fashion_mnist_small'"):
        load_shipped_model("fashion_mnist_smal")
