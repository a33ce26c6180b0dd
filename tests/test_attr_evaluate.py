"""The faithfulness evaluations, at a size that runs in seconds."""

import pytest
import torch
from torch import nn

from kktexplain import DeepSupportVectors
from kktexplain.attr._baselines import last_linear
from kktexplain.attr._evaluate import evaluate_identical_class, evaluate_mislabels, evaluate_removal
from kktexplain.attr._protocol import fit_full_batch
from kktexplain.attr._randomization import evaluate_randomization


@pytest.fixture(scope="module")
def blobs():
    gen = torch.Generator().manual_seed(0)
    centers = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    y = torch.arange(3).repeat_interleave(60)
    x = centers[y] + 0.8 * torch.randn(len(y), 2, generator=gen)
    flipped = torch.zeros(len(y), dtype=torch.bool)
    flipped[torch.randperm(len(y), generator=gen)[:18]] = True
    noisy = torch.where(flipped, (y + 1) % 3, y)
    xt = centers[torch.arange(3).repeat(10)] + 0.8 * torch.randn(30, 2, generator=gen)
    return x, noisy, flipped, xt


def test_fit_full_batch_is_deterministic(blobs):
    x, noisy, flipped, _ = blobs
    y = torch.where(flipped, (noisy - 1) % 3, noisy)  # the clean labels
    state = torch.get_rng_state()
    a, b = fit_full_batch(x, y, hidden=(8,), steps=200), fit_full_batch(x, y, hidden=(8,), steps=200)
    assert torch.equal(torch.get_rng_state(), state)  # seeded inside a fork: the caller's state kept
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert (a(x).argmax(1) == y).double().mean() > 0.95


def test_mislabels_are_found(blobs):
    x, y, flipped, _ = blobs
    model = fit_full_batch(x, y, hidden=(8,), steps=200)
    name, _ = last_linear(model)
    fitted = DeepSupportVectors(param_names=[f"{name}.weight", f"{name}.bias"], progress=False)
    res = evaluate_mislabels(model, x, y, flipped, batch_size=64, fitted=fitted)
    for key in ("self_influence", "lambda_fit", "loss", "tracin", "self_influence_fit_then_loss"):
        assert 0.0 <= res[key]["flipped_in_top10"] <= 1.0
        assert res[key]["seconds"] >= 0
    # flipped labels sit far across the boundary: the loss and TracIn find them almost all
    assert res["loss"]["roc_auc"] > 0.9
    assert res["tracin"]["roc_auc"] > 0.9
    # equal multipliers: every sample is in the support and the self-influence is the size of
    # its own last-layer gradient, which is large across the boundary
    assert res["support_size"]["n_support"] == len(x)
    assert res["self_influence"]["roc_auc"] > 0.9
    # λ from exact NNLS is sparse (12 of 180 non-zero on this problem's 27 last-layer
    # coordinates): the self-influence ranks only its support (measured AUC 0.59); the
    # combination orders the rest by loss and recovers most of the loss's ranking (0.96)
    assert res["support_size_fit"]["n_support"] < 30
    assert res["self_influence_fit_then_loss"]["roc_auc"] > 0.9
    assert "lambda_fit" not in evaluate_mislabels(model, x, y, flipped, batch_size=64, compare_tracin=False)
    with pytest.raises(ValueError, match="same length"):
        evaluate_mislabels(model, x, y, flipped[:-1])


def test_identical_class_of_last_layer_expansion_is_perfect(blobs):
    """With ReLU features (>= 0) a last-layer term is positive only for the class's own samples."""
    x, y, _, xt = blobs
    model = fit_full_batch(x, y, hidden=(8,), steps=200)
    name, _ = last_linear(model)
    sel = DeepSupportVectors(param_names=[f"{name}.weight", f"{name}.bias"], progress=False).attribute(
        model, candidates=x, labels=y
    )
    res = evaluate_identical_class(model, sel, xt, batch_size=16)
    assert res["ours"]["identical_class"] == 1.0
    assert res["representer"]["identical_class"] == 1.0
    assert set(res) == {"ours", "representer", "grad_cosine", "tracin"}


def test_removal_of_proponents_moves_the_margin_more_than_random(blobs):
    x, y, _, xt = blobs
    clean = torch.where(blobs[2], (y - 1) % 3, y)

    def fit(a, b):
        return fit_full_batch(a, b, hidden=(8,), steps=100)

    res = evaluate_removal(fit, x, clean, xt, k=15, n_test=6, seed=0)
    drop = res["margin_drop"]
    assert set(drop) == {"ours", "tracin", "random"}
    assert drop["ours"]["mean"] > drop["random"]["mean"]
    assert 0.0 <= res["prediction_change"]["lowest_lambda"] <= 1.0


