"""Selection with the gradient matrix on disk (offload_dir): the same products, the same λ."""

import os

import numpy as np
import pytest
import torch
from conftest import assert_same_snapshot, model_snapshot
from torch import nn

from kktexplain import DeepSupportVectors
from kktexplain.kkt import _columns, _selection
from kktexplain.kkt._columns import DenseColumns, FileColumns, GradientFile


@pytest.fixture
def small_blocks(monkeypatch):
    # 3 x 7 = 21 entries per block: a 10-row matrix is read in blocks of 3, 3, 3 and 1 rows
    monkeypatch.setattr(_columns, "_BLOCK_ENTRIES", 21)


def _matrix(n=10, k=7, dtype=torch.float64, seed=0):
    g = torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    g[3] = 0.0  # a sample without gradient
    return g


def _stored(tmp_path, g):
    store = GradientFile(tmp_path, *g.shape, dtype=g.dtype)
    store.write(0, g[:4])
    store.write(4, g[4:])
    return store


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_file_roundtrip_in_blocks(tmp_path, small_blocks, dtype):
    g = _matrix(dtype=dtype)
    store = _stored(tmp_path, g)
    starts = []
    got = torch.empty_like(g)
    for start, block in store.blocks():
        starts.append(start)
        got[start : start + len(block)] = block
    assert starts == [0, 3, 6, 9]
    torch.testing.assert_close(got, g, rtol=0, atol=0)
    torch.testing.assert_close(store.rows(np.array([8, 1, 8])), g[[8, 1, 8]], rtol=0, atol=0)
    path = store.path
    assert path.exists() and path.parent == tmp_path
    store.close()
    assert not path.exists()


def test_file_refuses_rows_that_do_not_fit(tmp_path):
    store = GradientFile(tmp_path, 4, 3)
    with pytest.raises(ValueError, match="do not fit"):
        store.write(2, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="do not fit"):
        store.write(0, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="dtype"):
        GradientFile(tmp_path, 4, 3, dtype=torch.float16)
    store.close()


