"""The batched stationarity gradient and per-sample gradients against literal loops (float64)."""

import pytest
import torch

from kktexplain.kkt import (
    FunctionalModel,
    cross_entropy,
    iter_per_sample_grads,
    per_sample_grads,
    stationarity,
    weighted_loss_grad,
)


def _loop_grad_sum(model, x, y, lam):
    """Literal reference: sum_i lambda_i * grad_theta L_i, one backward per sample."""
    total = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for i in range(len(x)):
        model.zero_grad()
        cross_entropy(model(x[i : i + 1]), y[i : i + 1]).sum().backward()
        for k, p in model.named_parameters():
            total[k] += lam[i] * p.grad
    model.zero_grad(set_to_none=True)
    return total


def test_weighted_grad_matches_per_sample_loop(tiny64, rng):
    x = torch.randn(6, 3, generator=rng, dtype=torch.float64)
    y = torch.randint(3, (6,), generator=rng)
    lam = torch.rand(6, generator=rng, dtype=torch.float64) * 3
    fast, logits = weighted_loss_grad(FunctionalModel(tiny64), x, y, lam)
    ref = _loop_grad_sum(tiny64, x, y, lam)
    for k in ref:
        torch.testing.assert_close(fast[k], ref[k])
    torch.testing.assert_close(logits, tiny64(x))


def test_weighted_grad_soft_labels(tiny64, rng):
    x = torch.randn(4, 3, generator=rng, dtype=torch.float64)
    soft = torch.softmax(torch.randn(4, 3, generator=rng, dtype=torch.float64), -1)
    lam = torch.ones(4, dtype=torch.float64)
    fast, _ = weighted_loss_grad(FunctionalModel(tiny64), x, soft, lam)
    ref = {k: torch.zeros_like(p) for k, p in tiny64.named_parameters()}
    for c in range(3):  # soft CE is linear in the label: sum_c y_c CE(x, c)
        part = _loop_grad_sum(tiny64, x, torch.full((4,), c), soft[:, c])
        for k in ref:
            ref[k] += part[k]
    for k in ref:
        torch.testing.assert_close(fast[k], ref[k])


def test_double_backward_matches_finite_differences(tiny64, rng):
    """d/dx and d/dlambda of the stationarity loss through the create_graph gradient."""
    fm = FunctionalModel(tiny64)
    x = torch.randn(3, 3, generator=rng, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2])
    lam = torch.rand(3, generator=rng, dtype=torch.float64).requires_grad_(True)

    def loss(x_, lam_):
        g, _ = weighted_loss_grad(fm, x_, y, lam_)
        return stationarity(fm.theta, g, "rel_l2")

    assert torch.autograd.gradcheck(loss, (x, lam))


def test_per_sample_grads_vmap_matches_loop(tiny64, rng):
    x = torch.randn(5, 3, generator=rng, dtype=torch.float64)
    y = torch.randint(3, (5,), generator=rng)
    fm = FunctionalModel(tiny64)
    g = per_sample_grads(fm, x, y)
    for i in range(5):
        ref = _loop_grad_sum(tiny64, x[i : i + 1], y[i : i + 1], torch.ones(1, dtype=torch.float64))
        for k in ref:
            torch.testing.assert_close(g[k][i], ref[k])
    flat = torch.cat([chunk for _, chunk in iter_per_sample_grads(fm, x, y, chunk_size=2)])
    expected = torch.cat([g[k].flatten(1) for k in fm.theta], 1)
    torch.testing.assert_close(flat, expected)


def test_param_subset(tiny64, rng):
    fm = FunctionalModel(tiny64, param_names=["fc2.weight"])
    x = torch.randn(4, 3, generator=rng, dtype=torch.float64)
    y = torch.randint(3, (4,), generator=rng)
    g, _ = weighted_loss_grad(fm, x, y, torch.ones(4, dtype=torch.float64))
    assert list(g) == ["fc2.weight"]
    ref = _loop_grad_sum(tiny64, x, y, torch.ones(4, dtype=torch.float64))
    torch.testing.assert_close(g["fc2.weight"], ref["fc2.weight"])
    assert fm.num_params == 15


