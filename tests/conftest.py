import os

import pytest
import torch
import torch.distributed as dist
from torch import nn

# tests that start torch.distributed processes
requires_gloo = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)


@pytest.fixture
def rng():
    return torch.Generator().manual_seed(0)


class TinyMLP(nn.Module):
    def __init__(self, d=3, h=5, c=3):
        super().__init__()
        self.fc1 = nn.Linear(d, h)
        self.fc2 = nn.Linear(h, c)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


@pytest.fixture
def tiny64():
    torch.manual_seed(0)
    return TinyMLP().double()


def model_snapshot(model: nn.Module) -> dict:
    """Everything the explainer must leave as it was."""
    return {
        "params": {k: v.detach().clone() for k, v in model.named_parameters()},
        "buffers": {k: v.detach().clone() for k, v in model.named_buffers()},
        "requires_grad": {k: v.requires_grad for k, v in model.named_parameters()},
        "grad": {k: None if v.grad is None else v.grad.clone() for k, v in model.named_parameters()},
        "training": {k: m.training for k, m in model.named_modules()},
        "hooks": {
            k: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for k, m in model.named_modules()
        },
    }


def assert_same_snapshot(a: dict, b: dict) -> None:
    assert a["requires_grad"] == b["requires_grad"]
    assert a["training"] == b["training"]
    assert a["hooks"] == b["hooks"]
    for key in ("params", "buffers"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key} {k} changed"
    for k in a["grad"]:
        if a["grad"][k] is None:
            assert b["grad"][k] is None, f".grad of {k} was created"
        else:
            assert torch.equal(a["grad"][k], b["grad"][k]), f".grad of {k} changed"


def skip_or_fail_in_ci(reason: str) -> None:
    """Skip a test whose data is missing, except under ``CI=true``, where the data must be there."""
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason} (CI=true: data the suite needs must be installed, e.g. by `make test`)")
    pytest.skip(reason)