@pytest.mark.parametrize("used", [None, [0, 1, 2, 4, 5, 7, 8, 9]])
def test_file_columns_match_dense_columns(tmp_path, small_blocks, used):
    g = _matrix()
    rows = np.arange(len(g)) if used is None else np.array(used)
    dense = DenseColumns(g[rows].T)
    disk = FileColumns(_stored(tmp_path, g), rows)
    assert disk.shape == dense.shape
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(len(rows), generator=gen, dtype=torch.float64)
    r = torch.randn(g.shape[1], generator=gen, dtype=torch.float64)
    torch.testing.assert_close(disk.mv(x), dense.mv(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(disk.rmv(r), dense.rmv(r), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(disk.norms(), dense.norms(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(disk.column_sum(), dense.column_sum(), rtol=1e-12, atol=1e-12)
    idx = np.array([5, 0, 2])
    torch.testing.assert_close(disk.take(idx), dense.take(idx), rtol=0, atol=0)


@pytest.mark.parametrize(
    "path",
    ["direct_nnls", "working_set_nnls", "bounded", "ridge"],
)
def test_solve_from_file_equals_in_memory(tmp_path, small_blocks, monkeypatch, path):
    # fewer samples than dimensions: the NNLS solution is unique, so both must find it
    g = _matrix(n=12, k=30, seed=2)
    target = -(g[[0, 5, 7]].T @ torch.tensor([0.7, 0.2, 1.3], dtype=torch.float64)) + 0.01 * g[1]
    kwargs = {"bounded": {"upper": 0.8}, "ridge": {"ridge": 1e-2}}.get(path, {})
    if path == "working_set_nnls":
        monkeypatch.setattr(_selection, "_DIRECT_NNLS_MAX", 0)
        monkeypatch.setattr(_selection, "_BLOCKED_QR_MAX_COLUMNS", 0)  # in memory only: off
    lam_mem, info_mem = _selection.solve_multipliers(g, target, **kwargs)
    lam_disk, info_disk = _selection.solve_multipliers(_stored(tmp_path, g), target, **kwargs)
    assert info_disk["solver"] == info_mem["solver"]
    torch.testing.assert_close(lam_disk, lam_mem, rtol=1e-7, atol=1e-9)
    assert lam_disk[3] == 0  # the sample without gradient
    assert info_disk["residual"] == pytest.approx(info_mem["residual"], rel=1e-7, abs=1e-12)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3)).double()


@pytest.mark.parametrize(
    "kwargs", [{}, {"projection_dim": 40}, {"projection_dim": 40, "sketch": "kronecker"}]
)
def test_selection_with_offload_dir_equals_in_memory(tmp_path, kwargs):
    model = _mlp()
    x = torch.randn(50, 12, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = torch.arange(50) % 3
    before = model_snapshot(model)
    mem = DeepSupportVectors(progress=False, **kwargs).attribute(model, candidates=x, labels=y)
    disk = DeepSupportVectors(progress=False, offload_dir=tmp_path, **kwargs).attribute(
        model, candidates=x, labels=y
    )
    assert_same_snapshot(before, model_snapshot(model))
    torch.testing.assert_close(disk.lambdas, mem.lambdas, rtol=1e-7, atol=1e-10)
    assert disk.settings["offload_dir"] == os.fspath(tmp_path)
    assert os.listdir(tmp_path) == []  # the gradient file is removed


def test_offload_file_removed_when_selection_fails(tmp_path):
    model = _mlp()
    with torch.no_grad():
        model[3].weight[0, 0] = float("nan")
    x = torch.randn(20, 12, dtype=torch.float64)
    with pytest.raises(Exception, match="not finite|NaN|inf"):
        DeepSupportVectors(progress=False, offload_dir=tmp_path).attribute(
            model, candidates=x, labels=torch.arange(20) % 3
        )
    assert os.listdir(tmp_path) == []


def test_offload_dir_refusals(tmp_path):
    model = _mlp()
    x = torch.randn(20, 12, dtype=torch.float64)
    y = torch.arange(20) % 3
    with pytest.raises(ValueError, match="offload_dir must be an existing folder"):
        DeepSupportVectors(progress=False, offload_dir=tmp_path / "missing").attribute(
            model, candidates=x, labels=y
        )
    with pytest.raises(TypeError, match="offload_dir"):
        DeepSupportVectors(progress=False, offload_dir=3).attribute(model, candidates=x, labels=y)
    with pytest.raises(ValueError, match="offload_dir is for selection"):
        DeepSupportVectors(progress=False, offload_dir=tmp_path, steps=1).attribute(model, input_shape=(12,))
    with pytest.raises(ValueError, match="offload_dir needs multipliers='fit'"):
        DeepSupportVectors(progress=False, offload_dir=tmp_path, multipliers="equal").attribute(
            model, candidates=x, labels=y
        )


def test_a_short_write_is_completed_or_raises(tmp_path, monkeypatch):
    """pwrite may write part of a block (a disk filling up); the rest used to be dropped, and the
    file's holes read back as zero gradients, silently changing λ."""
    import errno
    import os

    from kktexplain.kkt import _columns

    real = os.pwrite
    calls = []

    def short(fd, data, offset):  # half the bytes, then the rest
        calls.append(len(data))
        return real(fd, bytes(data)[: max(1, len(data) // 2)], offset)

    monkeypatch.setattr(_columns.os, "pwrite", short)
    f = _columns.GradientFile(tmp_path, 30, 16)
    rows = torch.arange(30 * 16, dtype=torch.float32).reshape(30, 16) + 1
    f.write(0, rows)
    assert len(calls) > 1
    torch.testing.assert_close(torch.cat([b.clone() for _, b in f.blocks()]), rows)

    def full(fd, data, offset):  # a part, then nothing more is written
        calls.append(len(data))
        return real(fd, bytes(data)[:7], offset) if len(calls) < 5 else 0

    calls.clear()
    monkeypatch.setattr(_columns.os, "pwrite", full)
    with pytest.raises(OSError, match="no space left on the device") as info:
        f.write(0, rows)
    assert info.value.errno == errno.ENOSPC
    f.close()
