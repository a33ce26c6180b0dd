"""Small datasets shipped with scikit-learn, and 2-D synthetic sets."""

from __future__ import annotations

import numpy as np
import torch
from sklearn import datasets as skd
from sklearn.preprocessing import StandardScaler

from ._base import LabeledDataset

__all__ = ["load_digits", "load_tabular", "make_2d", "TABULAR", "SYNTHETIC_2D"]

TABULAR = ("breast_cancer", "iris", "wine")
SYNTHETIC_2D = ("moons", "blobs", "circles")


def load_digits(normalize: bool = True) -> LabeledDataset:
    """scikit-learn's 8x8 digits as images of shape ``(N, 1, 8, 8)``, raw range ``[0, 16]``.

    Parameters
    ----------
    normalize : bool, default=True
        Standardise with the global pixel mean and std.

    Returns
    -------
    LabeledDataset
    """
    bunch = skd.load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1)
    mean, std = (x.mean().item(), x.std().item()) if normalize else (0.0, 1.0)
    return LabeledDataset(
        (x - mean) / std,
        torch.tensor(bunch.target),
        [str(c) for c in bunch.target_names],
        torch.tensor([mean]),
        torch.tensor([std]),
        raw_range=(0.0, 16.0),
        name="digits",
    )


def _standardized(x: np.ndarray, y: np.ndarray, classes, name: str) -> LabeledDataset:
    scaler = StandardScaler().fit(x)
    xs = torch.tensor(scaler.transform(x), dtype=torch.float32)
    return LabeledDataset(
        xs,
        torch.tensor(y),
        [str(c) for c in classes],
        torch.tensor(scaler.mean_, dtype=torch.float32),
        torch.tensor(scaler.scale_, dtype=torch.float32),
        name=name,
    )


def load_tabular(name: str) -> LabeledDataset:
    """A standardised tabular dataset of scikit-learn: ``(N, n_features)``.

    Parameters
    ----------
    name : {"breast_cancer", "iris", "wine"}

    Returns
    -------
    LabeledDataset
    """
    loaders = {"breast_cancer": skd.load_breast_cancer, "iris": skd.load_iris, "wine": skd.load_wine}
    if name not in loaders:
        raise ValueError(f"name must be one of {TABULAR}, got {name!r}")
    bunch = loaders[name]()
    return _standardized(bunch.data, bunch.target, bunch.target_names, name)


def make_2d(name: str = "moons", n_samples: int = 200, noise: float = 0.1, seed: int = 0) -> LabeledDataset:
    """A standardised 2-D synthetic set (scikit-learn's generators): ``(n_samples, 2)``.

    Parameters
    ----------
    name : {"moons", "blobs", "circles"}, default="moons"
    n_samples : int, default=200
    noise : float, default=0.1
        Noise of moons and circles; blobs use a cluster std of ``10 * noise``.
    seed : int, default=0

    Returns
    -------
    LabeledDataset
        Two classes.
    """
    if name == "moons":
        x, y = skd.make_moons(n_samples, noise=noise, random_state=seed)
    elif name == "circles":
        x, y = skd.make_circles(n_samples, noise=noise, factor=0.5, random_state=seed)
    elif name == "blobs":
        x, y = skd.make_blobs(n_samples, centers=2, cluster_std=10 * noise, random_state=seed)
    else:
        raise ValueError(f"name must be one of {SYNTHETIC_2D}, got {name!r}")
    return _standardized(x, y, ["0", "1"], name)
