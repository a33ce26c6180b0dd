"""A cache of trained reference models in the user's cache directory.

Models are stored as ``state_dict`` files (loaded with ``weights_only=True``) next to a JSON
card with how they were trained and how well they do, so the demo and the benchmarks do not
retrain every time. The folder is ``$KKTEXPLAIN_CACHE`` or ``~/.cache/kktexplain``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .._validation import check_device
from ._architectures import MLP, ConvNet, ResNet
from ._train import accuracy, train_classifier

__all__ = ["cache_dir", "load_reference_model", "reference_init", "REFERENCE_MODELS", "ReferenceSpec"]


def check_reference_name(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a key of ``REFERENCE_MODELS``."""
    if name not in REFERENCE_MODELS:
        raise ValueError(f"name must be a reference model, one of {sorted(REFERENCE_MODELS)}; got {name!r}")


def cache_dir() -> Path:
    """The cache folder: ``$KKTEXPLAIN_CACHE`` or ``~/.cache/kktexplain``."""
    return Path(os.environ.get("KKTEXPLAIN_CACHE", Path.home() / ".cache" / "kktexplain"))


@dataclass(frozen=True)
class ReferenceSpec:
    """How a reference model is built and trained.

    Parameters
    ----------
    dataset : {"fashion_mnist", "digits"}
    architecture : {"convnet", "mlp", "resnet"}
    arch_kwargs : dict
    train_kwargs : dict
        Passed to :func:`train_classifier`.
    seed : int
        Seeds the initialisation and the training order.
    """

    dataset: str
    architecture: str
    arch_kwargs: dict = field(default_factory=dict)
    train_kwargs: dict = field(default_factory=dict)
    seed: int = 0


REFERENCE_MODELS: dict[str, ReferenceSpec] = {
    "fashion_mnist_convnet": ReferenceSpec(
        "fashion_mnist",
        "convnet",
        {"width": 128, "norm": "instancenorm"},
        {"epochs": 3, "lr": 1e-3, "weight_decay": 5e-4, "batch_size": 256, "lr_decay_at": 2 / 3},
    ),
    # small enough to ship inside the package (models/weights/, 41,872 bytes of safetensors), so that
    # `kktexplain demo` needs no training; python -m kktexplain.models.train_shipped remakes it
    "fashion_mnist_small": ReferenceSpec(
        "fashion_mnist",
        "convnet",
        {"width": 16, "depth": 2, "norm": "none", "pooling": "max"},
        {"epochs": 4, "lr": 3e-3, "batch_size": 128, "lr_decay_at": 2 / 3},
    ),
    "digits_mlp": ReferenceSpec(
        "digits",
        "mlp",
        {"hidden": (128, 128)},
        {"epochs": 60, "lr": 1e-3, "weight_decay": 5e-4, "batch_size": 128},
    ),
}

_ARCH: dict[str, Callable[..., nn.Module]] = {"convnet": ConvNet, "mlp": MLP, "resnet": ResNet}


def _data(name: str, train: bool):
    from ..datasets import load_digits, load_fashion_mnist

    if name == "fashion_mnist":
        return load_fashion_mnist(train=train)
    if name == "digits":
        ds = load_digits()
        gen = torch.Generator().manual_seed(0)
        perm = torch.randperm(len(ds), generator=gen)
        cut = int(0.8 * len(ds))
        return ds.subset(perm[:cut] if train else perm[cut:])
    raise ValueError(f"unknown dataset {name!r}")


def _build(spec: ReferenceSpec, input_shape, num_classes: int) -> nn.Module:
    torch.manual_seed(spec.seed)
    return _ARCH[spec.architecture](input_shape=input_shape, num_classes=num_classes, **spec.arch_kwargs)


_SHAPES = {"fashion_mnist": ((1, 28, 28), 10), "digits": ((1, 8, 8), 10)}


def reference_init(name: str = "fashion_mnist_convnet") -> nn.Module:
    """The untrained initialisation ``theta_0`` a reference model was trained from.

    Rebuilt from the spec's seed (no training, no cache). Pass it as ``reference=`` to
    :meth:`kktexplain.DeepSupportVectors.attribute` to match the training displacement
    ``theta* - theta_0``.

    Parameters
    ----------
    name : str, default="fashion_mnist_convnet"

    Returns
    -------
    nn.Module
        In eval mode.
    """
    check_reference_name(name)
    spec = REFERENCE_MODELS[name]
    return _build(spec, *_SHAPES[spec.dataset]).eval()


def load_reference_model(
    name: str = "fashion_mnist_convnet",
    retrain: bool = False,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, dict]:
    """A trained reference model: shipped in the package, or trained on first use and cached.

    Models whose weights ship inside the package (``fashion_mnist_small``) load from there;
    the others are trained on first use and cached in :func:`cache_dir`.

    Parameters
    ----------
    name : str, default="fashion_mnist_convnet"
        A key of ``REFERENCE_MODELS``.
    retrain : bool, default=False
        Ignore the shipped weights and the cache, and train again (the result is cached).
    progress : bool, default=True
    device : str or torch.device, default="cpu"

    Returns
    -------
    model : nn.Module
        In eval mode.
    card : dict
        The spec, the test accuracy, the training time and the initial parameters' seed.
    """
    check_reference_name(name)
    device = check_device(device) or torch.device("cpu")
    spec = REFERENCE_MODELS[name]
    if not retrain:
        from ._shipped import load_shipped_model

        shipped = load_shipped_model(name)
        if shipped is not None:
            return shipped[0].to(device), shipped[1]
    train = _data(spec.dataset, True)
    model = _build(spec, train.input_shape, train.num_classes)
    folder = cache_dir() / "models"
    weights, card_path = folder / f"{name}.pt", folder / f"{name}.json"
    if weights.is_file() and card_path.is_file() and not retrain:
        card = json.loads(card_path.read_text())
        if card.get("spec") == json.loads(json.dumps(asdict(spec))):
            model.load_state_dict(torch.load(weights, weights_only=True, map_location="cpu"))
            return model.to(device).eval(), card
    start = time.perf_counter()
    train_classifier(model, train, seed=spec.seed, progress=progress, device=device, **spec.train_kwargs)
    seconds = time.perf_counter() - start
    card = {
        "name": name,
        "spec": json.loads(json.dumps(asdict(spec))),
        "test_accuracy": accuracy(model, _data(spec.dataset, False)),
        "train_accuracy": accuracy(model, train),
        "train_seconds": seconds,
        "torch": torch.__version__,
    }
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), weights)
    card_path.write_text(json.dumps(card, indent=2))
    return model.eval(), card
