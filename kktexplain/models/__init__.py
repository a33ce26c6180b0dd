"""Reference architectures, training, and a cache of trained reference models."""

from ._architectures import MLP, ConvNet, ResNet
from ._binary import TwoClassLogits
from ._cache import REFERENCE_MODELS, ReferenceSpec, cache_dir, load_reference_model, reference_init
from ._shipped import load_shipped_model
from ._train import accuracy, predict, train_classifier

__all__ = [
    "MLP",
    "ConvNet",
    "ResNet",
    "TwoClassLogits",
    "REFERENCE_MODELS",
    "ReferenceSpec",
    "cache_dir",
    "load_reference_model",
    "load_shipped_model",
    "reference_init",
    "accuracy",
    "predict",
    "train_classifier",
]
