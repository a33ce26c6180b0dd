"""Models that read token ids (a first ``nn.Embedding``): selection, influence and explanations.

Integer inputs carry no input gradient, but the expansion lives in parameter space: selection,
the contribution matrix, self-influence and the explanation's ranking need none. Synthesis and
feature attributions do, and refuse with the reason named.
"""

import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain import DeepSupportVectors, DSVResult, kkt_readiness
from kktexplain.attr import SupportVectorAttribution, SupportVectorInfluence, evaluate_model
from kktexplain.cli import main

VOCAB, LENGTH, CLASSES = 20, 5, 3


class BagOfWords(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 4)
        self.fc = nn.Linear(4, CLASSES)

    def forward(self, x):
        return self.fc(torch.tanh(self.emb(x)).mean(1))


def _trained(dtype=torch.float64):
    torch.manual_seed(0)
    model = BagOfWords().to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, VOCAB, (24, LENGTH), generator=g)
    y = torch.arange(24) % CLASSES
    opt = torch.optim.Adam(model.parameters(), 0.05)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model.eval(), x, y


def test_selection_and_influence_on_token_ids_equal_a_float64_autograd_loop():
    model, x, y = _trained()
    before = model_snapshot(model)
    names = ["emb.weight", "fc.weight", "fc.bias"]
    sel = DeepSupportVectors(param_names=names, progress=False).attribute(model, candidates=x, labels=y)
    assert sel.inputs.dtype == torch.long and torch.equal(sel.inputs, x)
    assert sel.lambdas.dtype == torch.float64 and bool(torch.isfinite(sel.lambdas).all())
    assert sel.kkt.stationarity["cosine"] > 0.5
    test, target = x[:4], torch.tensor([0, 1, 2, 0])
    got = SupportVectorInfluence(model, sel).influence((test, target))
    params = dict(model.named_parameters())
    ref = torch.zeros(len(test), len(x), dtype=torch.float64)
    for j in range(len(x)):
        loss = nn.functional.cross_entropy(model(x[j : j + 1]), y[j : j + 1])
        gj = torch.autograd.grad(loss, [params[k] for k in names])
        for i in range(len(test)):
            gi = torch.autograd.grad(model(test[i : i + 1])[0, target[i]], [params[k] for k in names])
            ref[i, j] = -sel.lambdas[j] * sum((a * b).sum() for a, b in zip(gj, gi))
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-12)
    assert_same_snapshot(before, model_snapshot(model))


def test_equal_multipliers_and_the_default_scope_take_token_ids():
    model, x, y = _trained(torch.float32)
    equal = DeepSupportVectors(multipliers="equal", progress=False).attribute(model, candidates=x, labels=y)
    assert equal.lambdas.dtype == torch.float32
    assert torch.unique(equal.lambdas).numel() == 1 and float(equal.lambdas[0]) > 0
    # the priors act on continuous inputs: none for token ids
    assert torch.equal(equal.kkt.tv, torch.zeros(len(x))) and torch.equal(equal.kkt.norm, torch.zeros(len(x)))
    si = SupportVectorInfluence(model, equal).self_influence()
    assert si.shape == (len(x),) and bool(torch.isfinite(si).all())
    fit = DeepSupportVectors(progress=False).attribute(model, candidates=(x.numpy(), y.numpy()))
    assert fit.inputs.dtype == torch.long and bool((fit.lambdas >= 0).all())
    r = kkt_readiness(model, (x.int(), y))  # int32 ids become long
    assert 0 < r.cosine <= 1


