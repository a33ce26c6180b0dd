"""Leave the user's model exactly as it was found."""

from __future__ import annotations

import copy
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ._warn import warn_user

__all__ = [
    "ModelFingerprint",
    "backward_hooks_suspended",
    "eval_mode",
    "isolated",
    "kept_buffers",
    "kept_grads",
]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode, and restore each one's own flag on exit, with the
    buffers as they were (:func:`kept_buffers`).

    Restoring per module (not ``model.train(flag)``) keeps mixed states, such as a frozen
    BatchNorm inside a training model, as the user left them.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with kept_buffers(model):
            yield model
    finally:
        for module, flag in flags:
            module.training = flag


# models inside a kept_buffers block: a nested block (eval_mode inside eval_mode, captum's
# forward calls inside an attribution) leaves the restore to the outermost one
_KEEPING: weakref.WeakSet = weakref.WeakSet()

# buffers above this many entries are not copied (a lookup table, a cached mask): a write to
# one is detected by its version counter and said, not undone
BUFFER_COPY_LIMIT = 2**22


@contextmanager
def kept_buffers(model: nn.Module) -> Iterator[nn.Module]:
    """Put every buffer back on exit: the same tensor under each name, with its values.

    A forward pass may rebind a buffer (``self.count = self.count + 1``) or write to one in
    place (``self.count += 1``, running statistics); the library's forward passes must leave
    neither. Buffers of up to :data:`BUFFER_COPY_LIMIT` entries are copied on entry and copied
    back only where a write moved their version counter; a write to a larger one is warned
    about. Inference tensors keep no version counter: only their binding is restored. Nested
    blocks for the same model do nothing (the outermost restores).
    """
    if model in _KEEPING:
        yield model
        return
    saved = []
    for module in model.modules():
        for name, buf in module._buffers.items():
            if buf is None or buf.is_inference():
                saved.append((module, name, buf, None, None))
            else:
                copy_ = buf.detach().clone() if buf.numel() <= BUFFER_COPY_LIMIT else None
                saved.append((module, name, buf, buf._version, copy_))
    _KEEPING.add(model)
    try:
        yield model
    finally:
        _KEEPING.discard(model)
        with torch.no_grad():
            for module, name, buf, version, value in saved:
                module._buffers[name] = buf
                if version is None or buf._version == version:
                    continue
                if value is not None:
                    buf.copy_(value)
                else:
                    warn_user(
                        f"the model's forward wrote in place to its buffer {name!r} "
                        f"({buf.numel()} entries, above the {BUFFER_COPY_LIMIT} that kktexplain "
                        "copies to put back): its values changed"
                    )


@contextmanager
def kept_grads(model: nn.Module) -> Iterator[nn.Module]:
    """Restore every parameter's ``.grad`` (the same tensor, or ``None``) and ``requires_grad``
    on exit.

    For third-party code that runs ``backward`` on the model itself (captum's ``TracInCP``):
    its gradients accumulate into ``.grad``, which the user's model must not keep.
    """
    saved = [(p, p.grad, p.requires_grad) for p in model.parameters()]
    values = [None if g is None else g.detach().clone() for _, g, _ in saved]
    try:
        yield model
    finally:
        for (param, grad, flag), value in zip(saved, values):
            if grad is not None and value is not None:
                grad.copy_(value)  # the user's own tensor, with its values as they were
            param.grad = grad
            param.requires_grad_(flag)


@contextmanager
def isolated(model: nn.Module) -> Iterator[nn.Module]:
    """Run third-party code (captum's ``TracInCP``) on a copy of the user's model, as if it had
    not run.

    Yields a deep copy in eval mode: captum's backward runs on the copy, so the tensor hooks of
    the user's parameters (``register_hook``, ``register_post_accumulate_grad_hook``, which
    deep copies leave behind; an optimizer step in a hook moved the weights) do not fire, and
    its ``.grad`` and loaded checkpoints stay on the copy. The global random state of the CPU
    (and of the model's CUDA device) is forked, since captum's data loaders draw their seeds
    from it. A model that cannot be copied (a lock, a file handle, no memory for a copy) is
    used itself, in eval mode, with its state dict, every ``.grad`` and ``requires_grad`` put
    back (:func:`kept_grads`). Module hooks (forward, full backward) are copied with the model
    and fire on the copy.
    """
    device = next(model.parameters()).device
    cuda = [device.index or 0] if device.type == "cuda" else []
    try:
        twin = copy.deepcopy(model)
    except Exception:  # noqa: BLE001 - any failure to copy: fall back to the model itself
        twin = None
    with torch.random.fork_rng(devices=cuda):
        if twin is not None:
            yield twin.eval()
            return
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        try:
            with eval_mode(model), kept_grads(model):
                yield model
        finally:  # checkpoints loaded into the model itself (TracInCP's) are undone
            with torch.no_grad():
                model.load_state_dict(state)


@contextmanager
def backward_hooks_suspended(model: nn.Module) -> Iterator[nn.Module]:
    """Run a forward pass of ``model`` without its modules' backward hooks; restore them on exit.

    A full backward hook (``register_full_backward_hook``) wraps the module's forward in an
    autograd function that ``torch.func`` transforms (``vmap``, ``jvp``) cannot run through, and
    any backward hook would fire on the library's own gradients. Hooks are attached when the
    forward runs, so a forward inside this block builds a graph without them. The same hook
    dictionaries are put back, so the user's ``RemovableHandle`` objects stay valid.
    """
    saved = []
    for m in model.modules():
        if m._backward_hooks or m._backward_pre_hooks:
            saved.append((m, m._backward_hooks, m._backward_pre_hooks))
            m._backward_hooks, m._backward_pre_hooks = OrderedDict(), OrderedDict()
    try:
        yield model
    finally:
        for m, hooks, pre_hooks in saved:
            m._backward_hooks, m._backward_pre_hooks = hooks, pre_hooks


class ModelFingerprint:
    """Whether a model's parameters or buffers were written to since this was made.

    Version counters (every in-place write bumps them) and storages are compared first; where
    they moved, two float64 sums per tensor (of its squares, and weighted by position) tell new
    values (an optimizer step) from the same ones written again (``load_state_dict`` of the same
    state, as captum's TracInCP does per checkpoint). Inference tensors keep no version counter:
    a write to one inside ``inference_mode`` is missed.

    Parameters
    ----------
    model : nn.Module
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._versions = self._read_versions()
        self._values = self._read_values()

    def _tensors(self) -> list[torch.Tensor]:
        return [*self.model.parameters(), *self.model.buffers()]

    def _read_versions(self) -> tuple:
        return tuple((-1 if t.is_inference() else t._version, t.data_ptr()) for t in self._tensors())

    def _read_values(self) -> tuple:
        out = []
        with torch.no_grad():
            for t in self._tensors():
                v = t.detach().flatten().double()
                w = torch.linspace(1.0, 2.0, len(v), dtype=torch.float64, device=v.device)
                out.append((float(v @ v), float(v @ w)))
        return tuple(out)

    def changed(self) -> bool:
        """``True`` when some tensor holds other values than when this was made.

        Returns
        -------
        bool
        """
        versions = self._read_versions()
        if versions == self._versions:
            return False
        if self._read_values() != self._values:
            return True
        self._versions = versions  # rewritten with the same values
        return False
