"""The inputs of decisions to explain are checked as the candidates are; and the edges a stress
test of unseen models found: inference mode, no_grad, constant maps, files, the CLI's options."""

import os
import stat
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain import DeepSupportVectors, DSVResult, kkt_readiness
from kktexplain.attr import (
    SupportVectorAttribution,
    SupportVectorInfluence,
    evaluate_model,
    evaluate_randomization,
)
from kktexplain.cli import main


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3)).eval()


@pytest.fixture
def setup():
    model = _cnn()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(12, 1, 4, 4, generator=g), torch.arange(12) % 3
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    return model, x, y, sel


def test_query_inputs_are_checked_with_the_parameter_named(setup):
    model, x, _, sel = setup
    svi, sva = SupportVectorInfluence(model, sel), SupportVectorAttribution(model, sel)
    bad = x[:2].clone()
    bad[1, 0, 0, 0] = float("nan")
    for call in (
        lambda: svi.influence(bad),
        lambda: svi.convergence_delta(bad),
        lambda: sva.attribute(bad),
        lambda: sel.explain(model, bad),
    ):
        with pytest.raises(ValueError, match=r"inputs holds NaN or inf values \(rows \[1\]\)"):
            call()
    with pytest.raises(ValueError, match=r"got one input of shape \(1, 4, 4\): add the batch dimension"):
        svi.influence(x[0])
    with pytest.raises(ValueError, match=r"got one input"):
        sva.attribute(x[0])
    with pytest.raises(ValueError, match=r"must have shape \(n, 1, 4, 4\).*got \(2, 1, 5, 5\)"):
        svi.influence(torch.randn(2, 1, 5, 5))
    with pytest.raises(ValueError, match="inputs is empty"):
        svi.influence(x[:0])
    with pytest.raises(ValueError, match="baselines must have the inputs' shape"):
        sva.attribute(x[:2], baselines=torch.zeros(3, 1, 4, 4))
    # a single input is still welcome where the API says so
    assert sel.explain(model, x[0]).prediction.shape == (1,)


def test_outputs_carry_no_graph_of_inputs_that_require_grad(setup):
    model, x, _, sel = setup
    xr = x[:2].clone().requires_grad_()
    svi = SupportVectorInfluence(model, sel)
    assert not svi.influence(xr).requires_grad
    assert not svi.convergence_delta(xr).requires_grad
    e = sel.explain(model, xr, k=2)
    assert not any(
        t.requires_grad for t in (e.inputs, e.logits, e.supporting_contributions, e.exact, e.residual)
    )
    assert xr.grad is None


def test_a_support_set_of_a_model_with_other_classes_is_named(setup):
    _, x, _, sel = setup
    other = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2)).eval()
    with pytest.raises(ValueError, match="made for a model with 3 classes; this model returns 2"):
        SupportVectorInfluence(other, sel).influence(x[:2])
    with pytest.raises(ValueError, match="3 classes; this model returns 2"):
        SupportVectorInfluence(other, sel).self_influence()


def test_all_zero_multipliers_warn_that_rankings_are_arbitrary(setup):
    model, x, _, sel = setup
    sel.lambdas.zero_()
    with pytest.warns(UserWarning, match="every λ of the support set is 0"):
        SupportVectorInfluence(model, sel)


def test_randomization_refuses_constant_original_maps(setup, tmp_path):
    model, x, y, sel = setup
    sel.lambdas.zero_()
    with (
        pytest.warns(UserWarning, match="every λ"),
        pytest.raises(ValueError, match="maps of inputs .* are constant"),
    ):
        evaluate_randomization(model, sel, x[:3], n_steps=4)


def test_synthesis_and_every_call_work_inside_no_grad_and_inference_mode():
    model = _cnn()
    before = model_snapshot(model)
    with torch.inference_mode():
        x, y = torch.randn(9, 1, 4, 4), torch.arange(9) % 3  # inference tensors
    with torch.no_grad():
        dsv = DeepSupportVectors(n_per_class=1, steps=2, progress=False).attribute(
            model, input_shape=(1, 4, 4)
        )
    assert dsv.inputs.shape == (3, 1, 4, 4) and bool(torch.isfinite(dsv.inputs).all())
    with torch.inference_mode():
        sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
        svi = SupportVectorInfluence(model, sel)
        assert svi.influence(x[:2]).shape == (2, 9)
        assert svi.self_influence().shape == (9,)
        assert SupportVectorAttribution(model, sel).attribute(x[:2]).shape == (2, 1, 4, 4)
        assert sel.explain(model, x[:2], k=2).prediction.shape == (2,)
        assert 0 <= kkt_readiness(model, (x, y)).cosine <= 1
        assert torch.is_inference_mode_enabled()
    assert_same_snapshot(before, model_snapshot(model))


