"""Every long loop shows a progress bar that can be switched off, and the bar changes no number.

The bars are recorded by replacing ``tqdm`` in kktexplain's modules with a spy that keeps each
enabled bar (its description, total and final count).
"""

import sys

import pytest
import torch
from torch import nn

from kktexplain import DeepSupportVectors
from kktexplain.kkt._nnls import working_set_nnls
from kktexplain.models import ConvNet


@pytest.fixture
def bars(monkeypatch):
    """The enabled bars drawn while the test runs: a list of ``[desc, total, n]``."""
    import tqdm.auto

    real = tqdm.auto.tqdm
    made = []

    class Spy(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if not kwargs.get("disable", False):
                made.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Spy)
    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("kktexplain") and getattr(mod, "tqdm", None) is real:
            monkeypatch.setattr(mod, "tqdm", Spy)

    def drawn():
        return [[b.desc, b.total, b.n] for b in made]

    return drawn


def _data(n=40, d=6, c=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    return x, (x[:, :c]).argmax(1)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def test_equal_selection_shows_one_bar_over_its_chunks(bars):
    """The shared multiplier's single pass (factored path: every layer is Linear)."""
    model, (x, y) = _mlp(), _data(n=600)
    quiet = DeepSupportVectors(multipliers="equal", chunk_size=256, progress=False).attribute(
        model, candidates=x, labels=y
    )
    assert bars() == []
    loud = DeepSupportVectors(multipliers="equal", chunk_size=256, progress=True).attribute(
        model, candidates=x, labels=y
    )
    assert bars() == [["equal multiplier", 3, 3]]  # 600 rows in chunks of 256
    assert torch.equal(quiet.lambdas, loud.lambdas)


def test_equal_selection_bar_on_the_summed_backward(bars):
    """A scope with a convolution takes the summed backward: the bar counts its chunks."""
    torch.manual_seed(0)
    model = ConvNet((1, 6, 6), 3, width=4, depth=1)
    x = torch.randn(300, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    y = torch.arange(300) % 3
    quiet = DeepSupportVectors(multipliers="equal", progress=False).attribute(model, candidates=x, labels=y)
    loud = DeepSupportVectors(multipliers="equal", progress=True).attribute(model, candidates=x, labels=y)
    assert bars() == [["equal multiplier", 2, 2]]  # 300 rows in chunks of 256
    assert torch.equal(quiet.lambdas, loud.lambdas)


def test_working_set_nnls_bar_counts_its_rounds(bars):
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(20, 300, generator=gen, dtype=torch.float64), torch.randn(20, generator=gen).double()
    x0, info0 = working_set_nnls(a, b)
    x1, info1 = working_set_nnls(a, b, progress=True)
    assert torch.equal(x0, x1) and info0 == info1
    [[desc, _, n]] = bars()
    # every round but an exact fit (which stops before it counts) advances the bar
    assert desc == "least squares" and info1["rounds"] - 1 <= n <= info1["rounds"]


def test_explain_bar_counts_every_feature_map(bars):
    model, (x, y) = _mlp(), _data()
    sel = DeepSupportVectors(param_names=["2.weight", "2.bias"], progress=False).attribute(
        model, candidates=x, labels=y
    )
    quiet = sel.explain(model, x[:2], k=2, n_steps=4)
    assert bars() == []
    loud = sel.explain(model, x[:2], k=2, n_steps=4, progress=True)
    # the total map, then 2 inputs x 2 vectors x (supporting, opposing)
    assert ["feature maps", 9, 9] in bars()
    assert torch.equal(quiet.feature_map, loud.feature_map)
    assert torch.equal(quiet.supporting_maps, loud.supporting_maps)
    assert torch.equal(quiet.opposing_maps, loud.opposing_maps)


def test_explain_leaves_a_prepared_influence_as_it_was():
    from kktexplain.attr import SupportVectorInfluence

    model, (x, y) = _mlp(), _data()
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    svi = SupportVectorInfluence(model, sel)
    sel.explain(model, x[:1], k=2, maps="none", influence=svi, progress=True)
    assert svi.expansion.progress is False


def test_fit_selection_bars_cover_the_first_order_start_and_the_residual_pass(bars):
    """Stress round 9C: the first-order start of the sketched solve (8.7 s of a 26 s selection
    over 16,000 images) and the exact residual pass (2.4 s) ran without a bar."""
    model, (x, y) = _mlp(), _data(n=600)
    quiet = DeepSupportVectors(projection_dim=16, chunk_size=256, progress=False).attribute(
        model, candidates=x, labels=y
    )
    assert bars() == []
    loud = DeepSupportVectors(projection_dim=16, chunk_size=256, progress=True).attribute(
        model, candidates=x, labels=y
    )
    drawn = {desc: (total, n) for desc, total, n in bars()}
    assert drawn["least squares (first-order start)"][1] == loud.settings["solver"]["fista_iterations"]
    total, n = drawn["KKT residuals"]
    assert total == n >= 1
    assert torch.equal(quiet.lambdas, loud.lambdas)