def test_explain_ranks_support_vectors_of_token_ids_without_feature_maps(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    model, x, y = _trained()
    sel = DeepSupportVectors(param_names=["fc.weight", "fc.bias"], progress=False).attribute(
        model, candidates=x, labels=y
    )
    e = sel.explain(model, x[:2], k=3)
    assert e.supporting_inputs.dtype == torch.long and e.supporting_inputs.shape == (2, 3, LENGTH)
    assert torch.equal(e.feature_map, torch.zeros(2, LENGTH, dtype=e.feature_map.dtype))
    # the last layer is linear in θ: the expansion is exact up to the stationarity residual
    torch.testing.assert_close(e.expansion + e.residual, e.exact)
    e.plot()
    assert "plotly" in e.to_html()
    sel.save(tmp_path / "sel.npz")
    assert DSVResult.load(tmp_path / "sel.npz").inputs.dtype == torch.long


def test_synthesis_and_feature_attributions_refuse_token_ids_with_the_reason():
    model, x, y = _trained()
    with pytest.raises(ValueError, match="reads token ids.*'emb'.*candidates="):
        DeepSupportVectors(n_per_class=1, steps=1, progress=False).attribute(model, input_shape=(LENGTH,))
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    with pytest.raises(TypeError, match="inputs must be a floating-point tensor.*token"):
        SupportVectorAttribution(model, sel).attribute(x[:2])
    with pytest.raises(TypeError, match="candidates must hold integer token ids"):
        DeepSupportVectors(progress=False).attribute(model, candidates=x.double(), labels=y)


def test_an_image_model_still_refuses_8_bit_images():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3))
    x = torch.randint(0, 255, (6, 1, 4, 4), dtype=torch.uint8)
    with pytest.raises(TypeError, match="floating-point inputs.*255"):
        DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=torch.arange(6) % 3)


def test_evaluate_model_on_token_ids_skips_only_the_randomization_check(tmp_path):
    model, x, y = _trained(torch.float32)
    before = model_snapshot(model)
    result = evaluate_model(
        model, (x, y), x[:6], tmp_path, parts=["identical_class", "randomization"], progress=False
    )
    assert 0 <= result["identical_class"]["ours"]["identical_class"] <= 1
    assert "skipped" in result["randomization"]
    assert_same_snapshot(before, model_snapshot(model))


