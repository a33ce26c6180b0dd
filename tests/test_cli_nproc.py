"""``kktexplain select --nproc 2``: two local gloo processes give the λ of one process."""

import json
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import requires_gloo

from kktexplain import DSVResult
from kktexplain.cli import main

USER_FILE = textwrap.dedent(
    """
    import torch
    from torch import nn


    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    """
)


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "nprocnet.py").write_text(USER_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(23, 6, generator=g), torch.arange(23) % 3  # 23 rows: uneven shards
    np.savez(tmp_path / "train.npz", x=x.numpy(), y=y.numpy())
    yield tmp_path
    sys.modules.pop("nprocnet", None)


@pytest.mark.slow
@requires_gloo
def test_select_nproc_2_gives_the_multipliers_of_one_process(user_dir, capsys):
    common = ["select", "--model", "nprocnet:build", "--data", "train.npz", "--projection-dim", "32",
              "--chunk-size", "4", "--seed", "3", "--no-progress"]  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two processes runs on a 2-core machine
    try:
        assert main([*common, "--out", "one"]) == 0
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    assert main([*common, "--nproc", "2", "--out", "two"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["file"].endswith("two.npz") and summary["n"] == 23
    one, two = DSVResult.load(user_dir / "one"), DSVResult.load(user_dir / "two")
    assert one.settings["world_size"] == 1 and two.settings["world_size"] == 2
    assert (two.lambdas > 0).any()
    torch.testing.assert_close(two.lambdas, one.lambdas, rtol=0, atol=1e-6)


def test_select_nproc_must_be_positive(user_dir, capsys):
    assert main(["select", "--model", "nprocnet:build", "--data", "train.npz", "--nproc", "0",
                 "--out", "x"]) == 2  # fmt: skip
    assert "--nproc must be > 0, got 0" in capsys.readouterr().err


@pytest.mark.slow
@requires_gloo
def test_select_nproc_reports_a_worker_input_error_without_a_traceback(user_dir, capsys):
    np.save(user_dir / "unlabelled.npy", np.zeros((4, 6), dtype=np.float32))
    assert main(["select", "--model", "nprocnet:build", "--data", "unlabelled.npy", "--nproc", "2",
                 "--out", "x"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "select needs labels" in err and "Traceback" not in err
