"""The linear-SVM sanity check against scikit-learn's ``SVC(kernel="linear")``."""

from ._linear import LinearSVMModel, fit_linear_svm_torch
from ._sanity import SanityResult, sanity_check
from ._start import synthesis_init, synthesis_step_sizes
from ._suite import SANITY_DATASETS, run_sanity_suite
from ._svc_kkt import SVCDiagnostics, svc_kkt_diagnostics

__all__ = [
    "LinearSVMModel",
    "SANITY_DATASETS",
    "SVCDiagnostics",
    "SanityResult",
    "fit_linear_svm_torch",
    "run_sanity_suite",
    "sanity_check",
    "svc_kkt_diagnostics",
    "synthesis_init",
    "synthesis_step_sizes",
]