def test_cli_select_explain_and_report_on_a_token_model(tmp_path, monkeypatch):
    (tmp_path / "textnet.py").write_text(
        textwrap.dedent(
            f"""
            import torch
            from torch import nn


            class BagOfWords(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.emb = nn.Embedding({VOCAB}, 4)
                    self.fc = nn.Linear(4, {CLASSES})

                def forward(self, x):
                    return self.fc(torch.tanh(self.emb(x)).mean(1))


            def build():
                return BagOfWords()
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    model, x, y = _trained(torch.float32)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    np.savez(tmp_path / "train.npz", x=x.numpy(), y=y.numpy())
    user = ["--model", "textnet.py:build", "--weights", "w.pt"]
    assert main(["select", *user, "--data", "train.npz", "--no-progress", "--out", "sel.npz"]) == 0
    assert DSVResult.load("sel.npz").inputs.dtype == torch.long
    explain = ["explain", *user, "--result", "sel.npz", "--data", "train.npz", "--index", "0"]
    assert main([*explain, "--out", "ex"]) == 0
    assert (tmp_path / "ex" / "explanation.html").is_file()
    assert main(["report", "--selection", "sel.npz", *user, "--inputs", "train.npz", "--out", "r.html"]) == 0
    assert "plotly" in (tmp_path / "r.html").read_text()


def test_uint8_token_ids_are_read_as_the_support_sets_ids_on_the_query_side():
    model, x, y = _trained()
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x.to(torch.uint8), labels=y)
    assert sel.inputs.dtype == torch.long
    svi = SupportVectorInfluence(model, sel)
    torch.testing.assert_close(svi.influence(x[:3].to(torch.uint8)), svi.influence(x[:3]), rtol=0, atol=0)
    small, wide = sel.explain(model, x[:2].to(torch.uint8), k=2), sel.explain(model, x[:2], k=2)
    torch.testing.assert_close(small.supporting_contributions, wide.supporting_contributions)
    assert torch.equal(small.supporting_indices, wide.supporting_indices)


def _same_selection_and_influence(model, reference, x, y):
    """``model`` computes ``reference``'s λ and influence (the same function, written another way)."""
    got = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    want = DeepSupportVectors(progress=False).attribute(reference, candidates=x, labels=y)
    torch.testing.assert_close(got.lambdas, want.lambdas)
    ours, theirs = SupportVectorInfluence(model, got), SupportVectorInfluence(reference, want)
    torch.testing.assert_close(ours.influence(x[:3]), theirs.influence(x[:3]))


def test_a_sparse_embedding_gives_the_dense_ones_numbers():
    model, x, y = _trained()
    sparse = BagOfWords().double().eval()
    sparse.emb = nn.Embedding(VOCAB, 4, sparse=True).double()
    sparse.load_state_dict(model.state_dict())
    _same_selection_and_influence(sparse, model, x, y)


def test_generation_and_distillation_say_first_that_token_models_cannot_be_synthesised():
    # stress test 8C: sample() first asked for an input_shape, distill() for x.float() / 255
    from kktexplain.distill import distill
    from kktexplain.generate import sample

    model, x, y = _trained()
    with pytest.raises(ValueError, match="reads token ids"):
        sample(model, progress=False)
    with pytest.raises(ValueError, match="reads token ids"):
        distill(model, 2, init="real", real=(x, y), progress=False)
    from kktexplain.generate import edit

    with pytest.raises(ValueError, match="reads token ids"):  # was "image must be floating-point"
        edit(model, x[:2], target=1, progress=False)


class _FloatPositionsFirst(nn.Module):
    """A float sequence model (B, T) that looks up positions before reading its input."""

    def __init__(self):
        super().__init__()
        self.head, self.pos, self.inp = nn.Linear(8, 3), nn.Embedding(16, 8), nn.Linear(1, 8)

    def forward(self, x):
        return self.head((self.inp(x.float().unsqueeze(-1)) + self.pos(torch.arange(x.shape[1]))).mean(1))


class _TokensAfterPositions(nn.Module):
    def __init__(self):
        super().__init__()
        self.head, self.pos, self.tok = nn.Linear(8, 3), nn.Embedding(8, 8), nn.Embedding(100, 8)

    def forward(self, x):
        return self.head((self.pos(torch.arange(x.shape[1])) + self.tok(x)).mean(1))


class _TokensThenConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.head, self.tok, self.conv = nn.Linear(8, 3), nn.Embedding(100, 8), nn.Conv1d(8, 8, 3)

    def forward(self, x):
        return self.head(self.conv(self.tok(x).transpose(1, 2)).mean(2))


class HeadFirst(nn.Module):
    """BagOfWords with its head defined first in __init__: registered first, run last."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, CLASSES)
        self.emb = nn.Embedding(VOCAB, 4)

    def forward(self, x):
        return self.fc(torch.tanh(self.emb(x)).mean(1))


def test_an_embedding_registered_after_the_head_is_found_by_the_order_layers_run():
    # stress test 8A: token ids were refused ("x.float() / 255") and the head's width taken as
    # the input shape
    from kktexplain._model_info import token_layer

    model, x, y = _trained()
    head_first = HeadFirst().double().eval()
    head_first.load_state_dict(model.state_dict())
    assert token_layer(head_first) == "emb"
    assert token_layer(nn.Sequential(nn.Linear(3, 4), nn.Embedding(5, 2))) is None  # floats first
    # only the embedding fed the model's own input counts (review: a positional embedding of
    # arange(T) looked up first made a float model a token model, and a token model's ids be
    # checked against the positions' rows); one seen before a later failure still counts
    assert token_layer(_FloatPositionsFirst()) is None
    assert token_layer(_TokensAfterPositions()) == "tok"
    assert token_layer(_TokensThenConv()) == "tok"
    _same_selection_and_influence(head_first, model, x, y)
    assert kkt_readiness(head_first, (x, y)).cosine == pytest.approx(kkt_readiness(model, (x, y)).cosine)
