"""The linear-SVM sanity check against scikit-learn's ``SVC(kernel="linear")``."""

from ._sanity import LinearSVMModel, SanityResult, fit_linear_svm_torch, sanity_check
from ._suite import SANITY_DATASETS, run_sanity_suite

__all__ = [
    "LinearSVMModel",
    "SANITY_DATASETS",
    "SanityResult",
    "fit_linear_svm_torch",
    "run_sanity_suite",
    "sanity_check",
]
