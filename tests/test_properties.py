"""Properties of the method that no other test states on its own (each found by a mutant)."""

import time

import torch

from kktexplain import DeepSupportVectors
from kktexplain.models import MLP

PAUSE = 0.05


def _mlp():
    torch.manual_seed(0)
    return MLP((6,), 3, hidden=(8,))


def test_synthesis_records_its_wall_time():
    # settings["seconds"] is the wall time of the synthesis loop: at least the time the loop
    # spent (a callback that sleeps PAUSE after each step), at most the time of the whole call
    steps = 4
    est = DeepSupportVectors(n_per_class=2, steps=steps, progress=False, seed=0)
    t0 = time.perf_counter()
    dsv = est.attribute(_mlp(), callback=lambda step, row: time.sleep(PAUSE))
    wall = time.perf_counter() - t0
    seconds = dsv.settings["seconds"]
    assert isinstance(seconds, float)
    assert steps * PAUSE <= seconds <= wall


class _Slow(torch.nn.Module):
    """Delegates to ``inner`` and sleeps PAUSE on every forward."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.input_shape = inner.input_shape
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        time.sleep(PAUSE)
        return self.inner(x)


def test_selection_records_its_wall_time_and_the_gradient_part_of_it():
    model = _Slow(_mlp())
    x, y = torch.randn(6, 6), torch.arange(6) % 3
    t0 = time.perf_counter()
    dsv = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    wall = time.perf_counter() - t0
    seconds, grad_seconds = dsv.settings["seconds"], dsv.settings["gradient_seconds"]
    assert model.calls >= 1
    assert PAUSE <= grad_seconds <= seconds <= wall
