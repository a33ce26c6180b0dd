"""Selection's options and the expansion's, as a stress test of them found them wanting."""

import copy
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from kktexplain import DeepSupportVectors, DSVResult
from kktexplain.attr import SupportVectorAttribution, SupportVectorInfluence
from kktexplain.cli import main


@pytest.fixture
def problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double().eval()
    init = copy.deepcopy(model)
    x, y = torch.randn(30, 4, dtype=torch.float64), torch.arange(30) % 3
    opt = torch.optim.SGD(model.parameters(), 0.1, weight_decay=1e-2)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model, init, x, y


def test_refit_keeps_the_ridge_and_the_tie_break(problem):
    model, _, x, y = problem
    kwargs = dict(projection_dim=8, refit_dim=1000, progress=False)
    plain = DeepSupportVectors(**kwargs).attribute(model, candidates=x, labels=y)
    ridged = DeepSupportVectors(ridge=1e-2, **kwargs).attribute(model, candidates=x, labels=y)
    assert "ridge" in ridged.settings["solver"]["refit"]["solver"]
    assert "ridge" not in plain.settings["solver"]["refit"]["solver"]
    assert not torch.allclose(ridged.lambdas, plain.lambdas)


def test_maximize_sum_is_a_bool_and_a_failed_tie_break_warns(problem, monkeypatch):
    model, _, x, y = problem
    with pytest.raises(TypeError, match="maximize_sum must be a bool"):
        DeepSupportVectors(maximize_sum="yes", progress=False).attribute(model, candidates=x, labels=y)
    import kktexplain.kkt._selection as solver

    monkeypatch.setattr(solver, "linprog", lambda *a, **k: SimpleNamespace(status=2, message="infeasible"))
    with pytest.warns(UserWarning, match="tie-break's linear program failed .*least-squares λ are kept"):
        r = DeepSupportVectors(maximize_sum=True, progress=False).attribute(model, candidates=x, labels=y)
    assert r.settings["solver"]["lp_status"] == 2


def test_support_index_takes_a_boolean_mask_and_refuses_floats(problem):
    model, _, x, y = problem
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    sva = SupportVectorAttribution(model, sel, method="saliency")
    mask = torch.zeros(len(x), dtype=torch.bool)
    mask[[2, 5]] = True
    torch.testing.assert_close(
        sva.attribute(x[:2], target=0, support_index=mask),
        sva.attribute(x[:2], target=0, support_index=[2, 5]),
    )
    with pytest.raises(TypeError, match="support_index must hold ints"):
        sva.attribute(x[:2], target=0, support_index=1.5)
    with pytest.raises(ValueError, match=r"as a mask must have shape \(30,\)"):
        sva.attribute(x[:2], target=0, support_index=mask[:5])


def test_a_displacement_result_records_it_and_needs_its_reference(problem, tmp_path):
    model, init, x, y = problem
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y, reference=init)
    assert sel.settings["displacement"] is True
    loaded = DSVResult.load(sel.save(tmp_path / "sel"))
    with pytest.raises(ValueError, match="solved for the displacement"):
        SupportVectorInfluence(model, loaded)
    with pytest.raises(ValueError, match="solved for the displacement"):
        loaded.explain(model, x[:1])
    delta = SupportVectorInfluence(model, loaded, reference=init).convergence_delta(x[:3])
    assert bool(torch.isfinite(delta).all())


def test_bad_references_scopes_and_losses_name_the_parameter(problem):
    model, init, x, y = problem
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    nan_ref = {k: v.detach().clone() for k, v in init.named_parameters()}
    nan_ref["0.weight"][0, 0] = float("nan")
    numpy_ref = {k: v.detach().numpy() for k, v in init.named_parameters()}
    for kwargs, error, match in (
        ({"reference": nan_ref}, ValueError, r"reference holds NaN or inf values in \['0.weight'\]"),
        ({"reference": numpy_ref}, TypeError, "reference must hold tensors"),
        ({"reference": 5}, TypeError, "reference must be an nn.Module or a dict"),
        ({"param_names": "last"}, TypeError, "param_names must be a list of parameter names"),
        ({"param_names": [0.5]}, TypeError, "param_names must be a list of parameter names"),
    ):
        with pytest.raises(error, match=match):
            SupportVectorInfluence(model, sel, **kwargs).influence(x[:2])
    with pytest.raises(ValueError, match="support gradients are NaN or inf"):
        SupportVectorInfluence(model, sel, loss_fn=lambda z, t: z.sum() * float("nan")).influence(x[:2])
    with pytest.raises(ValueError, match="class_names must be a list naming all 3 classes"):
        sel.explain(model, x[:1], class_names=["a"])


