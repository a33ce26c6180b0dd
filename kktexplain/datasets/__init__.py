"""Offline datasets as :class:`LabeledDataset` (torch datasets with normalisation and classes)."""

from ._base import LabeledDataset
from ._fashion_mnist import (
    FASHION_MNIST_CLASSES,
    find_fashion_mnist,
    load_fashion_mnist,
    read_idx,
)
from ._sklearn import SYNTHETIC_2D, TABULAR, load_digits, load_tabular, make_2d

__all__ = [
    "FASHION_MNIST_CLASSES",
    "LabeledDataset",
    "SYNTHETIC_2D",
    "TABULAR",
    "find_fashion_mnist",
    "load_digits",
    "load_fashion_mnist",
    "load_tabular",
    "make_2d",
    "read_idx",
]
