"""kktexplain: the support vectors of a deep network (Deep Support Vectors, DeepKKT).

Lee, Lee, Hwang, Kwak. "Deep Support Vectors". NeurIPS 2024. arXiv:2403.17329.
"""

from ._explainer import DeepSupportVectors
from ._readiness import KKTReadiness, kkt_readiness
from ._result import Coreset, DSVResult, KKTResiduals
from ._synthesis import NonFiniteError

__version__ = "0.1.0"

__all__ = [
    "Coreset",
    "DSVResult",
    "DeepSupportVectors",
    "KKTReadiness",
    "KKTResiduals",
    "NonFiniteError",
    "__version__",
    "kkt_readiness",
]
