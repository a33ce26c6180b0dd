"""The linear-SVM sanity check against scikit-learn's ``SVC(kernel="linear")``."""

from ._sanity import LinearSVMModel, SanityResult, fit_linear_svm_torch, sanity_check

__all__ = ["LinearSVMModel", "SanityResult", "fit_linear_svm_torch", "sanity_check"]