def test_batch_norm_without_running_statistics_is_refused_with_the_reason():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6, track_running_stats=False), nn.Linear(6, 3))
    x, y = torch.randn(10, 4), torch.arange(10) % 3
    for multipliers in ("fit", "equal"):
        with pytest.raises(ValueError, match="without running statistics .*'1'"):
            DeepSupportVectors(multipliers=multipliers, progress=False).attribute(
                model, candidates=x, labels=y
            )


def test_cli_explain_refuses_a_repeated_index(tmp_path, monkeypatch, capsys):
    (tmp_path / "net.py").write_text(
        textwrap.dedent(
            """
            from torch import nn


            def build():
                return nn.Sequential(nn.Linear(4, 3))
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(4, 3)).state_dict(), "w.pt")
    np.savez("d.npz", x=np.random.default_rng(0).normal(size=(6, 4)).astype("f4"), y=np.arange(6) % 3)
    user = ["--model", "net.py:build", "--weights", "w.pt"]
    assert main(["select", *user, "--data", "d.npz", "--no-progress", "--out", "sel"]) == 0
    assert (
        main(["explain", *user, "--result", "sel.npz", "--data", "d.npz", "--index", "0", "0", "--out", "e"])
        != 0
    )
    assert "--index repeats an input" in capsys.readouterr().err


def test_an_objective_of_the_augmented_view_alone_needs_an_augmentation():
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    with pytest.raises(ValueError, match="'paper_eq9' weighs only the augmented view"):
        DeepSupportVectors(objective="paper_eq9", augmentation=None, steps=2, progress=False).attribute(
            model, input_shape=(4,)
        )
    # selection has no augmented views: it takes the preset as it is
    x, y = torch.randn(12, 4), torch.arange(12) % 3
    DeepSupportVectors(objective="paper_eq9", augmentation=None, progress=False).attribute(
        model, candidates=x, labels=y
    )


def test_a_selection_on_saturated_logits_says_so_on_the_users_line():
    # inputs of another scale than the model's (0-255 for a model of 0-1): every loss ~0, the
    # gradients vanish and λ came back 0 (float32) or ~1e258 (float64) without a word
    import warnings

    from torch import nn

    model = nn.Linear(2, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        model.bias.zero_()
    x = torch.tensor([[100.0, 1.0], [200.0, -1.0], [-100.0, 2.0], [-300.0, 0.5]], dtype=torch.float64)
    y = torch.tensor([1, 1, 0, 0])
    for multipliers in ("fit", "equal"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            DeepSupportVectors(progress=False, multipliers=multipliers).attribute(
                model, candidates=x, labels=y
            )
        said = [w for w in caught if "logits are saturated" in str(w.message)]
        assert len(said) == 1 and said[0].filename == __file__ and "scale" in str(said[0].message)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DeepSupportVectors(progress=False).attribute(model, candidates=x / 100, labels=y)
    assert not [w for w in caught if "saturated" in str(w.message) or "every λ" in str(w.message)]


def test_saturated_samples_with_huge_multipliers_are_named():
    # stress test 8C: an overfit MLP's sample with |grad L| = 1.8e-26 got λ = 1e25 and topped
    # top_k_per_class without a word
    import warnings

    from torch import nn

    torch.manual_seed(0)
    model = nn.Linear(2, 2).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
        model.bias.zero_()
    # two samples near the boundary and one far beyond it (margin 60) that the fit needs
    x = torch.tensor([[0.5, 1.0], [-0.5, 1.0], [30.0, -1.0], [-0.4, -1.0]], dtype=torch.float64)
    y = torch.tensor([1, 0, 1, 0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    said = [str(w.message) for w in caught if "saturated logits" in str(w.message)]
    assert float(sel.lambdas[2]) > 1e8 and float(sel.lambdas[0]) < 10  # λ ~ 1 / |grad L|
    assert len(said) == 1 and "1 of the samples with λ > 0" in said[0] and "lambda_max" in said[0]
