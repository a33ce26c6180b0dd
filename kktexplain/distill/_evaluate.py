"""Score a distilled set by the test accuracy of fresh students trained on it (fixed protocol)."""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._data import as_data
from .._model_state import eval_mode
from .._validation import (
    check_choice,
    check_device,
    check_finite,
    check_positive,
    refuse_float_indices,
    to_python,
)
from ..kkt import Augmentation
from ..models import MLP, ConvNet, predict, train_classifier
from ._dataset import DistilledSet

__all__ = ["StudentProtocol", "DistillEvaluation", "evaluate"]


@dataclass(frozen=True)
class StudentProtocol:
    """How a student is built and trained on a distilled set.

    The default is the protocol of dataset condensation (DC; Zhao et al., 2021) used by DC,
    DSA, DM and KIP tables: a fresh ConvNet-3 (width 128, instance norm, average pooling),
    SGD with momentum 0.9, lr 0.01, weight decay 5e-4, 300 epochs, the learning rate divided
    by ten at half, and random shifts of up to 1/8 of the image side.

    Parameters
    ----------
    architecture : {"auto", "convnet", "mlp"} or callable, default="auto"
        ``"auto"``: a ConvNet for ``(C, H, W)`` inputs at least ``2**depth`` pixels on a side,
        an MLP otherwise. A callable is called as ``architecture(input_shape, num_classes)``
        and must return a fresh ``nn.Module``.
    width : int, default=128
        Channels of the ConvNet; hidden units of the MLP's ``depth - 1`` layers.
    depth : int, default=3
    norm : {"instancenorm", "batchnorm", "groupnorm", "none"}, default="instancenorm"
        ConvNet only.
    epochs : int, default=300
    optimizer : {"sgd", "adam"}, default="sgd"
    lr : float, default=0.01
    momentum : float, default=0.9
    weight_decay : float, default=5e-4
    batch_size : int, default=256
    lr_decay_at : float or None, default=0.5
        Fraction of the epochs after which the learning rate is divided by ten.
    translate : float, default=0.125
        Largest random shift (fraction of the side) of image inputs; 0 disables it.
    """

    architecture: str | Callable[[tuple[int, ...], int], nn.Module] = "auto"
    width: int = 128
    depth: int = 3
    norm: str = "instancenorm"
    epochs: int = 300
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    lr_decay_at: float | None = 0.5
    translate: float = 0.125

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> StudentProtocol:
        """A named protocol, with fields overridden.

        Parameters
        ----------
        name : {"dc", "paper"}
            ``"dc"``: the class defaults. ``"paper"``: the DSV paper's retraining (App. D:
            Adam, lr 1e-4, otherwise Adam's defaults; epochs, batch size and student are not
            given, so the DC ConvNet, 300 epochs and batch 256 are assumed, without
            augmentation or decay).
        **overrides
            Fields to change.

        Returns
        -------
        StudentProtocol
        """
        check_choice("name", name, ("dc", "paper"))
        base = cls()
        if name == "paper":
            base = replace(base, optimizer="adam", lr=1e-4, weight_decay=0.0, lr_decay_at=None, translate=0.0)
        return replace(base, **overrides)

    def validate(self) -> None:
        """Raise ``ValueError`` / ``TypeError`` naming the first bad field."""
        if not callable(self.architecture):
            check_choice("architecture", self.architecture, ("auto", "convnet", "mlp"))
        for name in ("width", "depth", "epochs", "batch_size"):
            check_positive(name, to_python(getattr(self, name)), integer=True)
        check_choice("optimizer", self.optimizer, ("sgd", "adam"))
        check_choice("norm", self.norm, ("instancenorm", "batchnorm", "groupnorm", "none"))
        check_positive("lr", to_python(self.lr))
        for name in ("momentum", "weight_decay", "translate"):
            check_positive(name, to_python(getattr(self, name)), allow_zero=True)
        if self.lr_decay_at is not None and not 0 < to_python(self.lr_decay_at) <= 1:
            raise ValueError(f"lr_decay_at must be in (0, 1] or None, got {self.lr_decay_at!r}")

    def student(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        """A freshly initialised student (uses the global torch RNG)."""
        arch = self.architecture
        if callable(arch):
            model = arch(tuple(input_shape), num_classes)
            if not isinstance(model, nn.Module):
                raise TypeError(f"architecture must return an nn.Module, got {type(model).__name__}")
            return model
        image = len(input_shape) == 3 and min(input_shape[1:]) >= 2**self.depth
        if arch == "convnet" or (arch == "auto" and image):
            if len(input_shape) != 3:
                raise ValueError(f"architecture='convnet' needs (C, H, W) inputs, got {tuple(input_shape)}")
            return ConvNet(input_shape, num_classes, width=self.width, depth=self.depth, norm=self.norm)
        return MLP(input_shape, num_classes, hidden=(self.width,) * (self.depth - 1))

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-friendly values (a callable architecture by its name)."""
        d = asdict(self)
        if callable(self.architecture):
            d["architecture"] = getattr(self.architecture, "__qualname__", repr(self.architecture))
        return d


class DistillEvaluation(NamedTuple):
    """Test accuracy of students trained on one set.

    Attributes
    ----------
    mean : float
        Mean test accuracy over the seeds, in ``[0, 1]``.
    std : float
        Sample standard deviation over the seeds (0 for one seed).
    accuracies : tuple of float
        One per seed, in the order of ``seeds``.
    seeds : tuple of int
        Each seeds a student's initialisation, shuffling and augmentation.
    labels : str
        ``"hard"`` or ``"soft"``: what the students were trained on.
    protocol : dict
        :meth:`StudentProtocol.to_dict`.
    """

    mean: float
    std: float
    accuracies: tuple[float, ...]
    seeds: tuple[int, ...]
    labels: str
    protocol: dict


def _training_pair(dataset: Any, labels: str) -> tuple[Tensor, Tensor, str]:
    if isinstance(dataset, DistilledSet):
        use_soft = labels == "soft" or (labels == "auto" and dataset.soft_labels is not None)
        if use_soft and dataset.soft_labels is None:
            raise ValueError(
                "labels='soft' needs a DistilledSet with soft labels (distill with soft_labels=True)"
            )
        y = dataset.soft_labels if use_soft else dataset.labels
        return dataset.inputs.float(), y, "soft" if use_soft else "hard"
    x, y = as_data(dataset, "dataset")
    if y is None:
        raise ValueError(
            "dataset must carry labels: a DistilledSet, an (inputs, labels) pair or a labelled Dataset"
        )
    refuse_float_indices(y, "dataset labels of shape (N,)")
    soft = y.is_floating_point() and y.ndim == 2
    if labels == "soft" and not soft:
        raise ValueError("labels='soft' needs soft labels of shape (N, C) in dataset")
    if labels == "hard" and soft:
        y = y.argmax(dim=1)
        soft = False
    return x.float(), (y.float() if soft else y.long()), "soft" if soft else "hard"


def evaluate(
    dataset: Any,
    test_set: Any,
    seeds: Sequence[int] = (0, 1, 2),
    protocol: str | StudentProtocol = "dc",
    labels: str = "auto",
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> DistillEvaluation:
    """Train a fresh student per seed on ``dataset`` and measure it on ``test_set``.

    Parameters
    ----------
    dataset : DistilledSet, Dataset, DataLoader or (inputs, labels)
        The training set: inputs ``(N, *input_shape)``, labels ``(N,)`` or soft ``(N, C)``.
    test_set : Dataset, DataLoader or (inputs, labels)
        Labelled test samples of the same shape.
    seeds : sequence of int, default=(0, 1, 2)
    protocol : {"dc", "paper"} or StudentProtocol, default="dc"
        See :class:`StudentProtocol`.
    labels : {"auto", "hard", "soft"}, default="auto"
        ``"auto"`` trains on a DistilledSet's soft labels when it has them, else on the hard
        ones.
    num_classes : int, optional
        Default: the larger of the test set's and the training labels' largest class plus one.
    device : str or torch.device, optional
        Default: the CPU.
    progress : bool, default=True
        One progress bar over the students.

    Returns
    -------
    DistillEvaluation

    Notes
    -----
    The global torch random state is left as it was: each student is initialised inside
    :func:`torch.random.fork_rng`.
    """
    if isinstance(protocol, str):
        protocol = StudentProtocol.from_preset(protocol)
    if not isinstance(protocol, StudentProtocol):
        raise TypeError(f"protocol must be 'dc', 'paper' or a StudentProtocol, got {type(protocol).__name__}")
    protocol.validate()
    check_choice("labels", labels, ("auto", "hard", "soft"))
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
    if isinstance(seeds, np.ndarray | torch.Tensor) and seeds.ndim == 1:
        seeds = seeds.tolist()
    if isinstance(seeds, int) or not isinstance(seeds, Sequence) or len(seeds) == 0:
        raise TypeError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    seeds = tuple(to_python(s) for s in seeds)
    for s in seeds:
        check_positive("seeds", s, integer=True, allow_zero=True)
    x, y, kind = _training_pair(dataset, labels)
    tx, ty = as_data(test_set, "test_set")
    if ty is None:
        raise ValueError("test_set must carry labels")
    refuse_float_indices(ty, "test_set labels of shape (N,)")
    check_finite("dataset", x)
    check_finite("test_set", tx)
    x, tx = x.float(), tx.float()  # the students are float32 (numpy data is often float64)
    ty = ty.argmax(dim=1) if ty.is_floating_point() and ty.ndim == 2 else ty.long()
    if tuple(tx.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(
            f"test_set inputs have shape {tuple(tx.shape[1:])}, the training inputs {tuple(x.shape[1:])}"
        )
    given = num_classes is not None
    if num_classes is None:
        train_max = y.shape[1] if kind == "soft" else int(y.max()) + 1
        num_classes = max(train_max, int(ty.max()) + 1)
    num_classes = to_python(num_classes)
    check_positive("num_classes", num_classes, integer=True)
    reach = max(y.shape[1] if kind == "soft" else int(y.max()) + 1, int(ty.max()) + 1)
    if num_classes < reach or (kind == "soft" and y.shape[1] != num_classes):
        what = f"num_classes={num_classes} does not fit the labels" if given else "the labels disagree"
        raise ValueError(
            f"{what}: the training labels "
            f"{'have ' + str(y.shape[1]) + ' columns' if kind == 'soft' else 'reach ' + str(int(y.max()))}"
            f" and the test labels reach {int(ty.max())}"
        )
    device = check_device(device) or torch.device("cpu")
    augment = None
    if protocol.translate > 0 and x.ndim == 4:
        augment = Augmentation(translate=protocol.translate, crop=0.0, flip=0.0, cutout=0.0, noise=0.0)
    accs = []
    for seed in tqdm(seeds, desc="students", disable=not progress, leave=False):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            student = protocol.student(tuple(x.shape[1:]), int(num_classes)).to(device)
        if not accs:  # the protocol's student must map these inputs to num_classes logits
            _check_student(student, x[:2].to(device), int(num_classes))
        train_classifier(
            student,
            (x, y),
            epochs=protocol.epochs,
            lr=protocol.lr,
            batch_size=protocol.batch_size,
            optimizer=protocol.optimizer,
            weight_decay=protocol.weight_decay,
            momentum=protocol.momentum,
            lr_decay_at=protocol.lr_decay_at,
            augment=augment,
            seed=seed,
            device=device,
            progress=False,
        )
        preds = predict(student, tx.to(device)).argmax(1)
        accs.append((preds == ty.cpu()).float().mean().item())  # as models.accuracy
        if preds.unique().numel() == 1 and ty.unique().numel() > 1:
            scale = float(x.abs().max())
            cause = (
                f"as it does on inputs of a large scale (here up to {scale:.3g}); standardise "
                "the inputs or lower the protocol's lr"
                if scale > 10
                else f"with {protocol.epochs} epochs on {len(x)} inputs of a usual scale (up to "
                f"{scale:.3g}); train longer (epochs) or check the dataset's labels"
            )
            warnings.warn(
                f"the student of seed {seed} predicts one class for every test input (its accuracy "
                f"{accs[-1]:.3f} is that class's share): its training collapsed, {cause}",
                UserWarning,
                stacklevel=2,
            )
    return DistillEvaluation(
        mean=statistics.mean(accs),
        std=statistics.stdev(accs) if len(accs) > 1 else 0.0,
        accuracies=tuple(accs),
        seeds=seeds,
        labels=kind,
        protocol=protocol.to_dict(),
    )


def _check_student(student: nn.Module, x: Tensor, num_classes: int) -> None:
    """Raise naming the protocol when its student does not return ``(n, num_classes)`` logits."""
    try:
        with torch.no_grad(), eval_mode(student):
            out = student(x)
    except RuntimeError as e:
        raise ValueError(f"protocol's student cannot take inputs of shape {tuple(x.shape[1:])}: {e}") from e
    if not isinstance(out, Tensor) or tuple(out.shape) != (len(x), num_classes):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"protocol's student must return logits of shape (n, {num_classes}), one per class; "
            f"it returned {got} for {len(x)} inputs"
        )
