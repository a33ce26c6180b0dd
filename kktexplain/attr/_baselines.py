"""The baselines the evaluations compare with: captum's TracInCP and last-layer features."""

from __future__ import annotations

import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from .._model_info import cast_inputs, model_device, model_dtype
from .._model_state import eval_mode

__all__ = ["features", "last_layer_top1", "last_linear", "last_linear_scope", "tracin"]

# Inputs of the probe forward that finds the output layer: which layer runs last is structural.
_PROBE_ROWS = 2


def last_linear(model: nn.Module, inputs: Tensor | None = None) -> tuple[str, nn.Linear]:
    """The name and module of the model's output ``nn.Linear`` (the representer points' layer).

    Parameters
    ----------
    model : nn.Module
        Only read (one forward in eval mode, without gradients, where ``inputs`` are given).
    inputs : Tensor of shape (n, *input_shape), optional
        Valid inputs of the model. With them, one forward on ``inputs[:2]`` decides: the
        ``nn.Linear`` whose output is the model's output, else the last ``nn.Linear`` to run
        (a head registered before the body it follows is found). Without them, the last
        ``nn.Linear`` in registration order.

    Returns
    -------
    name : str
    layer : nn.Linear

    Raises
    ------
    ValueError
        If the model has no ``nn.Linear`` layer, or none runs in its forward on ``inputs``.
    """
    found = [(k, m) for k, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not found:
        raise ValueError("model must contain an nn.Linear layer")
    if inputs is None or len(found) == 1:
        return found[-1]
    ran: list[tuple[str, nn.Linear, object]] = []
    handles = [m.register_forward_hook(lambda mod, _a, out, k=k: ran.append((k, mod, out))) for k, m in found]
    try:
        probe = cast_inputs(inputs[:_PROBE_ROWS], model_device(model), model_dtype(model))
        with torch.no_grad(), eval_mode(model):
            output = model(probe)
    finally:
        for handle in handles:
            handle.remove()
    if not ran:
        raise ValueError("model must run an nn.Linear layer in its forward; none ran on the inputs given")
    at_output = [(k, m) for k, m, out in ran if out is output]
    k, m = at_output[-1] if at_output else ran[-1][:2]
    return k, m


def last_linear_scope(model: nn.Module, inputs: Tensor | None = None) -> list[str]:
    """The parameter names of the output ``nn.Linear`` (:func:`last_linear`): its weight, and
    its bias where it has one.

    Raises
    ------
    ValueError
        If the model has no ``nn.Linear`` layer.
    """
    name, layer = last_linear(model, inputs)
    return [f"{name}.weight"] + ([f"{name}.bias"] if layer.bias is not None else [])


def tracin(
    model: nn.Module,
    inputs: Tensor,
    labels: Tensor,
    batch_size: int = 256,
    folder: str | None = None,
    checkpoints: Sequence[tuple[str, float]] | None = None,
):
    """captum's ``TracInCP`` over all Linear/Conv2d layers, on one checkpoint or on several.

    ``sample_wise_grads_per_batch=True`` is captum's fast path; it supports ``Linear`` and
    ``Conv2d`` layers, so normalisation parameters are left out of TracIn's gradients.

    Parameters
    ----------
    model : nn.Module
        Loaded with each checkpoint in turn by TracInCP (and left with the last one).
    inputs : Tensor of shape (N, *input_shape)
    labels : Tensor of shape (N,)
    batch_size : int, default=256
    folder : str, optional
        Where to write the checkpoint of the model as it is (a temporary folder when omitted).
    checkpoints : sequence of (str, float), optional
        Saved ``state_dict`` files taken during training and the learning rate each was trained
        at (TracIn's weights ``eta_i``), as in the TracIn paper. Default: one checkpoint, the
        model as it is, weight 1.

    Returns
    -------
    captum.influence.TracInCP
    """
    from captum.influence import TracInCP

    made = None
    if checkpoints is None:
        if folder is None:
            folder = made = tempfile.mkdtemp(prefix="kktexplain-tracin-")
        path = Path(folder) / "checkpoint.pt"
        torch.save(model.state_dict(), path)
        checkpoints = [(str(path), 1.0)]
    weights = {str(p): float(lr) for p, lr in checkpoints}
    layers = [k for k, m in model.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]

    def load(m: nn.Module, p: str) -> float:
        m.load_state_dict(torch.load(p, weights_only=True))
        return weights[str(p)]

    out = TracInCP(
        model,
        TensorDataset(cast_inputs(inputs, inputs.device, model_dtype(model)), labels),
        checkpoints=list(weights),
        checkpoints_load_func=load,
        layers=layers,
        loss_fn=nn.CrossEntropyLoss(reduction="sum"),
        batch_size=batch_size,
        sample_wise_grads_per_batch=True,
    )
    if made is not None:  # the copy of the user's weights lives as long as TracInCP needs it
        weakref.finalize(out, shutil.rmtree, made, True)
    return out


def features(model: nn.Module, inputs: Tensor, batch_size: int) -> Tensor:
    """Inputs of the output linear layer (:func:`last_linear`; the representer points' features)."""
    _, layer = last_linear(model, inputs)
    store: list[Tensor] = []
    handle = layer.register_forward_pre_hook(lambda m, a: store.append(a[0].detach().flatten(1).cpu()))
    try:
        device, dtype = model_device(model), model_dtype(model)
        with torch.no_grad(), eval_mode(model):
            for i in range(0, len(inputs), batch_size):
                model(cast_inputs(inputs[i : i + batch_size], device, dtype))
    finally:
        handle.remove()
    return torch.cat(store)


def last_layer_top1(
    model: nn.Module,
    train_inputs: Tensor,
    labels: Tensor,
    test_inputs: Tensor,
    pred: Tensor,
    logits: Callable[[Tensor], Tensor],
    batch_size: int,
) -> dict[str, dict[str, float]]:
    """The identical-class test of two last-layer baselines: representer points (Yeh et al.
    2018, without their L2 refit) and the cosine of last-layer loss gradients.

    Parameters
    ----------
    model : nn.Module
        With an ``nn.Linear`` last layer (its inputs are the features).
    train_inputs : Tensor of shape (N, *input_shape)
    labels : Tensor of shape (N,)
    test_inputs : Tensor of shape (n, *input_shape)
    pred : Tensor of shape (n,)
        The model's predictions on ``test_inputs``.
    logits : callable
        ``logits(x)``: the model's logits ``(len(x), C)``.
    batch_size : int

    Returns
    -------
    dict
        ``representer`` and ``grad_cosine``, each with ``identical_class`` (the fraction of
        test inputs whose top-1 training sample has the predicted class) and ``seconds``.
    """
    res: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    h_train = features(model, train_inputs, batch_size)
    h_test = features(model, test_inputs, batch_size)
    with torch.no_grad():
        p = torch.softmax(logits(train_inputs).cpu(), -1)
    onehot = torch.nn.functional.one_hot(labels, p.shape[1]).to(p.dtype)
    alpha = (onehot - p).to(h_train.dtype)  # -dL/df, the representer weights up to 1/(2 lambda n)
    kernel = h_test @ h_train.T
    rep = kernel * alpha[:, pred].T  # value of each train point for the predicted class
    res["representer"] = {
        "identical_class": float((labels[rep.argmax(1)] == pred).double().mean()),
        "seconds": time.perf_counter() - start,
    }
    start = time.perf_counter()
    pt = torch.softmax(logits(test_inputs).cpu(), -1)
    rt = (pt - torch.nn.functional.one_hot(pred, pt.shape[1]).to(pt.dtype)).to(h_train.dtype)
    ones_tr = torch.ones(len(h_train), 1, dtype=h_train.dtype)
    ones_te = torch.ones(len(h_test), 1, dtype=h_train.dtype)
    ha, hb = torch.cat([h_train, ones_tr], 1), torch.cat([h_test, ones_te], 1)
    # last-layer gradients (p - y) (x) [h, 1]: inner products factorise
    dot = (rt @ (-alpha).T) * (hb @ ha.T)
    norms = (rt.norm(dim=1)[:, None] * hb.norm(dim=1)[:, None]) * (alpha.norm(dim=1) * ha.norm(dim=1))[None]
    cos = dot / norms.clamp_min(1e-30)
    res["grad_cosine"] = {
        "identical_class": float((labels[cos.argmax(1)] == pred).double().mean()),
        "seconds": time.perf_counter() - start,
    }
    return res
