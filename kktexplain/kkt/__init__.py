"""DeepKKT: the conditions, the objective and the gradients it needs, as pure functions.

This subpackage knows nothing of the explainer; :class:`kktexplain.DeepSupportVectors` drives it.
"""

from ._augment import Augmentation
from ._collect import CountSketch, collect_gradients
from ._conditions import (
    PRIMAL_KINDS,
    STATIONARITY_DISTANCES,
    cross_entropy,
    dual_feasibility,
    hard_labels,
    multiclass_hinge,
    primal_feasibility,
    primal_margin,
    stationarity,
    stationarity_cosine,
    stationarity_per_layer,
)
from ._functional import FunctionalModel
from ._grads import iter_per_sample_grads, per_sample_grads, weighted_loss_grad
from ._invariance import ScaleInvariance, scale_invariant_modules
from ._kronecker import KroneckerSketch
from ._nnls import working_set_bvls, working_set_nnls
from ._objective import PRESETS, KKTObjective, ObjectiveValue
from ._priors import input_norm, total_variation
from ._residuals import KKTResiduals, kkt_residuals, predictive_entropy
from ._selection import solve_multipliers

__all__ = [
    "ScaleInvariance",
    "scale_invariant_modules",
    "Augmentation",
    "CountSketch",
    "FunctionalModel",
    "KKTObjective",
    "KKTResiduals",
    "KroneckerSketch",
    "ObjectiveValue",
    "PRESETS",
    "PRIMAL_KINDS",
    "STATIONARITY_DISTANCES",
    "collect_gradients",
    "cross_entropy",
    "dual_feasibility",
    "hard_labels",
    "input_norm",
    "kkt_residuals",
    "multiclass_hinge",
    "iter_per_sample_grads",
    "per_sample_grads",
    "predictive_entropy",
    "primal_feasibility",
    "primal_margin",
    "stationarity",
    "stationarity_cosine",
    "solve_multipliers",
    "working_set_bvls",
    "working_set_nnls",
    "stationarity_per_layer",
    "total_variation",
    "weighted_loss_grad",
]