def test_randomization_degrades_the_maps(blobs):
    x, y, _, xt = blobs
    model = fit_full_batch(x, y, hidden=(8,), steps=200)
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    rows = evaluate_randomization(model, sel, xt[:10], n_steps=8)
    assert [r["layer"] for r in rows] == ["3", "1"]
    assert all(-1.0 <= r["spearman"] <= 1.0 for r in rows)
    assert rows[-1]["spearman"] < 0.9
    with pytest.raises(ValueError, match="layers"):
        evaluate_randomization(model, sel, xt[:2], layers=["nope"])


def test_cli_evaluate_removal_part(tmp_path):
    import json

    from kktexplain.cli import main

    out = tmp_path / "eval.json"
    args = ["evaluate", "--json", str(out), "--parts", "removal", "--removal-tests", "2", "--removal-k", "3"]
    assert main([*args, "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert set(res["removal"]["margin_drop"]) == {"ours", "tracin", "random"}
    assert res["removal"]["n_test"] == 2 and res["removal"]["k"] == 3
    assert (tmp_path / "evaluation" / "removal.png").is_file()
    assert main(["evaluate", "--json", str(out), "--parts", "nope", "--no-progress"]) == 2


def test_tracin_over_training_checkpoints_is_the_lr_weighted_sum(blobs, tmp_path):
    """TracInCP over epoch checkpoints: sum_i eta_i TracIn_i, and the model ends as it was."""
    from kktexplain.attr._baselines import tracin
    from kktexplain.models import MLP, train_classifier

    x, y, flipped, _ = blobs
    torch.manual_seed(0)
    model = MLP((2,), 3, hidden=(8,))
    saved = []

    def save(epoch, m, lr):
        assert m.training
        path = tmp_path / f"epoch{epoch}.pt"
        torch.save(m.state_dict(), path)
        saved.append((str(path), lr))

    train_classifier(
        model, (x, y), epochs=4, lr=0.05, batch_size=32, lr_decay_at=0.5, progress=False, on_epoch_end=save
    )
    assert [lr for _, lr in saved] == pytest.approx([0.05, 0.05, 0.005, 0.005])
    final = {k: v.clone() for k, v in model.state_dict().items()}
    each = []
    for path, lr in saved:
        single = MLP((2,), 3, hidden=(8,))
        single.load_state_dict(torch.load(path, weights_only=True))
        each.append(lr * tracin(single.eval(), x, y, 64).self_influence(show_progress=False))
    res = evaluate_mislabels(model, x, y, flipped, batch_size=64, checkpoints=saved)
    assert res["tracin_checkpoints"]["n_checkpoints"] == 4
    for k, v in model.state_dict().items():
        assert torch.equal(v, final[k])
    summed = tracin(model, x, y, 64, checkpoints=saved).self_influence(show_progress=False)
    torch.testing.assert_close(summed, torch.stack(each).sum(0), rtol=1e-5, atol=1e-6)


def test_evaluate_model_on_a_model_of_ones_own(blobs, tmp_path):
    from conftest import assert_same_snapshot, model_snapshot

    from kktexplain.attr import evaluate_model

    x, noisy, flipped, xt = blobs
    y = torch.where(flipped, (noisy - 1) % 3, noisy)
    model = fit_full_batch(x, y, hidden=(8,), steps=200).train()  # left in train mode: kept
    first = next(model.parameters())
    first.grad = torch.full_like(first, 0.5)  # a user's own .grad: kept, values and all
    fired = []  # a parameter's hooks (e.g. an optimizer step in backward) must not fire
    for p in model.parameters():
        p.register_post_accumulate_grad_hook(lambda p: fired.append(p.shape))
    before = model_snapshot(model)
    res = evaluate_model(model, (x, y), xt, tmp_path, n_randomization=6, batch_size=32, progress=False)
    assert_same_snapshot(before, model_snapshot(model))
    assert fired == []  # captum's TracInCP ran its backward on the model itself
    assert res["param_names"] == [f"{last_linear(model)[0]}.weight", f"{last_linear(model)[0]}.bias"]
    assert 0.0 <= res["readiness"]["argmax_agreement"] <= 1.0
    assert {r["scope"] for r in res["fidelity"]} == {"scope", "all"}
    scope_row = next(r for r in res["fidelity"] if r["scope"] == "scope")
    assert scope_row["argmax_agreement"] > 0.9  # the last layer's expansion is the logit
    ic = res["identical_class"]
    assert set(ic) == {"ours", "representer", "grad_cosine", "tracin"}
    assert ic["ours"]["identical_class"] == 1.0  # exact on the last layer (as the test above)
    assert res["timing"]["ratio_tracin_over_ours"] > 0
    assert [r["layer"] for r in res["randomization"]] == ["3", "1"]  # the Linear layers, top down
    assert (tmp_path / "evaluation.json").is_file() and (tmp_path / "randomization.png").is_file()
    with pytest.raises(ValueError, match="retrain"):
        evaluate_model(model, (x, y), xt, tmp_path, parts=["mislabels"])
    with pytest.raises(ValueError, match="shape"):
        evaluate_model(model, (x, y), xt[:, :1], tmp_path)


def test_cli_evaluate_a_model_of_ones_own(blobs, tmp_path, monkeypatch):
    import json

    import numpy as np

    from kktexplain.cli import main

    x, noisy, flipped, xt = blobs
    y = torch.where(flipped, (noisy - 1) % 3, noisy)
    model = fit_full_batch(x, y, hidden=(8,), steps=200)
    (tmp_path / "blobnet.py").write_text(
        "from kktexplain.models import MLP\n\n\ndef build():\n"
        "    return MLP((2,), num_classes=3, hidden=(8,))\n"
    )
    torch.save(model.state_dict(), tmp_path / "w.pt")
    np.savez(tmp_path / "train.npz", x=x.numpy(), y=y.numpy())
    np.savez(tmp_path / "test.npz", x=xt.numpy())
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "eval.json"
    args = ["evaluate", "--json", str(out), "--model", "blobnet:build", "--weights", "w.pt"]
    args += ["--data", "train.npz", "--test-data", "test.npz", "--parts", "identical_class", "--no-progress"]
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert res["identical_class"]["ours"]["identical_class"] == 1.0 and res["n_train"] == len(x)
    assert main(["evaluate", "--json", str(out), "--model", "blobnet:build", "--no-progress"]) == 2
    assert main(["evaluate", "--json", str(out), "--data", "train.npz", "--no-progress"]) == 2


def test_evaluate_model_without_a_linear_layer_skips_the_last_layer_baselines(tmp_path):
    from kktexplain.attr import evaluate_model

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    x, y = torch.rand(20, 1, 6, 6), torch.arange(20) % 3
    res = evaluate_model(model.eval(), (x, y), x[:5], tmp_path, parts=["identical_class"], progress=False)
    assert res["param_names"] == "free"
    ic = res["identical_class"]
    assert ic["representer"] == ic["grad_cosine"] == {"skipped": "the model has no nn.Linear layer"}
    assert 0.0 <= ic["tracin"]["identical_class"] <= 1.0
    # untrained: its equal multiplier is 0, every influence 0, so ours ranks nothing
    assert ic["ours"]["identical_class"] is None and "no proponent" in ic["ours"]["skipped"]


def test_a_float64_model_is_evaluated_on_float32_data_and_the_random_state_is_kept(blobs, tmp_path):
    from kktexplain.attr import evaluate_model

    x, noisy, flipped, xt = blobs
    y = torch.where(flipped, (noisy - 1) % 3, noisy)
    model = fit_full_batch(x, y, hidden=(8,), steps=100).double()  # the data stay float32
    state = torch.get_rng_state()
    res = evaluate_model(model, (x, y), xt, tmp_path, n_randomization=4, batch_size=32, progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # randomization re-seeds inside a fork only
    assert res["identical_class"]["ours"]["identical_class"] == 1.0
    assert set(res) >= {"readiness", "fidelity", "identical_class", "timing", "randomization"}


def test_tracin_removes_its_copy_of_the_users_weights():
    import gc
    from pathlib import Path

    from kktexplain.attr._baselines import tracin

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    x, y = torch.randn(8, 4), torch.arange(8) % 3
    tr = tracin(model, x, y, 4)
    folder = Path(tr.checkpoints[0]).parent
    assert folder.is_dir() and tr.self_influence(show_progress=False).shape == (8,)
    del tr
    gc.collect()
    assert not folder.exists()


def test_tracins_checkpoints_leave_a_model_that_cannot_be_copied_as_found(tmp_path):
    import threading

    torch.manual_seed(0)
    x = torch.randn(40, 4)
    y = (x[:, 0] > 0).long()
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    model.lock = threading.Lock()  # deepcopy fails: TracInCP runs on the model itself
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({k: v + 1.0 for k, v in before.items()}, tmp_path / "ckpt.pt")
    flipped = torch.zeros(40, dtype=torch.bool)
    flipped[:4] = True
    res = evaluate_mislabels(
        model, x, y, flipped, batch_size=16, checkpoints=[(str(tmp_path / "ckpt.pt"), 0.1)]
    )
    assert "tracin_checkpoints" in res
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)  # not the checkpoint's weights
