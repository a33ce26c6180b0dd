"""Dataset distillation with deep support vectors, and a fixed protocol to score it.

``distill`` turns a trained classifier into a small labelled training set (DSVs from real
samples, from noise or from other data); ``random_real`` and ``coreset`` give the baselines;
``evaluate`` trains fresh students on any of them and reports mean ± std test accuracy.
"""

from ._dataset import DistilledSet
from ._distill import add_soft_labels, coreset, distill, random_real
from ._evaluate import DistillEvaluation, StudentProtocol, evaluate

__all__ = [
    "DistilledSet",
    "DistillEvaluation",
    "StudentProtocol",
    "add_soft_labels",
    "coreset",
    "distill",
    "evaluate",
    "random_real",
]
