"""Per-decision explanations from the support-vector expansion, with captum's conventions.

* :class:`SupportVectorInfluence` (a ``captum.influence.DataInfluence``): which support vectors
  push a decision for or against, and by how much;
* :class:`SupportVectorAttribution` (a ``captum.attr.GradientAttribution``): which input
  features carry that push;
* :func:`explain` / :class:`Explanation`: both for one decision, with figures;
* :func:`equal_multipliers`: the same samples with the one multiplier of weight-decay training,
  for ranking;
* :class:`SupportExpansion`: the cached engine, and :class:`ExpansionFidelity`, how well the
  expansion reproduces the model;
* ``evaluate_*``: the faithfulness evaluations, each beside captum's TracInCP (:func:`tracin`);
  :func:`evaluate_model` runs those that need no retraining on a model of one's own.
"""

from ._attribution import SupportVectorAttribution
from ._baselines import tracin
from ._evaluate import evaluate_identical_class, evaluate_mislabels, evaluate_removal
from ._expansion import SupportExpansion
from ._explain import explain
from ._explanation import Explanation
from ._fidelity import ExpansionFidelity
from ._influence import SupportVectorInfluence, equal_multipliers
from ._randomization import evaluate_randomization
from ._user_evaluation import USER_PARTS, evaluate_model

__all__ = [
    "USER_PARTS",
    "ExpansionFidelity",
    "Explanation",
    "SupportExpansion",
    "SupportVectorAttribution",
    "SupportVectorInfluence",
    "equal_multipliers",
    "evaluate_identical_class",
    "evaluate_mislabels",
    "evaluate_model",
    "evaluate_randomization",
    "evaluate_removal",
    "explain",
    "tracin",
]
