"""Generation with the label as a latent variable (Lee et al., 2024, Sec 5.2).

DeepKKT synthesis from a label is a generator without a generator network: the stationarity
and prior terms play the score, the primal term the class guidance. Hard labels give
class-conditional samples, soft labels ``(1 - δ) y_a + δ y_b`` blends and interpolations, and
starting from a real image edits it toward another class.

>>> from kktexplain.generate import sample, blend, interpolate, edit
"""

from ._api import EDIT_DEFAULTS, blend, blend_labels, edit, interpolate, sample
from ._core import GENERATION_DEFAULTS
from ._result import GenerationResult
from ._ssim import ssim

__all__ = [
    "EDIT_DEFAULTS",
    "GENERATION_DEFAULTS",
    "GenerationResult",
    "blend",
    "blend_labels",
    "edit",
    "interpolate",
    "sample",
    "ssim",
]