def test_saved_results_get_the_mode_of_a_plain_open(setup, tmp_path):
    *_, sel = setup
    old = os.umask(0o022)
    try:
        path = sel.save(tmp_path / "sel.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert DSVResult.load(path).lambdas.shape == sel.lambdas.shape


def test_cli_refuses_bad_options_and_files_in_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "net.py").write_text(
        textwrap.dedent(
            """
            from torch import nn


            def build():
                return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).state_dict(), "w.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    np.savez(
        "train.npz", x=np.random.default_rng(0).normal(size=(9, 1, 4, 4)).astype("f4"), y=np.arange(9) % 3
    )
    base = ["select", "--model", "net.py:build", "--data", "train.npz", "--no-progress"]
    assert main([*base, "--weights", "bad.safetensors", "--out", "s"]) != 0
    assert "not a readable .safetensors file" in capsys.readouterr().err
    for option, value, message in (
        ("--device", "foo", "not a torch device"),
        ("--limit", "-5", "expected a positive integer"),
        ("--limit", "0", "expected a positive integer"),
    ):
        with pytest.raises(SystemExit):
            main([*base, "--weights", "w.pt", option, value, "--out", "s"])
        assert message in capsys.readouterr().err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            main([*base, "--weights", "w.pt", "--device", "cuda", "--out", "s"])
        assert "no CUDA device" in capsys.readouterr().err
    assert main([*base, "--out", "s"]) == 0
    assert "without --weights" in capsys.readouterr().err
    assert main([*base, "--weights", "w.pt", "--out", "sel"]) == 0
    (tmp_path / "afile").write_text("")
    user = ["--model", "net.py:build", "--weights", "w.pt"]
    assert main(["explain", *user, "--result", "sel.npz", "--data", "train.npz", "--out", "afile"]) != 0
    assert "--out 'afile' is a file, not a folder" in capsys.readouterr().err
    assert main(["report", "--synthesis", "sel.npz", "--out", "r.html"]) != 0
    assert "holds a selection result; pass it as --selection" in capsys.readouterr().err


def test_evaluate_model_skips_randomization_on_constant_maps(setup, tmp_path):
    model, x, y, _ = setup
    before = model_snapshot(model)
    # a model whose logits ignore the input: every map is zero
    flat = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        flat[1].weight.zero_()
    with pytest.warns(UserWarning, match="every λ"):
        result = evaluate_model(flat, (x, y), x[:3], tmp_path, parts=["randomization"], progress=False)
    assert "constant" in result["randomization"]["skipped"]
    assert_same_snapshot(before, model_snapshot(model))


def test_string_labels_are_refused_with_the_parameter_named(setup):
    model, x, _, sel = setup
    with pytest.raises(TypeError, match="labels must be class indices.*dtype <U1"):
        DeepSupportVectors(progress=False).attribute(model, candidates=x[:3], labels=["a", "b", "c"])
    with pytest.raises(TypeError, match=r"labels of an \(x, y\) batch must be class indices"):
        SupportVectorInfluence(model, sel).influence((x[:2], "a"))
    assert SupportVectorInfluence(model, sel).influence((x[:2], [0, 1])).shape == (2, 12)


class _Returns(nn.Module):
    """The fixture's CNN, returning its logits in another form."""

    def __init__(self, kind):
        super().__init__()
        self.net, self.kind = _cnn(), kind

    def forward(self, x):
        z = self.net(x)
        return {"tuple": (z, x), "dict": {"logits": z}, "3d": z[:, :, None], "classes": z.argmax(1)}[
            self.kind
        ]


@pytest.mark.parametrize(
    ("kind", "error", "says"),
    [
        ("tuple", TypeError, "got tuple: wrap the model"),
        ("dict", TypeError, "got dict: wrap the model"),
        ("3d", ValueError, r"returned \(2, 3, 1\)"),
        ("classes", TypeError, "got a tensor of dtype torch.int64"),
    ],
)
def test_what_the_model_returns_is_checked_on_the_explanation_side(setup, kind, error, says):
    _, x, _, sel = setup
    model = _Returns(kind)
    for call in (
        lambda: SupportVectorInfluence(model, sel).influence(x[:2]),
        lambda: SupportVectorAttribution(model, sel).attribute(x[:2]),
        lambda: sel.explain(model, x[:1]),
    ):
        with pytest.raises(error, match=f"logits.*{says}"):
            call()


def test_integrated_gradients_settings_are_checked_by_name(setup):
    model, x, _, sel = setup
    sva = SupportVectorAttribution(model, sel)
    torch.testing.assert_close(sva.attribute(x[:2], n_steps=np.int64(4)), sva.attribute(x[:2], n_steps=4))
    for bad, error in ((0, ValueError), (-3, ValueError), (2.5, TypeError), ("8", TypeError)):
        with pytest.raises(error, match="internal_batch_size must be"):
            sva.attribute(x[:2], n_steps=4, internal_batch_size=bad)
    with pytest.raises(TypeError, match="n_steps must be an int"):
        sva.attribute(x[:2], n_steps=4.0)
