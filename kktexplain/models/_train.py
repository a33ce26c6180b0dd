"""Training and evaluating classifiers (used for reference models and distillation students)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm.auto import tqdm

from .._data import as_data
from .._errors import NonFiniteError
from .._model_state import eval_mode
from .._validation import check_device, refuse_float_indices

__all__ = ["train_classifier", "accuracy", "predict"]


def _as_dataset(data: Dataset | tuple[Tensor, Tensor]) -> Dataset:
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError("data must be a Dataset or an (inputs, labels) tuple")
        # tensors or numpy arrays, float inputs or token ids, the lengths checked
        x, y = as_data(data, "data", token_ids=True)
        refuse_float_indices(y, "data's labels of shape (N,)")
        if y.ndim not in (1, 2):
            raise ValueError(f"data's labels must have shape (N,) or (N, C), got {tuple(y.shape)}")
        return TensorDataset(x, y)
    if not isinstance(data, Dataset):
        raise TypeError(
            f"data must be a torch Dataset or an (inputs, labels) tuple, got {type(data).__name__}"
        )
    return data


def train_classifier(
    model: nn.Module,
    data: Dataset | tuple[Tensor, Tensor],
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 256,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    lr_decay_at: float | None = None,
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, nn.Module, float], None] | None = None,
) -> list[float]:
    """Train ``model`` in place with cross-entropy; hard ``(N,)`` or soft ``(N, C)`` labels.

    Parameters
    ----------
    model : nn.Module
        Maps ``(B, *input_shape)`` to logits ``(B, C)``. Left in eval mode on return.
    data : Dataset or tuple of (Tensor, Tensor)
        Yields ``(input, label)`` pairs; a tuple holds float inputs ``(N, *input_shape)`` and
        integer labels ``(N,)`` or soft labels ``(N, C)`` (tensors or numpy arrays).
    epochs : int, default=10
    lr : float, default=1e-3
    batch_size : int, default=256
    optimizer : {"adam", "sgd"}, default="adam"
    weight_decay : float, default=0.0
    momentum : float, default=0.9
        For SGD only.
    lr_decay_at : float, optional
        Fraction of the epochs after which the learning rate is divided by ten (the DC
        protocol uses 0.5).
    augment : callable, optional
        ``augment(batch, generator) -> batch``, applied to every training batch.
    seed : int, default=0
        Seeds shuffling, augmentation and nothing else: initialise the model yourself.
    device : str or torch.device, optional
        Defaults to the model's device.
    progress : bool, default=True
        Show a progress bar over epochs.
    on_epoch_end : callable, optional
        ``on_epoch_end(epoch, model, lr)`` after every epoch, with the learning rate that epoch
        ran at (to save the checkpoints of TracInCP, for example). The model is in train mode.

    Returns
    -------
    list of float
        Mean training loss of each epoch.

    Raises
    ------
    NonFiniteError
        When an epoch's loss is NaN or inf (a diverged optimisation; the model is left with the
        non-finite parameters it reached, in eval mode).
    """
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be positive integers")
    dataset = _as_dataset(data)
    device = check_device(device) or next(model.parameters()).device
    model.to(device)
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device).manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=gen)
    if optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    losses = []
    model.train()
    for epoch in tqdm(range(epochs), desc="train", disable=not progress, leave=False):
        if lr_decay_at is not None and epoch == int(epochs * lr_decay_at):
            for group in opt.param_groups:
                group["lr"] = lr * 0.1
        total, count = 0.0, 0
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            if augment is not None:
                with torch.no_grad():
                    x = augment(x, aug_gen)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(x)
            count += len(x)
        losses.append(total / count)
        if not math.isfinite(losses[-1]):
            model.eval()
            raise NonFiniteError(
                epoch,
                "training loss",
                stage="training",
                hint="the optimisation diverged (a learning rate too large for the inputs' scale): "
                "standardise the inputs (zero mean, unit variance per feature) or lower lr",
            )
        if on_epoch_end is not None:
            on_epoch_end(epoch, model, float(opt.param_groups[0]["lr"]))
    model.eval()
    return losses


@torch.no_grad()
def predict(model: nn.Module, inputs: Tensor | Dataset, batch_size: int = 1024) -> Tensor:
    """Logits of ``model`` over ``inputs``, in eval mode, in chunks.

    Parameters
    ----------
    model : nn.Module
    inputs : Tensor or numpy array of shape (N, *input_shape), or Dataset of (input, label)
    batch_size : int, default=1024

    Returns
    -------
    Tensor of shape (N, C)
        On the CPU.
    """
    device = next(model.parameters()).device
    if isinstance(inputs, np.ndarray):
        inputs = torch.as_tensor(inputs)
    if not isinstance(inputs, Tensor | Dataset):
        raise TypeError(
            f"inputs must be a Tensor, a numpy array or a Dataset of (input, label), got "
            f"{type(inputs).__name__}"
        )
    with eval_mode(model):  # every module's own mode put back afterwards
        if isinstance(inputs, Tensor):
            chunks = inputs.split(batch_size)
        else:
            chunks = (x for x, _ in DataLoader(inputs, batch_size=batch_size))
        return torch.cat([model(x.to(device)).cpu() for x in chunks])


def accuracy(model: nn.Module, data: Dataset | tuple[Tensor, Tensor], batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on ``data``.

    Parameters
    ----------
    model : nn.Module
    data : Dataset or tuple of (Tensor of shape (N, ...), Tensor of shape (N,))
        Numpy arrays are taken as tensors.
    batch_size : int, default=1024

    Returns
    -------
    float
        In ``[0, 1]``.
    """
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError("data must be a Dataset or an (inputs, labels) tuple")
        inputs, labels = data
        labels = torch.as_tensor(labels)
    else:
        inputs = data
        labels = torch.cat([y for _, y in DataLoader(data, batch_size=batch_size)])
    preds = predict(model, inputs, batch_size).argmax(-1)
    return (preds == labels.cpu()).float().mean().item()
