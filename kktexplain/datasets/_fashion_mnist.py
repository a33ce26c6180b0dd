"""Fashion-MNIST from its IDX files, found offline."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import torch

from ._base import LabeledDataset

__all__ = ["load_fashion_mnist", "find_fashion_mnist", "FASHION_MNIST_CLASSES", "read_idx"]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
ENV_VAR = "KKTEXPLAIN_FASHION_MNIST"
DEBIAN_ROOT = "/usr/share/datasets/fashion-mnist"
_MEAN, _STD = 0.2860, 0.3530
_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into an array.

    Parameters
    ----------
    path : path-like
        ``*.gz`` files are decompressed on the fly.

    Returns
    -------
    numpy.ndarray
        With the shape and dtype recorded in the file's header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int)
    array = np.frombuffer(data, dtype=_DTYPES[data[2]], offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: header says {tuple(dims)}, found {array.size} values")
    return array.reshape(tuple(dims))


def _candidates(root: str | os.PathLike | None) -> list[Path]:
    out = []
    if root is not None:
        out += [Path(root), Path(root) / "FashionMNIST" / "raw"]
    if os.environ.get(ENV_VAR):
        env = Path(os.environ[ENV_VAR])
        out += [env, env / "FashionMNIST" / "raw"]
    out += [Path.home() / ".cache" / "kktexplain" / "fashion-mnist", Path(DEBIAN_ROOT)]
    return out


def _locate(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def find_fashion_mnist(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds the four Fashion-MNIST IDX files.

    Looked for, in order: ``root`` and ``root/FashionMNIST/raw`` (torchvision's layout), the
    folder in the environment variable ``KKTEXPLAIN_FASHION_MNIST`` (and its torchvision
    layout), ``~/.cache/kktexplain/fashion-mnist`` and Debian's
    ``/usr/share/datasets/fashion-mnist``. Files may be gzip-compressed or not.

    Parameters
    ----------
    root : path-like, optional

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        If no candidate folder holds all four files; the message says how to get them.
    """
    tried = _candidates(root)
    for folder in tried:
        if all(_locate(folder, s) for pair in _FILES.values() for s in pair):
            return folder
    raise FileNotFoundError(
        "Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], ...) were not found in: "
        + ", ".join(str(p) for p in tried)
        + ". On Debian run `apt-get install dataset-fashion-mnist`; otherwise download the four "
        f"files and pass root=... or set {ENV_VAR}."
    )


def load_fashion_mnist(
    root: str | os.PathLike | None = None, train: bool = True, normalize: bool = True
) -> LabeledDataset:
    """Fashion-MNIST as a :class:`LabeledDataset` of shape ``(N, 1, 28, 28)``.

    Parameters
    ----------
    root : path-like, optional
        See :func:`find_fashion_mnist` for where else it looks.
    train : bool, default=True
        The 60,000 training images, or the 10,000 test images.
    normalize : bool, default=True
        Standardise with the training set's mean 0.2860 and std 0.3530; ``False`` keeps raw
        values in ``[0, 1]`` (mean 0, std 1 recorded).

    Returns
    -------
    LabeledDataset
    """
    folder = find_fashion_mnist(root)
    img_stem, lbl_stem = _FILES[bool(train)]
    images = read_idx(_locate(folder, img_stem))
    labels = read_idx(_locate(folder, lbl_stem))
    mean, std = (_MEAN, _STD) if normalize else (0.0, 1.0)
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)  # one float copy, scaled in place
    x.div_(255.0).sub_(mean).div_(std)
    return LabeledDataset(
        x,
        torch.from_numpy(labels.astype(np.int64)),
        FASHION_MNIST_CLASSES,
        torch.tensor([mean]),
        torch.tensor([std]),
        raw_range=(0.0, 1.0),
        name="fashion_mnist" + ("" if train else "_test"),
    )
