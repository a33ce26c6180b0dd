"""Leave the user's model exactly as it was found."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

__all__ = ["eval_mode"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, and restore each one's own flag on exit.

    Restoring per module (not ``model.train(flag)``) keeps mixed states, such as a frozen
    BatchNorm inside a training model, as the user left them.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, flag in flags:
            module.training = flag