class _Bypass(torch.nn.Module):
    """a.weight is used without calling a: the factored path must notice and fall back."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.h = torch.nn.Linear(4, 4), torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.h(torch.tanh(torch.nn.functional.linear(x, self.a.weight, self.a.bias)))


class _SeqFirst(torch.nn.Module):
    """The layers see (L, n, d): samples are not on the first dimension."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.h = torch.nn.Linear(4, 4), torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.h(torch.tanh(self.a(x.transpose(0, 1))).mean(0))


def _loop_rows(model, x, y, names):
    params = dict(model.named_parameters())
    rows = []
    for i in range(len(x)):
        loss = cross_entropy(model(x[i : i + 1]), y[i : i + 1]).sum()
        g = torch.autograd.grad(loss, [params[k] for k in names], allow_unused=True)
        rows.append(
            torch.cat([(torch.zeros_like(params[k]) if v is None else v).flatten() for k, v in zip(names, g)])
        )
    return torch.stack(rows)


@pytest.mark.parametrize(
    "make, names, factored",
    [
        (
            lambda: torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)),
            None,
            True,
        ),
        (
            lambda: torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)),
            ["2.weight"],
            True,
        ),
        (
            lambda: torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 3)),
            ["2.weight", "2.bias"],
            True,
        ),
        (
            lambda: torch.nn.Sequential(torch.nn.Conv1d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 3)),
            None,
            False,
        ),
        (_Bypass, None, True),  # refused by the check against vmap on the first chunk
        (_SeqFirst, None, True),
    ],
)
def test_per_sample_grads_of_linear_scopes_match_a_loop(make, names, factored):
    """The factored Linear path (one forward per chunk) and its fallbacks equal a float64 loop."""
    from kktexplain.kkt._grads import linear_factored

    torch.manual_seed(0)
    model = make().double().eval()
    gen = torch.Generator().manual_seed(1)
    first = next(m for m in model.modules() if not isinstance(m, (torch.nn.Sequential, _Bypass, _SeqFirst)))
    shape = (
        (7, 1, 6)
        if isinstance(first, torch.nn.Conv1d)
        else (7, 5, 4)
        if isinstance(model, _SeqFirst)
        else (7, 4)
    )
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    y = torch.randint(3, (7,), generator=gen)
    fm = FunctionalModel(model, names)
    assert (linear_factored(fm) is not None) == factored
    fast = torch.cat([g for _, g in iter_per_sample_grads(fm, x, y, 3, cross_entropy)])
    torch.testing.assert_close(fast, _loop_rows(model, x, y, fm.names), rtol=1e-10, atol=1e-12)
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("entries", [1, 7, 2**26])
def test_projected_chunks_are_formed_in_parts_with_the_same_numbers(tiny64, rng, monkeypatch, entries):
    """Sketched chunks are formed in parts of at most CHUNK_ENTRIES gradient entries (a 4M-
    parameter MLP, 300 candidates, projection_dim 8192: peak memory 9.0 GB, now 1.5 GB), with
    the rows of each chunk yielded together and the same numbers as one block."""
    from kktexplain.kkt import CountSketch, FunctionalModel, _grads, iter_per_sample_grads

    fm = FunctionalModel(tiny64)
    x = torch.randn(11, 3, generator=rng, dtype=torch.float64)
    y = torch.randint(0, 3, (11,), generator=rng)
    sketch = CountSketch(fm.num_params, 5, seed=0)
    whole = torch.cat([sketch(g) for _, g in iter_per_sample_grads(fm, x, y, 11, projection=None)])
    monkeypatch.setattr(_grads, "CHUNK_ENTRIES", entries)
    chunks = list(iter_per_sample_grads(fm, x, y, 4, projection=sketch))
    assert [c[0] for c in chunks] == [slice(0, 4), slice(4, 8), slice(8, 11)]
    torch.testing.assert_close(torch.cat([g for _, g in chunks]), whole)
