"""Per-row tests and maps in blocks (kkt._rows) equal the whole-tensor computation."""

import pytest
import torch

from kktexplain.kkt import _rows, input_norm, kkt_residuals, total_variation
from kktexplain.kkt._functional import FunctionalModel


@pytest.fixture
def small_blocks(monkeypatch):
    # 50 entries per block: a 7 x 5 x 5 batch is split into blocks of 2 rows, the last one short
    monkeypatch.setattr(_rows, "_BLOCK_ENTRIES", 50)


def _batch(seed=0):
    x = torch.randn(7, 1, 5, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x[2, 0, 1, 3] = float("nan")
    x[5, 0, 4, 0] = float("-inf")
    x[4] = 0.0
    return x


def test_rows_all_finite_in_blocks(small_blocks):
    x = _batch()
    got = _rows.rows_all_finite(x)
    assert got.tolist() == torch.isfinite(x).flatten(1).all(1).tolist()
    assert got.tolist() == [True, True, False, True, True, False, True]


def test_rows_norm_in_blocks_in_float64(small_blocks):
    x = torch.nan_to_num(_batch(), nan=0.0, posinf=0.0, neginf=0.0)
    got = _rows.rows_norm(x)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, x.double().flatten(1).norm(dim=1))
    assert (got > 0).tolist() == (x != 0).flatten(1).any(1).tolist()


def test_one_dimensional_and_empty(small_blocks):
    v = torch.tensor([1.0, float("inf"), 0.0])
    assert _rows.rows_all_finite(v).tolist() == [True, False, True]
    assert _rows.rows_norm(torch.tensor([3.0, -4.0, 0.0])).tolist() == [3.0, 4.0, 0.0]
    assert _rows.rows_all_finite(torch.empty(0, 4)).shape == (0,)


@pytest.mark.parametrize("fn", [total_variation, input_norm])
def test_map_rows_equals_whole_batch(small_blocks, fn):
    x = torch.randn(7, 1, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(_rows.map_rows(fn, x), fn(x), rtol=0, atol=0)


def test_residual_priors_computed_in_blocks(small_blocks):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(25, 3)).double()
    x = torch.randn(7, 1, 5, 5, dtype=torch.float64)
    r = kkt_residuals(FunctionalModel(model), x, torch.arange(7) % 3, torch.rand(7, dtype=torch.float64))
    torch.testing.assert_close(r.tv, total_variation(x), rtol=0, atol=0)
    torch.testing.assert_close(r.norm, input_norm(x), rtol=0, atol=0)
