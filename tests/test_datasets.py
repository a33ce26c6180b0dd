import gzip
import struct

import numpy as np
import pytest
import torch
from conftest import skip_or_fail_in_ci

from kktexplain.datasets import (
    find_fashion_mnist,
    load_digits,
    load_fashion_mnist,
    load_tabular,
    make_2d,
    read_idx,
)


def _write_idx(path, array, compress):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_roundtrip(tmp_path, compress):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx" + (".gz" if compress else ""))
    _write_idx(path, arr, compress)
    np.testing.assert_array_equal(read_idx(path), arr)


def test_read_idx_rejects_garbage(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def _fake_fmnist(folder, n=12):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, m in (("train", n), ("t10k", n // 2)):
        _write_idx(folder / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (m, 28, 28)), True)
        _write_idx(folder / f"{split}-labels-idx1-ubyte", np.arange(m) % 10, False)


def test_fashion_mnist_from_explicit_root_and_torchvision_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("KKTEXPLAIN_FASHION_MNIST", raising=False)
    _fake_fmnist(tmp_path / "plain")
    ds = load_fashion_mnist(root=tmp_path / "plain")
    assert ds.inputs.shape == (12, 1, 28, 28) and ds.labels.tolist() == [i % 10 for i in range(12)]
    assert ds.classes[0] == "T-shirt/top" and len(ds.classes) == 10
    raw = ds.denormalize(ds.inputs)
    assert raw.min() >= -1e-6 and raw.max() <= 1 + 1e-6
    lo, hi = ds.input_range
    assert ds.inputs.min() >= lo - 1e-5 and ds.inputs.max() <= hi + 1e-5
    _fake_fmnist(tmp_path / "tv" / "FashionMNIST" / "raw")
    assert find_fashion_mnist(tmp_path / "tv") == tmp_path / "tv" / "FashionMNIST" / "raw"
    monkeypatch.setenv("KKTEXPLAIN_FASHION_MNIST", str(tmp_path / "plain"))
    assert len(load_fashion_mnist(train=False)) == 6


def test_fashion_mnist_missing_gives_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("KKTEXPLAIN_FASHION_MNIST", str(tmp_path / "none"))
    monkeypatch.setattr("kktexplain.datasets._fashion_mnist.DEBIAN_ROOT", str(tmp_path / "deb"))
    monkeypatch.setattr("pathlib.Path.home", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(root=tmp_path / "x")


@pytest.mark.fmnist
def test_real_fashion_mnist_if_installed():
    try:
        ds = load_fashion_mnist(train=False)
    except FileNotFoundError:
        skip_or_fail_in_ci("Fashion-MNIST is not installed")
    assert ds.inputs.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.labels).tolist() == [1000] * 10


def test_sklearn_sets():
    d = load_digits()
    assert d.inputs.shape == (1797, 1, 8, 8) and d.num_classes == 10
    assert abs(d.inputs.mean().item()) < 1e-4
    for name, (n, f, c) in {"breast_cancer": (569, 30, 2), "iris": (150, 4, 3), "wine": (178, 13, 3)}.items():
        ds = load_tabular(name)
        assert ds.inputs.shape == (n, f) and ds.num_classes == c
        torch.testing.assert_close(ds.inputs.mean(0), torch.zeros(f), atol=1e-5, rtol=0)
    for name in ("moons", "blobs", "circles"):
        ds = make_2d(name, 50)
        assert ds.inputs.shape == (50, 2) and set(ds.labels.tolist()) == {0, 1}
    with pytest.raises(ValueError, match="name must be one of"):
        load_tabular("titanic")


def test_per_class_and_subset():
    d = load_digits()
    x, y, idx = d.per_class(3, seed=1)
    assert y.tolist() == [c for c in range(10) for _ in range(3)]
    assert torch.equal(d.inputs[idx], x)
    assert torch.equal(d.per_class(3, seed=1)[2], idx)
    assert len(d.subset(idx)) == 30


def test_missing_data_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        skip_or_fail_in_ci("no data")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        skip_or_fail_in_ci("no data")
