"""Selection sharded over 2 gloo processes on the CPU equals selection in one process."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import requires_gloo

from kktexplain import DeepSupportVectors
from kktexplain.models import MLP

SETTINGS = {"projection_dim": 32, "chunk_size": 4, "seed": 3, "progress": False}


def _problem():
    torch.manual_seed(0)
    model = MLP((6,), 3, hidden=(8,))
    gen = torch.Generator().manual_seed(1)
    return model, torch.randn(23, 6, generator=gen), torch.arange(23) % 3  # 23: uneven shards


def _worker(rank: int, world: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        model, x, y = _problem()
        sel = DeepSupportVectors(**SETTINGS).attribute(model, candidates=x, labels=y)
        np.save(f"{out}.{rank}.npy", sel.lambdas.numpy())
        assert sel.settings["world_size"] == world
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@requires_gloo
def test_two_gloo_processes_select_the_same_multipliers_as_one(tmp_path):
    out = str(tmp_path / "lam")
    mp.spawn(_worker, args=(2, f"file://{tmp_path / 'rendezvous'}", out), nprocs=2, join=True)
    model, x, y = _problem()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = DeepSupportVectors(**SETTINGS).attribute(model, candidates=x, labels=y)
    finally:
        torch.set_num_threads(threads)
    assert single.settings["world_size"] == 1
    for rank in range(2):
        lam = torch.from_numpy(np.load(f"{out}.{rank}.npy"))
        torch.testing.assert_close(lam, single.lambdas, rtol=0, atol=1e-6)
